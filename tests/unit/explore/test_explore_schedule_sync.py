"""The "sync" decision kind (machine/schedule.py) and the executors' common interface."""

import pytest

from armvisor.errors import ArmvisorError
from armvisor.explore import executors
from armvisor.machine.schedule import NO_PREEMPTION, Decision, Schedule


class FakeCore:
    index = 1

    def __init__(self):
        self.shortened = []

    def shorten_slice(self, instructions):
        self.shortened.append(instructions)


def test_sync_points_cost_nothing_unless_watched():
    schedule, core = Schedule(chooser=lambda *a: 0), FakeCore()
    schedule.at_sync(core, "mmio")
    assert core.shortened == [] and schedule.counts["sync"] == 0


def test_a_watching_schedule_counts_sync_points_and_ends_slices():
    schedule = Schedule((Decision("sync", 1, 0),))
    assert schedule.watch_sync
    core = FakeCore()
    for _ in range(3):
        schedule.at_sync(core, "psci")
    assert core.shortened == [NO_PREEMPTION, 0, NO_PREEMPTION]
    assert schedule.taken == [Decision("sync", 1, 0)]


def test_sync_decisions_round_trip_through_a_file(tmp_path):
    schedule = Schedule(chooser=lambda kind, index, default, context: 5, watch_sync=True)
    schedule.at_sync(FakeCore(), "mmio")
    path = tmp_path / "s.json"
    schedule.save(str(path))
    loaded = Schedule.load(str(path))
    assert loaded.watch_sync and loaded.decisions == {("sync", 0): 5}
    with pytest.raises(ArmvisorError, match="non-negative"):
        Decision.from_data({"kind": "sync", "index": 0, "value": -1})


def test_in_process_executor():
    with executors.make(jobs=1) as executor:
        good, bad = executor.submit(divmod, 7, 2), executor.submit(divmod, 1, 0)
        assert set(executor.wait([good, bad])) == {good, bad}
        assert executor.result(good) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            executor.result(bad)


def test_jobs_must_be_positive():
    with pytest.raises(ArmvisorError, match="--jobs"):
        executors.make(jobs=0)


@pytest.mark.parametrize("module", ["predicates", "strategies", "shrink", "executors",
                                    "exclusives"])
def test_docstring_examples(module):
    import doctest
    import importlib
    failed, _ = doctest.testmod(importlib.import_module(f"armvisor.explore.{module}"))
    assert failed == 0


def test_exclusives_of_a_file_that_is_no_aarch64_elf(tmp_path):
    from armvisor.explore import exclusives
    raw = tmp_path / "Image"
    raw.write_bytes(b"\x20\xfc\x5f\x88" * 4)
    assert exclusives.addresses(str(raw)) == ()
    assert exclusives.addresses(str(tmp_path / "missing")) == ()
