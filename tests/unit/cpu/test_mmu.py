"""walk_stage1 on page tables built in a bytearray (RAM at 0x40000000)."""

from __future__ import annotations

import pytest

from armvisor.cpu import syndrome as S
from armvisor.cpu.mmu import Access, Stage1Regs, WalkResult, translate_va, walk_stage1

RAM_BASE = 0x4000_0000
RAM_SIZE = 16 << 20

# Descriptor bits (Arm ARM D8), written out here rather than imported.
AF = 1 << 10
AP_EL0 = 1 << 6
AP_RO = 1 << 7
DBM = 1 << 51
PXN = 1 << 53
UXN = 1 << 54
T_PXN = 1 << 59
T_UXN = 1 << 60
T_AP_NO_EL0 = 1 << 61
T_AP_RO = 1 << 62

# granule name -> (page shift, TG0 encoding, TG1 encoding)
GRANULES = {"4k": (12, 0b00, 0b10), "16k": (14, 0b10, 0b01), "64k": (16, 0b01, 0b11)}
# (page shift, VA bits) -> first lookup level, from the Arm ARM's tables of walk start levels.
START_LEVEL = {(12, 48): 0, (12, 39): 1, (12, 30): 2, (14, 48): 0, (14, 47): 1, (14, 36): 2,
               (16, 48): 1, (16, 42): 2, (16, 29): 3}


class Ram:
    def __init__(self) -> None:
        self.mem = bytearray(RAM_SIZE)
        self.next_table = RAM_BASE + RAM_SIZE // 2     # tables in the upper half
        self.reads: list[int] = []

    def read64(self, pa: int) -> int:
        off = pa - RAM_BASE
        if not 0 <= off <= RAM_SIZE - 8:
            raise IndexError(f"{pa:#x} outside RAM")
        self.reads.append(pa)
        return int.from_bytes(self.mem[off:off + 8], "little")

    def write64(self, pa: int, value: int) -> None:
        off = pa - RAM_BASE
        self.mem[off:off + 8] = value.to_bytes(8, "little")

    def alloc(self, size: int) -> int:
        size = max(size, 64)
        pa = (self.next_table + size - 1) & ~(size - 1)
        self.next_table = pa + size
        return pa


class Tables:
    """One translation table tree (for TTBR0 or TTBR1)."""

    def __init__(self, ram: Ram, shift: int, va_bits: int) -> None:
        self.ram, self.g, self.va_bits = ram, shift, va_bits
        self.stride = shift - 3
        self.start = START_LEVEL[(shift, va_bits)]
        self.root = ram.alloc(8 << (va_bits - self.level_shift(self.start)))

    def level_shift(self, level: int) -> int:
        return self.g + self.stride * (3 - level)

    def index(self, va: int, level: int) -> int:
        width = self.va_bits - self.level_shift(level) if level == self.start else self.stride
        return (va >> self.level_shift(level)) & ((1 << width) - 1)

    def map(self, va: int, pa: int, leaf_level: int = 3, attrs: int = AF,
            table_attrs: dict[int, int] | None = None) -> dict[int, int]:
        """Map va -> pa with a leaf at leaf_level; return {level: descriptor address}."""
        table_attrs = table_attrs or {}
        slots: dict[int, int] = {}
        table = self.root
        for level in range(self.start, leaf_level):
            slot = table + 8 * self.index(va, level)
            slots[level] = slot
            desc = self.ram.read64(slot)
            if not desc & 1:
                nxt = self.ram.alloc(1 << self.g)
                desc = nxt | 0b11
            desc |= table_attrs.get(level, 0)
            self.ram.write64(slot, desc)
            table = desc & ((1 << 48) - 1) & ~((1 << self.g) - 1)
        slot = table + 8 * self.index(va, leaf_level)
        slots[leaf_level] = slot
        self.ram.write64(slot, pa | attrs | (0b11 if leaf_level == 3 else 0b01))
        self.ram.reads.clear()          # only the walk's own reads count
        return slots


def make_tcr(granule: str = "4k", t0sz: int = 16, t1sz: int = 16, ips: int = 0b101, extra: int = 0) -> int:
    _, tg0, tg1 = GRANULES[granule]
    return t0sz | (tg0 << 14) | (t1sz << 16) | (tg1 << 30) | (ips << 32) | extra


def regs_for(tcr: int, ttbr0: int = 0, ttbr1: int = 0, sctlr: int = 1, pan: bool = False) -> Stage1Regs:
    return Stage1Regs(sctlr=sctlr, tcr=tcr, ttbr0=ttbr0, ttbr1=ttbr1, pan=pan)


