"""SGI generation through ICC_SGI0R/SGI1R/ASGI1R_EL1 (IHI0069 12.2) and its target decoding."""

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace.bus import TraceBus

SGI = 0x10000
FRAME = 0x20000


def make(cpus=4, mpidr_of=mpidr_affinity):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    changes = []
    gic = GicV3(cpus, mpidr_of, trace=bus, on_change=changes.append)
    return gic, changes, events


def sgi1r(target_list=0, intid=0, aff1=0, aff2=0, aff3=0, rs=0, irm=False):
    return (target_list | (aff1 << 16) | (intid << 24) | (aff2 << 32) | (int(irm) << 40)
            | (rs << 44) | (aff3 << 48))


def pending_sgis(gic, cpu):
    return gic.redistributor_read(cpu * FRAME + SGI + r.GICR_ISPENDR0, 4, 0) & 0xFFFF


def targets_of(gic, cpus, intid):
    return [c for c in range(cpus) if pending_sgis(gic, c) >> intid & 1]


def test_target_list_in_cluster_zero():
    gic, _, events = make()
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b0110, intid=3))
    assert targets_of(gic, 4, 3) == [1, 2]
    sgi_events = [e for e in events if e.kind == "gic.sgi"]
    assert len(sgi_events) == 1
    assert sgi_events[0].fields == {"sender": 0, "targets": [1, 2], "intid": 3}


def test_sender_may_target_itself():
    gic, _, _ = make()
    gic.icc_write(2, r.ICC_SGI1R_EL1, sgi1r(0b0100, intid=15))
    assert targets_of(gic, 4, 15) == [2]


def test_aff1_selects_the_cluster():
    gic, _, _ = make(cpus=20)                          # CPUs 16-19 are Aff1 = 1
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b0011, intid=1, aff1=1))
    assert targets_of(gic, 20, 1) == [16, 17]
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b0011, intid=2, aff1=0))
    assert targets_of(gic, 20, 2) == [0, 1]


def test_aff2_aff3_and_range_selector():
    affinities = {0: 0x0, 1: 0x0001_0000, 2: 0x01_0000_0000, 3: 0x01_0001_0000, 4: 0x12}
    gic, _, _ = make(cpus=5, mpidr_of=affinities.__getitem__)
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0xFFFF, intid=4, aff2=1))
    assert targets_of(gic, 5, 4) == [1]
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0xFFFF, intid=5, aff3=1))
    assert targets_of(gic, 5, 5) == [2]
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0xFFFF, intid=6, aff3=1, aff2=1))
    assert targets_of(gic, 5, 6) == [3]
    # CPU 4 has Aff0 = 0x12: TargetList bit 2 of range 1 (Aff0 16-31).
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(1 << 2, intid=7, rs=1))
    assert targets_of(gic, 5, 7) == [4]
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(1 << 2, intid=8, rs=0))
    assert targets_of(gic, 5, 8) == []


def test_irm_broadcasts_to_everyone_but_self():
    gic, changes, _ = make(cpus=4)
    gic.icc_write(2, r.ICC_SGI1R_EL1, sgi1r(0, intid=9, irm=True, aff1=5))   # Aff fields ignored
    assert targets_of(gic, 4, 9) == [0, 1, 3]


def test_targets_beyond_the_cpus_are_ignored():
    gic, _, events = make(cpus=2)
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0xFFFF, intid=1))
    assert targets_of(gic, 2, 1) == [0, 1]
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0xFFFF, intid=2, aff1=3))     # no such cluster
    assert targets_of(gic, 2, 2) == []
    assert [e.fields["targets"] for e in events if e.kind == "gic.sgi"] == [[0, 1], []]


def test_sgi_group_must_match_the_register():
    gic, _, _ = make(cpus=2)
    # SGI 0 Group 0 on CPU 1; SGI 1 stays Group 1.
    gic.redistributor_write(FRAME + SGI + r.GICR_IGROUPR0, 4, 0xFFFF_FFFE, 0)
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b10, intid=0))
    assert pending_sgis(gic, 1) == 0
    gic.icc_write(0, r.ICC_SGI0R_EL1, sgi1r(0b10, intid=1))
    assert pending_sgis(gic, 1) == 0
    gic.icc_write(0, r.ICC_SGI0R_EL1, sgi1r(0b10, intid=0))
    assert pending_sgis(gic, 1) == 0b1
    gic.icc_write(0, r.ICC_ASGI1R_EL1, sgi1r(0b10, intid=1))   # DS = 1: Group 0 only
    assert pending_sgis(gic, 1) == 0b1
    gic.redistributor_write(FRAME + SGI + r.GICR_ICPENDR0, 4, 1, 0)
    gic.icc_write(0, r.ICC_ASGI1R_EL1, sgi1r(0b10, intid=0))
    assert pending_sgis(gic, 1) == 0b1
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b10, intid=1))
    assert pending_sgis(gic, 1) == 0b11


def test_sgi_delivery_and_acknowledge_returns_the_bare_intid():
    gic, changes, _ = make(cpus=2)
    gic.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP1, 0)
    gic.icc_write(1, r.ICC_PMR_EL1, 0xF0)
    gic.icc_write(1, r.ICC_IGRPEN1_EL1, 1)
    gic.redistributor_write(FRAME + SGI + r.GICR_ISENABLER0, 4, 0xFFFF, 1)
    changes.clear()
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b10, intid=6))
    assert gic.irq_pending(1) and not gic.irq_pending(0)
    assert changes == [1]
    assert gic.icc_read(1, r.ICC_IAR1_EL1) == 6        # no source CPU field with affinity routing
    assert not gic.irq_pending(1)
    # A second SGI while the first is active: active and pending.
    gic.icc_write(0, r.ICC_SGI1R_EL1, sgi1r(0b10, intid=6))
    assert pending_sgis(gic, 1) == 1 << 6 and not gic.irq_pending(1)
    gic.icc_write(1, r.ICC_EOIR1_EL1, 6)
    assert gic.irq_pending(1)
    assert gic.icc_read(1, r.ICC_IAR1_EL1) == 6
    gic.icc_write(1, r.ICC_EOIR1_EL1, 6)
    assert not gic.irq_pending(1) and pending_sgis(gic, 1) == 0
