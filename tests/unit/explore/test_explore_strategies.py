"""Strategies as data: plans depend on the seed and the run only."""

import pickle
from math import comb

import pytest

from armvisor.explore.strategies import (Fixed, Pct, PctPlan, RandomSlices, Record, Systematic,
                                         interleave, make)
from armvisor.machine.schedule import NO_PREEMPTION, Decision


class Baseline:
    def __init__(self, instructions=100_000, points=(), counts=None):
        self.instructions, self.points = instructions, tuple(points)
        self.counts = counts or {}


class Clock:
    """Stands for the machine: its instruction count."""

    def __init__(self):
        self.instructions = 0


def answers(chooser, kinds, n=300):
    defaults = {"slice": 50_000, "power_on": 1000, "kick": 0, "order": [0, 1, 2, 3],
                "sync": NO_PREEMPTION}
    return [chooser(kind, i, defaults[kind], {"cpu": i % 4}) for i in range(n) for kind in kinds]


def test_random_plans_repeat_for_a_seed_and_run_and_differ_across_runs():
    strategy = RandomSlices(seed=7, slice_budget=50_000)
    kinds = ("slice", "order", "power_on", "kick")
    first = answers(strategy.plan(5).chooser(None), kinds)
    assert first == answers(pickle.loads(pickle.dumps(strategy.plan(5))).chooser(None), kinds)
    assert first != answers(strategy.plan(6).chooser(None), kinds)
    assert first != answers(RandomSlices(seed=8).plan(5).chooser(None), kinds)


def test_random_values_stay_in_range():
    strategy = RandomSlices(seed=1, slice_budget=50_000)
    for run in range(1, 40):
        chooser = strategy.plan(run).chooser(None)
        for i in range(200):
            assert 1 <= chooser("slice", i, 50_000, {}) <= 50_000
            assert 0 <= chooser("power_on", i, 1000, {}) <= 1000
            assert 0 <= chooser("kick", i, 0, {}) <= 50_000
            assert sorted(chooser("order", i, [0, 1, 2], {})) == [0, 1, 2]
            assert chooser("sync", i, NO_PREEMPTION, {}) == NO_PREEMPTION


def test_random_slices_favour_short_ones():
    # Log-uniform: a slice under 1000 instructions (2% of the range) comes up
    # in a good share of the changed slices, so a CPU stops early in its turn.
    chooser = RandomSlices(seed=3).plan(1).chooser(None)
    changed = [v for v in (chooser("slice", i, 50_000, {}) for i in range(20_000)) if v != 50_000]
    assert changed and sum(v < 1000 for v in changed) / len(changed) > 0.4


def test_pct_orders_lanes_by_priority_and_cuts_at_change_points():
    clock = Clock()
    plan = PctPlan(priorities=(1, 3, 2), steps=(), instructions=(1500,))
    chooser = plan.chooser(clock)
    assert chooser("order", 0, [0, 1, 2], {}) == [1, 2, 0]
    clock.instructions = 1000
    assert chooser("slice", 0, 50_000, {"cpu": 1}) == 500      # cut at instruction 1500
    assert chooser("order", 1, [0, 1, 2], {}) == [2, 0, 1]     # lane 1 dropped below all
    assert chooser("slice", 1, 50_000, {"cpu": 2}) == 50_000   # no change point left


def test_pct_change_at_a_sync_point_ends_the_slice_there():
    chooser = PctPlan(priorities=(2, 1), steps=(("sync", 4),), instructions=()).chooser(Clock())
    assert chooser("sync", 3, NO_PREEMPTION, {"cpu": 0}) == NO_PREEMPTION
    assert chooser("sync", 4, NO_PREEMPTION, {"cpu": 0}) == 0
    assert chooser("order", 0, [0, 1], {}) == [1, 0]


