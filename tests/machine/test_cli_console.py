"""`armvisor run` on a terminal: the status line while the guest is silent, Ctrl-A h and x."""

import os
import re
import subprocess
import sys
import time

import pytest

import armvisor

from tests.machine.tinyguest import build
from tests.terminal import Terminal

SILENT = """
1:  wfi
    b 1b
"""


def run_on_terminal(elf, *extra, wait=1.8):
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "armvisor", "run", "--kernel", str(elf),
                             "--timeout", "30", *extra],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        time.sleep(wait)                               # silent for more than a second
        os.write(master, b"\x01h")
        time.sleep(0.3)
        os.write(master, b"\x01x")
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, err.decode()


@pytest.mark.parametrize("quiet", [False, True])
def test_status_line_help_and_a_clean_quit(tmp_path, quiet):
    elf = build(tmp_path, SILENT)
    status, err = run_on_terminal(elf, *(["--quiet"] if quiet else []))
    assert status == 130
    assert "error" not in err and "armvisor: quit (Ctrl-A x)" in err
    assert "Ctrl-A x" in err and "Ctrl-A h" in err
    assert ("1/1 CPUs online, 0 PSCI calls" in err) is not quiet
    assert (" instructions, " in err) is not quiet


def test_ctrl_a_c_monitor_info_trace_and_quit(tmp_path):
    elf = build(tmp_path, SILENT)
    trace = tmp_path / "t.json"
    term = Terminal([sys.executable, "-m", "armvisor", "run", "--kernel", str(elf), "--smp", "2",
                     "--timeout", "60", "--quiet", "--trace", str(trace)])
    time.sleep(0.5)
    term.send(b"\x01c")
    term.expect("(armvisor) ")
    term.send(b"info cpsu\x7f\x7fus\r")                 # erase works: 'info cpus'
    out = term.expect("cpu1")
    cpus = out.split("info cpus")[-1]
    assert re.search(r"cpu0\s+ON\s+EL1 pc=0x[0-9a-f]+ <_start\+0x[0-9a-f]+>", cpus), cpus
    assert re.search(r"cpu1\s+OFF", cpus), cpus
    term.send(b"info irq\r")
    term.expect("irq_line=")
    term.send(b"trace off\r")
    term.expect("trace off\r\n(armvisor) ")
    term.send(b"bogus\r")
    term.expect("unknown command 'bogus'")
    snap = tmp_path / "here.avs"
    term.send(f"savevm {snap}\r".encode())
    term.expect("snapshot written to")
    term.send(b"savevm\r")
    term.expect("monitor snapshot FILE")
    term.send(b"\x01c")                                # back to the guest, and again
    term.send(b"\x01c")
    term.send(b"quit\r")
    term.expect("armvisor: quit (monitor 'quit')")
    assert term.close() == 130
    assert "error" not in term.seen.decode(errors="replace")
    restored = armvisor.Machine.restore(str(snap))       # the machine as the monitor saw it
    assert [cpu.power_state for cpu in restored.cpus] == ["ON", "OFF"]
