"""Snapshots of the device models (machine/snapshot.py): save, restore into a fresh model, compare.

Each test drives a device into a state worth keeping through its register
interface, saves it, restores the state (directly and after a msgpack round
trip, as the snapshot file holds it) into a model built the same way, then
checks that the restored model saves the same state and answers the same
accesses the same way as the original. Restoring calls no interrupt callback.
"""

from __future__ import annotations

import copy
import os
import struct

import msgpack
import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.devices.pmu import (COUNTERS, CPU_CYCLES, CYCLE_INDEX, FILTER_P, FILTER_U,
                                  INST_RETIRED, PMCCFILTR_EL0, PMCCNTR_EL0, PMCNTENSET_EL0,
                                  PMCR_D, PMCR_E, PMCR_EL0, PMCR_LC, PMINTENSET_EL1,
                                  PMOVSCLR_EL0, PMOVSSET_EL0, PMSELR_EL0, PMSWINC_EL0,
                                  PMUSERENR_EL0, PMXEVCNTR_EL0, PMXEVTYPER_EL0, SW_INCR,
                                  USERENR_ER, Pmu, pmevcntr, pmevtyper)
from armvisor.devices.timer import (CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0, CNTV_CTL_EL0,
                                    CNTV_CVAL_EL0, CNTV_TVAL_EL0, CTL_ENABLE, CTL_IMASK,
                                    CTL_ISTATUS, PHYS_TIMER_INTID, VIRT_TIMER_INTID, GenericTimer)
from armvisor.devices.virtio import mmio as vregs
from armvisor.devices.virtio.blk import (VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
                                         VirtioBlk)
from armvisor.devices.virtio.console import RECEIVEQ, TRANSMITQ, VirtioConsole
from armvisor.devices.virtio.mmio import VirtioMmio, VirtioMmioBank
from armvisor.machine.memmap import mpidr_affinity

from tests.unit.devices.test_virtqueue import RAM_BASE as VQ_RAM_BASE, Driver as VqDriver
from tests.unit.devices.test_virtqueue import GuestRam as VqGuestRam, bring_up as vq_bring_up

CYCLES = 1 << CYCLE_INDEX
FRAME = r.GICR_FRAME_SIZE
SGI_BASE = r.GICR_SGI_BASE


# ------------------------------------------------------------------- helpers

def assert_plain(value, where="state"):
    """Only what machine/snapshot.py allows: None, bool, int (64 bits), float, str, bytes,
    lists and dicts with str keys."""
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return
    if isinstance(value, int):
        assert -(1 << 63) <= value < (1 << 64), f"{where}: {value} is wider than 64 bits"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r} is not a str"
            assert_plain(item, f"{where}.{key}")
    else:
        raise AssertionError(f"{where}: {type(value).__name__} is not plain data")


def through_msgpack(state: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(state, use_bin_type=True), raw=False,
                           strict_map_key=False)


def restored_pair(make, drive):
    """Build with `make()` (a model and the list its interrupt callback appends to), put it
    in a state with `drive(model)`, save, and restore into two fresh models: one from the
    saved dict, one from it after a msgpack round trip. Returns (original, calls) and the
    list of (copy, calls), every calls list empty."""
    original, calls = make()
    drive(original)
    calls.clear()
    state = original.save_state()
    assert_plain(state)
    copies = []
    for saved in (state, through_msgpack(state)):
        copy, copy_calls = make()
        copy_calls.clear()
        copy.restore_state(saved)
        assert copy_calls == [], "restore_state called an interrupt callback"
        assert copy.save_state() == state
        copies.append((copy, copy_calls))
    assert original.save_state() == state, "save_state changed the model"
    return (original, calls), copies


def assert_same_behaviour(pair, behaviour):
    """`behaviour(model, calls)` gives the same answers on the original and on each copy."""
    (original, calls), copies = pair
    expected = behaviour(original, calls)
    for restored, restored_calls in copies:
        assert behaviour(restored, restored_calls) == expected
    return expected


# ----------------------------------------------------------------------- GIC

def make_gic(cpus=4):
    changes = []
    return GicV3(cpus, mpidr_affinity, on_change=changes.append), changes