def test_pct_plans_have_depth_minus_one_changes():
    strategy = Pct(seed=2, depth=4, lanes=3)
    strategy.prepare(Baseline(10_000, counts={"sync": 50, "power_on": 2, "slice": 9}))
    for run in range(1, 30):
        plan = strategy.plan(run)
        assert sorted(plan.priorities) == [1, 2, 3]
        assert len(plan.steps) + len(plan.instructions) == 3
        assert all(0 <= at < 10_000 for at in plan.instructions)
        assert all((k == "sync" and i < 50) or (k == "power_on" and i < 2) for k, i in plan.steps)
    assert strategy.plan(9) == strategy.plan(9)


def test_interleave_takes_each_cpu_and_kind_in_turn():
    points = [("sync", i, 0, "mmio") for i in range(3)] + [("sync", 3, 1, "mmio"),
                                                            ("power_on", 0, 0, ""),
                                                            ("sync", 4, 0, "psci")]
    assert interleave(points) == [("sync", 0, 0, "mmio"), ("sync", 3, 1, "mmio"),
                                  ("power_on", 0, 0, ""), ("sync", 4, 0, "psci"),
                                  ("sync", 1, 0, "mmio"), ("sync", 2, 0, "mmio")]


def test_systematic_enumerates_single_then_double_changes_then_stops():
    strategy = Systematic(preemptions=2, points=5, slice_budget=50_000)
    points = [("sync", i, i % 2, "mmio") for i in range(8)] + [("slice", 0, 0, ""),
                                                               ("kick", 0, 1, ""),
                                                               ("power_on", 0, 0, "")]
    strategy.prepare(Baseline(points=points))
    assert len(strategy.candidates) == 5 and strategy.size == 5 + comb(5, 2)
    plans = [strategy.plan(run) for run in range(1, strategy.size + 1)]
    assert all(len(p.decisions()) == 1 for p in plans[:5])
    assert all(len(p.decisions()) == 2 for p in plans[5:])
    assert len({p.decisions() for p in plans}) == len(plans)         # no schedule twice
    assert strategy.plan(strategy.size + 1) is None
    values = {d.kind: d.value for p in plans for d in p.decisions()}
    assert values == {"sync": 0, "kick": 50_000, "power_on": 0}
    assert all(p.watch_sync for p in plans)


def test_fixed_and_record_plans():
    decisions = (Decision("slice", 2, 10), Decision("sync", 0, 0))
    schedule = Fixed(decisions).schedule(None)
    assert schedule.watch_sync and schedule.decide("slice", 50_000) == 50_000
    assert schedule.decide("slice", 50_000) == 50_000
    assert schedule.decide("slice", 50_000) == 10
    assert not Fixed((Decision("slice", 0, 5),)).schedule(None).watch_sync
    recording = Record().schedule(None)
    assert recording.watch_sync
    assert recording.decide("kick", 0, cpu=1) == 0
    assert recording.decide("order", [0, 1]) == [0, 1]
    assert recording.decide("slice", 50_000, cpu=0) == 50_000
    assert recording.chooser.points == [("kick", 0, 1, "")] and recording.taken == []


def test_the_recorder_keeps_the_first_points_of_each_queue(monkeypatch):
    recording = Record().schedule(None)
    monkeypatch.setattr(type(recording.chooser), "PER_QUEUE", 3)
    for cpu in (0, 1):
        for _ in range(5):
            recording.decide("sync", NO_PREEMPTION, cpu=cpu, point="mmio")
    recording.decide("sync", NO_PREEMPTION, cpu=0, point="psci")
    assert [(i, c, w) for _k, i, c, w in recording.chooser.points] == [
        (0, 0, "mmio"), (1, 0, "mmio"), (2, 0, "mmio"), (5, 1, "mmio"), (6, 1, "mmio"),
        (7, 1, "mmio"), (10, 0, "psci")]


def test_make_knows_the_strategies():
    assert isinstance(make("random"), RandomSlices)
    assert isinstance(make("pct", lanes=2), Pct)
    assert isinstance(make("systematic"), Systematic)
    with pytest.raises(ValueError):
        make("exhaustive")
