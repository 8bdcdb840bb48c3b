"""Starting runs late: from a snapshot of the start point when one can be made and
behaves as a boot does, else by running there under the default schedule.
Fakes stand for the machine: the bare board cannot be snapshotted yet."""

from armvisor.explore import explorer, runner
from armvisor.explore.runner import Outcome, Target


class FakeMachine:
    built = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.instructions = 0
        self.ran_to = None
        FakeMachine.built.append(self)

    @classmethod
    def restore(cls, path, **kwargs):
        machine = cls(restored_from=path)
        return machine

    def run(self, until=None, timeout=None):
        until.attach(self)
        self.instructions = until.count
        self.ran_to = until.count
        return None

    def snapshot(self, path):
        with open(path, "w") as handle:
            handle.write("state")

    def close(self):
        pass


def test_start_machine_restores_a_snapshot_it_can_read(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "Machine", FakeMachine)
    snap = tmp_path / "start.snapshot"
    snap.write_text("state")
    target = Target({"kernel": "k"}, start=500, snapshot=str(snap))
    assert runner.start_machine(target).kwargs == {"restored_from": str(snap)}
    # A worker on another host has no such file: it boots and runs to the start.
    machine = runner.start_machine(Target({"kernel": "k"}, start=500,
                                          snapshot=str(tmp_path / "elsewhere")))
    assert machine.kwargs["deterministic"] and machine.ran_to == 500


def test_a_schedule_file_names_where_it_starts():
    assert Target({}).start_data() is None
    assert Target({}, start=7).start_data() == {"instructions": 7}
    assert Target({}, snapshot="/s/x.snap", snapshot_is_start=True).start_data() == \
        {"snapshot": "/s/x.snap"}


def fake_runs(monkeypatch, differs=False):
    monkeypatch.setattr(runner, "start_machine", lambda target: FakeMachine())

    def run_plan(target, plan, run=0, keep_console=False):
        console = "restored" if differs and target.snapshot else "same"
        return Outcome(run, "passed", instructions=10, console=console)
    monkeypatch.setattr(runner, "run_plan", run_plan)


def test_a_faithful_snapshot_is_used(monkeypatch, tmp_path):
    fake_runs(monkeypatch)
    result = explorer.Exploration(Target({}), "test")
    target = explorer._with_snapshot(Target({}, start=100), str(tmp_path), result)
    assert target.snapshot == str(tmp_path / "start.snapshot") and not target.snapshot_is_start
    assert result.snapshot_note == "each run restores a snapshot taken there"


def test_a_snapshot_that_runs_differently_is_not_used(monkeypatch, tmp_path):
    fake_runs(monkeypatch, differs=True)
    result = explorer.Exploration(Target({}), "test")
    target = explorer._with_snapshot(Target({}, start=100), str(tmp_path), result)
    assert target.snapshot is None and "differed" in result.snapshot_note


def test_a_machine_that_cannot_be_snapshotted_boots_every_run(monkeypatch, tmp_path):
    fake_runs(monkeypatch)

    class Unsaveable(FakeMachine):
        def snapshot(self, path):
            raise AttributeError("'Pl011' object has no attribute 'save_state'")
    monkeypatch.setattr(runner, "start_machine", lambda target: Unsaveable())
    result = explorer.Exploration(Target({}), "test")
    target = explorer._with_snapshot(Target({}, start=100), str(tmp_path), result)
    assert target.snapshot is None and "cannot be snapshotted yet" in result.snapshot_note


def test_no_start_no_snapshot(tmp_path):
    result = explorer.Exploration(Target({}), "test")
    assert explorer._with_snapshot(Target({}), str(tmp_path), result) == Target({})
