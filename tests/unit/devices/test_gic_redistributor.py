"""GICv3 Redistributor registers (IHI0069 12.11): RD_base and SGI_base frames."""

import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace.bus import TraceBus

FRAME = 0x20000
SGI = 0x10000


def make(cpus=4, mpidr_of=None):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    if mpidr_of is None:
        mpidr_of = lambda c: mpidr_affinity(c) | (1 << 31)   # noqa: E731 - what a guest reads
    return GicV3(cpus, mpidr_of, trace=bus), events


def rd(gic, cpu, offset, size=4):
    return gic.redistributor_read(cpu * FRAME + offset, size, 0)


def wr(gic, cpu, offset, value, size=4):
    gic.redistributor_write(cpu * FRAME + offset, size, value, 0)


def test_typer_affinity_processor_number_and_last():
    gic, _ = make(cpus=20)
    for cpu in range(20):
        typer = rd(gic, cpu, r.GICR_TYPER, 8)
        assert typer >> 32 == mpidr_affinity(cpu)       # bit 31 of MPIDR is not affinity
        assert (typer >> 8) & 0xFFFF == cpu
        assert bool(typer & r.GICR_TYPER_LAST) == (cpu == 19)
        assert not typer & r.GICR_TYPER_PLPIS
        assert rd(gic, cpu, r.GICR_TYPER) == typer & 0xFFFF_FFFF
        assert rd(gic, cpu, r.GICR_TYPER + 4) == typer >> 32
    assert rd(gic, 17, r.GICR_TYPER + 4) == 0x0101     # Aff1 = 1, Aff0 = 1


def test_typer_carries_aff2_and_aff3():
    mpidr = {0: 0x0, 1: 0x12_0003_0405}
    gic, _ = make(cpus=2, mpidr_of=mpidr.__getitem__)
    assert rd(gic, 1, r.GICR_TYPER + 4) == 0x12030405
    assert rd(gic, 0, r.GICR_TYPER) & r.GICR_TYPER_LAST == 0
    assert rd(gic, 1, r.GICR_TYPER) & r.GICR_TYPER_LAST


def test_typer_is_read_only():
    gic, _ = make()
    before = rd(gic, 1, r.GICR_TYPER, 8)
    wr(gic, 1, r.GICR_TYPER, 0, 8)
    assert rd(gic, 1, r.GICR_TYPER, 8) == before


def test_frames_beyond_the_cpus_read_zero_and_are_reported():
    gic, events = make(cpus=2)
    assert rd(gic, 2, r.GICR_TYPER, 8) == 0
    assert rd(gic, 2, r.GICR_PIDR2) == 0
    wr(gic, 2, r.GICR_WAKER, 0)
    reports = [e for e in events if e.kind == "gic.bad_access"]
    assert len(reports) == 3 and reports[0].fields["region"] == "GICR"


def test_waker_handshake():
    gic, _ = make()
    sleeping = r.GICR_WAKER_PROCESSOR_SLEEP | r.GICR_WAKER_CHILDREN_ASLEEP
    assert rd(gic, 1, r.GICR_WAKER) == sleeping
    wr(gic, 1, r.GICR_WAKER, 0)
    assert rd(gic, 1, r.GICR_WAKER) == 0               # ChildrenAsleep follows at once
    assert rd(gic, 0, r.GICR_WAKER) == sleeping        # per PE
    wr(gic, 1, r.GICR_WAKER, r.GICR_WAKER_CHILDREN_ASLEEP)   # ChildrenAsleep is read-only
    assert rd(gic, 1, r.GICR_WAKER) == 0
    wr(gic, 1, r.GICR_WAKER, r.GICR_WAKER_PROCESSOR_SLEEP)
    assert rd(gic, 1, r.GICR_WAKER) == sleeping
    wr(gic, 1, r.GICR_WAKER, 0)
    gic.reset()
    assert rd(gic, 1, r.GICR_WAKER) == sleeping