def walk(va: int, access: Access, el: int, regs: Stage1Regs, ram: Ram, **kw) -> WalkResult:
    return walk_stage1(va, access, el, regs, ram.read64, **kw)


def expect_fault(res: WalkResult, fsc: int, level: int) -> None:
    assert not res.ok, res
    assert (res.fsc, res.level) == (fsc, level), res
    assert res.reason


# ---------------------------------------------------------------- translations

@pytest.mark.parametrize("granule,va_bits", [("4k", 48), ("4k", 39), ("4k", 30), ("16k", 48), ("16k", 47),
                                             ("16k", 36), ("64k", 48), ("64k", 42), ("64k", 29)])
def test_page_translation_ttbr0(granule: str, va_bits: int) -> None:
    shift = GRANULES[granule][0]
    ram = Ram()
    t = Tables(ram, shift, va_bits)
    va = (0x5A5A_5A5A_5A5A << shift) & ((1 << va_bits) - 1) | 0x123
    page_pa = RAM_BASE + (3 << shift)
    t.map(va, page_pa)
    regs = regs_for(make_tcr(granule, t0sz=64 - va_bits), ttbr0=t.root)
    res = walk(va, Access.READ, 1, regs, ram)
    assert res.ok and res.pa == page_pa + 0x123 and res.level == 3 and res.block_size == 1 << shift
    # The walk started at the expected level: one read per level.
    assert len(ram.reads) == 4 - t.start
    assert translate_va(va, regs, ram.read64) == page_pa + 0x123


@pytest.mark.parametrize("granule", ["4k", "16k", "64k"])
def test_page_translation_ttbr1(granule: str) -> None:
    shift = GRANULES[granule][0]
    ram = Ram()
    t = Tables(ram, shift, 48)
    va = 0xFFFF_8000_0000_0000 | (7 << shift) | 0x10
    t.map(va, RAM_BASE + (1 << shift))
    regs = regs_for(make_tcr(granule), ttbr1=t.root)
    res = walk(va, Access.WRITE, 1, regs, ram)
    assert res.ok and res.pa == RAM_BASE + (1 << shift) + 0x10


def test_tg0_and_tg1_encodings_differ() -> None:
    ram = Ram()
    t = Tables(ram, 16, 48)                         # 64K tables
    va_hi = 0xFFFF_0000_1234_0000
    t.map(va_hi, RAM_BASE)
    # TG1 = 0b11 is 64K; the TG0 encoding of 64K (0b01) in TG1 means 16K and the walk goes astray.
    good = regs_for(make_tcr("64k"), ttbr1=t.root)
    assert walk(va_hi, Access.READ, 1, good, ram).pa == RAM_BASE
    wrong = regs_for(make_tcr("64k") & ~(3 << 30) | (0b01 << 30), ttbr1=t.root)
    assert walk(va_hi, Access.READ, 1, wrong, ram).pa != RAM_BASE


@pytest.mark.parametrize("granule,level", [("4k", 1), ("4k", 2), ("16k", 2), ("64k", 2)])
def test_block_translation(granule: str, level: int) -> None:
    shift = GRANULES[granule][0]
    ram = Ram()
    t = Tables(ram, shift, 48)
    block = 1 << t.level_shift(level)
    va = 3 * block + 0x1234
    pa_base = 0x8000_0000 if block > (1 << 30) else RAM_BASE
    t.map(va, pa_base, leaf_level=level, attrs=AF)
    res = walk(va, Access.READ, 1, regs_for(make_tcr(granule), ttbr0=t.root), ram)
    assert res.ok and res.pa == pa_base + 0x1234 and res.level == level and res.block_size == block


@pytest.mark.parametrize("granule,level", [("4k", 0), ("16k", 1), ("64k", 1)])
def test_block_not_allowed(granule: str, level: int) -> None:
    ram = Ram()
    t = Tables(ram, GRANULES[granule][0], 48)
    t.map(0x1000, 0, leaf_level=level)
    res = walk(0x1000, Access.READ, 1, regs_for(make_tcr(granule), ttbr0=t.root), ram)
    expect_fault(res, S.fsc_translation(level), level)


def test_mmu_off_is_identity() -> None:
    ram = Ram()
    regs = regs_for(make_tcr(), sctlr=0)
    res = walk(0x4000_1234, Access.EXEC, 1, regs, ram)
    assert res.ok and res.pa == 0x4000_1234 and not ram.reads
    expect_fault(walk(1 << 50, Access.READ, 1, regs, ram), S.FSC_ADDR_SIZE_L0, 0)


