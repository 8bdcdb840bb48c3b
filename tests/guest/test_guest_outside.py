"""outside: loads, stores and fetches to addresses with nothing behind them are
synchronous external aborts in the guest, bare, as a VM, and as on QEMU."""

import subprocess

import pytest

from armvisor.devtools import qemu
from tests.guest.conftest import qemu_command

SUMMARY = "outside: aborts taken mmu off 2880, mmu on 1920, el0 180; bad 0"
CHECKS = ["aborts with the MMU off: got 2880 expect 2880 ok",
          "aborts with the MMU on: got 1920 expect 1920 ok",
          "aborts from EL0: got 180 expect 180 ok", "bad aborts: got 0 expect 0 ok"]


def _summary(lines):
    return [line for line in lines if line.startswith("outside: aborts") or line in CHECKS]


@pytest.mark.guest
def test_outside_accesses_abort_in_the_guest(run_guest):
    # run_guest runs it on the bare board and as a VM (and on QEMU with that runner).
    run = run_guest("outside", 1)
    run.assert_passed()
    assert _summary(run.lines) == [SUMMARY] + CHECKS, run.describe()


@pytest.mark.guest
def test_outside_summary_matches_qemu(run_guest, guest_build, guest_mode):
    if guest_mode == "qemu":
        pytest.skip("this compares armvisor with QEMU")
    if not qemu.available():
        pytest.skip("qemu-system-aarch64 not installed")
    ours = run_guest("outside", 1)
    proc = subprocess.run(qemu_command(guest_build / "outside.elf", 1, None), capture_output=True,
                          text=True, timeout=120)
    theirs = [line.rstrip("\r") for line in proc.stdout.splitlines()]
    assert "RESULT: PASS" in theirs, proc.stdout
    assert _summary(ours.lines) == _summary(theirs)
