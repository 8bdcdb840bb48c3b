"""GICv3 with two Security states (GICD_CTLR.DS = 0, IHI0069 3.1, 4.6, 12.x): the
Secure and Non-secure views of the Distributor and Redistributors, the three
interrupt groups, IRQ versus FIQ, the banked ICC registers and SGI forwarding.

Each test's PEs are at the Exception level and with the SCR_EL3 it sets
(`Pes`); the GIC asks for them through `pe_state`, as the board's cores answer.
"""

import pytest

from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as r
from armvisor.devices.gic.cpu_interface import signals_fiq
from armvisor.machine.memmap import mpidr_affinity

SGI = 0x10000
FRAME = 0x20000
NS = r.SCR_EL3_NS
NONSECURE_EL1 = (1, NS)
SECURE_EL1 = (1, 0)
EL3 = (3, 0)                 # SCR_EL3.NS = 0: the Secure copies of banked registers
EL3_NS = (3, NS)             # SCR_EL3.NS = 1: the Non-secure copies
SPI = 40
ALL_GROUPS = r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1NS | r.GICD_CTLR_ENABLE_GRP1S


class Pes:
    """The state of each PE, Non-secure EL1 unless a test moves it."""

    def __init__(self, cpus):
        self.state = {cpu: NONSECURE_EL1 for cpu in range(cpus)}

    def __call__(self, cpu):
        return self.state[cpu]


def make(cpus=2):
    pes = Pes(cpus)
    changes = []
    gic = GicV3(cpus, mpidr_affinity, on_change=changes.append, pe_state=pes)
    return gic, pes, changes


def as_state(pes, state, cpu=0):
    pes.state[cpu] = state


def dread(gic, pes, offset, state, size=4, cpu=0):
    as_state(pes, state, cpu)
    return gic.distributor_read(offset, size, cpu)


def dwrite(gic, pes, offset, value, state, size=4, cpu=0):
    as_state(pes, state, cpu)
    gic.distributor_write(offset, size, value, cpu)


def rread(gic, pes, offset, state, size=4, cpu=0, frame=0):
    as_state(pes, state, cpu)
    return gic.redistributor_read(frame * FRAME + offset, size, cpu)


def rwrite(gic, pes, offset, value, state, size=4, cpu=0, frame=0):
    as_state(pes, state, cpu)
    gic.redistributor_write(frame * FRAME + offset, size, value, cpu)


def icc_read(gic, pes, reg, state, cpu=0):
    as_state(pes, state, cpu)
    return gic.icc_read(cpu, reg)


def icc_write(gic, pes, reg, value, state, cpu=0):
    as_state(pes, state, cpu)
    return gic.icc_write(cpu, reg, value)


