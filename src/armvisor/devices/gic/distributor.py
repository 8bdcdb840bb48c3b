"""The GICv3 Distributor (GICD_*): SPI state, routing and the global controls.

A single Security state (GICD_CTLR.DS = 1) and affinity routing always on
(ARE = 1), as QEMU's `virt,gic-version=3` without `secure=on`. With ARE set,
the SGI/PPI words of the banked registers (IGROUPR0, ISENABLER0, ...,
IPRIORITYR0-7, ICFGR0-1) are RAZ/WI here: the Redistributors hold that state
(IHI0069 12.9, e.g. GICD_ISENABLER<n>), and GICD_ITARGETSR, GICD_SGIR,
GICD_CPENDSGIR and GICD_SPENDSGIR are RES0.

`read` returns None and `write` False for an offset or access size the
Distributor does not have; the caller treats that as RAZ/WI and reports it.
"""

from __future__ import annotations

from typing import Optional, Protocol

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.state import (BITMAP_FAMILIES, IrqBank, WORD_MASK, gather_icfgr,
                                        read_bitmap, spread_icfgr, write_bitmap)

_BYTE_OR_WORD = (1, 4)
_WORD = (4,)
_WORD_OR_DOUBLE = (4, 8)


class DistributorListener(Protocol):
    def spis_changed(self, mask: int) -> None: ...       # state the HPPI depends on
    def spis_rerouted(self, mask: int) -> None: ...      # IROUTER or group: pick targets again
    def group_enables_changed(self) -> None: ...


