"""Record and replay of console input: the replayer answers at the recorder's steps."""

import pytest

from armvisor.errors import ArmvisorError
from armvisor.machine.replay import Recorder, Replayer, ReplayFinished


class FakeConsole:
    """A host console whose input arrives at chosen calls."""

    def __init__(self, script):
        self.script = dict(script)          # call number -> bytes typed before it returns
        self.calls = 0
        self.receive = lambda data: None
        self.input_open = True

    def _maybe_type(self):
        self.calls += 1
        if self.calls in self.script:
            self.receive(self.script.pop(self.calls))
            return True
        return False

    def poll(self):
        self._maybe_type()

    def wait(self, seconds):
        self._maybe_type()

    def idle(self, now, deadline):
        return now if self._maybe_type() else (now + deadline) // 2


def drive(host, calls):
    """What the run loop does: a fixed sequence of poll / wait / idle calls."""
    answers = []
    for i in range(calls):
        kind = ("poll", "idle", "wait")[i % 3]
        answers.append(getattr(host, kind)(0) if kind == "wait" else
                       host.idle(100 * i, 100 * i + 50) if kind == "idle" else host.poll())
    return answers


def test_replay_gives_the_recorded_input_at_the_same_steps(tmp_path):
    log = tmp_path / "rec.log"
    console = FakeConsole({2: b"ls\n", 4: b"x", 9: b"exit\n"})
    got = []
    console.receive = got.append
    recorder = Recorder(console, str(log), {"machine": "m"}, clock=lambda: 42)
    answers = drive(recorder, 10)
    recorder.close()
    assert got == [b"ls\n", b"x", b"exit\n"]

    replayed = []
    replayer = Replayer(str(log), replayed.append)
    assert replayer.header["machine"] == "m"
    assert drive(replayer, 10) == answers
    assert replayed == got
    with pytest.raises(ReplayFinished):          # the recording ended after step 10
        replayer.poll()


def test_a_recording_cut_short_replays_what_it_has(tmp_path):
    log = tmp_path / "rec.log"
    console = FakeConsole({1: b"a"})
    recorder = Recorder(console, str(log), {}, clock=lambda: 0)
    recorder.poll()                              # killed: close() never runs
    replayed = []
    replayer = Replayer(str(log), replayed.append)
    replayer.poll()
    assert replayed == [b"a"]


@pytest.mark.parametrize("content, message", [
    ("", "not an armvisor recording"),
    ('{"format": "armvisor-record", "version": 7}\n', "version 7"),
    ('{"format": "armvisor-record", "version": 1}\n{"step": "x", "input": "00"}\n', "corrupt"),
    ('{"format": "armvisor-record", "version": 1}\n{"step": 1, "input": "zz"}\n', "corrupt"),
    ('{"format": "armvisor-record", "version": 1}\n{"what": 1}\n', "corrupt"),
])
def test_bad_recordings_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.log"
    path.write_text(content)
    with pytest.raises(ArmvisorError, match=message):
        Replayer(str(path), lambda data: None)
