"""The GICv3 ITS and LPIs (IHI0069 chapter 5) without a guest: registers, commands, delivery.

The driver below does what kvm-unit-tests' lib/arm64/gic-v3-its*.c and a
Linux driver do: tables in RAM, one command at a time through CWRITER, and
LPIs acknowledged through ICC_IAR1_EL1.
"""

from __future__ import annotations

import copy
from typing import Optional

import msgpack
import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import its as g
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from tests.unit.devices.test_virtqueue import GuestRam

RAM_BASE = 0x4000_0000
PROP = RAM_BASE + 0x10_0000          # LPI configuration table
PEND = RAM_BASE + 0x20_0000          # pending tables, 64 KiB apart
DEVICE_TABLE = RAM_BASE + 0x40_0000
COLLECTION_TABLE = RAM_BASE + 0x50_0000
QUEUE = RAM_BASE + 0x60_0000
ITT = RAM_BASE + 0x70_0000           # 4 KiB per device
LPI_DEFAULT = 0xA0 | 0b10 | 1        # priority 0xA0, RES1, enabled (kvm-unit-tests)


class Rig:
    def __init__(self, cpus: int = 4, trace=None):
        self.ram = GuestRam(RAM_BASE, 16 << 20)
        self.changes = []
        self.gic = GicV3(cpus, mpidr_affinity, trace=trace, on_change=self.changes.append,
                         memory=self.ram)
        self.cpus = cpus
        self.write_pos = 0

    # registers
    def its_rd(self, offset: int, size: int = 8) -> int:
        return self.gic.its_read(offset, size, 0)

    def its_wr(self, offset: int, value: int, size: int = 8) -> None:
        self.gic.its_write(offset, size, value, 0)

    def rd_wr(self, cpu: int, offset: int, value: int, size: int = 8) -> None:
        self.gic.redistributor_write(cpu * r.GICR_FRAME_SIZE + offset, size, value, cpu)

    def rd_rd(self, cpu: int, offset: int, size: int = 8) -> int:
        return self.gic.redistributor_read(cpu * r.GICR_FRAME_SIZE + offset, size, cpu)

    def setup(self, enable_lpis: bool = True) -> "Rig":
        gic = self.gic
        gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP1, 0)
        for cpu in range(self.cpus):
            gic.icc_write(cpu, r.ICC_PMR_EL1, 0xFF)
            gic.icc_write(cpu, r.ICC_IGRPEN1_EL1, 1)
            self.rd_wr(cpu, r.GICR_PROPBASER, PROP | 13)        # 14 INTID bits
            self.rd_wr(cpu, r.GICR_PENDBASER, PEND + cpu * 0x1_0000)
            if enable_lpis:
                self.rd_wr(cpu, r.GICR_CTLR, r.GICR_CTLR_ENABLE_LPIS, 4)
        self.its_wr(g.GITS_BASER, self.its_rd(g.GITS_BASER) | DEVICE_TABLE | g.BASER_VALID)
        self.its_wr(g.GITS_BASER + 8, self.its_rd(g.GITS_BASER + 8) | COLLECTION_TABLE
                    | g.BASER_VALID)
        self.its_wr(g.GITS_CBASER, QUEUE | 15 | g.CBASER_VALID)      # 64 KiB queue
        self.its_wr(g.GITS_CWRITER, 0)
        self.its_wr(g.GITS_CTLR, g.GITS_CTLR_ENABLED, 4)
        return self

    def config(self, intid: int, value: int) -> None:
        self.ram.write(PROP + intid - r.LPI_BASE, bytes((value,)))

    def command(self, *words: int) -> None:
        data = b"".join(w.to_bytes(8, "little") for w in (list(words) + [0] * 4)[:4])
        self.ram.write(QUEUE + self.write_pos, data)
        self.write_pos = (self.write_pos + 32) % 0x1_0000
        self.its_wr(g.GITS_CWRITER, self.write_pos)

    def mapd(self, device: int, valid: bool = True, size: int = 7,
             itt: Optional[int] = None) -> None:
        itt = ITT + device * 0x1000 if itt is None else itt
        self.command(g.CMD_MAPD | device << 32, size, itt | valid << 63)

    def mapc(self, icid: int, pe: int, valid: bool = True) -> None:
        self.command(g.CMD_MAPC, 0, icid | pe << 16 | valid << 63)

    def mapti(self, device: int, event: int, intid: int, icid: int) -> None:
        self.command(g.CMD_MAPTI | device << 32, event | intid << 32, icid)

    def event(self, code: int, device: int, event: int) -> None:
        self.command(code | device << 32, event)

    def ack(self, cpu: int) -> int:
        return self.gic.icc_read(cpu, r.ICC_IAR1_EL1)

    def eoi(self, cpu: int, intid: int) -> None:
        self.gic.icc_write(cpu, r.ICC_EOIR1_EL1, intid)

    def pending_bit(self, cpu: int, intid: int) -> bool:
        byte = self.ram.read(PEND + cpu * 0x1_0000 + intid // 8, 1)[0]
        return bool(byte >> (intid % 8) & 1)


def its_setup1(rig: Rig) -> Rig:
    """kvm-unit-tests' its_setup1: dev 2 event 20 -> LPI 8195 on col 3 (PE 3), dev 7
    event 255 -> LPI 8196 on col 2 (PE 2)."""
    rig.config(8195, LPI_DEFAULT)
    rig.config(8196, LPI_DEFAULT)
    rig.mapd(2)
    rig.mapd(7)
    rig.mapc(3, 3)
    rig.mapc(2, 2)
    rig.command(g.CMD_INVALL, 0, 2)
    rig.command(g.CMD_INVALL, 0, 3)
    rig.mapti(2, 20, 8195, 3)
    rig.mapti(7, 255, 8196, 2)
    return rig


# ------------------------------------------------------------------ registers
def test_no_memory_no_lpis_no_its():
    gic = GicV3(2, mpidr_affinity)
    assert gic.its is None
    assert not gic.distributor_read(r.GICD_TYPER, 4, 0) & r.GICD_TYPER_LPIS
    assert not gic.redistributor_read(r.GICR_TYPER, 8, 0) & r.GICR_TYPER_PLPIS
    assert gic.its_read(g.GITS_CTLR, 4, 0) == 0


def test_id_registers_as_qemu():
    rig = Rig()
    gic = rig.gic
    typer = gic.distributor_read(r.GICD_TYPER, 4, 0)
    assert typer & r.GICD_TYPER_LPIS
    assert (typer >> r.GICD_TYPER_IDBITS_SHIFT) & 0x1F == 15        # 16 INTID bits
    assert rig.rd_rd(0, r.GICR_TYPER) & r.GICR_TYPER_PLPIS
    its_typer = rig.its_rd(g.GITS_TYPER)
    assert its_typer & g.GITS_TYPER_PHYSICAL and not its_typer & 0b10        # no vLPIs
    assert (its_typer >> 4) & 0xF == 11                   # 12-byte ITT entries
    assert (its_typer >> 8) & 0x1F == 15 and (its_typer >> 13) & 0x1F == 15
    assert not its_typer & (1 << 19)                      # PTA = 0: PE numbers
    assert its_typer >> 36 & 1 and (its_typer >> 32) & 0xF == 15
    assert rig.its_rd(g.GITS_TYPER, 4) == its_typer & 0xFFFF_FFFF
    assert rig.its_rd(g.GITS_TYPER + 4, 4) == its_typer >> 32
    assert rig.its_rd(g.GITS_IIDR, 4) == 0x43B
    assert rig.its_rd(0xFFE8, 4) == 0x3B                  # PIDR2: GICv3
    assert rig.its_rd(0xFFE0, 4) == 0x94                  # PIDR0: QEMU's ITS part number
    # Read-only: IIDR and TYPER ignore writes (kvm-unit-tests' test_readonly_32).
    rig.its_wr(g.GITS_IIDR, 0xFFFF_FFFF, 4)
    rig.its_wr(g.GITS_TYPER, 0, 4)
    assert rig.its_rd(g.GITS_IIDR, 4) == 0x43B and rig.its_rd(g.GITS_TYPER) == its_typer
    assert rig.its_rd(g.GITS_CTLR, 4) == g.GITS_CTLR_QUIESCENT


def test_baser_types_and_read_only_fields():
    rig = Rig()
    dev, coll = rig.its_rd(g.GITS_BASER), rig.its_rd(g.GITS_BASER + 8)
    assert (dev >> 56) & 7 == g.BASER_TYPE_DEVICE and (coll >> 56) & 7 == g.BASER_TYPE_COLLECTION
    assert (dev >> 8) & 3 == 2 and (coll >> 8) & 3 == 2           # 64 KiB pages
    assert (dev >> 48) & 0x1F == 7 and (coll >> 48) & 0x1F == 7   # 8-byte entries
    for n in range(2, 8):
        rig.its_wr(g.GITS_BASER + 8 * n, 0xFFFF_FFFF_FFFF_FFFF)
        assert rig.its_rd(g.GITS_BASER + 8 * n) == 0               # unimplemented
    rig.its_wr(g.GITS_BASER, 0xFFFF_FFFF_FFFF_FFFF)
    value = rig.its_rd(g.GITS_BASER)
    assert (value >> 56) & 7 == 1 and (value >> 48) & 0x1F == 7   # Type, Entry_Size RO
    assert value & g.BASER_INDIRECT                               # two-level tables too
    assert value & g.BASER_VALID
    # Halves: a 32-bit write of the high word keeps the low word.
    rig.its_wr(g.GITS_BASER + 4, 0, 4)
    assert rig.its_rd(g.GITS_BASER) & 0xFFFF_FFFF == value & 0xFFFF_FFFF
    # While enabled, BASER and CBASER do not change.
    rig.setup()
    before = (rig.its_rd(g.GITS_BASER), rig.its_rd(g.GITS_CBASER))
    rig.its_wr(g.GITS_BASER, 0)
    rig.its_wr(g.GITS_CBASER, 0)
    assert (rig.its_rd(g.GITS_BASER), rig.its_rd(g.GITS_CBASER)) == before
    assert rig.its_rd(g.GITS_CTLR, 4) == g.GITS_CTLR_ENABLED | g.GITS_CTLR_QUIESCENT


def test_redistributor_lpi_registers():
    rig = Rig()
    rig.rd_wr(1, r.GICR_PROPBASER, PROP | 13)
    assert rig.rd_rd(1, r.GICR_PROPBASER) == PROP | 13
    assert rig.rd_rd(1, r.GICR_PROPBASER + 4, 4) == PROP >> 32
    rig.rd_wr(1, r.GICR_PENDBASER, PEND | r.PENDBASER_PTZ)
    assert rig.rd_rd(1, r.GICR_PENDBASER) == PEND               # PTZ is write-only
    assert rig.rd_rd(1, r.GICR_CTLR, 4) == 0
    rig.rd_wr(1, r.GICR_CTLR, r.GICR_CTLR_ENABLE_LPIS, 4)
    assert rig.rd_rd(1, r.GICR_CTLR, 4) == r.GICR_CTLR_ENABLE_LPIS
    rig.rd_wr(1, r.GICR_PROPBASER, 0)                            # ignored while enabled
    assert rig.rd_rd(1, r.GICR_PROPBASER) == PROP | 13
    assert rig.rd_rd(0, r.GICR_PROPBASER) == 0                   # per Redistributor


# ------------------------------------------------------------------ commands
def test_its_trigger_sequence_as_kvm_unit_tests():
    rig = its_setup1(Rig().setup())
    assert rig.its_rd(g.GITS_CREADR) == rig.write_pos            # every command consumed
    # int: dev 2 event 20 -> LPI 8195 on PE 3
    rig.event(g.CMD_INT, 2, 20)
    assert rig.gic.irq_pending(3) and not rig.gic.irq_pending(2)
    assert rig.pending_bit(3, 8195)
    assert rig.gic.icc_read(3, r.ICC_HPPIR1_EL1) == 8195
    assert rig.ack(3) == 8195
    assert not rig.pending_bit(3, 8195) and not rig.gic.irq_pending(3)
    assert rig.gic.icc_read(3, r.ICC_RPR_EL1) == 0xA0
    rig.eoi(3, 8195)
    assert rig.gic.icc_read(3, r.ICC_RPR_EL1) == 0xFF                # priority dropped
    rig.event(g.CMD_INT, 7, 255)
    assert rig.ack(2) == 8196
    rig.eoi(2, 8196)
    # inv: disabled in the table, INV, INT: pending but not signalled
    rig.config(8195, LPI_DEFAULT & ~1)
    rig.event(g.CMD_INV, 2, 20)
    rig.event(g.CMD_INT, 2, 20)
    assert not any(rig.gic.irq_pending(cpu) for cpu in range(4))
    assert rig.pending_bit(3, 8195)
    # enabled again: at the latest after INVALL, the pending LPI is signalled
    rig.config(8195, LPI_DEFAULT)
    rig.command(g.CMD_INVALL, 0, 3)
    assert rig.ack(3) == 8195
    rig.eoi(3, 8195)
    # mapd valid=false: the event no longer translates, and the queue moves on
    rig.mapd(2, valid=False)
    rig.event(g.CMD_INT, 2, 20)
    assert not rig.gic.irq_pending(3)
    assert rig.its_rd(g.GITS_CREADR) == rig.write_pos


def test_two_level_device_table_as_linux_uses_it():
    rig = Rig()
    level1 = DEVICE_TABLE
    level2 = DEVICE_TABLE + 0x1_0000
    rig.its_wr(g.GITS_BASER, rig.its_rd(g.GITS_BASER) | level1 | g.BASER_INDIRECT
               | g.BASER_VALID)
    rig.setup()                      # keeps BASER0's address and Indirect
    assert rig.its_rd(g.GITS_BASER) & g.BASER_INDIRECT
    per_page = 0x1_0000 // 8
    device = per_page + 5            # in the second level-2 page
    rig.config(8195, LPI_DEFAULT)
    rig.mapc(0, 0)
    rig.mapd(device, itt=ITT)        # its level-1 entry is not valid: no effect
    rig.mapti(device, 0, 8195, 0)
    rig.event(g.CMD_INT, device, 0)
    assert not rig.gic.irq_pending(0)
    rig.ram.write(level1 + 8, (level2 | g.L1_VALID).to_bytes(8, "little"))
    rig.mapd(device, itt=ITT)
    assert rig.its_rd(g.GITS_CREADR) == rig.write_pos
    assert rig.ram.read(level2 + 5 * 8, 8)[0] & g.DTE_VALID
    rig.mapti(device, 0, 8195, 0)
    rig.event(g.CMD_INT, device, 0)
    assert rig.ack(0) == 8195


def test_translater_write_is_device_0():
    rig = Rig().setup()
    rig.config(8200, LPI_DEFAULT)
    rig.mapd(0)
    rig.mapc(1, 1)
    rig.mapti(0, 5, 8200, 1)
    rig.its_wr(g.GITS_TRANSLATER, 5, 4)
    assert rig.ack(1) == 8200
    rig.its_wr(g.GITS_TRANSLATER, 6, 2)          # unmapped event: nothing happens
    assert not rig.gic.irq_pending(1)
    assert rig.its_rd(g.GITS_TRANSLATER, 4) == 0


def test_mapi_clear_discard():
    rig = Rig().setup()
    rig.config(8300, LPI_DEFAULT)
    rig.mapd(4, size=13)                                         # 16384 events
    rig.mapc(0, 0)
    rig.command(g.CMD_MAPI | 4 << 32, 8300, 0)                   # pINTID = EventID
    rig.event(g.CMD_INT, 4, 8300)
    assert rig.gic.irq_pending(0)
    rig.event(g.CMD_CLEAR, 4, 8300)
    assert not rig.gic.irq_pending(0) and not rig.pending_bit(0, 8300)
    rig.event(g.CMD_INT, 4, 8300)
    rig.event(g.CMD_DISCARD, 4, 8300)
    assert not rig.gic.irq_pending(0)
    rig.event(g.CMD_INT, 4, 8300)                                # the mapping is gone
    assert not rig.gic.irq_pending(0)


def test_movi_and_movall_move_pending_state():
    rig = Rig().setup()
    rig.config(8195, LPI_DEFAULT)
    rig.mapd(2)
    rig.mapc(0, 0)
    rig.mapc(1, 1)
    rig.mapti(2, 3, 8195, 0)
    rig.event(g.CMD_INT, 2, 3)
    assert rig.gic.irq_pending(0)
    rig.command(g.CMD_MOVI | 2 << 32, 3, 1)
    assert not rig.gic.irq_pending(0) and rig.gic.irq_pending(1)
    assert rig.pending_bit(1, 8195) and not rig.pending_bit(0, 8195)
    rig.command(g.CMD_MOVALL, 0, 1 << 16, 3 << 16)
    assert not rig.gic.irq_pending(1) and rig.gic.irq_pending(3)
    assert rig.ack(3) == 8195
    rig.eoi(3, 8195)
    rig.event(g.CMD_INT, 2, 3)                                   # now collection 1: PE 1
    assert rig.ack(1) == 8195


def test_lpi_priority_against_spis_and_masking():
    rig = Rig().setup()
    rig.config(8195, 0x80 | 0b10 | 1)
    rig.mapd(2)
    rig.mapc(0, 0)
    rig.mapti(2, 0, 8195, 0)
    gic = rig.gic
    gic.distributor_write(r.GICD_ISENABLER + 4, 4, 1 << 1, 0)      # SPI 33
    gic.distributor_write(r.GICD_IPRIORITYR + 33, 1, 0x90, 0)
    gic.set_spi_level(33, True)
    rig.event(g.CMD_INT, 2, 0)
    assert rig.ack(0) == 8195                                    # 0x80 beats 0x90
    assert rig.ack(0) == r.INTID_SPURIOUS                        # SPI cannot preempt
    rig.eoi(0, 8195)
    assert rig.ack(0) == 33
    rig.eoi(0, 33)
    gic.icc_write(0, r.ICC_PMR_EL1, 0x80)                        # masked by priority
    rig.event(g.CMD_INT, 2, 0)
    assert not gic.irq_pending(0)
    gic.icc_write(0, r.ICC_PMR_EL1, 0xFF)
    assert gic.irq_pending(0)
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 0)                       # LPIs are Group 1
    assert not gic.irq_pending(0)