def test_rd_frame_identification_and_controls():
    gic, events = make()
    assert (rd(gic, 3, r.GICR_PIDR2) >> 4) & 0xF == 3
    assert rd(gic, 3, 0xFFE0) == 0x93
    assert rd(gic, 0, r.GICR_IIDR) == 0x43B
    wr(gic, 0, r.GICR_CTLR, 0xFFFF_FFFF)               # no LPIs: EnableLPIs cannot be set
    assert rd(gic, 0, r.GICR_CTLR) == 0
    assert rd(gic, 0, r.GICR_SYNCR) == 0               # never busy
    wr(gic, 0, r.GICR_PROPBASER, 0x1234_5000, 8)
    assert rd(gic, 0, r.GICR_PROPBASER, 8) == 0
    assert not [e for e in events if e.kind == "gic.bad_access"]


@pytest.mark.parametrize("set_off, clear_off", [(r.GICR_ISENABLER0, r.GICR_ICENABLER0),
                                                (r.GICR_ISPENDR0, r.GICR_ICPENDR0),
                                                (r.GICR_ISACTIVER0, r.GICR_ICACTIVER0)])
def test_sgi_frame_set_clear_pairs_are_per_cpu(set_off, clear_off):
    gic, _ = make()
    wr(gic, 1, SGI + set_off, 0x8001_0002)
    assert rd(gic, 1, SGI + set_off) == 0x8001_0002
    assert rd(gic, 1, SGI + clear_off) == 0x8001_0002
    assert rd(gic, 0, SGI + set_off) == 0
    wr(gic, 1, SGI + clear_off, 0x0001_0000)
    assert rd(gic, 1, SGI + set_off) == 0x8000_0002


def test_sgi_frame_group_priority_config():
    gic, _ = make()
    assert rd(gic, 0, SGI + r.GICR_IGROUPR0) == 0xFFFF_FFFF
    wr(gic, 0, SGI + r.GICR_IGROUPR0, 0xFFFF_FFF0)
    assert rd(gic, 0, SGI + r.GICR_IGROUPR0) == 0xFFFF_FFF0
    wr(gic, 2, SGI + r.GICR_IPRIORITYR + 27, 0xA0, 1)
    wr(gic, 2, SGI + r.GICR_IPRIORITYR + 0, 0x40302010)
    assert rd(gic, 2, SGI + r.GICR_IPRIORITYR + 24) == 0xA0 << 24
    assert rd(gic, 2, SGI + r.GICR_IPRIORITYR + 1, 1) == 0x20
    assert rd(gic, 1, SGI + r.GICR_IPRIORITYR + 24) == 0
    # SGIs are always edge-triggered: ICFGR0 is read-only.
    assert rd(gic, 0, SGI + r.GICR_ICFGR0) == 0xAAAA_AAAA
    wr(gic, 0, SGI + r.GICR_ICFGR0, 0)
    assert rd(gic, 0, SGI + r.GICR_ICFGR0) == 0xAAAA_AAAA
    assert rd(gic, 0, SGI + r.GICR_ICFGR1) == 0          # PPIs reset level-sensitive
    wr(gic, 0, SGI + r.GICR_ICFGR1, 0xFFFF_FFFF)
    assert rd(gic, 0, SGI + r.GICR_ICFGR1) == 0xAAAA_AAAA
    assert rd(gic, 1, SGI + r.GICR_ICFGR1) == 0


@pytest.mark.parametrize("offset", [r.GICR_IGRPMODR0, r.GICR_NSACR, r.GICR_INMIR0])
def test_ds1_raz_wi_registers(offset):
    gic, events = make()
    wr(gic, 0, SGI + offset, 0xFFFF_FFFF)
    assert rd(gic, 0, SGI + offset) == 0
    assert not [e for e in events if e.kind == "gic.bad_access"]


@pytest.mark.parametrize("offset, size", [(SGI + 0x84, 4), (SGI + 0x800, 4), (SGI + 0xC08, 4),
                                          (SGI + r.GICR_ISENABLER0, 1), (SGI + r.GICR_IPRIORITYR, 2),
                                          (0x0100, 4), (r.GICR_WAKER, 8), (r.GICR_TYPER + 4, 8),
                                          (SGI + 0x8000, 4)])
def test_bad_accesses(offset, size):
    gic, events = make()
    assert rd(gic, 0, offset, size) == 0
    wr(gic, 0, offset, 0xFF, size)
    assert len([e for e in events if e.kind == "gic.bad_access"]) == 2
    assert rd(gic, 0, SGI + r.GICR_ISENABLER0) == 0
