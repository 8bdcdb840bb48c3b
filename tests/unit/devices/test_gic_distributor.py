"""GICv3 Distributor registers (IHI0069 12.9) in the single-Security-state, ARE=1 model."""

import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace.bus import TraceBus


def make(cpus=2, **kw):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    gic = GicV3(cpus, lambda c: mpidr_affinity(c) | (1 << 31), trace=bus, **kw)
    return gic, events


def rd(gic, offset, size=4):
    return gic.distributor_read(offset, size, 0)


def wr(gic, offset, value, size=4):
    gic.distributor_write(offset, size, value, 0)


def bad(events):
    return [e for e in events if e.kind == "gic.bad_access"]


def test_ctlr_single_security_state_layout():
    gic, _ = make()
    assert rd(gic, r.GICD_CTLR) == r.GICD_CTLR_ARE | r.GICD_CTLR_DS
    wr(gic, r.GICD_CTLR, 0)                            # ARE and DS are RAO/WI
    assert rd(gic, r.GICD_CTLR) == 0x50
    wr(gic, r.GICD_CTLR, 0xFFFF_FFFF)
    # Only the two group enables are writable; RWP (bit 31) never reads 1.
    assert rd(gic, r.GICD_CTLR) == 0x53


@pytest.mark.parametrize("num_irqs, itlines", [(288, 8), (64, 1), (96, 2), (992, 30)])
def test_typer(num_irqs, itlines):
    gic, _ = make(num_irqs=num_irqs)
    typer = rd(gic, r.GICD_TYPER)
    assert typer & 0x1F == itlines
    assert (typer >> 19) & 0x1F == 15                  # 16 INTID bits
    assert not typer & r.GICD_TYPER_LPIS
    assert not typer & r.GICD_TYPER_SECURITYEXTN
    assert not typer & r.GICD_TYPER_NO1N               # 1-of-N supported
    assert typer & r.GICD_TYPER_A3V
    assert rd(gic, r.GICD_TYPER2) == 0


@pytest.mark.parametrize("num_irqs", [0, 32, 100, 1024, 1056])
def test_bad_num_irqs(num_irqs):
    with pytest.raises(ValueError):
        make(num_irqs=num_irqs)


def test_identification():
    gic, _ = make()
    assert rd(gic, r.GICD_IIDR) == 0x43B
    pidr2 = rd(gic, r.GICD_PIDR2)
    assert (pidr2 >> 4) & 0xF == 3                     # ArchRev: GICv3
    assert [rd(gic, 0xFFF0 + 4 * i) for i in range(4)] == [0x0D, 0xF0, 0x05, 0xB1]
    assert rd(gic, 0xFFE0) == 0x92 and rd(gic, 0xFFE4) == 0xB4
    wr(gic, r.GICD_PIDR2, 0)
    assert rd(gic, r.GICD_PIDR2) == pidr2


@pytest.mark.parametrize("set_off, clear_off", [(r.GICD_ISENABLER, r.GICD_ICENABLER),
                                                (r.GICD_ISPENDR, r.GICD_ICPENDR),
                                                (r.GICD_ISACTIVER, r.GICD_ICACTIVER)])
def test_set_clear_pairs(set_off, clear_off):
    gic, _ = make()
    wr(gic, set_off + 4, 0x0000_0101)                  # SPIs 32 and 40
    assert rd(gic, set_off + 4) == 0x101
    assert rd(gic, clear_off + 4) == 0x101             # both registers read the state
    wr(gic, set_off + 4, 0x10)                         # writing zeros changes nothing
    assert rd(gic, set_off + 4) == 0x111
    wr(gic, clear_off + 4, 0x001)
    assert rd(gic, set_off + 4) == 0x110
    wr(gic, set_off + 8, 0x8000_0000)                  # SPI 95
    assert rd(gic, clear_off + 8) == 0x8000_0000


