"""Snapshots of the whole machine: taken on the way (--snapshot-at), restored in a new
process (--restore, Machine.restore), going on byte for byte like the original run."""

from __future__ import annotations

import json
import time
import subprocess
import sys
from pathlib import Path

import pytest

import armvisor
from tests.machine.test_cli import armvisor as armvisor_cli, assert_one_line_error

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "build"
SMP_DEMO = GUESTS / "smp_demo.elf"
MODES = {"bare": [], "hyp": ["--hyp"]}


@pytest.fixture(params=list(MODES))
def mode(request):
    return MODES[request.param]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "armvisor", "run", *map(str, args)],
                          capture_output=True, timeout=300)


def events_after(trace_path: Path, ts_us: float) -> list:
    """The trace's instant events from `ts_us` on: every model event is one. (Spans and
    flows begun before a snapshot end in the original's trace only: the restored
    trace starts at the snapshot.)"""
    events = json.loads(trace_path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    return [e for e in events if e.get("ph") == "i" and e.get("ts", -1) >= ts_us]


@pytest.mark.guest
def test_a_restored_run_goes_on_exactly_as_the_original(tmp_path, mode):
    snap, first, second = tmp_path / "demo.avs", tmp_path / "a.json", tmp_path / "b.json"
    original = run_cli("--kernel", SMP_DEMO, "--smp", 4, "--deterministic", *mode,
                       "--snapshot-at", "console:online", "--snapshot-out", snap,
                       "--trace", first, "--timeout", 120)
    assert original.returncode == 0, original.stderr.decode()
    assert b"snapshot of" in original.stderr and snap.stat().st_size > 0
    restored = run_cli("--restore", snap, "--trace", second, "--timeout", 120)
    assert restored.returncode == 0, restored.stderr.decode()
    # What the restored machine prints is what the original printed after the snapshot.
    assert len(restored.stdout) > 100, restored.stdout
    assert original.stdout.endswith(restored.stdout)
    assert original.stdout != restored.stdout           # it did not start from the beginning
    header, _ = armvisor_snapshot(snap)
    after = header["counter"] / 62.5                  # the snapshot's virtual time, in us
    assert events_after(second, after) == events_after(first, after)
    assert events_after(second, after)


def armvisor_snapshot(path):
    from armvisor.machine import snapshot
    return snapshot.read(str(path))


@pytest.mark.guest
def test_the_api_snapshots_and_restores_in_both_modes(tmp_path):
    for kwargs in (dict(kernel=str(SMP_DEMO), smp=4),
                   dict(vms=[armvisor.VM(str(SMP_DEMO), smp=2, placement="shared"),
                             armvisor.VM(str(SMP_DEMO), smp=2, placement="shared")], pcpus=2)):
        machine = armvisor.Machine(deterministic=True, **kwargs)
        machine.run(until=armvisor.Instructions(250_000), timeout=60)
        printed = len(machine.console.text)
        machine.snapshot(str(tmp_path / "m.avs"))
        assert machine.run(timeout=60) == 0
        tail = machine.console.text[printed:]
        again = armvisor.Machine.restore(str(tmp_path / "m.avs"))
        assert again.instructions >= 250_000
        assert again.run(timeout=60) == 0
        assert again.console.text == tail and tail
        again.close()
        machine.close()


@pytest.mark.guest
def test_bad_snapshots_and_another_shape_are_one_line_errors(tmp_path):
    snap = tmp_path / "demo.avs"
    made = run_cli("--kernel", SMP_DEMO, "--smp", 2, "--deterministic", "--snapshot-at",
                   "insn:100000", "--snapshot-out", snap, "--timeout", 60)
    assert made.returncode == 0, made.stderr.decode()
    data = snap.read_bytes()
    (tmp_path / "cut.avs").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.avs").write_bytes(b"hello world")
    (tmp_path / "flip.avs").write_bytes(data[:-8] + bytes(8))
    for name, words in (("cut.avs", ["truncated"]), ("junk.avs", ["not an armvisor snapshot"]),
                        ("flip.avs", ["corrupt"])):
        assert_one_line_error(armvisor_cli("run", "--restore", tmp_path / name), 2, *words)
    assert_one_line_error(armvisor_cli("run", "--restore", snap, "--smp", 4), 2, "smp=2")
    assert_one_line_error(armvisor_cli("run", "--restore", snap, "-m", "1G"), 2, "memory=512")
    assert_one_line_error(armvisor_cli("run", "--restore", snap, "--append", "x"), 2,
                          "--append cannot be changed")
    assert_one_line_error(armvisor_cli("run", "--restore", tmp_path / "none.avs"), 2,
                          "cannot read snapshot")


@pytest.mark.parametrize("args, words", [
    (["--snapshot-at", "insn:10"], ["needs --snapshot-out"]),
    (["--snapshot-out", "x.avs"], ["needs --snapshot-at"]),
    (["--snapshot-at", "nap:3", "--snapshot-out", "x.avs"], ["unknown kind"]),
    (["--snapshot-at", "insn:-4", "--snapshot-out", "x.avs"], ["positive integer"]),
    (["--snapshot-at", "event:psci.call,function", "--snapshot-out", "x.avs"], ["FIELD=VALUE"]),
])
def test_bad_snapshot_options(args, words):
    assert_one_line_error(armvisor_cli("run", "--kernel", SMP_DEMO, *args), 2, *words)


@pytest.mark.guest
def test_a_guest_that_ends_before_the_snapshot_point_is_an_error(tmp_path):
    proc = armvisor_cli("run", "--kernel", SMP_DEMO, "--smp", 2, "--snapshot-at",
                        "console:never printed", "--snapshot-out", tmp_path / "x.avs")
    assert_one_line_error(proc, 2, "ended", "no snapshot written")


def test_a_host_clock_snapshot_restored_later_goes_on_from_its_count(tmp_path):
    """Without --deterministic the counter follows the host; a restore must not make
    the guest see the time that passed between snapshot and restore (it did: native
    CNTVCT reads jumped, and Linux reported RCU stalls)."""
    from tests.machine.tinyguest import build
    guest = build(tmp_path, """
    loop:
        mrs x1, cntvct_el0
        mrs x2, cntpct_el0
        b loop
    """, "counter")
    machine = armvisor.Machine(str(guest))
    machine.run(until=armvisor.Instructions(10_000), timeout=30)
    machine.snapshot(str(tmp_path / "c.avs"))
    saved = armvisor_snapshot(tmp_path / "c.avs")[0]["counter"]
    time.sleep(1.0)
    again = armvisor.Machine.restore(str(tmp_path / "c.avs"))
    again.run(until=armvisor.Instructions(10_000), timeout=30)
    half_a_second = 62_500_000 // 2
    for register in (1, 2):
        read = again.cpus[0].regs.x[register]
        assert saved <= read < saved + half_a_second, (register, read - saved)
