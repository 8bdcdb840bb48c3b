"""One GICv3 Redistributor (GICR_*): a PE's SGIs and PPIs, its identity and power.

Each PE has a 128 KiB frame pair: RD_base (control, GICR_TYPER, GICR_WAKER)
then SGI_base (+64 KiB) with the SGI/PPI registers (IHI0069 12.10). Given
an `LpiState` (a GIC with guest memory to keep LPI tables in), it supports
LPIs as QEMU's does with an ITS: GICR_TYPER.PLPIS = 1, GICR_CTLR.EnableLPIs,
GICR_PROPBASER and GICR_PENDBASER (lpi.py); without one, those are RAZ/WI.
Either way there is no direct LPI interface (SETLPIR, CLRLPIR, INVLPIR,
INVALLR, SYNCR are RAZ/WI; GICR_TYPER.DirectLPI = 0). With DS = 1,
GICR_IGRPMODR0 and GICR_NSACR are RAZ/WI (12.11). With two Security states
(DS = 0) they are Secure-only, and a Non-secure access (`ns`) finds the
SGI_base fields of Secure SGIs and PPIs RAZ/WI and priorities in their
Non-secure view, as in the Distributor; GICR_NSACR does not widen that
(it governs SGI generation only: 12.11 GICR_NSACR, QEMU's mask_group). The
RD_base frame is the same in both states, as in QEMU (the architecture
leaves GICR_WAKER's Non-secure access IMPLEMENTATION DEFINED in part;
Linux reads back what it wrote and copes with RAZ/WI too).

GICR_WAKER: ProcessorSleep resets to 1 and ChildrenAsleep follows it at
once, the handshake a power controller with nothing to quiesce would give.
As in QEMU, ProcessorSleep does not hold back interrupts routed to a fixed
PE; it takes a PE out of the "participating" set for 1-of-N SPIs.
"""

from __future__ import annotations

from typing import Optional, Protocol

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.lpi import LpiState
from armvisor.devices.gic.state import (BITMAP_FAMILIES, IrqBank, WORD_MASK, gather_icfgr,
                                        read_bitmap, spread_icfgr, write_bitmap, write_word)

_SGI_MASK = (1 << r.SGI_COUNT) - 1
_PRIVATE_MASK = (1 << r.PRIVATE_COUNT) - 1


class RedistributorListener(Protocol):
    def private_changed(self, cpu: int, mask: int) -> None: ...
    def waker_changed(self, cpu: int) -> None: ...
    def lpis_changed(self, cpu: int) -> None: ...


def affinity_value(mpidr: int) -> int:
    """GICR_TYPER.Affinity_Value (Aff3.Aff2.Aff1.Aff0) from an MPIDR_EL1 value."""
    return ((((mpidr >> 32) & 0xFF) << 24) | (mpidr & 0xFF_FFFF))


