"""Debian's gdb-multiarch against `armvisor run -S --gdb tcp::PORT` on the SMP demo (4 CPUs)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import armvisor
from armvisor.devtools.ports import free_port, listening

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "guests" / "build" / "smp_demo.elf"
GDB = shutil.which("gdb-multiarch")
TIMEOUT = 120

pytestmark = pytest.mark.skipif(GDB is None or not DEMO.exists(),
                                reason="needs gdb-multiarch and the guest programs")


def run_gdb(commands, extra=(), interrupt_after=None):
    """Start armvisor waiting for gdb, run gdb in batch mode; returns (gdb output, armvisor output)."""
    port = free_port()
    armvisor = subprocess.Popen(
        [sys.executable, "-m", "armvisor.cli", "run", "-S", "--gdb", f"tcp::{port}", "--smp", "4",
         "--kernel", str(DEMO), "--timeout", str(TIMEOUT), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    gdb = None
    try:
        # Until it listens (a probe connection would be taken for the debugger).
        for _ in range(400):
            if listening(port):
                break
            time.sleep(0.05)
        args = [GDB, "-q", "-nx", "-batch", str(DEMO), "-ex", "set pagination off",
                "-ex", "set confirm off", "-ex", f"target remote :{port}"]
        for command in commands:
            args += ["-ex", command]
        gdb = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            gdb.send_signal(signal.SIGINT)
        out, _ = gdb.communicate(timeout=TIMEOUT)
        armvisor.wait(timeout=TIMEOUT)
        return out, armvisor.stdout.read().decode(errors="replace")
    finally:
        for proc in (gdb, armvisor):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def threads(out):
    """`info threads` rows: {thread number: line}."""
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^\*?\s+(\d+)\s+Thread .*$", out, re.M)}


def test_threads_breakpoints_step_registers_memory(tmp_path):
    snap = tmp_path / "stopped.avs"
    out, console = run_gdb([
        "info threads",
        "break secondary_entry",
        "continue", "continue", "continue",
        "delete",
        "thread apply all printf \"pc-before %d %#lx\\n\", $_thread, $pc",
        "thread 4", "stepi",
        "thread apply all printf \"pc-after %d %#lx\\n\", $_thread, $pc",
        "x/4gx 0x40000000",
        "set $x5 = 0xdeadbeef", "printf \"x5=%#lx\\n\", $x5",
        "set $v3.d.u[0] = 0x1122334455667788", "printf \"v3=%#lx\\n\", $v3.d.u[0]",
        "monitor psci",
        f"monitor snapshot {snap}",
        "detach"])
    first = out.split("Breakpoint 1 at")[0]
    rows = threads(first)
    assert len(rows) == 4, out
    assert "cpu0 ON EL1" in rows[1] and "cpu1 OFF EL1" in rows[2] and "cpu3 OFF EL1" in rows[4]
    hits = re.findall(r"Thread (\d+) \S* ?hit Breakpoint 1, secondary_entry", out)
    assert hits == ["2", "3", "4"], out
    before = dict(re.findall(r"pc-before (\d) (0x[0-9a-f]+)", out))
    after = dict(re.findall(r"pc-after (\d) (0x[0-9a-f]+)", out))
    assert len(before) == 4 and len(after) == 4, out
    assert int(after["4"], 16) == int(before["4"], 16) + 4
    assert all(after[t] == before[t] for t in "123")
    assert re.search(r"0x40000000:\s+0x[0-9a-f]*edfe0dd0", out), out
    assert "x5=0xdeadbeef" in out and "v3=0x1122334455667788" in out
    assert "cpu3" in out.split("monitor psci")[-1] or "ON_PENDING" in out
    assert "RESULT: PASS" in console            # detached: the guest ran to the end
    assert "snapshot written to" in out
    stopped = armvisor.Machine.restore(str(snap))  # the machine as the debugger left it
    assert stopped.cpus[3].regs.x[5] == 0xdeadbeef      # set on thread 4, the selected one
    assert stopped.cpus[3].regs.pc == int(after["4"], 16)


def test_watchpoint_on_the_shared_counter_stops_the_writer():
    out, console = run_gdb([
        "break secondary_entry", "continue", "continue", "delete",
        "watch demo.counter",
        "continue", "continue", "continue", "continue", "continue", "continue",
        "delete", "detach"])
    hits = re.findall(r"Thread (\d+) \S* ?hit Hardware watchpoint 2: demo.counter\s+"
                      r"Old value = (\d+)\s+New value = (\d+)", out)
    assert len(hits) == 6, out
    assert all(int(new) == int(old) + 1 for _, old, new in hits)
    assert len({thread for thread, _, _ in hits}) >= 1
    assert "counter: 4000 (expect 4000" in console and "RESULT: PASS" in console


def test_interrupt_a_running_guest():
    # CPU 0 spins on `b .` so only an interrupt stops the run.
    out, _ = run_gdb(["set {int}0x48000000 = 0x14000000", "set $pc = 0x48000000", "continue",
                      "printf \"stopped-at %#lx\\n\", $pc", "kill"], interrupt_after=4)
    assert "received signal SIGINT" in out, out
    assert "stopped-at 0x48000000" in out


def test_hypervisor_threads_are_vcpus():
    out, console = run_gdb([
        "info threads", "break secondary_entry", "continue", "x/2gx 0x40000000",
        "printf \"pc=%#lx\\n\", $pc", "delete", "detach"], extra=["--hyp"])
    rows = threads(out.split("Breakpoint 1 at")[0])
    assert len(rows) == 4, out
    assert "vm0/vcpu0 RUNNABLE EL1" in rows[1] and "vm0/vcpu2 OFF EL1" in rows[3]
    assert re.search(r"Thread 2 \S* ?hit Breakpoint 1, secondary_entry", out), out
    assert re.search(r"0x40000000:\s+0x[0-9a-f]*edfe0dd0", out), out
    assert "RESULT: PASS" in console