def word_bit(base, intid):
    return base + 4 * (intid // 32), 1 << (intid % 32)


def set_group(gic, pes, intid, group):
    """Configure an SPI's group with Secure accesses (IHI0069 Table 3-1)."""
    offset, bit = word_bit(r.GICD_IGROUPR, intid)
    old = dread(gic, pes, offset, EL3)
    dwrite(gic, pes, offset, (old | bit) if group == r.GROUP1 else (old & ~bit), EL3)
    offset, bit = word_bit(r.GICD_IGRPMODR, intid)
    old = dread(gic, pes, offset, EL3)
    dwrite(gic, pes, offset, (old | bit) if group == r.GROUP1S else (old & ~bit), EL3)


def ready(cpus=2, pmr=0xF8):
    """All three groups on in the Distributor and every CPU interface, PMR open;
    every PE back in Non-secure EL1."""
    gic, pes, changes = make(cpus)
    dwrite(gic, pes, r.GICD_CTLR, ALL_GROUPS, EL3)
    for cpu in range(cpus):
        icc_write(gic, pes, r.ICC_PMR_EL1, pmr, EL3, cpu)
        icc_write(gic, pes, r.ICC_IGRPEN0_EL1, 1, EL3, cpu)
        icc_write(gic, pes, r.ICC_IGRPEN1_EL3,
                  r.ICC_IGRPEN1_EL3_GRP1NS | r.ICC_IGRPEN1_EL3_GRP1S, EL3, cpu)
        as_state(pes, NONSECURE_EL1, cpu)
    changes.clear()
    return gic, pes, changes


def spi(gic, pes, intid=SPI, group=r.GROUP1, prio=0x40, cpu=0, pending=True):
    """A Secure-configured SPI of `group`, routed to `cpu`, enabled and (by default) pending."""
    set_group(gic, pes, intid, group)
    dwrite(gic, pes, r.GICD_IPRIORITYR + intid, prio, EL3, size=1)
    dwrite(gic, pes, r.GICD_IROUTER + 8 * intid, mpidr_affinity(cpu), EL3, size=8)
    offset, bit = word_bit(r.GICD_ISENABLER, intid)
    dwrite(gic, pes, offset, bit, EL3)
    if pending:
        offset, bit = word_bit(r.GICD_ISPENDR, intid)
        dwrite(gic, pes, offset, bit, EL3)


def lines(gic, pes, state, cpu=0):
    as_state(pes, state, cpu)
    return gic.irq_pending(cpu), gic.fiq_pending(cpu)


# ------------------------------------------------------------------ Distributor

def test_typer_reports_the_security_extensions_only_with_two_states():
    gic, pes, _ = make()
    assert dread(gic, pes, r.GICD_TYPER, EL3) & r.GICD_TYPER_SECURITYEXTN
    assert dread(gic, pes, r.GICD_TYPER, NONSECURE_EL1) & r.GICD_TYPER_SECURITYEXTN
    one = GicV3(2, mpidr_affinity)
    assert not one.distributor_read(r.GICD_TYPER, 4, 0) & r.GICD_TYPER_SECURITYEXTN


def test_gicd_ctlr_secure_view():
    gic, pes, _ = make()
    # Reset: both ARE RAO, DS = 0, no group enabled (12.9 GICD_CTLR).
    assert dread(gic, pes, r.GICD_CTLR, EL3) == r.GICD_CTLR_ARE_S | r.GICD_CTLR_ARE_NS
    dwrite(gic, pes, r.GICD_CTLR, ALL_GROUPS | r.GICD_CTLR_DS | r.GICD_CTLR_E1NWF, EL3)
    # DS stays 0 (RAZ/WI here), E1NWF RAZ/WI, the three enables stick.
    assert dread(gic, pes, r.GICD_CTLR, EL3) == (ALL_GROUPS | r.GICD_CTLR_ARE_S
                                                 | r.GICD_CTLR_ARE_NS)
    # Secure EL1 is Secure too.
    assert dread(gic, pes, r.GICD_CTLR, SECURE_EL1) & r.GICD_CTLR_ENABLE_GRP1S


def test_gicd_ctlr_non_secure_view():
    gic, pes, _ = make()
    dwrite(gic, pes, r.GICD_CTLR, r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1S, EL3)
    # Non-secure: ARE_NS at [4], EnableGrp1A at [1] (here 0), nothing of the Secure groups.
    assert dread(gic, pes, r.GICD_CTLR, NONSECURE_EL1) == r.GICD_CTLR_NS_ARE_NS
    # EnableGrp1A is the only writable bit, an alias of the Secure EnableGrp1NS.
    dwrite(gic, pes, r.GICD_CTLR, 0xFFFF_FFFF, NONSECURE_EL1)
    assert dread(gic, pes, r.GICD_CTLR, NONSECURE_EL1) == (r.GICD_CTLR_NS_ARE_NS
                                                           | r.GICD_CTLR_NS_ENABLE_GRP1A)
    assert dread(gic, pes, r.GICD_CTLR, EL3) == (ALL_GROUPS | r.GICD_CTLR_ARE_S
                                                 | r.GICD_CTLR_ARE_NS)
    dwrite(gic, pes, r.GICD_CTLR, 0, NONSECURE_EL1)
    assert dread(gic, pes, r.GICD_CTLR, EL3) == (r.GICD_CTLR_ENABLE_GRP0 | r.GICD_CTLR_ENABLE_GRP1S
                                                 | r.GICD_CTLR_ARE_S | r.GICD_CTLR_ARE_NS)


def test_groups_reset_to_group0_and_igroupr_is_secure_only():
    gic, pes, _ = make()
    offset, bit = word_bit(r.GICD_IGROUPR, SPI)
    assert dread(gic, pes, offset, EL3) == 0          # architectural reset: Group 0
    dwrite(gic, pes, offset, bit, NONSECURE_EL1)       # WI
    assert dread(gic, pes, offset, EL3) == 0
    dwrite(gic, pes, offset, bit, EL3)
    assert dread(gic, pes, offset, EL3) == bit
    assert dread(gic, pes, offset, NONSECURE_EL1) == 0  # RAZ


def test_igrpmodr_and_nsacr_are_secure_only_and_raz_wi_with_one_state():
    gic, pes, _ = make()
    offset, bit = word_bit(r.GICD_IGRPMODR, SPI)
    dwrite(gic, pes, offset, bit, NONSECURE_EL1)
    assert dread(gic, pes, offset, EL3) == 0
    dwrite(gic, pes, offset, bit, EL3)
    assert dread(gic, pes, offset, EL3) == bit
    assert dread(gic, pes, offset, NONSECURE_EL1) == 0
    assert dread(gic, pes, r.GICD_IGRPMODR, EL3) == 0    # SGIs/PPIs: the Redistributor's
    nsacr = r.GICD_NSACR + 4 * (SPI // 16)
    dwrite(gic, pes, nsacr, 0xFFFF_FFFF, NONSECURE_EL1)
    assert dread(gic, pes, nsacr, EL3) == 0
    dwrite(gic, pes, nsacr, 0x1234_5678, EL3)
    assert dread(gic, pes, nsacr, EL3) == 0x1234_5678
    assert dread(gic, pes, nsacr, NONSECURE_EL1) == 0
    dwrite(gic, pes, r.GICD_NSACR, 0xFFFF_FFFF, EL3)     # INTIDs 0-15: RAZ/WI
    assert dread(gic, pes, r.GICD_NSACR, EL3) == 0
    one = GicV3(2, mpidr_affinity)
    one.distributor_write(offset, 4, bit, 0)
    one.distributor_write(nsacr, 4, 0xFFFF_FFFF, 0)
    assert one.distributor_read(offset, 4, 0) == 0
    assert one.distributor_read(nsacr, 4, 0) == 0


@pytest.mark.parametrize("family", [r.GICD_ISENABLER, r.GICD_ISPENDR, r.GICD_ISACTIVER])
def test_non_secure_set_and_clear_reach_non_secure_group1_only(family):
    gic, pes, _ = make()
    secure, nonsecure = SPI, SPI + 1
    set_group(gic, pes, secure, r.GROUP1S)
    set_group(gic, pes, nonsecure, r.GROUP1)
    offset, _ = word_bit(family, SPI)
    both = (1 << (secure % 32)) | (1 << (nonsecure % 32))
    dwrite(gic, pes, offset, both, NONSECURE_EL1)
    assert dread(gic, pes, offset, EL3) == 1 << (nonsecure % 32)
    dwrite(gic, pes, offset, both, EL3)
    assert dread(gic, pes, offset, EL3) == both
    assert dread(gic, pes, offset, NONSECURE_EL1) == 1 << (nonsecure % 32)   # Secure ones RAZ
    clear = offset + 0x80                                           # ICENABLER, ICPENDR, ...
    dwrite(gic, pes, clear, both, NONSECURE_EL1)
    assert dread(gic, pes, offset, EL3) == 1 << (secure % 32)


def test_nsacr_opens_pending_state_of_secure_spis_to_non_secure():
    gic, pes, _ = make()
    set_group(gic, pes, SPI, r.GROUP0)
    pend, bit = word_bit(r.GICD_ISPENDR, SPI)
    clear = pend + 0x80
    nsacr = r.GICD_NSACR + 4 * (SPI // 16)
    shift = 2 * (SPI % 16)
    dwrite(gic, pes, nsacr, 1 << shift, EL3)            # NS_access = 1: set pending
    dwrite(gic, pes, pend, bit, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == bit
    assert dread(gic, pes, pend, NONSECURE_EL1) == bit
    dwrite(gic, pes, clear, bit, NONSECURE_EL1)         # clearing needs 2
    assert dread(gic, pes, pend, EL3) == bit
    assert dread(gic, pes, clear, NONSECURE_EL1) == 0
    dwrite(gic, pes, nsacr, 2 << shift, EL3)
    dwrite(gic, pes, clear, bit, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == 0
    # SETSPI_NSR/CLRSPI_NSR follow the same levels.
    dwrite(gic, pes, nsacr, 0, EL3)
    dwrite(gic, pes, r.GICD_SETSPI_NSR, SPI, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == 0
    dwrite(gic, pes, nsacr, 1 << shift, EL3)
    dwrite(gic, pes, r.GICD_SETSPI_NSR, SPI, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == bit
    dwrite(gic, pes, r.GICD_CLRSPI_NSR, SPI, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == bit


def test_setspi_sr_is_secure_only():
    gic, pes, _ = make()
    pend, bit = word_bit(r.GICD_ISPENDR, SPI)
    dwrite(gic, pes, r.GICD_SETSPI_SR, SPI, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == 0
    dwrite(gic, pes, r.GICD_SETSPI_SR, SPI, EL3)
    assert dread(gic, pes, pend, EL3) == bit
    dwrite(gic, pes, r.GICD_CLRSPI_SR, SPI, NONSECURE_EL1)
    assert dread(gic, pes, pend, EL3) == bit
    dwrite(gic, pes, r.GICD_CLRSPI_SR, SPI, SECURE_EL1)
    assert dread(gic, pes, pend, EL3) == 0
    one = GicV3(2, mpidr_affinity)                      # DS = 1: RES0
    one.distributor_write(r.GICD_SETSPI_SR, 4, SPI, 0)
    assert one.distributor_read(pend, 4, 0) == 0


def test_priorities_non_secure_view():
    gic, pes, _ = make()
    set_group(gic, pes, SPI, r.GROUP1)
    set_group(gic, pes, SPI + 1, r.GROUP1S)
    prio = r.GICD_IPRIORITYR + SPI
    dwrite(gic, pes, prio, 0xA0, EL3, size=1)
    dwrite(gic, pes, prio + 1, 0x20, EL3, size=1)
    # IHI0069 4.8.6: Non-secure sees (priority << 1), writes 0x80 | (value >> 1).
    assert dread(gic, pes, prio, NONSECURE_EL1, size=1) == 0x40
    assert dread(gic, pes, prio + 1, NONSECURE_EL1, size=1) == 0      # Secure: RAZ
    dwrite(gic, pes, prio, 0x60, NONSECURE_EL1, size=1)
    assert dread(gic, pes, prio, EL3, size=1) == 0xB0
    dwrite(gic, pes, prio + 1, 0x60, NONSECURE_EL1, size=1)           # WI
    assert dread(gic, pes, prio + 1, EL3, size=1) == 0x20
    word = prio & ~3
    assert dread(gic, pes, word, NONSECURE_EL1) == 0x60 << (8 * (SPI % 4))


def test_icfgr_and_irouter_of_secure_spis_are_raz_wi_to_non_secure():
    gic, pes, _ = make()
    set_group(gic, pes, SPI, r.GROUP0)
    icfgr = r.GICD_ICFGR + 4 * (SPI // 16)
    edge = r.ICFGR_EDGE << (2 * (SPI % 16))
    dwrite(gic, pes, icfgr, edge, NONSECURE_EL1)
    assert dread(gic, pes, icfgr, EL3) == 0
    dwrite(gic, pes, icfgr, edge, EL3)
    assert dread(gic, pes, icfgr, NONSECURE_EL1) == 0
    router = r.GICD_IROUTER + 8 * SPI
    dwrite(gic, pes, router, mpidr_affinity(1), NONSECURE_EL1, size=8)
    assert dread(gic, pes, router, EL3, size=8) == 0
    dwrite(gic, pes, router, mpidr_affinity(1), EL3, size=8)
    assert dread(gic, pes, router, NONSECURE_EL1, size=8) == 0
    # NSACR = 3 opens IROUTER (12.9 GICD_NSACR<n>).
    dwrite(gic, pes, r.GICD_NSACR + 4 * (SPI // 16), 3 << (2 * (SPI % 16)), EL3)
    assert dread(gic, pes, router, NONSECURE_EL1, size=8) == mpidr_affinity(1)


# ---------------------------------------------------------------- Redistributor

def test_redistributor_secure_only_registers():
    gic, pes, _ = make()
    assert rread(gic, pes, SGI + r.GICR_IGROUPR0, EL3) == 0       # Group 0 at reset
    rwrite(gic, pes, SGI + r.GICR_IGROUPR0, 0xFFFF_00FF, NONSECURE_EL1)
    assert rread(gic, pes, SGI + r.GICR_IGROUPR0, EL3) == 0
    rwrite(gic, pes, SGI + r.GICR_IGROUPR0, 0xFFFF_00FF, EL3)
    assert rread(gic, pes, SGI + r.GICR_IGROUPR0, EL3) == 0xFFFF_00FF
    assert rread(gic, pes, SGI + r.GICR_IGROUPR0, NONSECURE_EL1) == 0
    for reg in (r.GICR_IGRPMODR0, r.GICR_NSACR):
        rwrite(gic, pes, SGI + reg, 0xFF00, NONSECURE_EL1)
        assert rread(gic, pes, SGI + reg, EL3) == 0
        rwrite(gic, pes, SGI + reg, 0xFF00, SECURE_EL1)
        assert rread(gic, pes, SGI + reg, EL3) == 0xFF00
        assert rread(gic, pes, SGI + reg, NONSECURE_EL1) == 0


def test_redistributor_non_secure_view_of_secure_sgis():
    gic, pes, _ = make()
    rwrite(gic, pes, SGI + r.GICR_IGROUPR0, 0xFFFF_00FF, EL3)      # SGIs 8-15 Secure
    rwrite(gic, pes, SGI + r.GICR_IGRPMODR0, 0x0000_FF00, EL3)
    rwrite(gic, pes, SGI + r.GICR_ISENABLER0, 0xFFFF_FFFF, NONSECURE_EL1)
    assert rread(gic, pes, SGI + r.GICR_ISENABLER0, EL3) == 0xFFFF_00FF
    rwrite(gic, pes, SGI + r.GICR_ISENABLER0, 0xFF00, EL3)
    assert rread(gic, pes, SGI + r.GICR_ISENABLER0, NONSECURE_EL1) == 0xFFFF_00FF
    rwrite(gic, pes, SGI + r.GICR_ICENABLER0, 0xFFFF_FFFF, NONSECURE_EL1)
    assert rread(gic, pes, SGI + r.GICR_ISENABLER0, EL3) == 0x0000_FF00
    rwrite(gic, pes, SGI + r.GICR_IPRIORITYR + 8, 0x10, EL3, size=1)
    rwrite(gic, pes, SGI + r.GICR_IPRIORITYR + 8, 0xF0, NONSECURE_EL1, size=1)
    assert rread(gic, pes, SGI + r.GICR_IPRIORITYR + 8, EL3, size=1) == 0x10
    assert rread(gic, pes, SGI + r.GICR_IPRIORITYR + 8, NONSECURE_EL1, size=1) == 0
    rwrite(gic, pes, SGI + r.GICR_IPRIORITYR, 0x40, NONSECURE_EL1, size=1)
    assert rread(gic, pes, SGI + r.GICR_IPRIORITYR, EL3, size=1) == 0xA0
    assert rread(gic, pes, SGI + r.GICR_IPRIORITYR, NONSECURE_EL1, size=1) == 0x40
    # ICFGR0: SGIs are edge (0b10) but a Secure SGI's field reads 0 to Non-secure.
    assert rread(gic, pes, SGI + r.GICR_ICFGR0, NONSECURE_EL1) == 0x0000_AAAA
    assert rread(gic, pes, SGI + r.GICR_ICFGR0, EL3) == 0xAAAA_AAAA


# ------------------------------------------------------------ groups and lines

def test_signals_fiq_table():
    # IHI0069 Table 4-3 as QEMU's gicv3_cpuif_update.
    assert signals_fiq(r.GROUP0, *NONSECURE_EL1)
    assert signals_fiq(r.GROUP0, *SECURE_EL1)
    assert signals_fiq(r.GROUP1S, *NONSECURE_EL1)
    assert not signals_fiq(r.GROUP1S, *SECURE_EL1)
    assert not signals_fiq(r.GROUP1, *NONSECURE_EL1)
    assert signals_fiq(r.GROUP1, *SECURE_EL1)
    assert not signals_fiq(r.GROUP1, 2, NS)               # Non-secure EL2
    # EL3 taking interrupts (SCR_EL3.IRQ or FIQ): EL3's own view, every group FIQ.
    for group in r.GROUPS:
        assert signals_fiq(group, 3, NS | r.SCR_EL3_FIQ)
        assert signals_fiq(group, 3, r.SCR_EL3_IRQ)
    # EL3 taking none: the view of the state ERET goes back to (SCR_EL3.NS).
    assert not signals_fiq(r.GROUP1, *EL3_NS)
    assert signals_fiq(r.GROUP1S, *EL3_NS)
    assert signals_fiq(r.GROUP1, *EL3)
    assert not signals_fiq(r.GROUP1S, *EL3)


@pytest.mark.parametrize("group, nonsecure, secure_el1", [
    (r.GROUP0, (False, True), (False, True)),
    (r.GROUP1S, (False, True), (True, False)),
    (r.GROUP1, (True, False), (False, True)),
])
def test_each_group_signals_irq_or_fiq_by_the_pe_state(group, nonsecure, secure_el1):
    gic, pes, changes = ready()
    spi(gic, pes, group=group)
    assert changes == [0]
    assert lines(gic, pes, NONSECURE_EL1) == nonsecure
    # The PE changed state without touching the GIC: asking again works it out again.
    assert lines(gic, pes, SECURE_EL1) == secure_el1
    assert lines(gic, pes, (3, r.SCR_EL3_FIQ | NS)) == (False, True)


def test_non_secure_group1_reaches_linux_as_irq_after_el3_returns():
    """TF-A without a Secure payload: SCR_EL3.IRQ = FIQ = 0. A Non-secure interrupt
    arriving while a PE is in BL31 (SCR_EL3.NS = 1) is an IRQ, so the same slice's
    ERET to Linux takes an IRQ, not an FIQ."""
    gic, pes, changes = ready()
    as_state(pes, EL3_NS)
    spi(gic, pes, group=r.GROUP1)
    as_state(pes, EL3_NS)
    assert (gic.irq_pending(0), gic.fiq_pending(0)) == (True, False)


def test_group_enables_of_each_group():
    gic, pes, changes = ready()
    spi(gic, pes, group=r.GROUP1S)
    assert gic.wake_pending(0)
    # The Distributor's EnableGrp1S, then the CPU interface's (ICC_IGRPEN1_EL3[1]).
    dwrite(gic, pes, r.GICD_CTLR, ALL_GROUPS & ~r.GICD_CTLR_ENABLE_GRP1S, EL3)
    assert not gic.wake_pending(0)
    # Group 0's enables do not let a Secure Group 1 interrupt through.
    dwrite(gic, pes, r.GICD_CTLR, r.GICD_CTLR_ENABLE_GRP0, EL3)
    assert not gic.wake_pending(0)
    dwrite(gic, pes, r.GICD_CTLR, ALL_GROUPS, EL3)
    assert gic.wake_pending(0)
    icc_write(gic, pes, r.ICC_IGRPEN1_EL3, r.ICC_IGRPEN1_EL3_GRP1NS, EL3)
    assert not gic.wake_pending(0)
    # Secure EL1's ICC_IGRPEN1_EL1 is the Secure copy.
    icc_write(gic, pes, r.ICC_IGRPEN1_EL1, 1, SECURE_EL1)
    assert gic.wake_pending(0)
    assert icc_read(gic, pes, r.ICC_IGRPEN1_EL3, EL3) == (r.ICC_IGRPEN1_EL3_GRP1NS
                                                         | r.ICC_IGRPEN1_EL3_GRP1S)
    # Non-secure EL1's is the Non-secure copy.
    icc_write(gic, pes, r.ICC_IGRPEN1_EL1, 0, NONSECURE_EL1)
    assert icc_read(gic, pes, r.ICC_IGRPEN1_EL3, EL3) == r.ICC_IGRPEN1_EL3_GRP1S
    assert gic.wake_pending(0)


# --------------------------------------------------------------- CPU interface

def test_iar1_gives_each_group1_to_its_own_state():
    gic, pes, _ = ready()
    spi(gic, pes, group=r.GROUP1S)
    assert icc_read(gic, pes, r.ICC_HPPIR1_EL1, NONSECURE_EL1) == r.INTID_SPURIOUS
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, NONSECURE_EL1) == r.INTID_SPURIOUS
    assert icc_read(gic, pes, r.ICC_IAR0_EL1, NONSECURE_EL1) == r.INTID_SPURIOUS
    assert icc_read(gic, pes, r.ICC_HPPIR1_EL1, SECURE_EL1) == SPI
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, SECURE_EL1) == SPI
    assert icc_read(gic, pes, r.ICC_AP1R0_EL1, SECURE_EL1) == 1 << (0x40 >> r.APR_SHIFT)
    assert icc_read(gic, pes, r.ICC_AP1R0_EL1, NONSECURE_EL1) == 0
    assert icc_read(gic, pes, r.ICC_RPR_EL1, SECURE_EL1) == 0x40


def test_secure_el1_does_not_take_non_secure_group1_but_el3_does():
    gic, pes, _ = ready()
    spi(gic, pes, group=r.GROUP1)
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, SECURE_EL1) == r.INTID_SPURIOUS
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, EL3) == SPI
    # The active priority is the Non-secure Group 1 one, whichever copy EL3 named.
    assert icc_read(gic, pes, r.ICC_AP1R0_EL1, EL3_NS) == 1 << (0x40 >> r.APR_SHIFT)


def test_iar0_at_el3_reports_group1_without_acknowledging():
    gic, pes, _ = ready()
    spi(gic, pes, group=r.GROUP1)
    assert icc_read(gic, pes, r.ICC_HPPIR0_EL1, EL3) == r.INTID_NONSECURE
    assert icc_read(gic, pes, r.ICC_IAR0_EL1, EL3) == r.INTID_NONSECURE
    assert icc_read(gic, pes, r.ICC_RPR_EL1, EL3) == r.IDLE_PRIORITY
    assert icc_read(gic, pes, r.ICC_IAR0_EL1, SECURE_EL1) == r.INTID_SPURIOUS
    gic2, pes2, _ = ready()
    spi(gic2, pes2, group=r.GROUP1S)
    assert icc_read(gic2, pes2, r.ICC_IAR0_EL1, EL3) == r.INTID_SECURE
    gic3, pes3, _ = ready()
    spi(gic3, pes3, group=r.GROUP0)
    assert icc_read(gic3, pes3, r.ICC_IAR0_EL1, NONSECURE_EL1) == r.INTID_SPURIOUS
    assert icc_read(gic3, pes3, r.ICC_IAR0_EL1, SECURE_EL1) == SPI


def test_eoi_of_a_secure_interrupt_needs_secure_state():
    gic, pes, _ = ready()
    spi(gic, pes, group=r.GROUP1S)
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, EL3) == SPI
    active = word_bit(r.GICD_ISACTIVER, SPI)
    icc_write(gic, pes, r.ICC_EOIR1_EL1, SPI, NONSECURE_EL1)
    assert icc_read(gic, pes, r.ICC_RPR_EL1, EL3) == 0x40
    assert dread(gic, pes, active[0], EL3) == active[1]
    icc_write(gic, pes, r.ICC_EOIR1_EL1, SPI, SECURE_EL1)
    assert icc_read(gic, pes, r.ICC_RPR_EL1, EL3) == r.IDLE_PRIORITY
    assert dread(gic, pes, active[0], EL3) == 0


def test_eoi_of_non_secure_group1_from_secure_el1_is_ignored():
    gic, pes, _ = ready()
    spi(gic, pes, group=r.GROUP1)
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, NONSECURE_EL1) == SPI
    icc_write(gic, pes, r.ICC_EOIR1_EL1, SPI, SECURE_EL1)
    assert icc_read(gic, pes, r.ICC_RPR_EL1, NONSECURE_EL1) == 0x40
    icc_write(gic, pes, r.ICC_EOIR1_EL1, SPI, EL3_NS)          # EL3 may
    assert icc_read(gic, pes, r.ICC_RPR_EL1, NONSECURE_EL1) == r.IDLE_PRIORITY


def test_banked_ctlr_and_eoimode_el3():
    gic, pes, _ = ready()
    # ICC_CTLR_EL1: EOImode per copy; CBPR is EL3's (ICC_CTLR_EL3) with DS = 0.
    icc_write(gic, pes, r.ICC_CTLR_EL1, r.ICC_CTLR_EOIMODE | r.ICC_CTLR_CBPR, NONSECURE_EL1)
    assert icc_read(gic, pes, r.ICC_CTLR_EL1, NONSECURE_EL1) & 0b11 == r.ICC_CTLR_EOIMODE
    assert icc_read(gic, pes, r.ICC_CTLR_EL1, SECURE_EL1) & 0b11 == 0
    assert icc_read(gic, pes, r.ICC_CTLR_EL1, EL3_NS) & 0b11 == r.ICC_CTLR_EOIMODE
    icc_write(gic, pes, r.ICC_CTLR_EL3, r.ICC_CTLR_EL3_CBPR_EL1S | r.ICC_CTLR_EL3_EOIMODE_EL1S
              | r.ICC_CTLR_EL3_EOIMODE_EL3, EL3)
    assert icc_read(gic, pes, r.ICC_CTLR_EL1, SECURE_EL1) & 0b11 == (r.ICC_CTLR_CBPR
                                                                    | r.ICC_CTLR_EOIMODE)
    assert icc_read(gic, pes, r.ICC_CTLR_EL1, NONSECURE_EL1) & 0b11 == 0
    assert icc_read(gic, pes, r.ICC_CTLR_EL3, EL3) & 0x1F == (r.ICC_CTLR_EL3_CBPR_EL1S
                                                              | r.ICC_CTLR_EL3_EOIMODE_EL1S
                                                              | r.ICC_CTLR_EL3_EOIMODE_EL3)
    # EOImode_EL3: EL3's EOI drops the priority only; DIR deactivates.
    spi(gic, pes, group=r.GROUP0)
    assert icc_read(gic, pes, r.ICC_IAR0_EL1, EL3) == SPI
    icc_write(gic, pes, r.ICC_EOIR0_EL1, SPI, EL3)
    active = word_bit(r.GICD_ISACTIVER, SPI)
    assert dread(gic, pes, active[0], EL3) == active[1]
    icc_write(gic, pes, r.ICC_DIR_EL1, SPI, EL3)
    assert dread(gic, pes, active[0], EL3) == 0


def test_dir_from_non_secure_cannot_deactivate_a_secure_interrupt():
    gic, pes, _ = ready()
    icc_write(gic, pes, r.ICC_CTLR_EL3, r.ICC_CTLR_EL3_EOIMODE_EL1NS
              | r.ICC_CTLR_EL3_EOIMODE_EL3, EL3)
    spi(gic, pes, group=r.GROUP0)
    assert icc_read(gic, pes, r.ICC_IAR0_EL1, EL3) == SPI
    icc_write(gic, pes, r.ICC_EOIR0_EL1, SPI, EL3)
    active = word_bit(r.GICD_ISACTIVER, SPI)
    icc_write(gic, pes, r.ICC_DIR_EL1, SPI, NONSECURE_EL1)
    assert dread(gic, pes, active[0], EL3) == active[1]


def test_banked_bpr1():
    gic, pes, _ = ready()
    icc_write(gic, pes, r.ICC_BPR1_EL1, 0, NONSECURE_EL1)
    icc_write(gic, pes, r.ICC_BPR1_EL1, 0, SECURE_EL1)
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, NONSECURE_EL1) == r.MIN_BPR1
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, SECURE_EL1) == r.MIN_BPR0
    icc_write(gic, pes, r.ICC_BPR1_EL1, 5, EL3)                  # the Secure copy
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, SECURE_EL1) == 5
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, NONSECURE_EL1) == r.MIN_BPR1
    # CBPR_EL1NS: Non-secure reads BPR0 + 1 and cannot write; EL3 reaches the copy itself.
    icc_write(gic, pes, r.ICC_CTLR_EL3, r.ICC_CTLR_EL3_CBPR_EL1NS, EL3)
    icc_write(gic, pes, r.ICC_BPR0_EL1, 4, EL3)
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, NONSECURE_EL1) == 5
    icc_write(gic, pes, r.ICC_BPR1_EL1, 7, NONSECURE_EL1)
    assert icc_read(gic, pes, r.ICC_BPR1_EL1, EL3_NS) == r.MIN_BPR1


def test_non_secure_cannot_write_the_non_secure_ap1r0():
    gic, pes, _ = ready()
    icc_write(gic, pes, r.ICC_AP1R0_EL1, 1, NONSECURE_EL1)
    assert icc_read(gic, pes, r.ICC_AP1R0_EL1, NONSECURE_EL1) == 0
    icc_write(gic, pes, r.ICC_AP1R0_EL1, 1, SECURE_EL1)
    assert icc_read(gic, pes, r.ICC_AP1R0_EL1, SECURE_EL1) == 1
    assert icc_read(gic, pes, r.ICC_RPR_EL1, NONSECURE_EL1) == 0


def test_pmr_non_secure_view_when_el3_keeps_group0():
    gic, pes, _ = ready(pmr=0xF0)
    taking_fiqs = (1, NS | r.SCR_EL3_FIQ)
    assert icc_read(gic, pes, r.ICC_PMR_EL1, taking_fiqs) == 0xE0
    assert icc_read(gic, pes, r.ICC_PMR_EL1, NONSECURE_EL1) == 0xF0
    icc_write(gic, pes, r.ICC_PMR_EL1, 0x40, taking_fiqs)
    assert icc_read(gic, pes, r.ICC_PMR_EL1, EL3) == 0xA0
    icc_write(gic, pes, r.ICC_PMR_EL1, 0x40, EL3)                # a Secure mask
    icc_write(gic, pes, r.ICC_PMR_EL1, 0xF8, taking_fiqs)        # stays
    assert icc_read(gic, pes, r.ICC_PMR_EL1, EL3) == 0x40
    assert icc_read(gic, pes, r.ICC_PMR_EL1, taking_fiqs) == 0


# ------------------------------------------------------------------------ SGIs

def sgi_setup(gic, pes, target=1):
    """On `target`: SGI 1 Group 0, SGI 2 Secure Group 1, SGI 3 Non-secure Group 1, all enabled."""
    rwrite(gic, pes, SGI + r.GICR_IGROUPR0, 1 << 3, EL3, frame=target)
    rwrite(gic, pes, SGI + r.GICR_IGRPMODR0, 1 << 2, EL3, frame=target)
    rwrite(gic, pes, SGI + r.GICR_ISENABLER0, 0b1110, EL3, frame=target)


def send(gic, pes, reg, intid, state, target=1):
    icc_write(gic, pes, reg, (intid << r.SGIR_INTID_SHIFT) | (1 << target), state)


def pending_sgis(gic, pes, target=1):
    return rread(gic, pes, SGI + r.GICR_ISPENDR0, EL3, frame=target)


@pytest.mark.parametrize("reg, state, delivered", [
    # SGI1R: the sender's own Group 1; Secure Group 1 requests also reach Group 0 SGIs.
    (r.ICC_SGI1R_EL1, NONSECURE_EL1, 0b1000),
    (r.ICC_SGI1R_EL1, SECURE_EL1, 0b0110),
    (r.ICC_SGI1R_EL1, EL3_NS, 0b0110),
    # ASGI1R: the other state's Group 1.
    (r.ICC_ASGI1R_EL1, SECURE_EL1, 0b1000),
    (r.ICC_ASGI1R_EL1, NONSECURE_EL1, 0),          # Secure Group 1 needs NSACR >= 2
    # SGI0R: Group 0; a Non-secure sender needs NSACR >= 1.
    (r.ICC_SGI0R_EL1, SECURE_EL1, 0b0010),
    (r.ICC_SGI0R_EL1, NONSECURE_EL1, 0),
])
def test_sgi_forwarding(reg, state, delivered):
    gic, pes, _ = ready()
    sgi_setup(gic, pes)
    for intid in (1, 2, 3):
        send(gic, pes, reg, intid, state)
    assert pending_sgis(gic, pes) == delivered


def test_gicr_nsacr_lets_non_secure_send_secure_sgis():
    gic, pes, _ = ready()
    sgi_setup(gic, pes)
    rwrite(gic, pes, SGI + r.GICR_NSACR, (1 << 2) | (1 << 4), EL3, frame=1)   # SGI 1: 1, 2: 1
    send(gic, pes, r.ICC_SGI0R_EL1, 1, NONSECURE_EL1)
    send(gic, pes, r.ICC_ASGI1R_EL1, 2, NONSECURE_EL1)
    assert pending_sgis(gic, pes) == 0b0010
    rwrite(gic, pes, SGI + r.GICR_NSACR, (1 << 2) | (2 << 4), EL3, frame=1)
    send(gic, pes, r.ICC_ASGI1R_EL1, 2, NONSECURE_EL1)
    assert pending_sgis(gic, pes) == 0b0110


# ------------------------------------------------------------------- snapshots

def test_snapshot_keeps_the_security_state():
    gic, pes, _ = ready()
    sgi_setup(gic, pes)
    spi(gic, pes, group=r.GROUP1S)
    dwrite(gic, pes, r.GICD_NSACR + 4 * (SPI // 16), 0x30, EL3)
    rwrite(gic, pes, SGI + r.GICR_NSACR, 0x14, EL3, frame=1)
    icc_write(gic, pes, r.ICC_CTLR_EL3, r.ICC_CTLR_EL3_EOIMODE_EL1S | r.ICC_CTLR_EL3_EOIMODE_EL3,
              EL3)
    icc_write(gic, pes, r.ICC_BPR1_EL1, 6, SECURE_EL1)
    assert icc_read(gic, pes, r.ICC_IAR1_EL1, SECURE_EL1) == SPI
    state = gic.save_state()
    other, opes, _ = make()
    other.restore_state(state)
    for offset in (r.GICD_CTLR, word_bit(r.GICD_IGRPMODR, SPI)[0],
                   r.GICD_NSACR + 4 * (SPI // 16)):
        assert dread(other, opes, offset, EL3) == dread(gic, pes, offset, EL3)
    for reg in (r.GICR_IGROUPR0, r.GICR_IGRPMODR0, r.GICR_NSACR):
        assert rread(other, opes, SGI + reg, EL3, frame=1) == rread(gic, pes, SGI + reg, EL3,
                                                                    frame=1)
    for reg, state_ in ((r.ICC_CTLR_EL3, EL3), (r.ICC_BPR1_EL1, SECURE_EL1),
                        (r.ICC_AP1R0_EL1, SECURE_EL1), (r.ICC_IGRPEN1_EL3, EL3)):
        assert icc_read(other, opes, reg, state_) == icc_read(gic, pes, reg, state_)
    assert other.save_state() == gic.save_state()


def test_snapshots_from_before_the_security_extensions_restore():
    one = GicV3(2, mpidr_affinity)
    one.distributor_write(r.GICD_CTLR, 4, r.GICD_CTLR_ENABLE_GRP1, 0)
    one.icc_write(0, r.ICC_IGRPEN1_EL3, r.ICC_IGRPEN1_EL3_GRP1S | r.ICC_IGRPEN1_EL3_GRP1NS)
    state = one.save_state()
    # What a snapshot taken before grpmod, nsacr and the banked registers holds.
    for bank in [state["distributor"]["spi"]] + [p["bank"] for p in state["redistributors"]]:
        del bank["grpmod"], bank["nsacr"]
    for cif in state["cpu_interfaces"]:
        cif["grp1s"] = cif["igrpen"][2]
        cif["igrpen"] = cif["igrpen"][:2]
        cif["apr"] = cif["apr"][:2]
        del cif["bpr1_s"], cif["ctlr_s"]
    again = GicV3(2, mpidr_affinity)
    again.restore_state(state)
    assert again.save_state() == one.save_state()
    assert again.icc_read(0, r.ICC_IGRPEN1_EL3) == (r.ICC_IGRPEN1_EL3_GRP1S
                                                   | r.ICC_IGRPEN1_EL3_GRP1NS)


def test_snapshot_of_the_other_kind_of_gic_is_refused():
    one = GicV3(2, mpidr_affinity)
    two, _, _ = make()
    with pytest.raises(ValueError, match="Security state"):
        two.restore_state(one.save_state())
    with pytest.raises(ValueError, match="Security state"):
        one.restore_state(two.save_state())
