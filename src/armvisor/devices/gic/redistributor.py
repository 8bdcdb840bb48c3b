"""One GICv3 Redistributor (GICR_*): a PE's SGIs and PPIs, its identity and power.

Each PE has a 128 KiB frame pair: RD_base (control, GICR_TYPER, GICR_WAKER)
then SGI_base (+64 KiB) with the SGI/PPI registers (IHI0069 12.10). There
are no LPIs, so the LPI registers (PROPBASER, PENDBASER, SETLPIR, ...) are
RAZ/WI and GICR_CTLR is all zero. With DS = 1, GICR_IGRPMODR0 and
GICR_NSACR are RAZ/WI (12.11).

GICR_WAKER: ProcessorSleep resets to 1 and ChildrenAsleep follows it at
once, the handshake a power controller with nothing to quiesce would give.
As in QEMU, ProcessorSleep does not hold back interrupts routed to a fixed
PE; it takes a PE out of the "participating" set for 1-of-N SPIs.
"""

from __future__ import annotations

from typing import Optional, Protocol

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.state import (BITMAP_FAMILIES, IrqBank, WORD_MASK, gather_icfgr,
                                        read_bitmap, spread_icfgr, write_bitmap)

_SGI_MASK = (1 << r.SGI_COUNT) - 1
_PRIVATE_MASK = (1 << r.PRIVATE_COUNT) - 1


class RedistributorListener(Protocol):
    def private_changed(self, cpu: int, mask: int) -> None: ...
    def waker_changed(self, cpu: int) -> None: ...


def affinity_value(mpidr: int) -> int:
    """GICR_TYPER.Affinity_Value (Aff3.Aff2.Aff1.Aff0) from an MPIDR_EL1 value."""
    return ((((mpidr >> 32) & 0xFF) << 24) | (mpidr & 0xFF_FFFF))


class Redistributor:
    def __init__(self, cpu: int, mpidr: int, last: bool, listener: RedistributorListener):
        self.cpu = cpu
        self._listener = listener
        self.bank = IrqBank(r.PRIVATE_COUNT, _PRIVATE_MASK, fixed_edge=_SGI_MASK)
        self.typer = ((affinity_value(mpidr) << r.GICR_TYPER_AFFINITY_SHIFT)
                      | (cpu << r.GICR_TYPER_PROCESSOR_NUMBER_SHIFT)
                      | (r.GICR_TYPER_LAST if last else 0))
        self.processor_sleep = True

    def reset(self) -> None:
        self.bank.reset()
        self.processor_sleep = True

    def save_state(self) -> dict:
        return {"bank": self.bank.save_state(), "processor_sleep": self.processor_sleep}

    def restore_state(self, state: dict) -> None:
        self.bank.restore_state(state["bank"])
        self.processor_sleep = state["processor_sleep"]

    # ------------------------------------------------------------------ reads
    def read(self, offset: int, size: int) -> Optional[int]:
        """A read at `offset` within this PE's frame pair; None if nothing is there."""
        if offset >= r.GICR_SGI_BASE:
            return self._read_sgi(offset - r.GICR_SGI_BASE, size)
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
        if offset >= r.ID_REGS_BASE:
            return r.REDIST_ID_BYTES[(offset - r.ID_REGS_BASE) // 4]
        return 0    # CTLR, STATUSR, the LPI registers, SYNCR (never busy)

    def _read_sgi(self, offset: int, size: int) -> Optional[int]:
        if not self._sgi_size_ok(offset, size):
            return None
        bank = self.bank
        if offset in BITMAP_FAMILIES:
            return read_bitmap(bank, offset, 0)
        if r.GICR_IPRIORITYR <= offset < r.GICR_IPRIORITYR + r.PRIVATE_COUNT:
            first = offset - r.GICR_IPRIORITYR
            return int.from_bytes(bank.priority[first:first + size], "little")
        if offset == r.GICR_ICFGR0:
            return r.GICR_ICFGR0_VALUE
        if offset == r.GICR_ICFGR1:
            return spread_icfgr(bank.edge, 1)
        return 0    # IGRPMODR0, NSACR, INMIR0

    # ----------------------------------------------------------------- writes
    def write(self, offset: int, size: int, value: int) -> bool:
        if offset >= r.GICR_SGI_BASE:
            return self._write_sgi(offset - r.GICR_SGI_BASE, size, value)
        if not self._rd_size_ok(offset, size):
            return False
        if offset == r.GICR_WAKER:
            sleep = bool(value & r.GICR_WAKER_PROCESSOR_SLEEP)
            if sleep != self.processor_sleep:
                self.processor_sleep = sleep
                self._listener.waker_changed(self.cpu)
        return True     # everything else in RD_base is read-only or RAZ/WI here

    def _write_sgi(self, offset: int, size: int, value: int) -> bool:
        if not self._sgi_size_ok(offset, size):
            return False
        bank = self.bank
        changed = 0
        if offset in BITMAP_FAMILIES:
            changed = write_bitmap(bank, offset, 0, value)
        elif r.GICR_IPRIORITYR <= offset < r.GICR_IPRIORITYR + r.PRIVATE_COUNT:
            first = offset - r.GICR_IPRIORITYR
            for i in range(size):
                prio = (value >> (8 * i)) & 0xFF
                if bank.priority[first + i] != prio:
                    bank.priority[first + i] = prio
                    changed |= 1 << (first + i)
        elif offset == r.GICR_ICFGR1:
            # PPIs are programmable (IMPLEMENTATION DEFINED; QEMU allows it).
            # ICFGR0 is RO: SGIs are always edge-triggered.
            edge = (gather_icfgr(value) << 16) | _SGI_MASK
            changed = bank.edge ^ edge
            bank.edge = edge
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