def drive_gic(gic):
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1, 0)
    for cpu in range(4):
        gic.icc_write(cpu, r.ICC_PMR_EL1, 0xF0)
        gic.icc_write(cpu, r.ICC_IGRPEN1_EL1, 1)
        gic.redistributor_write(cpu * FRAME + SGI_BASE + r.GICR_ISENABLER0, 4, 0xFFFF_FFFF, cpu)
        if cpu != 3:                                    # CPU 3 stays asleep: no 1-of-N SPI
            gic.redistributor_write(cpu * FRAME + r.GICR_WAKER, 4, 0, cpu)
    gic.icc_write(0, r.ICC_IGRPEN0_EL1, 1)
    gic.icc_write(1, r.ICC_BPR1_EL1, 4)
    gic.icc_write(2, r.ICC_CTLR_EL1, r.ICC_CTLR_EOIMODE)
    gic.distributor_write(r.GICD_ISENABLER + 4, 4, 0xFFFF_FFFF, 0)
    gic.distributor_write(r.GICD_ISENABLER + 8, 4, 0x0000_00FF, 0)
    gic.distributor_write(r.GICD_IPRIORITYR + 32, 4, 0x80A0_9070, 0)
    gic.distributor_write(r.GICD_IPRIORITYR + 64, 1, 0x40, 0)
    gic.distributor_write(r.GICD_IGROUPR + 4, 4, 0xFFFF_FFFE, 0)  # SPI 32 in Group 0
    gic.distributor_write(r.GICD_ICFGR + 8, 4, r.ICFGR_EDGE << 2, 0)    # SPI 33 edge
    gic.distributor_write(r.GICD_IROUTER + 8 * 34, 8, mpidr_affinity(1), 0)
    gic.distributor_write(r.GICD_IROUTER + 8 * 35, 8, r.IROUTER_IRM, 0)
    gic.distributor_write(r.GICD_IROUTER + 8 * 64, 8, mpidr_affinity(2), 0)
    gic.redistributor_write(2 * FRAME + SGI_BASE + r.GICR_IPRIORITYR + 20, 4, 0x6050_4030, 2)
    gic.redistributor_write(2 * FRAME + SGI_BASE + r.GICR_ICFGR1, 4, r.ICFGR_EDGE << 14, 2)
    # Lines: a level SPI high, an edge SPI pulsed, a PPI held high, a line high on a
    # disabled SPI; SPIs by message; SGIs.
    gic.set_spi_level(34, True)
    gic.set_spi_level(33, True)
    gic.set_spi_level(33, False)
    gic.set_spi_level(64, True)
    gic.set_spi_level(100, True)
    gic.set_ppi_level(2, 22, True)
    gic.set_ppi_level(2, 23, True)
    gic.distributor_write(r.GICD_SETSPI_NSR, 4, 35, 0)
    gic.distributor_write(r.GICD_SETSPI_NSR, 4, 32, 0)
    gic.icc_write(0, r.ICC_SGI1R_EL1, (5 << r.SGIR_INTID_SHIFT) | 0b0110)
    # Acknowledged interrupts: CPU 0 has SPI 32 (Group 0) active, CPU 1 SGI 5 (SPI 34
    # waits behind it), CPU 2 a PPI in the middle of an EOImode 1 handler (dropped,
    # still active).
    assert gic.icc_read(0, r.ICC_IAR0_EL1) == 32
    assert gic.icc_read(1, r.ICC_IAR1_EL1) == 5
    intid = gic.icc_read(2, r.ICC_IAR1_EL1)
    gic.icc_write(2, r.ICC_EOIR1_EL1, intid)
    gic.distributor_write(r.GICD_ISACTIVER + 12, 4, 1 << 4, 0)       # SPI 100 active by hand


def gic_behaviour(gic):
    """What each CPU sees from here: outputs, registers, then everything acknowledged in turn."""
    seen = []
    for cpu in range(4):
        seen.append((gic.irq_pending(cpu), gic.fiq_pending(cpu),
                     gic.icc_read(cpu, r.ICC_RPR_EL1), gic.icc_read(cpu, r.ICC_HPPIR1_EL1),
                     gic.icc_read(cpu, r.ICC_AP1R0_EL1), gic.icc_read(cpu, r.ICC_BPR1_EL1),
                     gic.redistributor_read(cpu * FRAME + SGI_BASE + r.GICR_ISPENDR0, 4, cpu),
                     gic.redistributor_read(cpu * FRAME + SGI_BASE + r.GICR_ISACTIVER0, 4, cpu),
                     gic.redistributor_read(cpu * FRAME + r.GICR_WAKER, 4, cpu)))
    for index in range(1, 4):
        seen.append(tuple(gic.distributor_read(family + 4 * index, 4, 0)
                          for family in (r.GICD_IGROUPR, r.GICD_ISENABLER, r.GICD_ISPENDR,
                                         r.GICD_ISACTIVER, r.GICD_ICFGR + 4 * index)))
    # End the handlers in progress, drop most lines, then take what is left.
    gic.icc_write(0, r.ICC_EOIR0_EL1, 32)
    gic.icc_write(1, r.ICC_EOIR1_EL1, 5)
    gic.icc_write(2, r.ICC_DIR_EL1, 5)
    gic.distributor_write(r.GICD_ICACTIVER + 12, 4, 1 << 4, 0)
    for intid in (64, 100):
        gic.set_spi_level(intid, False)
    for intid in (22, 23):
        gic.set_ppi_level(2, intid, False)
    for _ in range(4):
        for cpu in range(4):
            for iar, eoir in ((r.ICC_IAR0_EL1, r.ICC_EOIR0_EL1),
                              (r.ICC_IAR1_EL1, r.ICC_EOIR1_EL1)):
                intid = gic.icc_read(cpu, iar)
                seen.append((cpu, intid))
                if intid != r.INTID_SPURIOUS:
                    gic.icc_write(cpu, eoir, intid)
                    gic.icc_write(cpu, r.ICC_DIR_EL1, intid)
    return seen


