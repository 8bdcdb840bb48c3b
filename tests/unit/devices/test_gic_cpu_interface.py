"""GICv3 CPU interface (ICC_*_EL1, IHI0069 12.2) and the interrupt life cycle (4.1, 4.8)."""

import pytest

from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace.bus import TraceBus

SGI = 0x10000
FRAME = 0x20000


def make(cpus=2):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    changes = []
    gic = GicV3(cpus, mpidr_affinity, trace=bus, on_change=changes.append)
    return gic, changes, events


def ready(cpus=2, pmr=0xF0):
    """Distributor groups on, every CPU interface with both groups enabled and PMR set."""
    gic, changes, events = make(cpus)
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1, 0)
    for cpu in range(cpus):
        gic.icc_write(cpu, r.ICC_PMR_EL1, pmr)
        gic.icc_write(cpu, r.ICC_IGRPEN1_EL1, 1)
        gic.icc_write(cpu, r.ICC_IGRPEN0_EL1, 1)
    changes.clear()
    events.clear()
    return gic, changes, events


def spi(gic, intid, prio=0xA0, edge=False, group=1, cpu=0):
    gic.distributor_write(r.GICD_IPRIORITYR + intid, 1, prio, 0)
    if edge:
        word = r.GICD_ICFGR + 4 * (intid // 16)
        value = gic.distributor_read(word, 4, 0) | (2 << (2 * (intid % 16)))
        gic.distributor_write(word, 4, value, 0)
    if not group:
        word = r.GICD_IGROUPR + 4 * (intid // 32)
        gic.distributor_write(word, 4, gic.distributor_read(word, 4, 0) & ~(1 << intid % 32), 0)
    gic.distributor_write(r.GICD_IROUTER + 8 * intid, 8, mpidr_affinity(cpu), 0)
    gic.distributor_write(r.GICD_ISENABLER + 4 * (intid // 32), 4, 1 << (intid % 32), 0)


def ppi(gic, cpu, intid, prio=0xA0):
    gic.redistributor_write(cpu * FRAME + SGI + r.GICR_IPRIORITYR + intid, 1, prio, cpu)
    gic.redistributor_write(cpu * FRAME + SGI + r.GICR_ISENABLER0, 4, 1 << intid, cpu)


def iar(gic, cpu=0, group=1):
    return gic.icc_read(cpu, r.ICC_IAR1_EL1 if group else r.ICC_IAR0_EL1)


def eoi(gic, intid, cpu=0, group=1):
    gic.icc_write(cpu, r.ICC_EOIR1_EL1 if group else r.ICC_EOIR0_EL1, intid)


def active(gic, intid):
    return bool(gic.distributor_read(r.GICD_ISACTIVER + 4 * (intid // 32), 4, 0) >> (intid % 32) & 1)


def pending(gic, intid):
    return bool(gic.distributor_read(r.GICD_ISPENDR + 4 * (intid // 32), 4, 0) >> (intid % 32) & 1)


# ------------------------------------------------------------------ registers
def test_ctlr_reports_what_the_model_implements():
    gic, _, _ = make()
    ctlr = gic.icc_read(0, r.ICC_CTLR_EL1)
    assert (ctlr >> 8) & 7 == 4                        # PRIbits: 5 bits
    assert (ctlr >> 11) & 7 == 0                       # IDbits: 16
    assert ctlr & r.ICC_CTLR_A3V and not ctlr & r.ICC_CTLR_SEIS and not ctlr & r.ICC_CTLR_RSS
    assert ctlr & 3 == 0
    gic.icc_write(0, r.ICC_CTLR_EL1, 0xFFFF_FFFF)
    assert gic.icc_read(0, r.ICC_CTLR_EL1) == ctlr | 3   # only CBPR and EOImode are writable
    assert gic.icc_read(1, r.ICC_CTLR_EL1) == ctlr       # per CPU


def test_sre_is_rao_wi():
    gic, _, _ = make()
    assert gic.icc_read(0, r.ICC_SRE_EL1) == 0x7
    assert gic.icc_write(0, r.ICC_SRE_EL1, 0)
    assert gic.icc_read(0, r.ICC_SRE_EL1) == 0x7


def test_pmr_keeps_the_implemented_bits():
    gic, _, _ = make()
    gic.icc_write(0, r.ICC_PMR_EL1, 0xFF)
    assert gic.icc_read(0, r.ICC_PMR_EL1) == 0xF8
    gic.icc_write(0, r.ICC_PMR_EL1, 0xA7)
    assert gic.icc_read(0, r.ICC_PMR_EL1) == 0xA0


def test_bpr_minimums_and_cbpr():
    gic, _, _ = make()
    assert gic.icc_read(0, r.ICC_BPR0_EL1) == 2 and gic.icc_read(0, r.ICC_BPR1_EL1) == 3
    gic.icc_write(0, r.ICC_BPR0_EL1, 0)
    gic.icc_write(0, r.ICC_BPR1_EL1, 0)
    assert gic.icc_read(0, r.ICC_BPR0_EL1) == 2 and gic.icc_read(0, r.ICC_BPR1_EL1) == 3
    gic.icc_write(0, r.ICC_BPR0_EL1, 7)
    gic.icc_write(0, r.ICC_BPR1_EL1, 5)
    assert gic.icc_read(0, r.ICC_BPR0_EL1) == 7 and gic.icc_read(0, r.ICC_BPR1_EL1) == 5
    gic.icc_write(0, r.ICC_CTLR_EL1, r.ICC_CTLR_CBPR)
    assert gic.icc_read(0, r.ICC_BPR1_EL1) == 7        # BPR0 + 1, saturated
    gic.icc_write(0, r.ICC_BPR0_EL1, 4)
    assert gic.icc_read(0, r.ICC_BPR1_EL1) == 5
    gic.icc_write(0, r.ICC_BPR1_EL1, 6)                # ignored while CBPR = 1
    gic.icc_write(0, r.ICC_CTLR_EL1, 0)
    assert gic.icc_read(0, r.ICC_BPR1_EL1) == 5


def test_register_directions_and_unknown_registers():
    gic, _, _ = make()
    for reg in (r.ICC_EOIR1_EL1, r.ICC_EOIR0_EL1, r.ICC_DIR_EL1, r.ICC_SGI1R_EL1):
        assert gic.icc_read(0, reg) is None            # write-only
    for reg in (r.ICC_IAR1_EL1, r.ICC_HPPIR1_EL1, r.ICC_RPR_EL1):
        assert gic.icc_write(0, reg, 0) is False       # read-only
    ap1r1 = (3, 0, 12, 9, 1)                           # needs 6 preemption bits
    sctlr = (3, 0, 1, 0, 0)
    for reg in (ap1r1, sctlr):
        assert gic.icc_read(0, reg) is None and gic.icc_write(0, reg, 0) is False
        assert not GicV3.is_icc_register(reg)
    assert GicV3.is_icc_register(r.ICC_IAR1_EL1)
    assert GicV3.is_icc_register(SysReg(3, 0, 12, 11, 5))
    assert gic.icc_read(0, SysReg(*r.ICC_PMR_EL1)) == 0


def test_igrpen():
    gic, _, _ = make()
    assert gic.icc_read(0, r.ICC_IGRPEN1_EL1) == 0
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 0xFFFF)
    assert gic.icc_read(0, r.ICC_IGRPEN1_EL1) == 1
    assert gic.icc_read(0, r.ICC_IGRPEN0_EL1) == 0


# ------------------------------------------------------------- life cycle
def test_spurious_when_nothing_pending():
    gic, _, _ = ready()
    assert iar(gic) == r.INTID_SPURIOUS
    assert iar(gic, group=0) == r.INTID_SPURIOUS
    assert gic.icc_read(0, r.ICC_HPPIR1_EL1) == r.INTID_SPURIOUS
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0xFF
    assert not gic.irq_pending(0)


def test_acknowledge_and_eoi():
    gic, changes, events = ready()
    spi(gic, 40, prio=0xA0)
    assert not gic.irq_pending(0) and changes == []
    gic.set_spi_level(40, True)
    assert gic.irq_pending(0) and not gic.fiq_pending(0) and gic.wake_pending(0)
    assert not gic.irq_pending(1)
    assert changes == [0]
    assert gic.icc_read(0, r.ICC_HPPIR1_EL1) == 40
    gic.set_spi_level(40, False)
    gic.distributor_write(r.GICD_ICFGR + 8, 4, 2 << 16, 0)   # make it edge, latch it
    gic.set_spi_level(40, True)
    assert iar(gic) == 40
    assert not gic.irq_pending(0)
    assert changes == [0, 0, 0, 0]                     # up, down (line low), up, down (ack)
    assert active(gic, 40) and not pending(gic, 40)
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0xA0
    assert gic.icc_read(0, r.ICC_AP1R0_EL1) == 1 << (0xA0 >> 3)
    eoi(gic, 40)
    assert not active(gic, 40)
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0xFF and gic.icc_read(0, r.ICC_AP1R0_EL1) == 0
    kinds = [(e.kind, e.fields.get("intid")) for e in events if e.kind.startswith("gic.")]
    assert kinds == [("gic.ack", 40), ("gic.eoi", 40)]


def test_pmr_masks_equal_and_lower_priorities():
    gic, _, _ = ready(pmr=0xA0)
    spi(gic, 33, prio=0xA0)
    gic.set_spi_level(33, True)
    assert not gic.irq_pending(0)
    assert iar(gic) == r.INTID_SPURIOUS and not active(gic, 33)
    assert gic.icc_read(0, r.ICC_HPPIR1_EL1) == 33    # HPPIR ignores the mask
    gic.icc_write(0, r.ICC_PMR_EL1, 0xA8)
    assert gic.irq_pending(0)
    gic.icc_write(0, r.ICC_PMR_EL1, 0)
    assert not gic.irq_pending(0)


def test_highest_priority_first_and_ties_to_the_lower_intid():
    gic, _, _ = ready()
    spi(gic, 50, prio=0x80)
    spi(gic, 35, prio=0xC0)
    spi(gic, 60, prio=0x80)
    for intid in (50, 35, 60):
        gic.distributor_write(r.GICD_ISPENDR + 4, 4, 1 << (intid - 32), 0)
    ppi(gic, 0, 27, prio=0x90)
    gic.set_ppi_level(0, 27, True)
    order = []
    for _ in range(4):
        intid = iar(gic)
        order.append(intid)
        if intid == 27:
            gic.set_ppi_level(0, 27, False)            # the device is serviced
        eoi(gic, intid)
    assert order == [50, 60, 27, 35]
    assert iar(gic) == r.INTID_SPURIOUS


def test_preemption_by_group_priority():
    gic, _, _ = ready()
    spi(gic, 40, prio=0xA0, edge=True)
    spi(gic, 41, prio=0x80, edge=True)
    spi(gic, 42, prio=0xA0, edge=True)
    spi(gic, 43, prio=0xC0, edge=True)
    gic.set_spi_level(40, True)
    assert iar(gic) == 40
    for lower_or_equal in (42, 43):
        gic.set_spi_level(lower_or_equal, True)
        assert not gic.irq_pending(0)
        assert iar(gic) == r.INTID_SPURIOUS
    gic.set_spi_level(41, True)                        # higher: preempts
    assert gic.irq_pending(0)
    assert iar(gic) == 41
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0x80
    eoi(gic, 41)                                       # back to running at 0xA0
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0xA0 and not gic.irq_pending(0)
    eoi(gic, 40)
    assert iar(gic) == 42 and iar(gic) == r.INTID_SPURIOUS   # 43 cannot preempt 42
    eoi(gic, 42)
    assert iar(gic) == 43


def test_binary_point_decides_preemption():
    gic, _, _ = ready()
    spi(gic, 40, prio=0x80, edge=True)
    spi(gic, 41, prio=0x90, edge=True)
    gic.set_spi_level(41, True)
    assert iar(gic) == 41
    gic.set_spi_level(40, True)
    assert gic.irq_pending(0)                          # BPR1 = 3: group priorities 0x80 < 0x90
    gic.icc_write(0, r.ICC_BPR1_EL1, 4)                # Group 1 uses BPR1 - 1: bits [7:4] differ
    assert gic.irq_pending(0)
    gic.icc_write(0, r.ICC_BPR1_EL1, 5)                # bits [7:5]: 0x80 == 0x80
    assert not gic.irq_pending(0)
    gic.icc_write(0, r.ICC_BPR1_EL1, 6)                # group priority bits [7:6]: both 0x80
    assert not gic.irq_pending(0)
    assert iar(gic) == r.INTID_SPURIOUS
    gic.icc_write(0, r.ICC_CTLR_EL1, r.ICC_CTLR_CBPR)  # BPR0 (2) now rules Group 1 too
    assert gic.irq_pending(0)


def test_eoimode1_splits_priority_drop_and_deactivation():
    gic, _, _ = ready()
    gic.icc_write(0, r.ICC_CTLR_EL1, r.ICC_CTLR_EOIMODE)
    spi(gic, 45, edge=True)
    gic.set_spi_level(45, True)
    assert iar(gic) == 45
    eoi(gic, 45)
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0xFF      # priority dropped
    assert active(gic, 45)                             # still active
    gic.set_spi_level(45, False)
    gic.set_spi_level(45, True)                        # retriggered: active and pending
    assert pending(gic, 45) and not gic.irq_pending(0)
    gic.icc_write(0, r.ICC_DIR_EL1, 45)
    assert not active(gic, 45) and gic.irq_pending(0)
    assert iar(gic) == 45


def test_dir_is_ignored_with_eoimode0():
    gic, _, _ = ready()
    spi(gic, 45, edge=True)
    gic.set_spi_level(45, True)
    assert iar(gic) == 45
    gic.icc_write(0, r.ICC_DIR_EL1, 45)
    assert active(gic, 45)


def test_eoi_of_the_wrong_group_is_ignored():
    gic, _, _ = ready()
    spi(gic, 45, edge=True)
    gic.set_spi_level(45, True)
    assert iar(gic) == 45
    eoi(gic, 45, group=0)
    assert active(gic, 45) and gic.icc_read(0, r.ICC_RPR_EL1) == 0xA0
    eoi(gic, r.INTID_SPURIOUS)                         # special INTIDs are ignored
    assert active(gic, 45)
    eoi(gic, 45)
    assert not active(gic, 45)


def test_level_interrupt_follows_the_line():
    gic, _, _ = ready()
    spi(gic, 50)
    gic.set_spi_level(50, True)
    assert iar(gic) == 50
    assert active(gic, 50) and pending(gic, 50)        # line still high: active and pending
    assert not gic.irq_pending(0)
    eoi(gic, 50)
    assert gic.irq_pending(0)                          # still high: signalled again
    gic.set_spi_level(50, False)
    assert not gic.irq_pending(0) and not pending(gic, 50)


def test_icpendr_cannot_clear_a_level_interrupt_whose_line_is_high():
    gic, _, _ = ready()
    spi(gic, 50)
    gic.set_spi_level(50, True)
    gic.distributor_write(r.GICD_ICPENDR + 4, 4, 1 << 18, 0)
    assert pending(gic, 50) and gic.irq_pending(0)
    gic.set_spi_level(50, False)
    assert not pending(gic, 50)


def test_software_pending_level_interrupt_latches_until_acknowledged():
    gic, _, _ = ready()
    spi(gic, 50)
    gic.distributor_write(r.GICD_ISPENDR + 4, 4, 1 << 18, 0)
    assert gic.irq_pending(0)
    gic.set_spi_level(50, True)
    gic.set_spi_level(50, False)
    assert pending(gic, 50)                            # the latch outlives the line
    assert iar(gic) == 50
    assert not pending(gic, 50)
    eoi(gic, 50)
    assert not gic.irq_pending(0)


def test_edge_interrupt_latches_rising_edges_only():
    gic, _, _ = ready()
    spi(gic, 51, edge=True)
    gic.set_spi_level(51, True)
    gic.set_spi_level(51, False)
    assert pending(gic, 51)                            # the edge was latched
    assert iar(gic) == 51 and not pending(gic, 51)
    gic.set_spi_level(51, True)                        # retrigger while active
    assert pending(gic, 51) and active(gic, 51) and not gic.irq_pending(0)
    eoi(gic, 51)
    assert gic.irq_pending(0)
    assert iar(gic) == 51
    eoi(gic, 51)
    gic.set_spi_level(51, True)                        # no edge: nothing new
    assert not gic.irq_pending(0)


def test_ppi_lines_are_per_cpu():
    gic, changes, _ = ready(cpus=3)
    for cpu in range(3):
        ppi(gic, cpu, 27, prio=0x20)
    gic.set_ppi_level(1, 27, True)
    assert [gic.irq_pending(c) for c in range(3)] == [False, True, False]
    assert changes == [1]
    assert iar(gic, cpu=0) == r.INTID_SPURIOUS
    assert iar(gic, cpu=1) == 27
    eoi(gic, 27, cpu=1)
    gic.set_ppi_level(1, 27, False)
    assert not gic.irq_pending(1)


def test_group0_is_signalled_as_fiq():
    gic, _, _ = ready()
    spi(gic, 60, prio=0x40, group=0, edge=True)
    gic.set_spi_level(60, True)
    assert gic.fiq_pending(0) and not gic.irq_pending(0) and gic.wake_pending(0)
    assert iar(gic, group=1) == r.INTID_SPURIOUS       # the HPPI is not Group 1
    assert gic.icc_read(0, r.ICC_HPPIR1_EL1) == r.INTID_SPURIOUS
    assert gic.icc_read(0, r.ICC_HPPIR0_EL1) == 60
    assert iar(gic, group=0) == 60
    assert gic.icc_read(0, r.ICC_AP0R0_EL1) == 1 << (0x40 >> 3)
    eoi(gic, 60, group=1)                              # wrong group: ignored
    assert active(gic, 60)
    eoi(gic, 60, group=0)
    assert not active(gic, 60) and not gic.fiq_pending(0)


def test_group_enables_at_distributor_and_cpu_interface():
    gic, _, _ = ready()
    spi(gic, 40, edge=True)
    spi(gic, 41, prio=0x20, group=0, edge=True)        # higher priority, Group 0
    gic.set_spi_level(40, True)
    gic.set_spi_level(41, True)
    assert gic.fiq_pending(0) and not gic.irq_pending(0)
    gic.icc_write(0, r.ICC_IGRPEN0_EL1, 0)             # a disabled group does not block the other
    assert gic.irq_pending(0) and not gic.fiq_pending(0)
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 0)
    assert not gic.wake_pending(0)
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 1)
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP0, 0)
    assert not gic.irq_pending(0)
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP1, 0)
    assert gic.irq_pending(0)


def test_disabled_interrupts_stay_pending_but_silent():
    gic, _, _ = ready()
    spi(gic, 40, edge=True)
    gic.distributor_write(r.GICD_ICENABLER + 4, 4, 1 << 8, 0)
    gic.set_spi_level(40, True)
    assert pending(gic, 40) and not gic.irq_pending(0)
    gic.distributor_write(r.GICD_ISENABLER + 4, 4, 1 << 8, 0)
    assert gic.irq_pending(0)


def test_active_priority_registers_drive_the_running_priority():
    gic, _, _ = ready()
    gic.icc_write(0, r.ICC_AP1R0_EL1, 1 << 4)
    assert gic.icc_read(0, r.ICC_RPR_EL1) == 0x20
    spi(gic, 40, prio=0x20)
    gic.set_spi_level(40, True)
    assert not gic.irq_pending(0)                      # cannot preempt 0x20
    gic.icc_write(0, r.ICC_AP1R0_EL1, 0)
    assert gic.irq_pending(0)


def test_on_change_only_when_the_output_moves():
    gic, changes, _ = ready()
    spi(gic, 40, prio=0xA0)
    spi(gic, 41, prio=0x80)
    gic.set_spi_level(40, True)
    gic.set_spi_level(41, True)                        # already high: no call
    assert changes == [0]
    gic.icc_write(0, r.ICC_PMR_EL1, 0x90)              # 41 still signalled
    assert changes == [0]
    gic.icc_write(0, r.ICC_PMR_EL1, 0x80)
    assert changes == [0, 0] and not gic.irq_pending(0)


def test_reset_drops_outputs_and_cpu_interface_state():
    gic, changes, _ = ready()
    spi(gic, 40)
    gic.set_spi_level(40, True)
    assert gic.irq_pending(0)
    gic.icc_write(0, r.ICC_BPR1_EL1, 5)
    gic.reset()
    assert not gic.irq_pending(0) and changes[-1] == 0
    assert gic.icc_read(0, r.ICC_PMR_EL1) == 0 and gic.icc_read(0, r.ICC_BPR1_EL1) == 3
    assert gic.icc_read(0, r.ICC_IGRPEN1_EL1) == 0
    assert pending(gic, 40)                            # the line is still high: an input, not state


def test_invalid_inputs():
    gic, _, _ = make()
    for intid in (0, 31, 288, 1023):
        with pytest.raises(ValueError):
            gic.set_spi_level(intid, True)
    for intid in (0, 15, 32):
        with pytest.raises(ValueError):
            gic.set_ppi_level(0, intid, True)
