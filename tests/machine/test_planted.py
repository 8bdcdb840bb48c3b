"""Planted bugs (machine/planted.py): off by default, invisible to the default
schedule, visible as soon as a schedule keeps their unlocked window open, and
replayed exactly from the decisions that exposed them."""

from __future__ import annotations

from pathlib import Path

import pytest

import armvisor
from armvisor.errors import ArmvisorError
from armvisor.machine.schedule import Schedule

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "build"
CASES = {
    # bug: (guest, CPUs, hypervisor?, what the guest reports when it is hit)
    "vpsci-unlocked": ("psci_race", 5, True, "rounds with exactly one SUCCESS: got 0"),
    "psci-off-unlocked": ("hotplug", 2, False, "did not report"),
}


def machine(bug: str) -> armvisor.Machine:
    guest, smp, hyp, _ = CASES[bug]
    elf = str(GUESTS / f"{guest}.elf")
    if hyp:
        return armvisor.Machine(vms=[armvisor.VM(elf, smp=smp)], deterministic=True,
                                plant=[bug])
    return armvisor.Machine(elf, smp=smp, deterministic=True, plant=[bug])


def open_windows(kind, index, default, context):
    return 1 if kind == "window" else default


@pytest.mark.guest
@pytest.mark.parametrize("bug", list(CASES))
def test_the_default_schedule_never_opens_the_window(bug):
    m = machine(bug)
    assert m.run(timeout=120) == 0
    assert "RESULT: PASS" in m.console.text, m.console.text
    assert not m.trace.events("planted.window")


@pytest.mark.guest
@pytest.mark.parametrize("bug", list(CASES))
def test_an_open_window_shows_the_bug_and_its_decisions_replay_it(bug, tmp_path):
    first = machine(bug)
    first.board.use_schedule(Schedule(chooser=open_windows))
    first.run(timeout=120)
    assert CASES[bug][3] in first.console.text, first.console.text
    assert first.trace.events("planted.window")
    path = tmp_path / "found.json"
    first.board.schedule.save(str(path))

    again = machine(bug)
    again.board.use_schedule(Schedule.load(str(path)))
    again.run(timeout=120)
    assert again.console.text == first.console.text


def test_an_unknown_planted_bug_is_refused():
    with pytest.raises(ArmvisorError, match="unknown planted bug"):
        armvisor.Machine(str(GUESTS / "hotplug.elf"), plant=["everything"])
