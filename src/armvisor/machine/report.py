"""The diagnosis printed when a guest stops the machine: every CPU and the last events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from capstone import CS_ARCH_ARM64, CS_MODE_ARM, Cs

if TYPE_CHECKING:
    from armvisor.machine.board import Machine
    from armvisor.machine.lanes import Lane

RECENT_EVENTS = 12


def _disassemble(lane: "Lane", pc: int) -> str:
    insn = lane.core.read_insn(pc)
    if insn is None:
        return "<not mapped>"
    for ins in Cs(CS_ARCH_ARM64, CS_MODE_ARM).disasm(insn.to_bytes(4, "little"), pc):
        return f"{ins.mnemonic} {ins.op_str}".strip()
    return f".word {insn:#010x}"


def machine_report(machine: "Machine", culprit: Optional["Lane"] = None) -> str:
    lines = []
    for lane in machine.lanes:
        core = lane.core
        mark = "*" if lane is culprit else " "
        try:
            pc, el = core.pc, core.el
            where = f"pc={pc:#018x} el={el}"
            if lane.state.value != "off":
                where += f"  {_disassemble(lane, pc)}"
        except Exception:                               # noqa: BLE001 - a report must not fail
            where = "registers unreadable"
        psci = machine.firmware.state_of(lane.index)
        lines.append(f"{mark}cpu{lane.index}: {lane.state.value:9s} psci={psci.name:10s} {where}")
    events = list(machine.trace.recent)[-RECENT_EVENTS:]
    if events:
        lines.append("last events:")
        lines.extend("  " + event.describe() for event in events)
    return "\n".join(lines)
