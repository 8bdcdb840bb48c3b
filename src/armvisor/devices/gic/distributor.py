"""The GICv3 Distributor (GICD_*): SPI state, routing and the global controls.

Affinity routing always on (ARE = 1), as QEMU's `virt,gic-version=3`. With
ARE set, the SGI/PPI words of the banked registers (IGROUPR0, ISENABLER0, ...,
IPRIORITYR0-7, ICFGR0-1) are RAZ/WI here: the Redistributors hold that state
(IHI0069 12.9, e.g. GICD_ISENABLER<n>), and GICD_ITARGETSR, GICD_SGIR,
GICD_CPENDSGIR and GICD_SPENDSGIR are RES0.

One Security state (GICD_CTLR.DS = 1, QEMU's virt without secure=on) or,
with `two_security_states`, two (DS = 0, secure=on; IHI0069 3.1 "GIC
Security model"): then IGRPMODR and NSACR exist, GICD_CTLR has a Secure and
a Non-secure view, and a Non-secure access (`ns`) finds the fields of Secure
interrupts (Group 0, Secure Group 1) RAZ/WI unless NSACR lets it through
(12.9, each register's "Accessibility"). The `ns` of a GIC with one Security
state is always False: with DS = 1 every access behaves as a Secure one.

`read` returns None and `write` False for an offset or access size the
Distributor does not have; the caller treats that as RAZ/WI and reports it.
"""

from __future__ import annotations

from typing import Optional, Protocol

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.state import (BITMAP_FAMILIES, ICACTIVER, ICPENDR, ISACTIVER,
                                        ISPENDR, IrqBank, WORD_MASK, gather_icfgr,
                                        read_bitmap, spread_icfgr, write_bitmap, write_word)

_BYTE_OR_WORD = (1, 4)
_WORD = (4,)
_WORD_OR_DOUBLE = (4, 8)


class DistributorListener(Protocol):
    def spis_changed(self, mask: int) -> None: ...       # state the HPPI depends on
    def spis_rerouted(self, mask: int) -> None: ...      # IROUTER or group: pick targets again
    def group_enables_changed(self) -> None: ...


# GICD_CTLR's enable of each group (GROUP0, GROUP1, GROUP1S index it).
_GROUP_ENABLE = (r.GICD_CTLR_ENABLE_GRP0, r.GICD_CTLR_ENABLE_GRP1NS, r.GICD_CTLR_ENABLE_GRP1S)