def test_lpis_disabled_drop_events_and_enable_reads_pending_table():
    rig = Rig().setup(enable_lpis=False)
    rig.config(8195, LPI_DEFAULT)
    rig.mapd(2)
    rig.mapc(0, 0)
    rig.mapti(2, 0, 8195, 0)
    rig.event(g.CMD_INT, 2, 0)                                   # EnableLPIs = 0: dropped
    assert not rig.gic.irq_pending(0)
    # A pending bit already in the table is taken when LPIs are enabled.
    rig.ram.write(PEND + 8195 // 8, bytes((1 << (8195 % 8),)))
    rig.rd_wr(0, r.GICR_CTLR, r.GICR_CTLR_ENABLE_LPIS, 4)
    assert rig.ack(0) == 8195
    # ... unless PENDBASER.PTZ said the table is zero.
    rig.ram.write(PEND + 0x1_0000 + 8195 // 8, bytes((1 << (8195 % 8),)))
    rig.rd_wr(1, r.GICR_PENDBASER, PEND + 0x1_0000 | r.PENDBASER_PTZ)
    rig.rd_wr(1, r.GICR_CTLR, r.GICR_CTLR_ENABLE_LPIS, 4)
    assert not rig.gic.irq_pending(1)


def test_lpis_beyond_propbaser_idbits_are_ignored():
    rig = Rig().setup()
    rig.mapd(2)
    rig.mapc(0, 0)
    rig.mapti(2, 0, 16384, 0)                # valid for the ITS, not for 14 INTID bits
    rig.config(16383, LPI_DEFAULT)
    rig.event(g.CMD_INT, 2, 0)
    assert not rig.gic.irq_pending(0)


# --------------------------------------------------------------- errors
@pytest.mark.parametrize("words", [
    (g.CMD_MAPD | (1 << 16) << 32, 7, ITT | 1 << 63),           # DeviceID past 16 bits
    (g.CMD_MAPD | 3 << 32, 16, ITT | 1 << 63),                  # Size past 16 EventID bits
    (g.CMD_MAPC, 0, 0 | 4 << 16 | 1 << 63),                     # no PE 4
    (g.CMD_MAPTI | 9 << 32, 0 | 8192 << 32, 0),                 # device 9 not mapped
    (g.CMD_MAPTI | 2 << 32, 300 | 8192 << 32, 0),               # EventID past the ITT
    (g.CMD_MAPTI | 2 << 32, 0 | 1000 << 32, 0),                 # pINTID not an LPI
    (g.CMD_INT | 2 << 32, 1),                                   # event not mapped
    (g.CMD_MOVI | 2 << 32, 0, 9),                               # collection 9 not mapped
    (g.CMD_MOVALL, 0, 0, 7 << 16),                              # no PE 7
    (0x2A,),                                                    # no such command
])
def test_bad_commands_are_ignored_and_traced(words):
    events = []

    class Trace:
        def emit(self, kind, cpu=None, **fields):
            events.append((kind, fields))

    rig = Rig(trace=Trace()).setup()
    rig.mapd(2)
    rig.mapc(0, 0)
    rig.config(8195, LPI_DEFAULT)
    rig.mapti(2, 0, 8195, 0)
    rig.command(*words)
    assert rig.its_rd(g.GITS_CREADR) == rig.write_pos           # consumed, not stalled
    assert any(kind == "its.error" for kind, _ in events) or words == (0x2A,)
    assert not any(rig.gic.irq_pending(cpu) for cpu in range(4))
    rig.event(g.CMD_INT, 2, 0)                                  # the ITS still works
    assert rig.ack(0) == 8195


def test_unreadable_command_stalls_until_retry():
    rig = Rig().setup()
    rig.its_wr(g.GITS_CTLR, 0, 4)
    rig.its_wr(g.GITS_CBASER, 0x1000 | g.CBASER_VALID)          # not RAM
    rig.its_wr(g.GITS_CTLR, g.GITS_CTLR_ENABLED, 4)
    rig.its_wr(g.GITS_CWRITER, 32)
    assert rig.its_rd(g.GITS_CREADR) == g.CREADR_STALLED
    rig.its_wr(g.GITS_CWRITER, 64)
    assert rig.its_rd(g.GITS_CREADR) == g.CREADR_STALLED        # stays stalled
    rig.its_wr(g.GITS_CTLR, 0, 4)
    rig.its_wr(g.GITS_CBASER, QUEUE | g.CBASER_VALID)           # resets CREADR/CWRITER
    rig.its_wr(g.GITS_CTLR, g.GITS_CTLR_ENABLED, 4)
    assert rig.its_rd(g.GITS_CREADR) == 0 and rig.its_rd(g.GITS_CWRITER) == 0


def test_table_outside_ram_stalls_and_retry_resumes():
    rig = Rig().setup()
    rig.its_wr(g.GITS_CTLR, 0, 4)
    rig.its_wr(g.GITS_BASER, (rig.its_rd(g.GITS_BASER) & ~0xFFFF_FFFF_F000) | 0x1_0000)
    rig.its_wr(g.GITS_CTLR, g.GITS_CTLR_ENABLED, 4)
    rig.write_pos = rig.its_rd(g.GITS_CWRITER)
    rig.mapd(2)                                                 # the DTE cannot be written
    assert rig.its_rd(g.GITS_CREADR) & g.CREADR_STALLED
    stalled_at = rig.its_rd(g.GITS_CREADR) & g.QUEUE_OFFSET_MASK
    rig.its_wr(g.GITS_CTLR, 0, 4)
    rig.its_wr(g.GITS_BASER, rig.its_rd(g.GITS_BASER) & ~0xFFFF_FFFF_F000 | DEVICE_TABLE)
    rig.its_wr(g.GITS_CTLR, g.GITS_CTLR_ENABLED, 4)
    rig.its_wr(g.GITS_CWRITER, rig.write_pos | g.CWRITER_RETRY)
    assert rig.its_rd(g.GITS_CREADR) == rig.write_pos
    assert stalled_at == rig.write_pos - 32


# --------------------------------------------------------------- snapshots
def test_save_restore_round_trip():
    rig = its_setup1(Rig().setup())
    rig.config(8195, LPI_DEFAULT & ~1)
    rig.event(g.CMD_INV, 2, 20)
    rig.event(g.CMD_INT, 2, 20)                                 # pending, disabled
    state = msgpack.unpackb(msgpack.packb(rig.gic.save_state()), strict_map_key=False)
    other = Rig()
    other.ram.data[:] = rig.ram.data
    other.gic.restore_state(copy.deepcopy(state))
    assert other.gic.save_state() == rig.gic.save_state()
    other.write_pos = rig.write_pos
    other.config(8195, LPI_DEFAULT)
    other.command(g.CMD_INVALL, 0, 3)
    assert other.ack(3) == 8195
    # A snapshot from before the ITS restores with LPIs and the ITS off.
    old = copy.deepcopy(state)
    del old["its"]
    for part in old["redistributors"]:
        del part["lpi"]
    fresh = Rig()
    fresh.gic.restore_state(old)
    assert fresh.its_rd(g.GITS_CTLR, 4) == g.GITS_CTLR_QUIESCENT
    assert fresh.rd_rd(3, r.GICR_CTLR, 4) == 0