# ---------------------------------------------------------------- translation faults

@pytest.mark.parametrize("granule", ["4k", "16k", "64k"])
def test_invalid_descriptor_each_level(granule: str) -> None:
    shift = GRANULES[granule][0]
    for victim in range(START_LEVEL[(shift, 48)], 4):
        ram = Ram()
        t = Tables(ram, shift, 48)
        va = 0x0000_1234_5678_0000 & ~((1 << shift) - 1)
        slots = t.map(va, RAM_BASE)
        ram.write64(slots[victim], 0)
        res = walk(va, Access.READ, 0, regs_for(make_tcr(granule), ttbr0=t.root), ram)
        expect_fault(res, S.FSC_TRANSLATION_L0 + victim, victim)


def test_reserved_level3_encoding() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    slots = t.map(0x2000, RAM_BASE)
    ram.write64(slots[3], RAM_BASE | AF | 0b01)
    expect_fault(walk(0x2000, Access.READ, 1, regs_for(make_tcr(), ttbr0=t.root), ram), 0x07, 3)


@pytest.mark.parametrize("va", [0x0001_0000_0000_0000, 0x8000_0000_0000_0000, 0xFFFE_FFFF_FFFF_F000,
                                0x00FF_FFFF_FFFF_0000])
def test_va_outside_both_ranges(va: int) -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    regs = regs_for(make_tcr(), ttbr0=t.root, ttbr1=t.root)
    expect_fault(walk(va, Access.READ, 1, regs, ram), S.FSC_TRANSLATION_L0, 0)
    assert not ram.reads


def test_smaller_va_range_bounds() -> None:
    ram = Ram()
    t = Tables(ram, 12, 39)
    t.map(0x7F_FFFF_F000, RAM_BASE)
    regs = regs_for(make_tcr(t0sz=25), ttbr0=t.root)
    assert walk(0x7F_FFFF_F008, Access.READ, 1, regs, ram).pa == RAM_BASE + 8
    expect_fault(walk(0x80_0000_0000, Access.READ, 1, regs, ram), 0x04, 0)


def test_epd_disables_walks() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x1000, RAM_BASE)
    t.map(0xFFFF_0000_0000_1000, RAM_BASE)
    base = make_tcr()
    assert walk(0x1000, Access.READ, 1, regs_for(base, t.root, t.root), ram).ok
    expect_fault(walk(0x1000, Access.READ, 1, regs_for(base | (1 << 7), t.root, t.root), ram), 0x04, 0)
    expect_fault(walk(0xFFFF_0000_0000_1000, Access.READ, 1, regs_for(base | (1 << 23), t.root, t.root), ram),
                 0x04, 0)
    assert walk(0xFFFF_0000_0000_1000, Access.READ, 1, regs_for(base | (1 << 7), t.root, t.root), ram).ok


def test_e0pd_blocks_el0_only() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    va = 0xFFFF_0000_0000_1000
    t.map(va, RAM_BASE, attrs=AF | AP_EL0)
    regs = regs_for(make_tcr(extra=1 << 56), ttbr1=t.root)
    expect_fault(walk(va, Access.READ, 0, regs, ram), 0x04, 0)
    assert walk(va, Access.READ, 1, regs, ram).ok


def test_top_byte_ignore() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x5000, RAM_BASE, attrs=AF)
    tagged = 0xAB00_0000_0000_5008
    no_tbi = regs_for(make_tcr(), ttbr0=t.root)
    tbi = regs_for(make_tcr(extra=1 << 37), ttbr0=t.root)
    tbi_data_only = regs_for(make_tcr(extra=(1 << 37) | (1 << 51)), ttbr0=t.root)
    expect_fault(walk(tagged, Access.READ, 1, no_tbi, ram), 0x04, 0)
    assert walk(tagged, Access.READ, 1, tbi, ram).pa == RAM_BASE + 8
    assert walk(tagged, Access.EXEC, 1, tbi, ram).ok
    assert walk(tagged, Access.WRITE, 1, tbi_data_only, ram).ok
    expect_fault(walk(tagged, Access.EXEC, 1, tbi_data_only, ram), 0x04, 0)
    # TBI1 governs the upper half, TBI0 does not.
    t.map(0xFFFF_0000_0000_6000, RAM_BASE)
    up_tagged = 0x12FF_0000_0000_6000
    expect_fault(walk(up_tagged, Access.READ, 1, regs_for(make_tcr(extra=1 << 37), t.root, t.root), ram), 4, 0)
    assert walk(up_tagged, Access.READ, 1, regs_for(make_tcr(extra=1 << 38), t.root, t.root), ram).ok