@pytest.mark.parametrize("family", [r.GICD_IGROUPR, r.GICD_ISENABLER, r.GICD_ICENABLER,
                                    r.GICD_ISPENDR, r.GICD_ICPENDR, r.GICD_ISACTIVER,
                                    r.GICD_ICACTIVER])
def test_banked_word_zero_is_raz_wi_with_are(family):
    gic, events = make()
    wr(gic, family, 0xFFFF_FFFF)
    assert rd(gic, family) == 0
    assert not bad(events)                             # architecturally RAZ/WI, not a bad access


def test_words_past_the_implemented_spis_are_raz_wi():
    gic, events = make(num_irqs=64)
    wr(gic, r.GICD_ISENABLER + 8, 0xFFFF_FFFF)
    assert rd(gic, r.GICD_ISENABLER + 8) == 0
    wr(gic, r.GICD_IPRIORITYR + 100, 0xFF, size=1)
    assert rd(gic, r.GICD_IPRIORITYR + 100, size=1) == 0
    assert not bad(events)


def test_igroupr_resets_to_group1_and_is_writable():
    gic, _ = make()
    assert rd(gic, r.GICD_IGROUPR + 4) == 0xFFFF_FFFF
    wr(gic, r.GICD_IGROUPR + 4, 0xFFFF_FFFE)
    assert rd(gic, r.GICD_IGROUPR + 4) == 0xFFFF_FFFE
    assert rd(gic, r.GICD_IGROUPR + 8) == 0xFFFF_FFFF


def test_ipriorityr_byte_and_word_access():
    gic, _ = make()
    wr(gic, r.GICD_IPRIORITYR + 32, 0x44332211)
    assert [rd(gic, r.GICD_IPRIORITYR + 32 + i, 1) for i in range(4)] == [0x11, 0x22, 0x33, 0x44]
    wr(gic, r.GICD_IPRIORITYR + 34, 0xA0, size=1)
    assert rd(gic, r.GICD_IPRIORITYR + 32) == 0x44A02211
    # The distributor keeps all 8 bits, as QEMU does.
    wr(gic, r.GICD_IPRIORITYR + 40, 0x07, size=1)
    assert rd(gic, r.GICD_IPRIORITYR + 40, 1) == 0x07


def test_ipriorityr_of_sgis_and_ppis_is_raz_wi():
    gic, _ = make()
    wr(gic, r.GICD_IPRIORITYR + 16, 0xFFFF_FFFF)
    assert rd(gic, r.GICD_IPRIORITYR + 16) == 0
    assert gic.redistributor_read(0x10000 + 0x400 + 16, 4, 0) == 0


def test_icfgr():
    gic, _ = make()
    assert rd(gic, r.GICD_ICFGR + 8) == 0              # SPIs reset level-sensitive
    wr(gic, r.GICD_ICFGR + 8, 0xFFFF_FFFF)
    assert rd(gic, r.GICD_ICFGR + 8) == 0xAAAA_AAAA    # the even bits are RES0
    wr(gic, r.GICD_ICFGR + 8, 0x0000_0008)
    assert rd(gic, r.GICD_ICFGR + 8) == 0x8            # INTID 33 edge
    for banked in (r.GICD_ICFGR, r.GICD_ICFGR + 4):
        wr(gic, banked, 0xFFFF_FFFF)
        assert rd(gic, banked) == 0


@pytest.mark.parametrize("offset, size", [(r.GICD_ITARGETSR + 32, 4), (r.GICD_ITARGETSR + 33, 1),
                                          (r.GICD_IGRPMODR + 4, 4), (r.GICD_NSACR + 8, 4),
                                          (r.GICD_CPENDSGIR, 4), (r.GICD_SPENDSGIR + 1, 1),
                                          (r.GICD_STATUSR, 4)])
def test_res0_and_raz_wi_registers(offset, size):
    gic, events = make()
    wr(gic, offset, 0xFF if size == 1 else 0xFFFF_FFFF, size)
    assert rd(gic, offset, size) == 0
    assert not bad(events)