def test_gic_restores_every_bit_and_acknowledges_the_same():
    pair = restored_pair(make_gic, drive_gic)
    assert any(pair[0][0].irq_pending(cpu) for cpu in range(4))
    assert_same_behaviour(pair, lambda gic, changes: (gic_behaviour(gic), changes))


def test_gic_refuses_another_shape():
    gic, _ = make_gic(4)
    state = gic.save_state()
    with pytest.raises(ValueError, match="4 CPUs"):
        make_gic(2)[0].restore_state(state)
    with pytest.raises(ValueError, match="INTIDs"):
        GicV3(4, mpidr_affinity, num_irqs=320).restore_state(state)


# --------------------------------------------------------------------- timer

def test_timer_restores_both_comparators_and_their_lines():
    clock = [100]

    def make():
        lines = []
        return GenericTimer(lambda intid, level: lines.append((intid, level)),
                            counter=lambda: clock[0]), lines

    def drive(timer):
        timer.write(CNTV_CVAL_EL0, 150)
        timer.write(CNTV_CTL_EL0, CTL_ENABLE)
        timer.write(CNTP_TVAL_EL0, 20)
        timer.write(CNTP_CTL_EL0, CTL_ENABLE)
        clock[0] = 130
        assert timer.read(CNTP_CTL_EL0) == CTL_ENABLE | CTL_ISTATUS   # raises the line

    def behaviour(timer, lines):
        clock[0] = 130
        seen = [timer.next_deadline(), timer.virt.level, timer.phys.level]
        seen += [timer.read(reg) for reg in (CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTV_TVAL_EL0,
                                             CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0)]
        clock[0] = 160
        timer.update(clock[0])
        seen.append(timer.read(CNTV_CTL_EL0))
        timer.write(CNTP_CTL_EL0, CTL_ENABLE | CTL_IMASK)
        seen.append(list(lines))
        return seen

    pair = restored_pair(make, drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[0] == 150 and seen[-1] == [(VIRT_TIMER_INTID, True), (PHYS_TIMER_INTID, False)]


# ----------------------------------------------------------------------- PMU

def test_pmu_reads_the_same_counts_at_the_same_instruction_count():
    now = [0]

    def make():
        lines = []
        return Pmu(lines.append), lines

    def access(pmu, reg, value=None, el=1):
        return pmu.access(reg, el, value is not None, value or 0, now[0])

    def drive(pmu):
        now[0] = 1000
        access(pmu, PMCR_EL0, PMCR_E | PMCR_LC)
        access(pmu, pmevtyper(0), INST_RETIRED)
        access(pmu, pmevtyper(1), SW_INCR)
        access(pmu, pmevtyper(2), CPU_CYCLES | FILTER_U)
        access(pmu, pmevtyper(3), INST_RETIRED)
        access(pmu, pmevcntr(3), 0xFFFF_FF00)            # overflows 256 instructions on
        access(pmu, PMCCFILTR_EL0, FILTER_P)
        access(pmu, PMCNTENSET_EL0, 0b1111 | CYCLES)
        access(pmu, PMINTENSET_EL1, 0b1000 | CYCLES)
        access(pmu, PMSELR_EL0, 2)
        access(pmu, PMUSERENR_EL0, USERENR_ER)
        access(pmu, PMSWINC_EL0, 0b10)
        now[0] = 1500
        assert access(pmu, PMOVSSET_EL0) == 0b1000      # counter 3 overflowed: line high
        access(pmu, PMCR_EL0, PMCR_E | PMCR_LC | PMCR_D)   # the cycle counter slows down
        now[0] = 1530

    def behaviour(pmu, lines):
        seen = [pmu.due, pmu.level, pmu.interrupt_due()]
        for step in (0, 37, 10_000):
            now[0] = 1530 + step
            seen.append([access(pmu, reg) for reg in (
                PMCR_EL0, PMCNTENSET_EL0, PMINTENSET_EL1, PMOVSSET_EL0, PMSELR_EL0,
                PMUSERENR_EL0, PMCCNTR_EL0, PMXEVTYPER_EL0, PMXEVCNTR_EL0, PMCCFILTR_EL0,
                *(pmevcntr(n) for n in range(COUNTERS)), *(pmevtyper(n) for n in range(COUNTERS)))])
            seen.append(pmu.due)
        access(pmu, PMOVSCLR_EL0, 0b1000)
        access(pmu, PMSWINC_EL0, 0b10, el=0)             # EL0 may not: PMUSERENR.SW clear
        seen.append((pmu.level, list(lines)))
        return seen

    pair = restored_pair(make, drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[1] is True and seen[-1] == (False, [False])


# ------------------------------------------------------------ PL011 and PL031

def test_pl011_restores_registers_fifo_and_backlog():
    from armvisor.devices import pl011 as u

    def make():
        lines = []
        return u.Pl011(lambda data: None, on_irq_change=lines.append), lines

    def drive(uart):
        for offset, value in ((u.UARTIBRD, 26), (u.UARTFBRD, 3), (u.UARTILPR, 7),
                              (u.UARTLCR_H, u.LCR_H_FEN | 0x60), (u.UARTCR, 0x301),
                              (u.UARTIFLS, 0x09), (u.UARTDMACR, 1),
                              (u.UARTIMSC, u.INT_RX | u.INT_TX)):
            uart.write(offset, 4, value)
        uart.write(u.UARTDR, 1, ord("x"))              # TXRIS
        uart.receive(bytes(range(0x41, 0x41 + 40)))    # 16 in the FIFO, 24 waiting
        assert uart.read(u.UARTDR, 4) == 0x41

    def behaviour(uart, lines):
        seen = [uart.read(offset, 4) for offset in (
            u.UARTFR, u.UARTRSR, u.UARTILPR, u.UARTIBRD, u.UARTFBRD, u.UARTLCR_H, u.UARTCR,
            u.UARTIFLS, u.UARTIMSC, u.UARTRIS, u.UARTMIS, u.UARTDMACR)]
        uart.write(u.UARTICR, 4, u.INT_TX)
        seen.append(bytes(uart.read(u.UARTDR, 4) for _ in range(uart.pending_input)))
        seen += [uart.read(u.UARTFR, 4), uart.read(u.UARTRIS, 4), list(lines)]
        return seen

    pair = restored_pair(make, drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[-4] == bytes(range(0x42, 0x41 + 40)) and seen[-1] == [False]


def test_pl031_restores_offset_match_and_deadline():
    from armvisor.devices import pl031 as p
    clock = [1_700_000_000.25]

    def make():
        lines = []
        return p.Pl031(clock=lambda: clock[0], on_irq_change=lines.append), lines

    def drive(rtc):
        rtc.write(p.RTCLR, 4, 5000)
        rtc.write(p.RTCIMSC, 4, p.RTC_INT)
        rtc.write(p.RTCMR, 4, 5000)                    # matches now: RIS, line high
        rtc.write(p.RTCMR, 4, 5010)                    # the next match, 10 s on
        clock[0] += 3

    def behaviour(rtc, lines):
        clock[0] = 1_700_000_003.25
        seen = [rtc.next_deadline()] + [rtc.read(offset, 4) for offset in (
            p.RTCDR, p.RTCMR, p.RTCLR, p.RTCCR, p.RTCIMSC, p.RTCRIS, p.RTCMIS)]
        rtc.write(p.RTCICR, 4, p.RTC_INT)
        clock[0] += 7
        rtc.tick()
        seen += [rtc.read(p.RTCRIS, 4), rtc.next_deadline(), list(lines)]
        return seen

    pair = restored_pair(make, drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[0] == 1_700_000_010.0 and seen[-1] == [False, True]


# --------------------------------------------------------------------- flash

def test_pflash_restores_contents_and_a_buffered_write_in_progress():
    from armvisor.devices import pflash as f
    sector = f.VIRT_SECTOR_SIZE

    def make():
        modes = []
        return f.CfiFlash(size=4 * sector, on_mode_change=modes.append), modes

    def drive(bank):
        bank.load(0, b"firmware" * 64)
        bank.write(sector, 4, f.CMD_BLOCK_ERASE)
        bank.write(sector, 4, f.CMD_CONFIRM)
        bank.write(sector + 8, 4, f.CMD_PROGRAM)
        bank.write(sector + 8, 4, 0x1234_5678)
        # A buffered write of four words into sector 2, interrupted after two.
        bank.write(2 * sector, 4, f.CMD_BUFFERED_WRITE)
        bank.write(2 * sector, 4, 0x0003_0003)
        bank.write(2 * sector, 4, 0xAAAA_5555)
        bank.write(2 * sector + 4, 4, 0xBBBB_6666)

    def behaviour(bank, modes):
        seen = [bank.mode_is_read_array, bank.read(0, 4)]
        bank.write(2 * sector + 8, 4, 0xCCCC_7777)
        bank.write(2 * sector + 12, 4, 0xDDDD_8888)
        bank.write(2 * sector, 4, f.CMD_CONFIRM)
        seen.append(bank.read(0, 4))                  # the status, in each chip's lane
        bank.write(0, 4, f.CMD_READ_ARRAY)
        seen += [bank.read(offset, 4) for offset in (0, 60, sector, sector + 8, 2 * sector,
                                                     2 * sector + 12, 3 * sector)]
        seen.append(list(modes))
        return seen

    pair = restored_pair(make, drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[0] is False and seen[-3] == 0xDDDD_8888 and seen[-1] == [True]
    assert pair[0][0].save_state()["contents"]["data"][:8] == b"firmware"


def test_pflash_refuses_another_bank_size():
    from armvisor.devices.pflash import VIRT_SECTOR_SIZE, CfiFlash
    state = CfiFlash(size=4 * VIRT_SECTOR_SIZE).save_state()
    with pytest.raises(ValueError, match="bytes"):
        CfiFlash(size=8 * VIRT_SECTOR_SIZE).restore_state(state)


# ------------------------------------------------------------ fw_cfg and PCIe

def test_fw_cfg_restores_selection_offset_and_half_a_dma_address():
    from armvisor.devices import fw_cfg as fc
    descriptor = 0x4000_1000

    def make():
        dev = fc.FwCfg(VqGuestRam(), cpu_count=2)
        dev.add_file("etc/armvisor-test", bytes(range(100)))
        return dev, []

    def be(value, size):
        return int.from_bytes(value.to_bytes(size, "big"), "little")

    def drive(dev):
        dev.write(fc.SELECTOR, 2, be(fc.FW_CFG_FILE_FIRST, 2))
        assert dev.read(fc.DATA, 2) == 0x0100
        dev.write(fc.DMA_ADDRESS, 4, be(descriptor >> 32, 4))    # the high half only

    def behaviour(dev, _):
        seen = [dev.read(fc.DATA, 8)]
        dev.memory.write(descriptor, struct.pack(">IIQ", fc.DMA_CTL_READ, 16, descriptor + 0x100))
        dev.write(fc.DMA_ADDRESS_LOW, 4, be(descriptor & 0xFFFF_FFFF, 4))
        seen += [dev.memory.read(descriptor, 4), dev.memory.read(descriptor + 0x100, 16),
                 dev.read(fc.DATA, 1)]
        return seen

    seen = assert_same_behaviour(restored_pair(make, drive), behaviour)
    assert seen[2] == bytes(range(10, 26)) and seen[3] == 26


def test_pcie_host_restores_configuration_space():
    from armvisor.devices import pcie_host as pci
    from armvisor.machine import memmap

    def make():
        return pci.PcieHost(memmap.PCIE_ECAM_HIGH_SIZE), []

    def drive(host):
        host.write(pci.PCI_COMMAND, 2, 0xFFFF)
        host.write(pci.PCI_CACHE_LINE_SIZE, 1, 0x10)
        host.write(pci.PCI_INTERRUPT_LINE, 1, 0x2A)
        host.write(0x40, 8, 0x0123_4567_89AB_CDEF)

    def behaviour(host, _):
        return [host.read(offset, 4) for offset in range(0, pci.PCI_CONFIG_SPACE_SIZE, 4)]

    seen = assert_same_behaviour(restored_pair(make, drive), behaviour)
    assert seen[1] & 0xFFFF == pci.COMMAND_WRITABLE and seen[16] == 0x89AB_CDEF
    with pytest.raises(ValueError, match="PCI functions"):
        make()[0].restore_state({"functions": {}})


# -------------------------------------------------------------------- virtio

HDR, STATUS, DATA = VQ_RAM_BASE + 0x8000, VQ_RAM_BASE + 0x8100, VQ_RAM_BASE + 0x9000


class VirtioRig:
    """A virtio-mmio slot, the guest RAM it works in and the driver side of its queues.

    Only `slot` is saved and restored: the board restores RAM, and the
    drivers' bookkeeping is the guest's (in RAM and registers of its own).
    """

    def __init__(self, ram, slot, out=None):
        self.ram, self.slot, self.out = ram, slot, out
        self.drivers = {}

    def save_state(self):
        return self.slot.save_state()

    def restore_state(self, state):
        self.slot.restore_state(state)


def rig_maker(build):
    """make() for restored_pair: copies start from the original's RAM and drivers."""
    made = []

    def make():
        ram, lines = VqGuestRam(), []
        if made:
            ram.data[:] = made[0].ram.data
        rig = build(ram, lines)
        if made:
            for index, driver in made[0].drivers.items():
                rig.drivers[index] = copy.copy(driver)
                rig.drivers[index].ram = ram
        made.append(rig)
        return rig, lines
    return make


def blk_request(rig, kind, sector, length=0, data=None, slot_index=0, notify=True):
    """Header, data, status, as Linux's virtio_blk queues them; `slot_index` spaces requests."""
    header, status = HDR + 0x20 * slot_index, STATUS + slot_index
    buffer = DATA + 0x2000 * slot_index
    rig.ram.write(header, struct.pack("<IIQ", kind, 0, sector))
    rig.ram.write(status, b"\xee")
    segs = [(header, 16, False)]
    if data is not None:
        rig.ram.write(buffer, data)
        segs.append((buffer, len(data), False))
    elif length:
        segs.append((buffer, length, True))
    segs.append((status, 1, True))
    rig.drivers[0].submit(segs)
    if notify:
        rig.slot.write(vregs.QUEUE_NOTIFY, 4, 0)


def slot_registers(slot, queues):
    seen = [slot.read(offset, 4) for offset in (
        vregs.MAGIC_VALUE, vregs.VERSION, vregs.DEVICE_ID, vregs.DEVICE_FEATURES,
        vregs.INTERRUPT_STATUS, vregs.STATUS, vregs.CONFIG_GENERATION)]
    for index in queues:
        slot.write(vregs.QUEUE_SEL, 4, index)
        seen.append([slot.read(offset, 4) for offset in (vregs.QUEUE_NUM_MAX, vregs.QUEUE_READY,
                                                         vregs.QUEUE_PFN)])
    return seen


PATTERN = bytes((i * 7) & 0xFF for i in range(64 * 512))


def make_image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(PATTERN)
    return path


def test_virtio_blk_restores_transport_queue_and_overlay(tmp_path):
    path = make_image(tmp_path)

    def build(ram, lines):
        blk = VirtioBlk(ram, str(path), serial="vd0", snapshot=True)
        return VirtioRig(ram, VirtioMmio(blk, legacy=False, on_irq_change=lines.append))

    def drive(rig):
        rig.drivers[0] = VqDriver(rig.ram, num=16)
        vq_bring_up(rig.slot, rig.drivers)
        blk_request(rig, VIRTIO_BLK_T_OUT, 3, data=b"\xa5" * 1024)            # part of block 0
        blk_request(rig, VIRTIO_BLK_T_OUT, 8, data=b"\x5a" * 4096, slot_index=1)
        # A read of both blocks made available but not notified yet, and
        # InterruptStatus not acknowledged: the line is high.
        blk_request(rig, VIRTIO_BLK_T_IN, 0, length=16 * 512, slot_index=2, notify=False)
        rig.slot.write(vregs.DEVICE_FEATURES_SEL, 4, 1)

    def behaviour(rig, lines):
        seen = slot_registers(rig.slot, (0, 1))
        rig.slot.write(vregs.INTERRUPT_ACK, 4, vregs.INT_VRING)
        rig.drivers[0].set_used_event(2)             # VIRTIO_F_EVENT_IDX: after the third
        rig.slot.write(vregs.QUEUE_NOTIFY, 4, 0)
        seen += [rig.drivers[0].avail_event(), rig.drivers[0].take_used(), rig.ram.read(STATUS, 3),
                 rig.ram.read(DATA + 0x4000, 16 * 512), list(lines)]
        return seen

    pair = restored_pair(rig_maker(build), drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[-5:-3] == [3, [(0, 1), (3, 1), (6, 16 * 512 + 1)]]   # 3-descriptor chains
    assert seen[-2] == PATTERN[:1536] + b"\xa5" * 1024 + PATTERN[2560:4096] + b"\x5a" * 4096
    assert seen[-1] == [False, True]
    assert path.read_bytes() == PATTERN
    for rig, _ in (pair[0], *pair[1]):
        rig.slot.backend.close()


def test_virtio_blk_snapshot_mode_keeps_the_image_untouched(tmp_path):
    path = make_image(tmp_path)
    ram = VqGuestRam()
    rig = VirtioRig(ram, VirtioMmio(VirtioBlk(ram, str(path), snapshot=True, fsync=pytest.fail),
                                    legacy=False))
    rig.drivers[0] = VqDriver(ram, num=16)
    vq_bring_up(rig.slot, rig.drivers)
    blk_request(rig, VIRTIO_BLK_T_OUT, 7, data=b"\x11" * 1536)      # blocks 0 and 1, in part
    blk_request(rig, VIRTIO_BLK_T_OUT, 63, data=b"\x22" * 512, slot_index=1)   # the last sector
    blk_request(rig, VIRTIO_BLK_T_FLUSH, 0, slot_index=2)
    blk_request(rig, VIRTIO_BLK_T_OUT, 6, data=b"\x44" * 512, slot_index=4)  # block 0 again
    blk_request(rig, VIRTIO_BLK_T_IN, 0, length=64 * 512, slot_index=3)
    expected = bytearray(PATTERN)
    expected[6 * 512:7 * 512] = b"\x44" * 512
    expected[7 * 512:10 * 512] = b"\x11" * 1536
    expected[63 * 512:] = b"\x22" * 512
    assert ram.read(STATUS, 5) == bytes(5)                          # every request OK
    assert ram.read(DATA + 0x6000, 64 * 512) == expected            # reads see the writes
    assert path.read_bytes() == PATTERN                             # the file does not
    state = rig.save_state()
    assert sorted(state["backend"]["overlay"]) == ["0", "1", "7"]
    assert state["backend"]["snapshot"] is True
    rig.slot.backend.close()

    # A fresh disk over the same image reads what the overlay holds, after msgpack too.
    for saved in (state, through_msgpack(state)):
        fresh_ram = VqGuestRam()
        fresh_ram.data[:] = ram.data
        fresh_ram.write(DATA + 0x6000, bytes(64 * 512))
        fresh = VirtioRig(fresh_ram, VirtioMmio(VirtioBlk(fresh_ram, str(path), snapshot=True),
                                                legacy=False))
        fresh.drivers[0] = copy.copy(rig.drivers[0])
        fresh.drivers[0].ram = fresh_ram
        fresh.restore_state(saved)
        assert fresh.save_state() == state
        blk_request(fresh, VIRTIO_BLK_T_IN, 0, length=64 * 512, slot_index=3)
        assert fresh.drivers[0].take_used()[-2:] == [(11, 64 * 512 + 1), (14, 64 * 512 + 1)]
        assert fresh_ram.read(DATA + 0x6000, 64 * 512) == expected
        fresh.slot.backend.close()

    # A write-through disk takes no overlay; an image that changed is refused.
    through = VirtioBlk(ram, str(path))
    with pytest.raises(ValueError, match="snapshot mode"):
        through.restore_state(state["backend"])
    through.close()
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = VirtioBlk(ram, str(path), snapshot=True)
    with pytest.raises(ValueError, match=r"disk image .*disk.img changed since the snapshot "
                                         r"was taken"):
        changed.restore_state(state["backend"])
    changed.close()


def test_virtio_blk_write_through_saves_no_overlay(tmp_path):
    path = make_image(tmp_path)
    ram = VqGuestRam()
    rig = VirtioRig(ram, VirtioMmio(VirtioBlk(ram, str(path)), legacy=False))
    rig.drivers[0] = VqDriver(ram, num=16)
    vq_bring_up(rig.slot, rig.drivers)
    blk_request(rig, VIRTIO_BLK_T_OUT, 1, data=b"\x33" * 512)
    assert path.read_bytes()[512:1024] == b"\x33" * 512               # written through
    state = rig.save_state()["backend"]
    assert state["snapshot"] is False and state["overlay"] == {}
    assert state["image"]["path"] == str(path) and state["image"]["size"] == len(PATTERN)
    rig.slot.backend.close()
    again = VirtioBlk(ram, str(path))
    again.restore_state(state)
    assert again.save_state() == state
    again.close()
    path.write_bytes(PATTERN)                                          # the image changes
    with pytest.raises(ValueError, match="changed since the snapshot was taken"):
        VirtioBlk(ram, str(path), snapshot=True).restore_state(state)


def test_virtio_console_restores_its_queues_and_backlog():
    rx_buf, tx_buf = VQ_RAM_BASE + 0x8000, VQ_RAM_BASE + 0xC000

    def build(ram, lines):
        out = []
        console = VirtioConsole(ram, out.append)
        return VirtioRig(ram, VirtioMmio(console, legacy=False, on_irq_change=lines.append),
                         out)

    def post_rx(rig, count):
        for _ in range(count):
            head = rig.drivers[RECEIVEQ].next_free
            rig.drivers[RECEIVEQ].submit([(rx_buf + 0x100 * head, 4, True)])
        rig.slot.write(vregs.QUEUE_NOTIFY, 4, RECEIVEQ)

    def drive(rig):
        rig.drivers[RECEIVEQ] = VqDriver(rig.ram, num=8, base=VQ_RAM_BASE)
        rig.drivers[TRANSMITQ] = VqDriver(rig.ram, num=8, base=VQ_RAM_BASE + 0x2000)
        vq_bring_up(rig.slot, rig.drivers)
        post_rx(rig, 1)
        assert rig.slot.backend.receive(b"0123456789") == 10          # 6 bytes wait
        rig.ram.write(tx_buf, b"hi")
        rig.drivers[TRANSMITQ].submit([(tx_buf, 2, False)])
        rig.slot.write(vregs.QUEUE_NOTIFY, 4, TRANSMITQ)

    def behaviour(rig, lines):
        rig.out.clear()
        seen = slot_registers(rig.slot, (RECEIVEQ, TRANSMITQ))
        seen.append(bytes(rig.slot.backend.backlog))
        rig.slot.write(vregs.INTERRUPT_ACK, 4, vregs.INT_VRING)
        post_rx(rig, 2)
        seen.append([rig.ram.read(rx_buf + 0x100 * head, length)
                     for head, length in rig.drivers[RECEIVEQ].take_used()])
        rig.ram.write(tx_buf, b"!")
        rig.drivers[TRANSMITQ].submit([(tx_buf, 1, False)])
        rig.slot.write(vregs.QUEUE_NOTIFY, 4, TRANSMITQ)
        seen += [rig.drivers[TRANSMITQ].take_used(), list(rig.out), list(lines)]
        return seen

    pair = restored_pair(rig_maker(build), drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[-5] == b"456789" and seen[-4] == [b"0123", b"4567", b"89"]
    assert seen[-2] == [b"!"]


def test_virtio_mmio_bank_restores_legacy_and_empty_slots():
    def build(ram, lines):
        console = VirtioConsole(ram, lambda data: None)
        bank = VirtioMmioBank([VirtioMmio(None, name="virtio-mmio0"),
                               VirtioMmio(console, legacy=True, name="virtio-mmio1",
                                          on_irq_change=lines.append),
                               VirtioMmio(None, legacy=False, name="virtio-mmio2")])
        rig = VirtioRig(ram, bank)
        return rig

    def drive(rig):
        bank, base = rig.slot, vregs.SLOT_SIZE
        for offset, value in ((vregs.STATUS, vregs.STATUS_ACKNOWLEDGE | vregs.STATUS_DRIVER),
                              (vregs.DRIVER_FEATURES, 0), (vregs.GUEST_PAGE_SIZE, 4096),
                              (vregs.QUEUE_SEL, 0), (vregs.QUEUE_NUM, 8),
                              (vregs.QUEUE_ALIGN, 4096), (vregs.QUEUE_PFN, VQ_RAM_BASE >> 12),
                              (vregs.QUEUE_SEL, 1), (vregs.QUEUE_NUM, 8),
                              (vregs.QUEUE_PFN, (VQ_RAM_BASE + 0x4000) >> 12),
                              (vregs.DEVICE_FEATURES_SEL, 0)):
            bank.write(base + offset, 4, value)
        bank.write(2 * base + vregs.STATUS, 4, vregs.STATUS_ACKNOWLEDGE)   # empty: ignored

    def behaviour(rig, _):
        bank = rig.slot
        seen = []
        for index, slot in enumerate(bank.slots):
            seen.append(slot_registers(slot, (0, 1, 2)))
            seen.append(bank.read(index * vregs.SLOT_SIZE + vregs.VERSION, 4))
        queue = bank.slots[1].queue(1)
        seen.append((queue.desc, queue.driver, queue.device, queue.ready, queue.align))
        return seen

    pair = restored_pair(rig_maker(build), drive)
    seen = assert_same_behaviour(pair, behaviour)
    assert seen[-1] == (VQ_RAM_BASE + 0x4000, VQ_RAM_BASE + 0x4080, VQ_RAM_BASE + 0x5000,
                        True, 4096)
    state = pair[0][0].save_state()
    with pytest.raises(ValueError, match="3 virtio-mmio slots, this board 2"):
        VirtioMmioBank.empty(2).restore_state(state)
    with pytest.raises(ValueError, match="device ID 3"):
        VirtioMmioBank.empty(3).restore_state(state)


# ---------------------------------------------------------- the whole table

def test_every_device_of_a_virt_board_round_trips(tmp_path):
    from armvisor.devices import pl011 as u
    from armvisor.machine.config import DriveSpec
    from armvisor.machine.virt import VirtDevices, Wiring
    path = make_image(tmp_path)

    class WallClock:
        def wall(self):
            return 1_700_000_000.5

    def build():
        gic = GicV3(2, mpidr_affinity)
        wiring = Wiring(gic=gic, ram=VqGuestRam(), clock=WallClock(), console=lambda data: None,
                        trace=None, cpu_count=2, drives=[DriveSpec(str(path), read_only=True)],
                        virtio_console=True)
        return VirtDevices.build(wiring, physical=True), gic

    board, gic = build()
    board.uart.write(u.UARTIMSC, 4, u.INT_RX)
    board.uart.receive(b"typed")
    board.rtc.write(0x04, 4, 5)                          # RTCMR
    board.devices["fw_cfg"].write(0x08, 2, 0x0500)      # FW_CFG_NB_CPUS
    board.devices["pcie-ecam"].write(0x04, 2, 0x0006)
    board.virtio.write(31 * vregs.SLOT_SIZE + vregs.STATUS, 4, vregs.STATUS_ACKNOWLEDGE)
    state = board.save_state()
    assert_plain(state)
    assert sorted(state) == ["fw_cfg", "pcie-ecam", "pl011", "pl031", "virtio-mmio"]
    for saved in (state, through_msgpack(state)):
        fresh, _ = build()
        fresh.restore_state(saved)
        assert fresh.save_state() == state
        assert fresh.uart.read(u.UARTDR, 4) == ord("t")
        fresh.close()
    board.close()