# ---------------------------------------------------------------- external abort, address size

def test_external_abort_on_walk() -> None:
    ram = Ram()
    regs = regs_for(make_tcr(), ttbr0=0x1000_0000)                   # root outside RAM
    expect_fault(walk(0x1000, Access.READ, 1, regs, ram), 0x14, 0)
    t = Tables(ram, 12, 48)
    slots = t.map(0x1000, RAM_BASE)
    ram.write64(slots[1], 0x2000_0000 | 0b11)                         # level-2 table outside RAM
    expect_fault(walk(0x1000, Access.READ, 1, regs_for(make_tcr(), ttbr0=t.root), ram), 0x16, 2)


def test_address_size_faults() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    slots = t.map(0x1000, RAM_BASE)
    ips32 = make_tcr(ips=0b000)
    expect_fault(walk(0x1000, Access.READ, 1, regs_for(ips32, ttbr0=1 << 40), ram), 0x00, 0)
    assert walk(0x1000, Access.READ, 1, regs_for(ips32, ttbr0=t.root), ram).ok
    ram.write64(slots[3], (1 << 36) | AF | 0b11)                       # page beyond 32-bit PA
    expect_fault(walk(0x1000, Access.READ, 1, regs_for(ips32, ttbr0=t.root), ram), 0x03, 3)
    assert walk(0x1000, Access.READ, 1, regs_for(make_tcr(), ttbr0=t.root), ram).pa == 1 << 36


# ---------------------------------------------------------------- access flag

@pytest.mark.parametrize("granule,level", [("4k", 3), ("4k", 2), ("4k", 1), ("16k", 3), ("16k", 2),
                                           ("64k", 3), ("64k", 2)])
def test_access_flag_fault(granule: str, level: int) -> None:
    ram = Ram()
    t = Tables(ram, GRANULES[granule][0], 48)
    t.map(0x4000_0000, RAM_BASE, leaf_level=level, attrs=AP_RO)          # AF clear, read-only
    regs = regs_for(make_tcr(granule), ttbr0=t.root)
    # Access flag is checked before permissions (QEMU/Unicorn order).
    for access in (Access.READ, Access.WRITE):
        expect_fault(walk(0x4000_0000, access, 1, regs, ram), S.fsc_access_flag(level), level)
    # With hardware AF update the walk succeeds.
    ha = regs_for(make_tcr(granule, extra=1 << 39), ttbr0=t.root)
    assert walk(0x4000_0000, Access.READ, 1, ha, ram).ok
    assert translate_va(0x4000_0000, regs, ram.read64) == RAM_BASE


# ---------------------------------------------------------------- permissions

PERM_CASES = [
    # (leaf attrs, table attrs at level 2, el, access, pan, wxn, allowed)
    (AF, 0, 1, Access.READ, False, False, True),
    (AF, 0, 1, Access.WRITE, False, False, True),
    (AF, 0, 0, Access.READ, False, False, False),          # AP=00: no EL0 access
    (AF | AP_RO, 0, 1, Access.WRITE, False, False, False),
    (AF | AP_RO, 0, 1, Access.READ, False, False, True),
    (AF | AP_RO | AP_EL0, 0, 0, Access.READ, False, False, True),
    (AF | AP_RO | AP_EL0, 0, 0, Access.WRITE, False, False, False),
    (AF | AP_EL0, 0, 0, Access.WRITE, False, False, True),
    (AF | AP_EL0 | PXN, 0, 0, Access.EXEC, False, False, True),
    (AF | AP_EL0 | UXN, 0, 0, Access.EXEC, False, False, False),
    (AF, 0, 0, Access.EXEC, False, False, True),           # EL0 execute-only
    (AF | UXN, 0, 1, Access.EXEC, False, False, True),
    (AF | PXN, 0, 1, Access.EXEC, False, False, False),
    (AF | AP_EL0, 0, 1, Access.EXEC, False, False, False),  # EL0-writable: never EL1-executable
    (AF | AP_EL0 | AP_RO, 0, 1, Access.EXEC, False, False, True),
    # PAN
    (AF | AP_EL0, 0, 1, Access.READ, True, False, False),
    (AF | AP_EL0 | AP_RO, 0, 1, Access.READ, True, False, False),
    (AF | AP_EL0, 0, 1, Access.WRITE, True, False, False),
    (AF, 0, 1, Access.READ, True, False, True),
    (AF | AP_EL0, 0, 0, Access.READ, True, False, True),
    (AF | AP_EL0 | AP_RO, 0, 1, Access.EXEC, True, False, True),
    # WXN
    (AF, 0, 1, Access.EXEC, False, True, False),
    (AF | AP_RO, 0, 1, Access.EXEC, False, True, True),
    (AF | AP_EL0, 0, 0, Access.EXEC, False, True, False),
    (AF | AP_EL0 | AP_RO, 0, 0, Access.EXEC, False, True, True),
    # Hierarchical table attributes
    (AF, T_AP_RO, 1, Access.WRITE, False, False, False),
    (AF, T_AP_RO, 1, Access.READ, False, False, True),
    (AF | AP_EL0, T_AP_NO_EL0, 0, Access.READ, False, False, False),
    (AF | AP_EL0, T_AP_NO_EL0, 1, Access.READ, True, False, True),   # no longer EL0-accessible: PAN quiet
    (AF, T_UXN, 0, Access.EXEC, False, False, False),
    (AF, T_UXN, 1, Access.EXEC, False, False, True),
    (AF | AP_RO, T_PXN, 1, Access.EXEC, False, False, False),
    (AF | AP_RO | AP_EL0, T_PXN, 0, Access.EXEC, False, False, True),
]