def test_gicd_sgir_is_res0_with_affinity_routing():
    gic, _ = make()
    wr(gic, r.GICD_SGIR, 0x0001_0003)                  # would target CPU 0 with SGI 3 in GICv2
    assert gic.redistributor_read(0x10000 + r.GICR_ISPENDR0, 4, 0) == 0


def test_irouter_64_bit_and_halves():
    gic, events = make()
    off = r.GICD_IROUTER + 8 * 40
    assert rd(gic, off, 8) == 0
    wr(gic, off, 0xFFFF_FFFF_FFFF_FFFF, size=8)
    assert rd(gic, off, 8) == 0xFF_80FF_FFFF            # Aff3, IRM, Aff2.Aff1.Aff0
    wr(gic, off, 0x0000_0102, size=4)
    assert rd(gic, off, 8) == 0xFF_0000_0102
    wr(gic, off + 4, 0x0000_0003, size=4)
    assert rd(gic, off, 8) == 0x03_0000_0102
    assert rd(gic, off, 4) == 0x102 and rd(gic, off + 4, 4) == 0x3
    assert not bad(events)


def test_irouter_outside_the_spis_is_raz_wi():
    gic, _ = make(num_irqs=64)
    for intid in (0, 31, 64, 100):
        wr(gic, r.GICD_IROUTER + 8 * intid, 0x1, size=8)
        assert rd(gic, r.GICD_IROUTER + 8 * intid, 8) == 0


@pytest.mark.parametrize("offset, size", [(0x0014, 4), (0x0030, 4), (0x1000, 4), (0x5000, 4),
                                          (0x8000, 4), (r.GICD_CTLR, 2), (r.GICD_CTLR, 1),
                                          (r.GICD_ISENABLER + 4, 1), (r.GICD_CTLR, 8),
                                          (r.GICD_IPRIORITYR + 32, 2), (r.GICD_IROUTER + 8 * 32 + 4, 8),
                                          (r.GICD_TYPER + 1, 1)])
def test_bad_accesses_are_raz_wi_and_traced(offset, size):
    gic, events = make()
    assert rd(gic, offset, size) == 0
    wr(gic, offset, 0xFF, size)
    reports = bad(events)
    assert len(reports) == 2
    assert reports[0].fields == {"region": "GICD", "offset": offset, "size": size, "write": False}
    assert reports[1].fields["write"] is True
    assert rd(gic, r.GICD_CTLR) == 0x50                # nothing leaked into a real register


def test_setspi_and_clrspi():
    gic, events = make()
    wr(gic, r.GICD_SETSPI_NSR, 45)
    assert rd(gic, r.GICD_ISPENDR + 4) == 1 << 13
    wr(gic, r.GICD_CLRSPI_NSR, 45)
    assert rd(gic, r.GICD_ISPENDR + 4) == 0
    wr(gic, r.GICD_SETSPI_NSR, 5)                      # not an SPI: ignored
    wr(gic, r.GICD_SETSPI_NSR, 300)
    assert gic.redistributor_read(0x10000 + r.GICR_ISPENDR0, 4, 0) == 0
    assert not bad(events)


def test_reset_restores_defaults():
    gic, _ = make()
    wr(gic, r.GICD_CTLR, 3)
    wr(gic, r.GICD_ISENABLER + 4, 0xF)
    wr(gic, r.GICD_IPRIORITYR + 32, 0xA0, 1)
    wr(gic, r.GICD_IROUTER + 8 * 33, 1, 8)
    gic.reset()
    assert rd(gic, r.GICD_CTLR) == 0x50
    assert rd(gic, r.GICD_ISENABLER + 4) == 0
    assert rd(gic, r.GICD_IPRIORITYR + 32) == 0
    assert rd(gic, r.GICD_IROUTER + 8 * 33, 8) == 0
