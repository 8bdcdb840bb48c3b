"""The host console: Ctrl-A keys on a terminal, the status line while the guest is silent."""

import io
import os

import pytest

from armvisor.console import KEYS, HostConsole, QuitRequested
from armvisor.trace.bus import TraceBus
from armvisor.trace.progress import BootProgress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def terminal():
    master, slave = os.openpty()
    yield master, os.fdopen(slave, "rb", buffering=0)
    os.close(master)


def test_ctrl_a_h_lists_the_keys_and_ctrl_a_x_quits(terminal):
    master, stdin = terminal
    out, err, got = io.BytesIO(), io.BytesIO(), []
    console = HostConsole(stdin=stdin, stdout=out, stderr=err)
    console.receive = got.append
    with console:
        os.write(master, b"ab\x01h\x01\x01c")
        console.wait(0.5)
        assert b"".join(got) == b"ab\x01c"            # Ctrl-A Ctrl-A sends one Ctrl-A
        assert all(key.encode() in err.getvalue() for key in KEYS)
        os.write(master, b"\x01x")
        with pytest.raises(QuitRequested):
            console.wait(0.5)


def test_status_line_after_a_second_of_silence_cleared_by_output():
    out, err, clock = io.BytesIO(), io.BytesIO(), Clock()
    console = HostConsole(stdin=io.BytesIO(), stdout=out, stderr=err,
                          status=lambda: "armvisor: 1/4 CPUs online", clock=clock)
    console.write(b"hello")
    clock.t += 0.5
    console.show_status()
    assert err.getvalue() == b""                        # not silent long enough
    clock.t += 0.6
    console.show_status()
    assert err.getvalue() == b"\r\x1b[Karmvisor: 1/4 CPUs online"
    console.show_status()                               # not redrawn at once
    assert err.getvalue().count(b"CPUs online") == 1
    console.write(b" world")
    assert err.getvalue().endswith(b"\r\x1b[K")          # cleared before the guest's bytes
    assert out.getvalue() == b"hello world"


def test_no_status_without_a_status_function():
    err, clock = io.BytesIO(), Clock()
    console = HostConsole(stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=err, clock=clock)
    clock.t += 10
    console.show_status()
    assert err.getvalue() == b""


def test_boot_progress_counts_cpus_and_psci_calls():
    clock = Clock()
    bus, progress = TraceBus(), BootProgress(clock=clock)
    bus.subscribe(progress.on_event)
    bus.emit("machine.boot", None, cpus=4)
    bus.emit("cpu.start", 0, reason="cold boot")
    bus.emit("psci.call", 0, function="CPU_ON", result=0)
    bus.emit("power.state", 1, old="ON_PENDING", new="ON")
    clock.t += 2.5
    assert progress.text() == "armvisor: 2/4 CPUs online, 1 PSCI calls, 2.5 s"
    bus.emit("power.state", 1, old="ON", new="OFF")
    assert progress.text().startswith("armvisor: 1/4 CPUs online")


def test_boot_progress_shows_instructions_run():
    clock = Clock()
    progress = BootProgress(clock=clock)
    progress.instructions = lambda: 950_123
    assert progress.text() == "armvisor: 0 CPUs online, 0 PSCI calls, 950,123 instructions, 0.0 s"
    progress.instructions = lambda: 1_028_456_789
    assert "1,028 M instructions" in progress.text()