@pytest.mark.parametrize("granule", ["4k", "64k"])
@pytest.mark.parametrize("attrs,tattrs,el,access,pan,wxn,allowed", PERM_CASES)
def test_permissions(granule: str, attrs: int, tattrs: int, el: int, access: Access, pan: bool,
                     wxn: bool, allowed: bool) -> None:
    ram = Ram()
    t = Tables(ram, GRANULES[granule][0], 48)
    va = 0x0000_0040_0000_0000 + 0x3000
    t.map(va, RAM_BASE + 0x10000, attrs=attrs, table_attrs={2: tattrs})
    sctlr = 1 | ((1 << 19) if wxn else 0)
    regs = regs_for(make_tcr(granule), ttbr0=t.root, sctlr=sctlr, pan=pan)
    res = walk(va, access, el, regs, ram)
    if allowed:
        assert res.ok, res
    else:
        expect_fault(res, 0x0F, 3)


def test_hpd_ignores_table_permissions() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x1000, RAM_BASE, attrs=AF | AP_EL0, table_attrs={1: T_AP_RO | T_UXN | T_AP_NO_EL0})
    regs = regs_for(make_tcr(), ttbr0=t.root)
    expect_fault(walk(0x1000, Access.WRITE, 0, regs, ram), 0x0F, 3)
    hpd = regs_for(make_tcr(extra=1 << 41), ttbr0=t.root)
    assert walk(0x1000, Access.WRITE, 0, hpd, ram).ok
    assert walk(0x1000, Access.EXEC, 0, hpd, ram).ok


@pytest.mark.parametrize("level", [1, 2])
def test_permission_fault_on_block(level: int) -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x8000_0000, 0x8000_0000, leaf_level=level, attrs=AF | AP_RO)
    expect_fault(walk(0x8000_0010, Access.WRITE, 1, regs_for(make_tcr(), ttbr0=t.root), ram),
                 S.fsc_permission(level), level)


def test_dirty_bit_modifier() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x1000, RAM_BASE, attrs=AF | AP_RO | DBM)
    expect_fault(walk(0x1000, Access.WRITE, 1, regs_for(make_tcr(), ttbr0=t.root), ram), 0x0F, 3)
    assert walk(0x1000, Access.WRITE, 1, regs_for(make_tcr(extra=1 << 40), ttbr0=t.root), ram).ok


def test_permission_flags_reported() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x1000, RAM_BASE, attrs=AF | AP_EL0 | AP_RO | UXN)
    res = walk(0x1000, Access.READ, 0, regs_for(make_tcr(), ttbr0=t.root), ram)
    assert res.ok and res.readable and not res.writable and not res.executable
    assert res.descriptor is not None and res.descriptor & AF


def test_walk_result_feeds_esr() -> None:
    ram = Ram()
    t = Tables(ram, 12, 48)
    t.map(0x1000, RAM_BASE, attrs=AF | AP_RO | AP_EL0)
    res = walk(0x1000, Access.WRITE, 0, regs_for(make_tcr(), ttbr0=t.root), ram)
    assert res.fsc is not None
    assert S.esr_data_abort(False, res.fsc, wnr=True) == 0x9200_004F
