"""The diagnosis printed when a guest stops the machine: every CPU and the last events."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from capstone import CS_ARCH_ARM64, CS_MODE_ARM, Cs

if TYPE_CHECKING:
    from armvisor.machine.board import BareBoard
    from armvisor.machine.lanes import Lane

RECENT_EVENTS = 12


def _disassemble(core, pc: int) -> str:
    insn = core.read_insn(pc)
    if insn is None:
        return "<not mapped>"
    for ins in Cs(CS_ARCH_ARM64, CS_MODE_ARM).disasm(insn.to_bytes(4, "little"), pc):
        return f"{ins.mnemonic} {ins.op_str}".strip()
    return f".word {insn:#010x}"


def core_location(core, disassemble: bool = True) -> str:
    """`pc=... el=...` and the instruction there, for a report that must not fail."""
    try:
        pc, el = core.pc, core.el
        where = f"pc={pc:#018x} el={el}"
        if disassemble:
            where += f"  {_disassemble(core, pc)}"
        return where
    except Exception:                                   # noqa: BLE001 - a report must not fail
        return "registers unreadable"


def recent_events(trace) -> List[str]:
    """The last trace events, under a heading, for the end of a report."""
    events = list(trace.recent)[-RECENT_EVENTS:]
    if not events:
        return []
    return ["last events:"] + ["  " + event.describe() for event in events]


def machine_report(machine: "BareBoard", culprit: Optional["Lane"] = None) -> str:
    lines = []
    for lane in machine.lanes:
        mark = "*" if lane is culprit else " "
        where = core_location(lane.core, disassemble=lane.state.value != "off")
        psci = machine.firmware.state_of(lane.index)
        lines.append(f"{mark}cpu{lane.index}: {lane.state.value:9s} psci={psci.name:10s} {where}")
    return "\n".join(lines + recent_events(machine.trace))