class Distributor:
    def __init__(self, num_irqs: int, listener: DistributorListener, lpis: bool = False,
                 two_security_states: bool = False):
        self.num_irqs = num_irqs
        self._listener = listener
        self.two_states = two_security_states
        self.spi = IrqBank(num_irqs, ((1 << num_irqs) - 1) & ~WORD_MASK,
                           group1_at_reset=not two_security_states)
        self.irouter = [0] * num_irqs      # indexed by INTID; only SPIs are used
        # GICD_CTLR.EnableGrp0 | EnableGrp1 (DS = 1), EnableGrp0 | EnableGrp1NS |
        # EnableGrp1S (DS = 0): the bits of _GROUP_ENABLE.
        self.enabled_groups = 0
        # With LPIs, IDbits (16 INTID bits) bounds them and num_LPIs is 0 (12.9 GICD_TYPER).
        self.typer = ((num_irqs // 32 - 1)
                      | r.GICD_TYPER_MBIS
                      | (r.GICD_TYPER_LPIS if lpis else 0)
                      | ((r.INTID_BITS - 1) << r.GICD_TYPER_IDBITS_SHIFT)
                      | r.GICD_TYPER_A3V
                      | (r.GICD_TYPER_SECURITYEXTN if two_security_states else 0))

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
        return bool(self.enabled_groups & _GROUP_ENABLE[group])

    def group_of(self, intid: int) -> int:
        return self.spi.group_of(intid) if self.two_states else \
            (r.GROUP1 if self.spi.group >> intid & 1 else r.GROUP0)

    def _ns_allowed(self, level: int = 0) -> int:
        """The SPIs a Non-secure access reaches with DS = 0: the Non-secure Group 1
        ones, and the Secure ones whose NSACR is `level` or more (0: none)."""
        allowed = self.spi.group
        if level:
            allowed |= self.spi.nsacr_at_least(level)
        return allowed

    # ------------------------------------------------------------------ reads
    def read(self, offset: int, size: int, ns: bool = False) -> Optional[int]:
        """`ns`: a Non-secure access to a GIC with two Security states."""
        sizes = self._sizes(offset)
        if sizes is None or size not in sizes or offset % size:
            return None
        if offset == r.GICD_CTLR:
            return self._read_ctlr(ns)
        if offset == r.GICD_TYPER:
            return self.typer
        if offset == r.GICD_IIDR:
            return r.GIC_IIDR
        if r.GICD_IGROUPR <= offset < r.GICD_IPRIORITYR:
            family = offset & ~(r.BITMAP_REGION_SIZE - 1)
            index = (offset & (r.BITMAP_REGION_SIZE - 1)) // 4
            if not ns:
                return read_bitmap(self.spi, family, index)
            if family == r.GICD_IGROUPR:
                return 0            # Secure-only (12.9 GICD_IGROUPR<n>)
            # QEMU's choice of NSACR levels (arm_gicv3_dist.c): pending state from
            # 1, clearing it and the active state from 2.
            level = (r.NSACR_SET_PENDING if family == ISPENDR else
                     r.NSACR_CLEAR_PENDING if family in (ICPENDR, ISACTIVER, ICACTIVER) else 0)
            return read_bitmap(self.spi, family, index, self._ns_allowed(level))
        if r.GICD_IPRIORITYR <= offset < r.GICD_ITARGETSR:
            first = offset - r.GICD_IPRIORITYR
            value = 0
            for i in range(size):
                intid = first + i
                if r.SPI_BASE <= intid < self.num_irqs:
                    value |= self.spi.read_priority(intid, ns) << (8 * i)
            return value
        if r.GICD_ICFGR <= offset < r.GICD_IGRPMODR:
            index = (offset - r.GICD_ICFGR) // 4
            edge = self.spi.edge & self.spi.valid
            if ns:
                edge &= self._ns_allowed()
            return spread_icfgr(edge, index)
        if r.GICD_IGRPMODR <= offset < r.GICD_IGRPMODR + 0x80:
            if not self.two_states or ns:
                return 0            # RAZ/WI with DS = 1 and to Non-secure accesses
            return (self.spi.grpmod & self.spi.valid) >> (8 * (offset - r.GICD_IGRPMODR)) \
                & WORD_MASK
        if r.GICD_NSACR <= offset < r.GICD_NSACR + 0x100:
            if not self.two_states or ns:
                return 0            # likewise
            return (self.spi.nsacr >> (8 * (offset - r.GICD_NSACR))) & WORD_MASK
        if r.GICD_IROUTER <= offset < r.GICD_IROUTER_END:
            intid = (offset - r.GICD_IROUTER) // 8
            if not r.SPI_BASE <= intid < self.num_irqs:
                return 0
            if ns and not self._ns_routes(intid):
                return 0
            value = self.irouter[intid]
            if size == 4:
                value = (value >> 32) if offset % 8 else value & WORD_MASK
            return value
        if r.ID_REGS_BASE <= offset:
            return r.DIST_ID_BYTES[(offset - r.ID_REGS_BASE) // 4]
        return 0    # TYPER2, STATUSR, SETSPI/CLRSPI (write-only), ITARGETSR, SGIR...

    def _read_ctlr(self, ns: bool) -> int:
        if not self.two_states:
            return self.enabled_groups | r.GICD_CTLR_ARE | r.GICD_CTLR_DS
        if ns:
            return ((r.GICD_CTLR_NS_ENABLE_GRP1A
                     if self.enabled_groups & r.GICD_CTLR_ENABLE_GRP1NS else 0)
                    | r.GICD_CTLR_NS_ARE_NS)
        return self.enabled_groups | r.GICD_CTLR_ARE_S | r.GICD_CTLR_ARE_NS

    def _ns_routes(self, intid: int) -> bool:
        """Whether a Non-secure access reaches IROUTER<intid> (12.9 GICD_IROUTER<n>)."""
        spi = self.spi
        return bool(spi.group >> intid & 1) or (spi.nsacr >> (2 * intid)) & 0b11 >= r.NSACR_ROUTING

    # ----------------------------------------------------------------- writes
    def write(self, offset: int, size: int, value: int, ns: bool = False) -> bool:
        sizes = self._sizes(offset)
        if sizes is None or size not in sizes or offset % size:
            return False
        if offset == r.GICD_CTLR:
            self._write_ctlr(value, ns)
        elif offset in (r.GICD_SETSPI_NSR, r.GICD_CLRSPI_NSR):
            setting = offset == r.GICD_SETSPI_NSR
            intid = value & 0x1FFF
            # IHI0069 12.9 GICD_SETSPI_NSR/CLRSPI_NSR: a Non-secure message reaches
            # a Secure SPI only as far as its NSACR allows (as ISPENDR/ICPENDR).
            if ns and r.SPI_BASE <= intid < self.num_irqs and not self._ns_allowed(
                    r.NSACR_SET_PENDING if setting else r.NSACR_CLEAR_PENDING) >> intid & 1:
                return True
            self._message_spi(intid, setting)
        elif offset in (r.GICD_SETSPI_SR, r.GICD_CLRSPI_SR):
            # Secure accesses only, and only a GIC with two Security states has them
            # (12.9 GICD_SETSPI_SR: RES0 when DS = 1, WI to Non-secure accesses).
            if self.two_states and not ns:
                self._message_spi(value & 0x1FFF, offset == r.GICD_SETSPI_SR)
        elif r.GICD_IGROUPR <= offset < r.GICD_IPRIORITYR:
            family = offset & ~(r.BITMAP_REGION_SIZE - 1)
            index = (offset & (r.BITMAP_REGION_SIZE - 1)) // 4
            if not ns:
                changed = write_bitmap(self.spi, family, index, value)
            elif family == r.GICD_IGROUPR:
                changed = 0         # Secure-only
            else:
                level = (r.NSACR_SET_PENDING if family == ISPENDR else
                         r.NSACR_CLEAR_PENDING if family == ICPENDR else 0)
                changed = write_bitmap(self.spi, family, index, value, self._ns_allowed(level))
            if family == r.GICD_IGROUPR and changed:
                self._listener.spis_rerouted(changed)
            if changed:
                self._listener.spis_changed(changed)
        elif r.GICD_IPRIORITYR <= offset < r.GICD_ITARGETSR:
            self._write_priority(offset - r.GICD_IPRIORITYR, size, value, ns)
        elif r.GICD_ICFGR <= offset < r.GICD_IGRPMODR:
            self._write_icfgr((offset - r.GICD_ICFGR) // 4, value,
                              self._ns_allowed() if ns else -1)
        elif r.GICD_IGRPMODR <= offset < r.GICD_IGRPMODR + 0x80:
            if self.two_states and not ns:
                index = (offset - r.GICD_IGRPMODR) // 4
                old = self.spi.grpmod
                self.spi.grpmod = write_word(old, index, value, self.spi.valid)
                changed = old ^ self.spi.grpmod
                if changed:
                    self._listener.spis_rerouted(changed)
                    self._listener.spis_changed(changed)
        elif r.GICD_NSACR <= offset < r.GICD_NSACR + 0x100:
            if self.two_states and not ns:
                # Two bits per INTID: word n covers INTIDs 16n..16n+15; SGIs' and PPIs'
                # (words 0 and 1) are the Redistributors' (GICR_NSACR), so RAZ/WI here.
                index = (offset - r.GICD_NSACR) // 4
                if 2 <= index < self.num_irqs // 16:
                    self.spi.nsacr = write_word(self.spi.nsacr, index, value, -1)
        elif r.GICD_IROUTER <= offset < r.GICD_IROUTER_END:
            self._write_irouter(offset, size, value, ns)
        # Everything else this far is RAZ/WI or read-only (TYPER, IIDR, IDs...).
        return True

    def _write_ctlr(self, value: int, ns: bool) -> None:
        if not self.two_states:
            writable = r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1
            enables = value & writable
        elif ns:
            # EnableGrp1A is the only writable bit, the Secure view's EnableGrp1NS.
            writable = r.GICD_CTLR_ENABLE_GRP1NS
            enables = r.GICD_CTLR_ENABLE_GRP1NS if value & r.GICD_CTLR_NS_ENABLE_GRP1A else 0
        else:
            writable = (r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1NS
                        | r.GICD_CTLR_ENABLE_GRP1S)
            enables = value & writable
        enables |= self.enabled_groups & ~writable
        if enables != self.enabled_groups:
            self.enabled_groups = enables
            self._listener.group_enables_changed()

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

    def _write_priority(self, first: int, size: int, value: int, ns: bool = False) -> None:
        changed = 0
        for i in range(size):
            intid = first + i
            if r.SPI_BASE <= intid < self.num_irqs and \
                    self.spi.write_priority(intid, (value >> (8 * i)) & 0xFF, ns):
                changed |= 1 << intid
        if changed:
            self._listener.spis_changed(changed)

    def _write_icfgr(self, index: int, value: int, allowed: int = -1) -> None:
        word = (0xFFFF << (16 * index)) & self.spi.valid & allowed
        if not word:
            return        # ICFGR0/1 (SGIs/PPIs) are the Redistributor's; past the SPIs: WI
        edge = (gather_icfgr(value) << (16 * index)) & word
        changed = (self.spi.edge ^ edge) & word
        if changed:
            self.spi.edge = (self.spi.edge & ~word) | edge
            self._listener.spis_changed(changed)

    def _write_irouter(self, offset: int, size: int, value: int, ns: bool = False) -> None:
        intid = (offset - r.GICD_IROUTER) // 8
        if not r.SPI_BASE <= intid < self.num_irqs:
            return
        if ns and not self._ns_routes(intid):
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
