"""Snapshots of the device models (machine/snapshot.py): save, restore into a fresh model, compare.

Each test drives a device into a state worth keeping through its register
interface, saves it, restores the state (directly and after a msgpack round
trip, as the snapshot file holds it) into a model built the same way, then
checks that the restored model saves the same state and answers the same
accesses the same way as the original. Restoring calls no interrupt callback.
"""

from __future__ import annotations

import msgpack
import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity

FRAME = r.GICR_FRAME_SIZE
SGI_BASE = r.GICR_SGI_BASE


# ------------------------------------------------------------------- helpers

def assert_plain(value, where="state"):
    """Only what machine/snapshot.py allows: None, bool, int (64 bits), float, str, bytes, lists, dicts."""
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
    """(original, restored, restored-from-msgpack): `make()` builds a fresh model with its
    callback record, `drive(model)` puts one in the state under test."""
    original, _ = make()
    drive(original)
    state = original.save_state()
    assert_plain(state)
    copies = []
    for saved in (state, through_msgpack(state)):
        copy, calls = make()
        copy.restore_state(saved)
        assert calls == [], "restore_state called an interrupt callback"
        assert copy.save_state() == state
        copies.append(copy)
    return original, copies


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
    original, copies = restored_pair(make_gic, drive_gic)
    assert any(original.irq_pending(cpu) for cpu in range(4))
    expected = gic_behaviour(original)
    for copy in copies:
        assert gic_behaviour(copy) == expected


def test_gic_refuses_another_shape():
    gic, _ = make_gic(4)
    state = gic.save_state()
    with pytest.raises(ValueError, match="4 CPUs"):
        make_gic(2)[0].restore_state(state)
    with pytest.raises(ValueError, match="INTIDs"):
        GicV3(4, mpidr_affinity, num_irqs=320).restore_state(state)
