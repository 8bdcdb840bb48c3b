"""Schedules as data: decisions, defaults, files, and the run loop asking them."""

import json

import pytest

from armvisor.errors import ArmvisorError
from armvisor.machine.clock import Clock
from armvisor.machine.runloop import RunLoop
from armvisor.machine.schedule import Decision, Schedule
from armvisor.trace import TraceBus

from tests.unit.machine.test_runloop import ScriptedBoard


def test_default_schedule_answers_defaults_and_logs_nothing():
    schedule = Schedule()
    assert schedule.decide("slice", 500) == 500
    assert schedule.decide("order", [0, 1, 2]) == [0, 1, 2]
    assert schedule.taken == []


def test_explicit_decisions_are_taken_by_kind_and_index():
    schedule = Schedule((Decision("slice", 1, 7), Decision("order", 0, [2, 0, 1])))
    assert schedule.decide("order", [0, 1, 2]) == [2, 0, 1]
    assert [schedule.decide("slice", 100) for _ in range(3)] == [100, 7, 100]
    assert schedule.taken == [Decision("order", 0, [2, 0, 1]), Decision("slice", 1, 7)]


def test_chooser_answers_points_without_a_decision_and_only_changes_are_logged():
    schedule = Schedule((Decision("slice", 0, 3),),
                        chooser=lambda kind, index, default, context: default if index % 2 else 9)
    assert [schedule.decide("slice", 100) for _ in range(4)] == [3, 100, 9, 100]
    assert [d.index for d in schedule.taken] == [0, 2]


def test_an_order_decision_is_made_a_permutation_of_the_lanes():
    schedule = Schedule((Decision("order", 0, [1, 1, 7]),))
    assert schedule.decide("order", [0, 1, 2]) == [1, 0, 2]


def test_decisions_are_traced():
    bus, seen = TraceBus(), []
    bus.subscribe(seen.append)
    schedule = Schedule((Decision("power_on", 0, 5),), trace=bus)
    schedule.decide("power_on", 1000, cpu=0, target=1)
    assert [(e.kind, e.fields["value"], e.fields["default"]) for e in seen] == \
        [("schedule.decision", 5, 1000)]


def test_an_unarmed_schedule_counts_nothing_until_armed():
    schedule = Schedule((Decision("slice", 0, 3),), armed=False)
    assert schedule.decide("slice", 100) == 100
    schedule.arm()
    assert schedule.decide("slice", 100) == 3


def test_files_round_trip(tmp_path):
    schedule = Schedule((Decision("slice", 4, 11),), chooser=lambda *a: a[2])
    schedule.decide("order", [0, 1])
    for _ in range(5):
        schedule.decide("slice", 100)
    path = tmp_path / "s.json"
    schedule.save(str(path), seed=3)
    again = Schedule.load(str(path))
    assert json.loads(path.read_text())["seed"] == 3
    assert [again.decide("slice", 100) for _ in range(5)] == [100] * 4 + [11]


@pytest.mark.parametrize("content, message", [
    ("not json", "not a schedule file"),
    ('{"format": "other"}', "not an armvisor schedule"),
    ('{"format": "armvisor-schedule", "version": 99, "decisions": []}', "version 99"),
    ('{"format": "armvisor-schedule", "version": 1, "decisions": [{"kind": "nap", "index": 0,'
     ' "value": 1}]}', "unknown decision kind"),
    ('{"format": "armvisor-schedule", "version": 1, "decisions": [{"kind": "slice",'
     ' "index": -1, "value": 1}]}', "non-negative"),
    ('{"format": "armvisor-schedule", "version": 1, "decisions": [{"kind": "slice",'
     ' "index": 0, "value": "x"}]}', "non-negative integer"),
    ('{"format": "armvisor-schedule", "version": 1, "decisions": [3]}', "must be an object"),
])
def test_bad_schedule_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ArmvisorError, match=message):
        Schedule.load(str(path))


def test_the_run_loop_takes_lane_order_and_slices_from_the_schedule():
    board = ScriptedBoard(Clock(deterministic=True), [2, 2, 2])
    turns = []
    original = board.run_turn
    board.run_turn = lambda lane, budget: turns.append((lane, budget)) or original(lane, budget)
    schedule = Schedule((Decision("order", 0, [2, 1, 0]), Decision("slice", 1, 17)))
    RunLoop(board, board.clock, 100, schedule).run()
    assert turns[:3] == [(2, 100), (1, 17), (0, 100)]
    assert turns[3:] == [(0, 100), (1, 100), (2, 100)]


def test_the_run_loop_resumes_in_the_middle_of_a_round():
    """Stopping after one turn and running again must not restart the round at lane 0."""
    board = ScriptedBoard(Clock(deterministic=True), [1, 1, 1])
    turns = []
    original = board.run_turn
    board.run_turn = lambda lane, budget: turns.append(lane) or original(lane, budget)

    class AfterOneTurn:
        def clip(self, lane, budget):
            return budget

        def met(self):
            return len(turns) == 1

    loop = RunLoop(board, board.clock, 100)
    assert loop.run(until=AfterOneTurn()) is None
    state = loop.save_state()
    again = RunLoop(board, board.clock, 100)
    again.restore_state(state)
    assert again.run() == 0
    assert turns == [0, 1, 2]