class Distributor:
    def __init__(self, num_irqs: int, listener: DistributorListener, lpis: bool = False):
        self.num_irqs = num_irqs
        self._listener = listener
        self.spi = IrqBank(num_irqs, ((1 << num_irqs) - 1) & ~WORD_MASK)
        self.irouter = [0] * num_irqs      # indexed by INTID; only SPIs are used
        self.enabled_groups = 0            # GICD_CTLR.EnableGrp0 | EnableGrp1
        # With LPIs, IDbits (16 INTID bits) bounds them and num_LPIs is 0 (12.9 GICD_TYPER).
        self.typer = ((num_irqs // 32 - 1)
                      | r.GICD_TYPER_MBIS
                      | (r.GICD_TYPER_LPIS if lpis else 0)
                      | ((r.INTID_BITS - 1) << r.GICD_TYPER_IDBITS_SHIFT)
                      | r.GICD_TYPER_A3V)

    def reset(self) -> None:
        self.spi.reset()
        self.irouter = [0] * self.num_irqs    # IRM = 0, affinity 0.0.0.0: CPU 0
        self.enabled_groups = 0

    def save_state(self) -> dict:
        return {"spi": self.spi.save_state(), "irouter": list(self.irouter),
                "enabled_groups": self.enabled_groups}

    def restore_state(self, state: dict) -> None:
        """The registers alone: the GIC works out SPI targets and outputs from them."""
        if len(state["irouter"]) != self.num_irqs:
            raise ValueError(f"the snapshot's Distributor has {len(state['irouter'])} INTIDs, "
                             f"this one {self.num_irqs}")
        self.spi.restore_state(state["spi"])
        self.irouter = list(state["irouter"])
        self.enabled_groups = state["enabled_groups"]

    def group_enabled(self, group: int) -> bool:
        return bool(self.enabled_groups & (r.GICD_CTLR_ENABLE_GRP1 if group else r.GICD_CTLR_ENABLE_GRP0))

    # ------------------------------------------------------------------ reads
    def read(self, offset: int, size: int) -> Optional[int]:
        sizes = self._sizes(offset)
        if sizes is None or size not in sizes or offset % size:
            return None
        if offset == r.GICD_CTLR:
            return self.enabled_groups | r.GICD_CTLR_ARE | r.GICD_CTLR_DS
        if offset == r.GICD_TYPER:
            return self.typer
        if offset == r.GICD_IIDR:
            return r.GIC_IIDR
        if r.GICD_IGROUPR <= offset < r.GICD_IPRIORITYR:
            family = offset & ~(r.BITMAP_REGION_SIZE - 1)
            index = (offset & (r.BITMAP_REGION_SIZE - 1)) // 4
            return read_bitmap(self.spi, family, index)
        if r.GICD_IPRIORITYR <= offset < r.GICD_ITARGETSR:
            first = offset - r.GICD_IPRIORITYR
            value = 0
            for i in range(size):
                intid = first + i
                if r.SPI_BASE <= intid < self.num_irqs:
                    value |= self.spi.priority[intid] << (8 * i)
            return value
        if r.GICD_ICFGR <= offset < r.GICD_IGRPMODR:
            index = (offset - r.GICD_ICFGR) // 4
            return spread_icfgr(self.spi.edge & self.spi.valid, index)
        if r.GICD_IROUTER <= offset < r.GICD_IROUTER_END:
            intid = (offset - r.GICD_IROUTER) // 8
            if not r.SPI_BASE <= intid < self.num_irqs:
                return 0
            value = self.irouter[intid]
            if size == 4:
                value = (value >> 32) if offset % 8 else value & WORD_MASK
            return value
        if r.ID_REGS_BASE <= offset:
            return r.DIST_ID_BYTES[(offset - r.ID_REGS_BASE) // 4]
        return 0    # TYPER2, STATUSR, SETSPI/CLRSPI (write-only), ITARGETSR, IGRPMODR, NSACR, SGIR...

    # ----------------------------------------------------------------- writes
    def write(self, offset: int, size: int, value: int) -> bool:
        sizes = self._sizes(offset)
        if sizes is None or size not in sizes or offset % size:
            return False
        if offset == r.GICD_CTLR:
            enables = value & (r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1)
            if enables != self.enabled_groups:
                self.enabled_groups = enables
                self._listener.group_enables_changed()
        elif offset in (r.GICD_SETSPI_NSR, r.GICD_CLRSPI_NSR):
            self._message_spi(value & 0x1FFF, offset == r.GICD_SETSPI_NSR)
        elif r.GICD_IGROUPR <= offset < r.GICD_IPRIORITYR:
            family = offset & ~(r.BITMAP_REGION_SIZE - 1)
            index = (offset & (r.BITMAP_REGION_SIZE - 1)) // 4
            changed = write_bitmap(self.spi, family, index, value)
            if family == r.GICD_IGROUPR and changed:
                self._listener.spis_rerouted(changed)
            if changed:
                self._listener.spis_changed(changed)
        elif r.GICD_IPRIORITYR <= offset < r.GICD_ITARGETSR:
            self._write_priority(offset - r.GICD_IPRIORITYR, size, value)
        elif r.GICD_ICFGR <= offset < r.GICD_IGRPMODR:
            self._write_icfgr((offset - r.GICD_ICFGR) // 4, value)
        elif r.GICD_IROUTER <= offset < r.GICD_IROUTER_END:
            self._write_irouter(offset, size, value)
        # Everything else this far is RAZ/WI or read-only (TYPER, IIDR, IDs...).
        return True

    def _message_spi(self, intid: int, assert_: bool) -> None:
        # IHI0069 12.9 GICD_SETSPI_NSR/CLRSPI_NSR: a message sets or clears the
        # pending latch; INTIDs that are not implemented SPIs are ignored.
        if not r.SPI_BASE <= intid < self.num_irqs:
            return
        bit = 1 << intid
        if assert_:
            self.spi.latch |= bit
        else:
            self.spi.latch &= ~bit
        self._listener.spis_changed(bit)

    def _write_priority(self, first: int, size: int, value: int) -> None:
        changed = 0
        for i in range(size):
            intid = first + i
            if r.SPI_BASE <= intid < self.num_irqs:
                prio = (value >> (8 * i)) & 0xFF
                if self.spi.priority[intid] != prio:
                    self.spi.priority[intid] = prio
                    changed |= 1 << intid
        if changed:
            self._listener.spis_changed(changed)

    def _write_icfgr(self, index: int, value: int) -> None:
        word = (0xFFFF << (16 * index)) & self.spi.valid
        if not word:
            return        # ICFGR0/1 (SGIs/PPIs) are the Redistributor's; past the SPIs: WI
        edge = (gather_icfgr(value) << (16 * index)) & word
        changed = (self.spi.edge ^ edge) & word
        if changed:
            self.spi.edge = (self.spi.edge & ~word) | edge
            self._listener.spis_changed(changed)

    def _write_irouter(self, offset: int, size: int, value: int) -> None:
        intid = (offset - r.GICD_IROUTER) // 8
        if not r.SPI_BASE <= intid < self.num_irqs:
            return
        old = self.irouter[intid]
        if size == 8:
            new = value
        elif offset % 8:
            new = (old & WORD_MASK) | ((value & WORD_MASK) << 32)
        else:
            new = (old & ~WORD_MASK) | (value & WORD_MASK)
        new &= r.IROUTER_WRITABLE
        if new != old:
            self.irouter[intid] = new
            self._listener.spis_rerouted(1 << intid)

    # ------------------------------------------------------------------ decode
    @staticmethod
    def _sizes(offset: int) -> Optional[tuple]:
        """The access sizes a Distributor offset allows, or None if nothing is there."""
        if offset in (r.GICD_CTLR, r.GICD_TYPER, r.GICD_IIDR, r.GICD_TYPER2, r.GICD_STATUSR,
                      r.GICD_SETSPI_NSR, r.GICD_CLRSPI_NSR, r.GICD_SETSPI_SR,
                      r.GICD_CLRSPI_SR, r.GICD_SGIR):
            return _WORD
        if r.GICD_IGROUPR <= offset < r.GICD_IPRIORITYR:
            return _WORD if (offset & ~(r.BITMAP_REGION_SIZE - 1)) in BITMAP_FAMILIES else None
        if r.GICD_IPRIORITYR <= offset < r.GICD_ICFGR:          # IPRIORITYR, ITARGETSR
            return _BYTE_OR_WORD
        if r.GICD_ICFGR <= offset < r.GICD_ICFGR + 0x100:
            return _WORD
        if r.GICD_IGRPMODR <= offset < r.GICD_IGRPMODR + 0x80:
            return _WORD
        if r.GICD_NSACR <= offset < r.GICD_NSACR + 0x100:
            return _WORD
        if r.GICD_CPENDSGIR <= offset < r.GICD_SPENDSGIR + 0x10:
            return _BYTE_OR_WORD
        if r.GICD_INMIR <= offset < r.GICD_INMIR + 0x80:
            return _WORD
        if r.GICD_IROUTER <= offset < r.GICD_IROUTER_END:
            return _WORD_OR_DOUBLE
        if r.ID_REGS_BASE <= offset <= 0xFFFC:
            return _WORD
        return None
