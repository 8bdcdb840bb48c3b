"""The guest's own watchpoints: DBGWVR<n>_EL1 / DBGWCR<n>_EL1 (Arm ARM D2.9).

Unicorn 2.1.4 keeps the registers but compiled out QEMU's watchpoints (its
cpu_watchpoint_insert is empty), so a watchpoint a guest arms never fires
(kvm-unit-tests debug-wp). Here the C MRS/MSR hook shows Python each write
to them before Unicorn stores the value itself (so reads, snapshots and the
debugger see the registers as usual), and each enabled watchpoint becomes a
UC_HOOK_MEM_READ|WRITE on the physical bytes its virtual address maps to at
that moment; patches/unicorn/0005 keeps every other page on the fast path.

A hit stops the core before the access when debug exceptions are enabled
(D2.4: OS lock and double lock clear, MDSCR_EL1.MDE, and at EL1 also
MDSCR_EL1.KDE with PSTATE.D clear); the core then takes the Watchpoint
exception at EL1 (EC 0x35 from EL1, 0x34 from EL0; FAR the first watched
byte the access touches, as QEMU reports it) and the access runs again when
the handler returns. A debugger's stop at the same access comes first.

Not modelled (said in the README): a change of page tables after the
watchpoint was written is not followed (the physical bytes are); linked
watchpoints (WT, LBN) and the security controls (SSC, HMC) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

from armvisor.cpu import syndrome as syn
from armvisor.cpu.sysregs import SysReg
from armvisor.cpu.watch_hooks import access_direction, hook_range, page_pieces

# D19.3: op0=2 op1=0 CRn=0 CRm=n, op2 6 (DBGWVR<n>_EL1) and 7 (DBGWCR<n>_EL1).
WVR_OP2, WCR_OP2 = 6, 7
MDSCR_EL1 = SysReg(2, 0, 0, 2, 2)
OSLSR_EL1 = SysReg(2, 0, 1, 1, 4)
OSDLR_EL1 = SysReg(2, 0, 1, 3, 4)
MDSCR_KDE = 1 << 13
MDSCR_MDE = 1 << 15
OSLSR_OSLK = 1 << 1
OSDLR_DLK = 1 << 0
PSTATE_D = 1 << 9
# ID_AA64DFR0_EL1.WRPs, bits [23:20]: the number of watchpoints minus one.
WRPS_SHIFT = 20


def is_watchpoint_register(reg: SysReg) -> bool:
    return reg.op0 == 2 and reg.op1 == 0 and reg.crn == 0 and reg.op2 in (WVR_OP2, WCR_OP2)


def wvr_value(written: int) -> int:
    """What DBGWVR<n>_EL1 holds after a write: bits [63:49] copy bit 48, [1:0] are RES0."""
    value = written & ((1 << 49) - 1)
    if value & (1 << 48):
        value |= ~((1 << 49) - 1) & 0xFFFF_FFFF_FFFF_FFFF
    return value & ~3


@dataclass(frozen=True)
class Watch:
    va: int
    length: int
    loads: bool
    stores: bool
    pac: int                 # privilege: 1 EL1, 2 EL0, 3 both (DBGWCR.PAC)

    def matches_el(self, el: int) -> bool:
        return (self.pac == 1 and el == 1) or (self.pac == 2 and el == 0) or \
               (self.pac == 3 and el <= 1)


def decode(wvr: int, wcr: int) -> Optional[Watch]:
    """The bytes a watchpoint watches (D2.9.3, D19.3.13), or None if it is off or reserved."""
    if not wcr & 1:                                    # E
        return None
    lsc = (wcr >> 3) & 3
    pac = (wcr >> 1) & 3
    if lsc == 0 or pac == 0:
        return None
    mask = (wcr >> 24) & 0x1F
    if mask in (1, 2):                                 # reserved
        return None
    if mask:
        length = 1 << mask
        va = wvr & ~(length - 1)
    else:
        bas = (wcr >> 5) & 0xFF
        if wvr & 4:                                    # a word-aligned address: BAS[7:4] ignored
            bas &= 0xF
        if not bas:
            return None
        start = (bas & -bas).bit_length() - 1
        run = bas >> start
        length = (~run & (run + 1)).bit_length() - 1    # contiguous ones from bit 0
        va = wvr + start
    return Watch(va & 0xFFFF_FFFF_FFFF_FFFF, length, bool(lsc & 1), bool(lsc & 2), pac)


@dataclass
class Hit:
    esr: int
    far: int
    is_write: bool
    undo: Tuple[int, bytes]          # (pa, bytes before): a stock Unicorn stores first


class GuestWatchpoints:
    """One PE's watchpoints, armed as memory hooks on its own Unicorn instance."""

    def __init__(self, core, count: int):
        self.core = core
        self.count = count
        self.wvr = [0] * count
        self.wcr = [0] * count
        self._hooks: List[int] = []
        self.pending: Optional[Hit] = None

    def observe(self, reg: SysReg, value: int) -> None:
        """An MSR to DBGWVR<n>/DBGWCR<n>_EL1 from EL1, about to be done by Unicorn."""
        n = reg.crm
        if n >= self.count:
            return
        if reg.op2 == WVR_OP2:
            self.wvr[n] = wvr_value(value)
        else:
            self.wcr[n] = value & 0xFFFF_FFFF
        self.arm()

    def reload(self) -> None:
        """Take the registers from the CPU (after a restore) and arm them."""
        for n in range(self.count):
            self.wvr[n] = self.core.read_sysreg(SysReg(2, 0, 0, n, WVR_OP2))
            self.wcr[n] = self.core.read_sysreg(SysReg(2, 0, 0, n, WCR_OP2))
        self.pending = None
        self.arm()

    def arm(self) -> None:
        uc = self.core.uc
        for handle in self._hooks:
            uc.hook_del(handle)
        self._hooks = []
        for n in range(self.count):
            watch = decode(self.wvr[n], self.wcr[n])
            if watch is None:
                continue
            for address, chunk in page_pieces(watch.va, watch.length):
                pa = self.core.translate(address)
                if pa is not None:
                    self._hooks.append(uc.hook_add(
                        UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
                        self._callback(watch, pa, chunk, address), None,
                        *hook_range(pa, chunk)))

    def _enabled(self, el: int) -> bool:
        """Whether a watchpoint debug exception is taken from `el` now (D2.4, D2.9)."""
        core = self.core
        if core.read_sysreg(OSLSR_EL1) & OSLSR_OSLK or core.read_sysreg(OSDLR_EL1) & OSDLR_DLK:
            return False
        mdscr = core.read_sysreg(MDSCR_EL1)
        if not mdscr & MDSCR_MDE:
            return False
        if el == 1:
            return bool(mdscr & MDSCR_KDE) and not core.pstate & PSTATE_D
        return el == 0

    def _callback(self, watch: Watch, pa: int, length: int, va: int):
        core = self.core

        def on_access(uc, access, address, size, _value, _user):
            try:
                if self.pending is not None:
                    return
                if address + size <= pa or address >= pa + length:
                    return                       # the widened range caught a neighbour
                el = core.el
                if not watch.matches_el(el):
                    return
                is_read, is_write = access_direction(core, access)
                if not ((watch.loads and is_read) or (watch.stores and is_write)):
                    return
                if not self._enabled(el):
                    return
                far = va + max(address, pa) - pa
                self.pending = Hit(syn.esr_watchpoint(same_el=el == 1, is_write=is_write),
                                   far, is_write, (address, bytes(uc.mem_read(address, size))))
                core.stop_for_debug_exception()
            except Exception as exc:            # noqa: BLE001 - a hook must not lose errors
                core.fail(exc)

        return on_access

    def take_pending(self, stock_unicorn: bool) -> Optional[Hit]:
        """After the slice stopped at a hit: the hit, its access undone on a stock Unicorn."""
        hit, self.pending = self.pending, None
        if hit is not None and stock_unicorn:
            pa, before = hit.undo
            self.core.uc.mem_write(pa, before)
        return hit