class Redistributor:
    def __init__(self, cpu: int, mpidr: int, last: bool, listener: RedistributorListener,
                 lpi: Optional[LpiState] = None, two_security_states: bool = False):
        self.cpu = cpu
        self._listener = listener
        self.two_states = two_security_states
        self.bank = IrqBank(r.PRIVATE_COUNT, _PRIVATE_MASK, fixed_edge=_SGI_MASK,
                            group1_at_reset=not two_security_states)
        self.lpi = lpi
        self.typer = ((affinity_value(mpidr) << r.GICR_TYPER_AFFINITY_SHIFT)
                      | (cpu << r.GICR_TYPER_PROCESSOR_NUMBER_SHIFT)
                      | (r.GICR_TYPER_LAST if last else 0)
                      | (r.GICR_TYPER_PLPIS if lpi is not None else 0))
        self.processor_sleep = True

    def reset(self) -> None:
        self.bank.reset()
        self.processor_sleep = True
        if self.lpi is not None:
            self.lpi.reset()

    def save_state(self) -> dict:
        state = {"bank": self.bank.save_state(), "processor_sleep": self.processor_sleep}
        if self.lpi is not None:
            state["lpi"] = self.lpi.save_state()
        return state

    def restore_state(self, state: dict) -> None:
        self.bank.restore_state(state["bank"])
        self.processor_sleep = state["processor_sleep"]
        if self.lpi is not None:
            if "lpi" in state:
                self.lpi.restore_state(state["lpi"])
            else:
                self.lpi.reset()        # a snapshot from before LPIs: none enabled

    # ------------------------------------------------------------------ reads
    def read(self, offset: int, size: int, ns: bool = False) -> Optional[int]:
        """A read at `offset` within this PE's frame pair; None if nothing is there.
        `ns`: a Non-secure access to a GIC with two Security states."""
        if offset >= r.GICR_SGI_BASE:
            return self._read_sgi(offset - r.GICR_SGI_BASE, size, ns)
        if not self._rd_size_ok(offset, size):
            return None
        if offset == r.GICR_IIDR:
            return r.GIC_IIDR
        if offset == r.GICR_TYPER:
            return self.typer if size == 8 else self.typer & WORD_MASK
        if offset == r.GICR_TYPER + 4:
            return self.typer >> 32
        if offset == r.GICR_WAKER:
            return (r.GICR_WAKER_PROCESSOR_SLEEP | r.GICR_WAKER_CHILDREN_ASLEEP
                    if self.processor_sleep else 0)
        lpi = self.lpi
        if lpi is not None:
            if offset == r.GICR_CTLR:
                return r.GICR_CTLR_ENABLE_LPIS if lpi.enabled else 0
            if offset & ~7 in (r.GICR_PROPBASER, r.GICR_PENDBASER):
                value = lpi.propbaser if offset & ~7 == r.GICR_PROPBASER else lpi.pendbaser
                if size == 4:
                    value = value >> 32 if offset & 4 else value & WORD_MASK
                return value
        if offset >= r.ID_REGS_BASE:
            return r.REDIST_ID_BYTES[(offset - r.ID_REGS_BASE) // 4]
        return 0    # CTLR, STATUSR, the LPI registers, SYNCR (never busy)

    def _read_sgi(self, offset: int, size: int, ns: bool) -> Optional[int]:
        if not self._sgi_size_ok(offset, size):
            return None
        bank = self.bank
        if offset in BITMAP_FAMILIES:
            if not ns:
                return read_bitmap(bank, offset, 0)
            return 0 if offset == r.GICR_IGROUPR0 else read_bitmap(bank, offset, 0, bank.group)
        if r.GICR_IPRIORITYR <= offset < r.GICR_IPRIORITYR + r.PRIVATE_COUNT:
            first = offset - r.GICR_IPRIORITYR
            if not ns:
                return int.from_bytes(bank.priority[first:first + size], "little")
            return sum(bank.read_priority(first + i, ns) << (8 * i) for i in range(size))
        if offset == r.GICR_ICFGR0:
            return r.GICR_ICFGR0_VALUE & (spread_icfgr(bank.group, 0) if ns else WORD_MASK)
        if offset == r.GICR_ICFGR1:
            return spread_icfgr(bank.edge & (bank.group if ns else -1), 1)
        if self.two_states and not ns:
            if offset == r.GICR_IGRPMODR0:
                return bank.grpmod
            if offset == r.GICR_NSACR:
                return bank.nsacr
        return 0    # IGRPMODR0 and NSACR (DS = 1, Non-secure), INMIR0

    # ----------------------------------------------------------------- writes
    def write(self, offset: int, size: int, value: int, ns: bool = False) -> bool:
        if offset >= r.GICR_SGI_BASE:
            return self._write_sgi(offset - r.GICR_SGI_BASE, size, value, ns)
        if not self._rd_size_ok(offset, size):
            return False
        if offset == r.GICR_WAKER:
            sleep = bool(value & r.GICR_WAKER_PROCESSOR_SLEEP)
            if sleep != self.processor_sleep:
                self.processor_sleep = sleep
                self._listener.waker_changed(self.cpu)
        lpi = self.lpi
        if lpi is None:
            return True
        if offset == r.GICR_CTLR:
            if lpi.set_enabled(bool(value & r.GICR_CTLR_ENABLE_LPIS)):
                self._listener.lpis_changed(self.cpu)
        elif offset & ~7 in (r.GICR_PROPBASER, r.GICR_PENDBASER):
            base = offset & ~7
            old = lpi.propbaser if base == r.GICR_PROPBASER else lpi.pendbaser
            if size == 8:
                new = value
            elif offset & 4:
                new = (old & WORD_MASK) | (value << 32)
            else:
                new = (old & ~WORD_MASK) | value
            if base == r.GICR_PROPBASER:
                lpi.write_propbaser(new)
            else:
                lpi.write_pendbaser(new)
        return True     # everything else in RD_base is read-only or RAZ/WI here

    def _write_sgi(self, offset: int, size: int, value: int, ns: bool) -> bool:
        if not self._sgi_size_ok(offset, size):
            return False
        bank = self.bank
        # With DS = 0, a Non-secure access reaches the Non-secure Group 1 INTIDs only.
        allowed = bank.group if ns else -1
        changed = 0
        if offset in BITMAP_FAMILIES:
            if not (ns and offset == r.GICR_IGROUPR0):      # IGROUPR0 is Secure-only
                changed = write_bitmap(bank, offset, 0, value, allowed)
        elif r.GICR_IPRIORITYR <= offset < r.GICR_IPRIORITYR + r.PRIVATE_COUNT:
            first = offset - r.GICR_IPRIORITYR
            for i in range(size):
                if bank.write_priority(first + i, (value >> (8 * i)) & 0xFF, ns):
                    changed |= 1 << (first + i)
        elif offset == r.GICR_ICFGR1:
            # PPIs are programmable (IMPLEMENTATION DEFINED; QEMU allows it).
            # ICFGR0 is RO: SGIs are always edge-triggered.
            word = (0xFFFF << 16) & allowed
            edge = (bank.edge & ~word) | ((gather_icfgr(value) << 16) & word) | _SGI_MASK
            changed = bank.edge ^ edge
            bank.edge = edge
        elif self.two_states and not ns and offset == r.GICR_IGRPMODR0:
            old = bank.grpmod
            bank.grpmod = write_word(old, 0, value, bank.valid)
            changed = old ^ bank.grpmod
        elif self.two_states and not ns and offset == r.GICR_NSACR:
            bank.nsacr = value & WORD_MASK     # no state the HPPI depends on
        if changed:
            self._listener.private_changed(self.cpu, changed)
        return True

    # ------------------------------------------------------------------ decode
    @staticmethod
    def _rd_size_ok(offset: int, size: int) -> bool:
        if offset % size:
            return False
        if offset == r.GICR_TYPER:
            return size in (4, 8)
        if offset in (r.GICR_SETLPIR, r.GICR_CLRLPIR, r.GICR_PROPBASER, r.GICR_PENDBASER,
                      r.GICR_INVLPIR, r.GICR_INVALLR):
            return size in (4, 8)
        if offset in (r.GICR_SETLPIR + 4, r.GICR_CLRLPIR + 4, r.GICR_PROPBASER + 4,
                      r.GICR_PENDBASER + 4, r.GICR_INVLPIR + 4, r.GICR_INVALLR + 4):
            return size == 4
        if offset in (r.GICR_CTLR, r.GICR_IIDR, r.GICR_TYPER + 4, r.GICR_STATUSR, r.GICR_WAKER,
                      r.GICR_MPAMIDR, r.GICR_PARTIDR, r.GICR_SYNCR):
            return size == 4
        return size == 4 and r.ID_REGS_BASE <= offset <= 0xFFFC

    @staticmethod
    def _sgi_size_ok(offset: int, size: int) -> bool:
        if offset % size:
            return False
        if r.GICR_IPRIORITYR <= offset < r.GICR_IPRIORITYR + r.PRIVATE_COUNT:
            return size in (1, 4)
        if offset in BITMAP_FAMILIES or offset in (r.GICR_ICFGR0, r.GICR_ICFGR1,
                                                    r.GICR_IGRPMODR0, r.GICR_NSACR,
                                                    r.GICR_INMIR0):
            return size == 4
        return False
