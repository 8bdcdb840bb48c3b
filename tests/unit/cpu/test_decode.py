"""decode_memory_access against instructions assembled by aarch64-linux-gnu-as."""

from __future__ import annotations

import random

import pytest

from armvisor.cpu.decode import MemAccess, decode_memory_access
from armvisor.cpu.syndrome import IssInfo
try:
    from asm_helper import assemble, have_assembler
except ImportError:  # tests/unit as a package
    from .asm_helper import assemble, have_assembler

M64 = (1 << 64) - 1
SP = 0xFFFF_8000_1234_5000
PC = 0x4008_0000


def regs(**over: int) -> dict[int, int]:
    r = {n: 0x1_0000_0000 + n * 0x1_0010 for n in range(31)}
    r[31] = SP
    for k, v in over.items():
        r[int(k[1:])] = v & M64
    return r


R = regs()


def reader(rf: dict[int, int], calls: list[int] | None = None):
    def read_reg(n: int) -> int:
        assert 0 <= n <= 31
        if calls is not None:
            calls.append(n)
        return rf[n]
    return read_reg


# (assembly, register overrides, expected fields or None)
CASES: list[tuple[str, dict[str, int], dict | None]] = [
    # -- unsigned offset
    ("ldr x0, [x1, #8]", {}, dict(address=R[1] + 8, size=8, is_read=True, is_write=False, rt=0,
                                  is_64bit_dest=True, sign_extend=False, single_register_no_writeback=True)),
    ("ldr w2, [x3, #4]", {}, dict(address=R[3] + 4, size=4, rt=2, is_64bit_dest=False)),
    ("ldrb w0, [x1, #4095]", {}, dict(address=R[1] + 4095, size=1, is_read=True)),
    ("ldrh w7, [x1, #2]", {}, dict(address=R[1] + 2, size=2, rt=7)),
    ("ldrsb x0, [x1]", {}, dict(address=R[1], size=1, sign_extend=True, is_64bit_dest=True)),
    ("ldrsb w0, [x1]", {}, dict(address=R[1], size=1, sign_extend=True, is_64bit_dest=False)),
    ("ldrsh x5, [x6, #6]", {}, dict(address=R[6] + 6, size=2, sign_extend=True, rt=5)),
    ("ldrsw x0, [sp, #16]", {}, dict(address=SP + 16, size=4, sign_extend=True, is_64bit_dest=True, base_reg=31)),
    ("str x0, [sp, #8]", {}, dict(address=SP + 8, size=8, is_write=True, is_read=False)),
    ("strb wzr, [x1]", {}, dict(address=R[1], size=1, is_write=True, rt=31)),
    ("strh w3, [x4, #8190]", {}, dict(address=R[4] + 8190, size=2, is_write=True)),
    ("str q0, [x1, #32]", {}, dict(address=R[1] + 32, size=16, is_simd=True, is_write=True,
                                   single_register_no_writeback=False)),
    ("ldr b0, [x1, #1]", {}, dict(address=R[1] + 1, size=1, is_simd=True)),
    ("ldr h0, [x1, #2]", {}, dict(address=R[1] + 2, size=2, is_simd=True)),
    ("ldr s0, [x1, #4]", {}, dict(address=R[1] + 4, size=4, is_simd=True)),
    ("ldr d0, [x1, #8]", {}, dict(address=R[1] + 8, size=8, is_simd=True)),
    ("ldr q0, [x1, #65520]", {}, dict(address=R[1] + 65520, size=16, is_simd=True, is_read=True)),
    ("prfm pldl1keep, [x1]", {}, None),
    # -- unscaled immediate
    ("ldur x0, [x1, #-8]", {}, dict(address=R[1] - 8, size=8, single_register_no_writeback=True)),
    ("stur w0, [x1, #3]", {}, dict(address=R[1] + 3, size=4, is_write=True)),
    ("ldursw x0, [x1, #-1]", {}, dict(address=R[1] - 1, size=4, sign_extend=True)),
    ("ldur q1, [x2, #-16]", {}, dict(address=R[2] - 16, size=16, is_simd=True, rt=1)),
    ("ldur x0, [x1, #-256]", {"x1": 0x10}, dict(address=(0x10 - 256) & M64)),
    ("prfum pldl1keep, [x1, #1]", {}, None),
    # -- post-index: FAR is the base before the update
    ("ldr x0, [x1], #16", {}, dict(address=R[1], size=8, writeback=True, single_register_no_writeback=False)),
    ("str q0, [x1], #-16", {}, dict(address=R[1], size=16, is_write=True, writeback=True)),
    ("ldrb w0, [sp], #1", {}, dict(address=SP, size=1, writeback=True)),
    ("str b3, [x9], #255", {}, dict(address=R[9], size=1, is_simd=True, is_write=True)),
    # -- pre-index
    ("ldr x0, [x1, #-16]!", {}, dict(address=R[1] - 16, size=8, writeback=True)),
    ("str x0, [sp, #-16]!", {}, dict(address=SP - 16, is_write=True, writeback=True)),
    ("ldr d0, [x1, #8]!", {}, dict(address=R[1] + 8, size=8, is_simd=True)),
    ("ldrsh w2, [x3, #-2]!", {}, dict(address=R[3] - 2, size=2, sign_extend=True, is_64bit_dest=False)),
    # -- unprivileged
    ("ldtr x0, [x1, #8]", {}, dict(address=R[1] + 8, size=8, is_unprivileged=True,
                                   single_register_no_writeback=True)),
    ("sttrb w0, [x1, #-1]", {}, dict(address=R[1] - 1, size=1, is_write=True, is_unprivileged=True)),
    ("ldtrsw x0, [x1]", {}, dict(address=R[1], size=4, sign_extend=True, is_unprivileged=True)),
    ("sttrh w5, [sp, #2]", {}, dict(address=SP + 2, size=2, is_write=True, is_unprivileged=True)),
    # -- register offset
    ("ldr x0, [x1, x2]", {}, dict(address=R[1] + R[2], size=8)),
    ("ldr x0, [x1, x2, lsl #3]", {}, dict(address=(R[1] + (R[2] << 3)) & M64)),
    ("ldr w0, [x1, w2, uxtw #2]", {"x2": 0xFFFF_FFFF_8000_0004},
     dict(address=R[1] + (0x8000_0004 << 2), size=4)),
    ("ldr w0, [x1, w2, sxtw]", {"x2": 0x1234_5678_FFFF_FFF0}, dict(address=R[1] - 16)),
    ("ldrh w0, [x1, w2, sxtw #1]", {"x2": 0xFFFF_FFFE}, dict(address=R[1] - 4, size=2)),
    ("ldrb w0, [x1, x2, sxtx]", {"x2": -5}, dict(address=R[1] - 5, size=1)),
    ("str q0, [x1, x2, lsl #4]", {"x2": 3}, dict(address=R[1] + 48, size=16, is_write=True)),
    ("ldr x0, [x1, xzr]", {}, dict(address=R[1])),
    ("ldr x0, [sp, x3]", {}, dict(address=(SP + R[3]) & M64)),
    ("ldrsw x0, [x1, w2, uxtw]", {"x2": 7}, dict(address=R[1] + 7, sign_extend=True)),
    ("prfm pldl1keep, [x1, x2]", {}, None),
    # -- literal (PC-relative)
    ("ldr x0, .+0x100", {}, dict(address=PC + 0x100, size=8, is_64bit_dest=True,
                                 single_register_no_writeback=True)),
    ("ldr w0, .-8", {}, dict(address=PC - 8, size=4, is_64bit_dest=False)),
    ("ldrsw x3, .+4", {}, dict(address=PC + 4, size=4, sign_extend=True, rt=3)),
    ("ldr q0, .+16", {}, dict(address=PC + 16, size=16, is_simd=True)),
    ("ldr s1, .-0x100000", {}, dict(address=PC - 0x100000, size=4, is_simd=True)),
    ("prfm pldl1keep, .+8", {}, None),
    # -- pairs
    ("ldp x0, x1, [x2, #16]", {}, dict(address=R[2] + 16, size=8, total_bytes=16, rt=0, rt2=1,
                                       is_pair=True, single_register_no_writeback=False)),
    ("stp x29, x30, [sp, #-32]!", {}, dict(address=SP - 32, size=8, is_write=True, writeback=True,
                                           rt=29, rt2=30)),
    ("ldp w0, w1, [x2], #8", {}, dict(address=R[2], size=4, total_bytes=8, writeback=True)),
    ("ldnp x0, x1, [x2, #-16]", {}, dict(address=R[2] - 16, size=8, writeback=False)),
    ("stnp q0, q1, [x2, #32]", {}, dict(address=R[2] + 32, size=16, total_bytes=32, is_simd=True,
                                        is_write=True)),
    ("ldpsw x0, x1, [x2, #8]", {}, dict(address=R[2] + 8, size=4, sign_extend=True, is_64bit_dest=True)),
    ("ldp d0, d1, [x2, #-8]!", {}, dict(address=R[2] - 8, size=8, is_simd=True, writeback=True)),
    ("stp s0, s1, [x2, #4]", {}, dict(address=R[2] + 4, size=4, is_simd=True, is_write=True)),
    ("stp q0, q1, [x2], #-1024", {}, dict(address=R[2], size=16, writeback=True)),
    ("stgp x0, x1, [x2, #32]", {}, dict(address=R[2] + 32, size=8, total_bytes=16, is_write=True,
                                        is_tag_access=True)),
    # -- exclusives
    ("ldxr x0, [x1]", {}, dict(address=R[1], size=8, is_exclusive=True, is_read=True,
                               single_register_no_writeback=False)),
    ("ldaxr w0, [x1]", {}, dict(address=R[1], size=4, is_acquire_release=True)),
    ("stxr w3, x0, [x1]", {}, dict(address=R[1], size=8, is_write=True, rs=3, rt=0)),
    ("stlxrb w3, w0, [x1]", {}, dict(address=R[1], size=1, is_write=True, is_acquire_release=True)),
    ("ldxrh w0, [sp]", {}, dict(address=SP, size=2)),
    ("ldxp x0, x1, [x2]", {}, dict(address=R[2], size=8, total_bytes=16, rt2=1, is_pair=True)),
    ("stlxp w5, w0, w1, [x2]", {}, dict(address=R[2], size=4, total_bytes=8, is_write=True, rs=5)),
    # -- load-acquire / store-release
    ("ldar x0, [x1]", {}, dict(address=R[1], size=8, is_acquire_release=True,
                               single_register_no_writeback=True)),
    ("stlr w0, [x1]", {}, dict(address=R[1], size=4, is_write=True, is_acquire_release=True)),
    ("ldarb w0, [x1]", {}, dict(size=1, is_read=True)),
    ("stlrh w0, [sp]", {}, dict(address=SP, size=2, is_write=True)),
    ("ldlar x0, [x1]", {}, dict(address=R[1], size=8, is_read=True)),
    ("ldapr x0, [x1]", {}, dict(address=R[1], size=8, is_read=True, is_write=False,
                                is_acquire_release=True, single_register_no_writeback=True)),
    ("ldaprb w0, [x1]", {}, dict(address=R[1], size=1, is_write=False)),
    ("ldapur x0, [x1, #-8]", {}, dict(address=R[1] - 8, size=8, is_acquire_release=True)),
    ("stlur w0, [x1, #5]", {}, dict(address=R[1] + 5, size=4, is_write=True)),
    ("ldapursb x0, [x1]", {}, dict(size=1, sign_extend=True, is_64bit_dest=True)),
    ("ldapursw x0, [x1, #4]", {}, dict(address=R[1] + 4, size=4, sign_extend=True)),
    ("ldapursh w0, [x1]", {}, dict(size=2, sign_extend=True, is_64bit_dest=False)),
    # -- LSE atomics: read and write
    ("ldadd x0, x1, [x2]", {}, dict(address=R[2], size=8, is_read=True, is_write=True,
                                    is_atomic=True, rs=0, rt=1, single_register_no_writeback=False)),
    ("ldaddal w0, w1, [sp]", {}, dict(address=SP, size=4, is_acquire_release=True)),
    ("ldclrb w0, w1, [x2]", {}, dict(size=1, is_write=True)),
    ("ldeorh w0, w1, [x2]", {}, dict(size=2, is_write=True)),
    ("ldsetl x0, x1, [x2]", {}, dict(size=8, is_acquire_release=True)),
    ("ldsmaxa w0, w1, [x2]", {}, dict(size=4, is_write=True)),
    ("ldsmin x0, x1, [x2]", {}, dict(size=8, is_write=True)),
    ("ldumaxb w0, w1, [x2]", {}, dict(size=1, is_write=True)),
    ("lduminh w0, w1, [x2]", {}, dict(size=2, is_write=True)),
    ("stadd x0, [x2]", {}, dict(address=R[2], size=8, is_write=True, rt=31)),
    ("swpal x0, x1, [x2]", {}, dict(address=R[2], size=8, is_read=True, is_write=True)),
    ("swpb w0, w1, [x3]", {}, dict(address=R[3], size=1)),
    ("cas x0, x1, [x2]", {}, dict(address=R[2], size=8, is_read=True, is_write=True, rs=0, rt=1)),
    ("casalb w0, w1, [x2]", {}, dict(size=1, is_acquire_release=True)),
    ("cash w0, w1, [sp]", {}, dict(address=SP, size=2)),
    ("casp x0, x1, x2, x3, [x4]", {}, dict(address=R[4], size=8, total_bytes=16, is_write=True, rt=2)),
    ("caspal w0, w1, w2, w3, [x4]", {}, dict(address=R[4], size=4, total_bytes=8)),
    # -- SIMD multiple structures
    ("ld1 {v0.16b}, [x0]", {}, dict(address=R[0], size=1, total_bytes=16, is_simd=True, is_read=True)),
    ("ld1 {v0.4s, v1.4s}, [x1], #32", {}, dict(address=R[1], size=4, total_bytes=32, writeback=True)),
    ("st4 {v0.8h-v3.8h}, [x2], x3", {}, dict(address=R[2], size=2, total_bytes=64, is_write=True)),
    ("ld3 {v0.2s-v2.2s}, [sp]", {}, dict(address=SP, size=4, total_bytes=24)),
    ("ld1 {v0.1d-v3.1d}, [x1]", {}, dict(size=8, total_bytes=32)),
    ("st2 {v4.2d, v5.2d}, [x1]", {}, dict(size=8, total_bytes=32, is_write=True, rt=4)),
    ("st1 {v0.8b-v2.8b}, [x1], #24", {}, dict(address=R[1], total_bytes=24, writeback=True)),
    # -- SIMD single structure and replicate
    ("ld1 {v0.b}[3], [x1]", {}, dict(address=R[1], size=1, total_bytes=1)),
    ("st1 {v0.s}[1], [x1], #4", {}, dict(address=R[1], size=4, total_bytes=4, is_write=True, writeback=True)),
    ("ld2 {v0.h, v1.h}[2], [x1]", {}, dict(size=2, total_bytes=4)),
    ("ld3 {v0.d-v2.d}[1], [x1], x2", {}, dict(address=R[1], size=8, total_bytes=24)),
    ("st4 {v0.s-v3.s}[0], [sp]", {}, dict(address=SP, size=4, total_bytes=16, is_write=True)),
    ("ld1r {v0.4s}, [x1]", {}, dict(size=4, total_bytes=4)),
    ("ld4r {v0.2d-v3.2d}, [x1], #32", {}, dict(size=8, total_bytes=32, writeback=True)),
    ("ld2r {v0.8b, v1.8b}, [x1]", {}, dict(size=1, total_bytes=2)),
    # -- DC / IC by VA
    ("dc zva, x1", {"x1": 0x4000_12F7}, dict(address=0x4000_12C0, size=64, is_write=True,
                                             is_cache_maintenance=False)),
    ("dc civac, x2", {"x2": 0x4000_0123}, dict(address=0x4000_0123, is_cache_maintenance=True,
                                               is_write=False)),
    ("dc cvac, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("dc cvau, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("dc ivac, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("dc cvap, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("dc cvadp, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("dc cigdvac, x3", {}, dict(address=R[3], is_cache_maintenance=True)),
    ("ic ivau, x4", {}, dict(address=R[4], is_cache_maintenance=True)),
    ("dc zva, xzr", {}, dict(address=0, is_write=True)),
    ("dc gva, x1", {"x1": 0x4000_12F7}, dict(address=0x4000_12C0, is_write=True, is_tag_access=True)),
    ("dc gzva, x1", {"x1": 0x4000_0040}, dict(address=0x4000_0040, is_write=True)),
    ("dc cisw, x1", {}, None),
    ("dc csw, x1", {}, None),
    ("ic iallu", {}, None),
    ("tlbi vmalle1", {}, None),
    ("tlbi vae1is, x0", {}, None),
    ("at s1e1r, x0", {}, None),
    # -- MTE tag loads/stores
    ("stg x0, [x1, #32]", {}, dict(address=R[1] + 32, size=16, is_write=True, is_tag_access=True)),
    ("stg x0, [x1], #16", {}, dict(address=R[1], writeback=True)),
    ("st2g x0, [x1, #-16]!", {}, dict(address=R[1] - 16, size=32, writeback=True)),
    ("stzg x0, [sp, #16]", {}, dict(address=SP + 16, size=16, is_write=True)),
    ("ldg x0, [x1, #16]", {"x1": 0x4000_0008}, dict(address=0x4000_0010, is_read=True, is_write=False)),
    ("stzgm x0, [x1]", {"x1": 0x4000_0048}, dict(address=0x4000_0040, is_write=True)),
    # -- pointer-authenticated loads
    ("ldraa x0, [x1, #8]", {}, dict(address=R[1] + 8, size=8, is_read=True, writeback=False)),
    ("ldrab x0, [x1, #-16]!", {}, dict(address=R[1] - 16, writeback=True)),
    # -- not memory accesses
    ("add x0, x1, x2", {}, None),
    ("nop", {}, None),
    ("b .", {}, None),
    ("svc #0", {}, None),
    ("mrs x0, midr_el1", {}, None),
    ("msr daifset, #2", {}, None),
    ("adrp x0, .", {}, None),
    ("ld1d {z0.d}, p0/z, [x0]", {}, None),
]


@pytest.fixture(scope="module")
def words() -> dict[str, int]:
    if not have_assembler():
        pytest.skip("aarch64-linux-gnu-as is not installed")
    lines = tuple(c[0] for c in CASES)
    return dict(zip(lines, assemble(lines)))


@pytest.mark.parametrize("asm,over,expected", CASES, ids=[c[0] for c in CASES])
def test_decode(words: dict[str, int], asm: str, over: dict[str, int], expected: dict | None) -> None:
    rf = regs(**over)
    dczid = 64
    got = decode_memory_access(words[asm], reader(rf), pc=PC, dczid_block_bytes=dczid)
    if expected is None:
        assert got is None
        return
    assert isinstance(got, MemAccess)
    for field, value in expected.items():
        if field == "address":
            value &= M64
        assert getattr(got, field) == value, f"{asm}: {field} = {getattr(got, field)!r}, want {value!r}"
    # Every access reads, writes, or maintains a cache.
    assert got.is_read or got.is_write
    assert got.total_bytes >= got.size > 0


def test_base_sp_only_reads_31(words: dict[str, int]) -> None:
    for asm in ("ldr x0, [x1, xzr]", "dc zva, xzr", "stadd x0, [x2]", "strb wzr, [x1]",
                "cas x0, x1, [x2]", "ldr x0, [sp, x3]"):
        calls: list[int] = []
        decode_memory_access(words[asm], reader(R, calls), pc=PC)
        assert (31 in calls) == ("sp" in asm), (asm, calls)


def test_dc_zva_block_size(words: dict[str, int]) -> None:
    rf = regs(x1=0x4000_12F7)
    got = decode_memory_access(words["dc zva, x1"], reader(rf), dczid_block_bytes=256)
    assert got is not None and got.address == 0x4000_1200 and got.size == 256
    with pytest.raises(ValueError):
        decode_memory_access(words["dc zva, x1"], reader(rf), dczid_block_bytes=48)


def test_literal_needs_pc(words: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        decode_memory_access(words["ldr x0, .+0x100"], reader(R))


def test_iss_info(words: dict[str, int]) -> None:
    got = decode_memory_access(words["ldrsb x0, [x1]"], reader(R))
    assert got is not None and got.iss_info() == IssInfo(sas=0, sse=True, srt=0, sf=True, ar=False)
    got = decode_memory_access(words["stlr w0, [x1]"], reader(R))
    assert got is not None and got.iss_info() == IssInfo(sas=2, sse=False, srt=0, sf=False, ar=True)
    for asm in ("ldr x0, [x1], #16", "ldp x0, x1, [x2, #16]", "ldxr x0, [x1]", "ldadd x0, x1, [x2]",
                "ldr q0, [x1, #65520]", "dc civac, x2"):
        got = decode_memory_access(words[asm], reader(R), pc=PC)
        assert got is not None and got.iss_info() is None, asm


def test_address_wraps_at_64_bits(words: dict[str, int]) -> None:
    rf = regs(x1=M64 - 3)
    got = decode_memory_access(words["ldr x0, [x1, #8]"], reader(rf))
    assert got is not None and got.address == 4


def test_random_words_never_crash() -> None:
    """Any word in the load/store space decodes to None or a sane access."""
    rng = random.Random(1234)
    seen = 0
    for _ in range(20000):
        w = (rng.getrandbits(32) & ~0x0A00_0000) | 0x0800_0000   # force op0 = x1x0
        got = decode_memory_access(w, reader(R), pc=PC)
        if got is not None:
            seen += 1
            assert 0 <= got.address <= M64
            assert got.total_bytes >= got.size > 0
            assert got.is_read or got.is_write
    assert seen > 5000


def test_unallocated_pair_and_casp() -> None:
    # LDNP with opc=01 (there is no LDNPSW) and CASP with odd registers are UNDEFINED.
    assert decode_memory_access(0x6850DF4D, reader(R)) is None
    assert decode_memory_access(0x48227F39, reader(R)) is None


def _capstone_address(insn, rf: dict[int, int]) -> int | None:
    from capstone import arm64 as A

    mem = [op for op in insn.operands if op.type == A.ARM64_OP_MEM]
    if not mem:
        return None

    def val(reg: int) -> int:
        name = insn.reg_name(reg)
        if name in ("sp", "wsp"):
            return rf[31]
        if name in ("xzr", "wzr"):
            return 0
        return rf[{"fp": 29, "lr": 30}.get(name) or int(name[1:])]

    op = mem[0]
    addr = val(op.mem.base) + op.mem.disp
    if op.mem.index:
        idx = val(op.mem.index)
        if op.ext == A.ARM64_EXT_UXTW:
            idx &= 0xFFFF_FFFF
        elif op.ext == A.ARM64_EXT_SXTW:
            idx = (idx & 0xFFFF_FFFF) - ((idx & 0x8000_0000) << 1)
        addr += idx << (op.shift.value if op.shift.type else 0)
    return addr & M64


def test_addresses_agree_with_capstone() -> None:
    """An independent decoder: wherever capstone sees a memory operand, the addresses match."""
    capstone = pytest.importorskip("capstone")
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    rng = random.Random(99)
    compared = 0
    for _ in range(20000):
        w = (rng.getrandbits(32) & ~0x0A00_0000) | 0x0800_0000
        insns = list(md.disasm(w.to_bytes(4, "little"), PC))
        if not insns:
            continue
        insn = insns[0]
        want = _capstone_address(insn, R)
        if want is None or insn.mnemonic.startswith(("prf", "rprf", "cpy", "set", "ldgm", "stgm", "stzgm")):
            continue
        if any(insn.reg_name(op.reg)[:1] in "zp" for op in insn.operands
               if op.type == capstone.arm64.ARM64_OP_REG):
            continue                                    # SVE: not decoded
        got = decode_memory_access(w, reader(R), pc=PC)
        assert got is not None, f"{w:#010x} {insn.mnemonic} {insn.op_str}"
        assert got.address == want, f"{w:#010x} {insn.mnemonic} {insn.op_str}: {got.address:#x} != {want:#x}"
        compared += 1
    assert compared > 5000
