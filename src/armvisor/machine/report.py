"""The diagnosis printed when a guest stops the machine.

It starts with the exception that started the trouble (EC, ESR, FAR, ELR,
with symbols) and one line saying what armvisor thinks happened, then every
CPU's state, then the last events (repeats folded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from capstone import CS_ARCH_ARM64, CS_MODE_ARM, Cs

from armvisor.cpu.sysregs import SysReg
from armvisor.machine.symbols import EMPTY, SymbolTable

if TYPE_CHECKING:
    from armvisor.machine.board import BareBoard
    from armvisor.machine.lanes import Lane

RECENT_EVENTS = 12
LR = 30
# Exception classes (Arm ARM D17.2.37, ESR_ELx.EC) the diagnosis tells apart.
EC_UNKNOWN, EC_SVC64 = 0x00, 0x15
EC_IABT_LOWER, EC_IABT_SAME, EC_DABT_LOWER, EC_DABT_SAME = 0x20, 0x21, 0x24, 0x25
ESR_WNR = 1 << 6                  # data abort ISS: the access was a write
EC_NAMES = {EC_UNKNOWN: "unknown/UNDEFINED instruction", EC_SVC64: "SVC",
            EC_IABT_LOWER: "instruction abort from EL0", EC_IABT_SAME: "instruction abort",
            EC_DABT_LOWER: "data abort from EL0", EC_DABT_SAME: "data abort",
            0x07: "FP/SIMD access", 0x18: "trapped MSR/MRS", 0x22: "PC alignment fault",
            0x26: "SP alignment fault", 0x3C: "BRK"}


def _disassemble(core, pc: int) -> str:
    insn = core.read_insn(pc)
    if insn is None:
        return "<not mapped>"
    for ins in Cs(CS_ARCH_ARM64, CS_MODE_ARM).disasm(insn.to_bytes(4, "little"), pc):
        return f"{ins.mnemonic} {ins.op_str}".strip()
    return f".word {insn:#010x}"


def core_location(core, disassemble: bool = True, symbols: SymbolTable = EMPTY) -> str:
    """`pc=... el=...` and the instruction there, for a report that must not fail."""
    try:
        pc, el = core.pc, core.el
        where = f"pc={pc:#018x} el={el}"
        name = symbols.lookup(pc)
        if name:
            where += f" <{name}>"
        if disassemble:
            where += f"  {_disassemble(core, pc)}"
        return where
    except Exception:                                   # noqa: BLE001 - a report must not fail
        return "registers unreadable"


def _fold(lines: List[str]) -> List[str]:
    """Runs of events that repeat (alone or in pairs, as an exception loop's do), with only
    their timestamps changing, as one copy and a count."""
    rests = [line.strip().partition("s ")[2] for line in lines]
    out: List[str] = []
    i = 0
    while i < len(lines):
        for period in (1, 2):
            n = 1
            while rests[i + n * period:i + (n + 1) * period] == rests[i:i + period] and \
                    i + (n + 1) * period <= len(lines):
                n += 1
            if n > 1:
                block = lines[i:i + period]
                what = "" if period == 1 else f"these {period} lines "
                out += block[:-1] + [f"{block[-1]}   ({what}x{n})"]
                i += n * period
                break
        else:
            out.append(lines[i])
            i += 1
    return out


def recent_events(trace, symbols: Optional[Callable[[Optional[str]], SymbolTable]] = None) \
        -> List[str]:
    """The last trace events, under a heading, for the end of a report; `symbols(vm)`
    names their code addresses (pc, elr, entry, vector)."""
    events = list(trace.recent)[-RECENT_EVENTS:]
    if not events:
        return []
    return ["last events:"] + ["  " + line
                               for line in _fold([e.describe(symbols) for e in events])]


def first_exception(name: str, core, symbols: SymbolTable) -> List[str]:
    """The exception that started a core's trouble, and what it probably means."""
    fault = getattr(core, "first_fault", None)
    if not fault:
        return []
    esr, elr, far = fault
    ec = esr >> 26
    text = f"first exception: {name} EC {ec:#04x} ({EC_NAMES.get(ec, 'see the Arm ARM')}) " \
           f"ESR {esr:#x} ELR {symbols.describe(elr)}"
    if far is not None:
        text += f" FAR {symbols.describe(far)}"
    return [text, f"what happened: {diagnose(name, core, esr, elr, far, symbols)}"]


def diagnose(name: str, core, esr: int, elr: int, far: Optional[int],
             symbols: SymbolTable) -> str:
    ec = esr >> 26
    try:
        lr = core.read_x(LR)
        vbar = core.exception_state()[3]            # (PSTATE, SP, SP_EL1, VBAR_EL1)
        vbar_name = "VBAR_EL1"
        if getattr(core, "virtualization", False) and core.el == 2:
            vbar, vbar_name = core.read_sysreg(SysReg(3, 4, 12, 0, 0)), "VBAR_EL2"
        looping = core.vector_faults > 0
    except Exception:                                    # noqa: BLE001 - a report must not fail
        lr, vbar, looping, vbar_name = None, None, False, "VBAR_EL1"
    if ec in (EC_IABT_LOWER, EC_IABT_SAME) and far == elr:
        what = f"{name} jumped to {elr:#x}"
        what += ", where nothing is mapped" if core.read_insn(elr) is None else \
            ", which it may not execute"
        if lr is not None:
            what += f" (LR {symbols.describe(lr)}: a call from there?)"
    elif ec in (EC_DABT_LOWER, EC_DABT_SAME) and far is not None:
        access = "wrote to" if esr & ESR_WNR else "read from"
        what = f"{name} {access} {far:#x} at {symbols.describe(elr)}, and nothing answered there"
    elif ec == EC_UNKNOWN:
        what = f"{name} executed an undefined instruction at {symbols.describe(elr)}"
    else:
        what = f"{name} took an exception ({EC_NAMES.get(ec, f'EC {ec:#x}')}) at " \
               f"{symbols.describe(elr)}"
    if looping and vbar is not None:
        what += f"; its vector ({vbar_name} = {vbar:#x}) faults as well, so it never recovers"
    return what


def crash_header(cores: Sequence[Tuple[str, object, SymbolTable]], culprit: Optional[object]) -> \
        List[str]:
    """The first lines of a report: the culprit's first exception, or the first core with one."""
    ordered = sorted(cores, key=lambda item: item[1] is not culprit)
    for name, core, symbols in ordered:
        lines = first_exception(name, core, symbols)
        if lines:
            return lines
    return []


def machine_report(machine: "BareBoard", culprit: Optional["Lane"] = None) -> str:
    symbols = machine.symbols.table
    lines = crash_header([(f"cpu{lane.index}", lane.core, symbols) for lane in machine.lanes],
                         culprit.core if culprit is not None else None)
    for lane in machine.lanes:
        mark = "*" if lane is culprit else " "
        where = core_location(lane.core, disassemble=lane.state.value != "off", symbols=symbols)
        # --secure: PSCI is the guest's own firmware's; armvisor's knows nothing of it.
        psci = "firmware" if machine.config.secure else machine.firmware.state_of(lane.index).name
        lines.append(f"{mark}cpu{lane.index}: {lane.state.value:9s} psci={psci:10s} {where}")
    return "\n".join(lines + recent_events(machine.trace, lambda vm: symbols))
