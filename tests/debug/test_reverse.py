"""Reverse execution on a deterministic machine (debug/history.py): going back puts the
whole machine, every CPU and RAM, exactly where it was; through gdb-multiarch too."""

from __future__ import annotations

import re

import pytest

import armvisor
from armvisor.debug.points import WRITE_WATCH
from armvisor.debug.target import Target
from tests.debug.test_gdb import DEMO, GDB, run_gdb

pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="needs the guest programs")


def session(mode: str = "bare"):
    kwargs = dict(kernel=str(DEMO), smp=4) if mode == "bare" else \
        dict(vms=[armvisor.VM(str(DEMO), smp=4)])
    machine = armvisor.Machine(deterministic=True, **kwargs)
    machine.boot()
    target = Target(machine)
    target.keep_history()
    return machine, target


def symbol(machine, name: str) -> int:
    return next(address for address, _, found in machine.symbols(
        None if machine.hypervisor is None else "vm0")._entries if found == name)


def whole_state(machine):
    """Every CPU's registers and count, and RAM: what `going back` must give back."""
    ram = machine.board.ram if machine.hypervisor is None else machine.hypervisor.vms[0].ram
    return ([(cpu.core.registers(), cpu.core.retired) for cpu in machine.cpus],
            ram.save_state()["data"])


def go(target, stop=None):
    status, stop, _ = target.run(list(range(len(target.cpus))), lambda: False, stop, 60)
    assert status is None
    return stop


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_reverse_stepi_gives_back_every_earlier_state_exactly(mode):
    machine, target = session(mode)
    target.breaks.insert(0, symbol(machine, "secondary_entry"))
    stop = go(target)
    cpu = machine.cpus[stop.cpu]
    states = [whole_state(machine)]
    for _ in range(5):
        stop = target.step(cpu, stop)
        states.append(whole_state(machine))
    for back in range(1, 6):
        assert target.history.back_one(cpu.index)
        assert whole_state(machine) == states[-1 - back]
    # And forward again, stepi by stepi, through the same states.
    stop = armvisor.debug.target.StopInfo(5, cpu.index)
    for forward in range(1, 6):
        stop = target.step(cpu, stop)
        assert whole_state(machine) == states[forward]


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_reverse_continue_lands_on_the_last_breakpoint_hit(mode):
    machine, target = session(mode)
    target.breaks.insert(0, symbol(machine, "secondary_entry"))
    hits = []
    stop = None
    for _ in range(3):
        stop = go(target, stop)
        hits.append((stop.cpu, whole_state(machine)))
    hit = target.history.last_hit()
    assert hit is not None and hit.reason == "swbreak"
    target.history.go_to_hit(hit)
    assert (hit.cpu, whole_state(machine)) == hits[1]
    # And on from there, forward again: the third CPU reaches the breakpoint as before.
    stop = go(target, armvisor.debug.target.StopInfo(5, hit.cpu, "swbreak"))
    assert (stop.cpu, whole_state(machine)) == hits[2]


def test_reverse_continue_on_a_watchpoint_finds_the_last_store_whichever_cpu_made_it():
    machine, target = session()
    counter = symbol(machine, "demo") + 0       # demo.counter is the struct's first field
    target.breaks.insert(0, symbol(machine, "secondary_entry"))
    stop = go(target)
    stop = go(target, stop)                     # two secondaries are up: stores from several CPUs
    target.breaks.clear()
    assert target.watch.insert(machine.cpus[0], WRITE_WATCH, counter, 4)
    writes = []
    for _ in range(8):
        stop = go(target, stop)
        assert stop.reason == "watch"
        writes.append((stop.cpu, whole_state(machine)))
    assert len({cpu for cpu, _ in writes}) >= 2, "the stores should come from several CPUs"
    hit = target.history.last_hit()
    assert hit is not None and hit.reason == "watch" and hit.address == counter
    target.history.go_to_hit(hit)
    assert (hit.cpu, whole_state(machine)) == writes[-2]


@pytest.mark.skipif(GDB is None, reason="needs gdb-multiarch")
def test_without_reverse_the_stub_keeps_no_history():
    """The history costs: every instruction is counted (a Linux boot took 2.5x as long),
    so a stub keeps one only when asked with --reverse."""
    out, _ = run_gdb(["maint packet bs", "detach"], extra=["--deterministic"])
    assert "E01" in out


def test_reverse_needs_a_debugger_and_a_deterministic_machine():
    from tests.machine.test_cli import armvisor as cli, assert_one_line_error
    assert_one_line_error(cli("run", "--kernel", DEMO, "--reverse", "--deterministic"), 2,
                          "-s or --gdb")
    assert_one_line_error(cli("run", "--kernel", DEMO, "--reverse", "-s"), 2,
                          "--deterministic")


@pytest.mark.skipif(GDB is None, reason="needs gdb-multiarch")
def test_gdb_reverse_stepi_and_reverse_continue():
    out, console = run_gdb([
        "break secondary_entry", "continue", "continue",
        "stepi", "stepi", "printf \"fwd %#lx\\n\", $pc",
        "reverse-stepi", "reverse-stepi", "printf \"back %#lx\\n\", $pc",
        "reverse-continue", "printf \"rc thread=%d pc=%#lx\\n\", $_thread, $pc",
        "continue", "printf \"again thread=%d\\n\", $_thread",
        "delete", "detach"], extra=["--deterministic", "--reverse"])
    entry = re.search(r"Breakpoint 1 at (0x[0-9a-f]+)", out).group(1)
    assert f"back {entry}" in out, out
    # Back past the second CPU's hit: the first CPU's, then forward to the second's again.
    rc = re.search(r"rc thread=(\d+) pc=(0x[0-9a-f]+)", out)
    assert rc and rc.group(2) == entry and rc.group(1) == "2", out
    assert "again thread=3" in out, out
    assert "RESULT: PASS" in console
