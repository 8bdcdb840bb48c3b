"""SPI routing by GICD_IROUTER<n> (IHI0069 12.9, 5.2), 1-of-N included, and the trace it leaves."""

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace.bus import TraceBus

FRAME = 0x20000


def ready(cpus=4, wake=True):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    changes = []
    gic = GicV3(cpus, lambda c: mpidr_affinity(c) | (1 << 31), trace=bus, on_change=changes.append)
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP1 | r.GICD_CTLR_ENABLE_GRP0, 0)
    for cpu in range(cpus):
        gic.icc_write(cpu, r.ICC_PMR_EL1, 0xF0)
        gic.icc_write(cpu, r.ICC_IGRPEN1_EL1, 1)
        if wake:
            gic.redistributor_write(cpu * FRAME + r.GICR_WAKER, 4, 0, cpu)
    gic.distributor_write(r.GICD_ISENABLER + 4, 4, 0xFFFF_FFFF, 0)
    gic.distributor_write(r.GICD_IPRIORITYR + 32, 4, 0xA0A0A0A0, 0)
    changes.clear()
    events.clear()
    return gic, changes, events


def route(gic, intid, value):
    gic.distributor_write(r.GICD_IROUTER + 8 * intid, 8, value, 0)


def signalled(gic, cpus=4):
    return [c for c in range(cpus) if gic.irq_pending(c)]


def test_reset_routes_to_affinity_zero():
    gic, _, _ = ready()
    gic.set_spi_level(33, True)
    assert signalled(gic) == [0]


def test_route_to_a_specific_cpu():
    gic, changes, events = ready(cpus=20)
    route(gic, 33, mpidr_affinity(17))                  # Aff1 = 1, Aff0 = 1
    gic.set_spi_level(33, True)
    assert signalled(gic, 20) == [17] and changes == [17]
    assert gic.icc_read(0, r.ICC_IAR1_EL1) == r.INTID_SPURIOUS
    assert gic.icc_read(17, r.ICC_IAR1_EL1) == 33
    pend = [e for e in events if e.kind == "irq.pending"]
    assert len(pend) == 1 and pend[0].cpu == 17 and pend[0].fields == {"intid": 33}


def test_rerouting_a_pending_spi_moves_it():
    gic, changes, _ = ready()
    route(gic, 34, mpidr_affinity(1))
    gic.set_spi_level(34, True)
    assert signalled(gic) == [1]
    route(gic, 34, mpidr_affinity(3))
    assert signalled(gic) == [3]
    assert sorted(changes) == [1, 1, 3]
    route(gic, 34, 0x0500)                              # no PE has affinity 0.0.5.0
    assert signalled(gic) == []
    assert gic.distributor_read(r.GICD_ISPENDR + 4, 4, 0) == 1 << 2   # still pending


def test_32_bit_halves_route_too():
    gic, _, _ = ready(cpus=20)
    gic.distributor_write(r.GICD_IROUTER + 8 * 35, 4, 0x0102, 0)
    gic.set_spi_level(35, True)
    assert signalled(gic, 20) == [18]
    gic.distributor_write(r.GICD_IROUTER + 8 * 35 + 4, 4, 0x1, 0)   # Aff3 = 1: nobody
    assert signalled(gic, 20) == []


def test_irm_picks_the_lowest_participating_cpu():
    gic, _, _ = ready(wake=False)
    route(gic, 36, r.IROUTER_IRM)
    gic.set_spi_level(36, True)
    assert signalled(gic) == []                         # every PE asleep: nobody participates
    gic.redistributor_write(2 * FRAME + r.GICR_WAKER, 4, 0, 2)
    assert signalled(gic) == [2]
    gic.redistributor_write(1 * FRAME + r.GICR_WAKER, 4, 0, 1)
    assert signalled(gic) == [1]
    gic.icc_write(1, r.ICC_IGRPEN1_EL1, 0)              # CPU 1 stops taking Group 1
    assert signalled(gic) == [2]
    gic.redistributor_write(2 * FRAME + r.GICR_WAKER, 4, r.GICR_WAKER_PROCESSOR_SLEEP, 2)
    assert signalled(gic) == []
    gic.icc_write(1, r.ICC_IGRPEN1_EL1, 1)
    assert signalled(gic) == [1]
    route(gic, 36, mpidr_affinity(3))                   # back to a fixed PE
    assert signalled(gic) == [3]


def test_irm_group0_spi_needs_igrpen0():
    gic, _, _ = ready()
    gic.distributor_write(r.GICD_IGROUPR + 4, 4, ~(1 << 5) & 0xFFFF_FFFF, 0)   # SPI 37: Group 0
    route(gic, 37, r.IROUTER_IRM)
    gic.set_spi_level(37, True)
    assert not any(gic.fiq_pending(c) for c in range(4))
    gic.icc_write(3, r.ICC_IGRPEN0_EL1, 1)
    assert [c for c in range(4) if gic.fiq_pending(c)] == [3]


def test_an_active_spi_is_not_offered_elsewhere():
    gic, _, _ = ready()
    route(gic, 38, r.IROUTER_IRM)
    gic.set_spi_level(38, True)
    assert gic.icc_read(0, r.ICC_IAR1_EL1) == 38
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 0)              # now CPU 1 is the choice
    assert signalled(gic) == []                         # active and pending: not forwarded
    gic.icc_write(0, r.ICC_EOIR1_EL1, 38)               # deactivated from CPU 0
    assert signalled(gic) == [1]


def test_spi_trace_once_per_assertion():
    gic, _, events = ready()
    gic.set_spi_level(40, True)
    gic.set_spi_level(40, True)
    gic.set_spi_level(40, False)
    gic.set_spi_level(40, True)
    assert [e.fields["intid"] for e in events if e.kind == "irq.pending"] == [40, 40]


def test_without_trace_or_listener():
    gic = GicV3(2, mpidr_affinity)
    gic.distributor_write(r.GICD_CTLR, 4, 2, 0)
    gic.distributor_write(r.GICD_ISENABLER + 4, 4, 1, 0)
    gic.icc_write(0, r.ICC_PMR_EL1, 0xF0)
    gic.icc_write(0, r.ICC_IGRPEN1_EL1, 1)
    gic.set_spi_level(32, True)
    assert gic.irq_pending(0)
    assert gic.icc_read(0, r.ICC_IAR1_EL1) == 32
    gic.distributor_read(0x9000, 4, 0)                  # a bad access with no trace bus
