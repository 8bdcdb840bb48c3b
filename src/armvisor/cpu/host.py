"""What the CPU layer's modules share without depending on the Core class itself.

`Stop` (why a slice ended), what a core asks of the machine (`CoreHost`), an
MMIO region, and the view of a core that exception entry (entry.py) and the
trap handlers (traps.py) work on (`ExceptionCore`, `TrapCore`). core.py
implements these; entry.py and traps.py import only this module, so none of
the three imports another in a cycle.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple

from armvisor.cpu import sysregs as sr
from armvisor.cpu.models import CpuModel
from armvisor.trace import TraceBus


class Stop(enum.Enum):
    """Why a slice ended."""

    BUDGET = "budget"          # the slice's instruction budget was spent
    WFI = "wfi"                # the core executed WFI (trapped by HCR_EL2.TWI)
    POWER = "power"            # the firmware changed the core's power state (CPU_OFF, suspend)
    MACHINE = "machine"        # the machine must act (system off/reset, a fatal error)
    FAULT = "fault"            # Unicorn refused an access to something mapped (flash mode, ...)


class SliceEnd(enum.Enum):
    """What a slice's end asks of the machine driving the core (bare board or hypervisor).

    Every Stop becomes one of these in one place (`sort_stop`), and each
    driver handles the values in one place.
    """

    GO_ON = "go on"            # budget spent, a power change, a stop request: the next turn
    WAIT = "wait"              # WFI: park until an interrupt is pending for it
    REFUSED = "refused"        # an access to something mapped was refused (a board may remap)
    FAILED = "failed"          # the guest cannot go on; the core's error says why


def sort_stop(reason: Stop, error: Optional[BaseException]) -> SliceEnd:
    if reason is Stop.FAULT:
        return SliceEnd.REFUSED
    if error is not None:
        return SliceEnd.FAILED
    if reason is Stop.WFI:
        return SliceEnd.WAIT
    return SliceEnd.GO_ON


class CoreHost(Protocol):
    """What a core asks of the machine (EL2/EL3 and the board).

    `core` is the calling Core (cpu/core.py), with its whole interface.
    """

    def smc(self, core: Any, imm: int) -> None: ...
    def hvc(self, core: Any, imm: int) -> bool: ...
    def sysreg_handler(self, reg: sr.SysReg) -> Callable[[Any, int, bool, int], Optional[int]]:
        """What answers a trapped access to `reg`: `handler(core, el, is_write, value)`
        gives the value read (0 for a write), None for UNDEFINED or for Unicorn to
        carry it out, or EXCEPTION_TAKEN (cpu/core.py). Asked once per register."""
        ...


class MmioRegion(Protocol):
    base: int
    size: int

    def read(self, offset: int, size: int, cpu: int) -> int: ...
    def write(self, offset: int, size: int, value: int, cpu: int) -> None: ...


class ExceptionCore(Protocol):
    """The part of a core that synchronous exception entry (entry.py) uses."""

    index: int
    model: CpuModel
    trace: Optional[TraceBus]
    last_vector: Optional[int]
    vector_faults: int
    first_fault: Optional[Tuple[int, int, Optional[int]]]     # ESR, ELR, FAR

    def exception_state(self) -> Sequence[int]: ...
    def read_sysreg(self, reg: sr.SysReg) -> int: ...
    def write_sysreg(self, reg: sr.SysReg, value: int) -> None: ...
    def write_exception_entry(self, *, esr: int, far: Optional[int], elr: int,
                              sp_el0: Optional[int], sp: int, pstate: int, pc: int) -> None: ...


class TrapCore(ExceptionCore, Protocol):
    """The part of a core that the trap handlers (traps.py) use."""

    host: CoreHost

    @property
    def pc(self) -> int: ...
    @property
    def el(self) -> int: ...
    @property
    def pstate(self) -> int: ...

    def set_pc(self, value: int) -> None: ...
    def stop(self, reason: Stop, resume_pc: Optional[int] = None) -> None: ...
    def count_exit(self, kind: str) -> None: ...
    def read_insn(self, va: int) -> Optional[int]: ...
    def read_x(self, n: int) -> int: ...
    def write_x(self, n: int, value: int) -> None: ...
    def read_reg(self, reg_id: int) -> int: ...
    def read_phys(self, pa: int, size: int) -> bytes: ...
