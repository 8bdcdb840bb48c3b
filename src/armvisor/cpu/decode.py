"""What memory access an A64 instruction makes: address, size, direction.

Unicorn reports a data abort without FAR or syndrome (UNICORN-FACTS.md), so
the core decodes the faulting instruction and recomputes the address from
its registers. Covers the "Loads and Stores" encoding group (Arm ARM DDI0487
C4.1.88, formerly C4.1.66) plus DC/IC maintenance by VA (C5.3), which also
report data aborts.

Not covered (return None): SVE/SME memory instructions (C4.1.x "SVE
Memory"), FEAT_MOPS (CPY*/SET*), FEAT_LS64 (LD64B/ST64B*), FEAT_LRCPC3 and
FEAT_LSE128: none of them is implemented by Unicorn 2.1.4's CPU model except
SVE, whose address also depends on the vector length and predicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from armvisor.cpu.syndrome import IssInfo

MASK64 = (1 << 64) - 1
REG_ZR_OR_SP = 31

# MTE tag granule (Arm ARM, Memory Tagging Extension: LOG2_TAG_GRANULE = 4) scales STGP/STG/LDG offsets.
TAG_GRANULE_BYTES = 16
# GMID_EL1.BS as QEMU sets it (4 << 6 = 256 bytes): the LDGM/STGM block (Arm ARM, GMID_EL1).
GM_BLOCK_BYTES = 256

ReadReg = Callable[[int], int]


@dataclass(frozen=True)
class MemAccess:
    """One decoded memory access.

    `address` is what FAR_ELx must hold: the first byte the instruction
    touches (base before update for post-index, base+imm for pre-index,
    the aligned block for DC ZVA). `size` is the size of one element
    (one register for pairs, one lane for structure loads); `total_bytes`
    is everything the instruction touches from `address` on.
    """
    address: int
    size: int
    total_bytes: int
    is_read: bool
    is_write: bool
    rt: int
    kind: str
    is_cache_maintenance: bool = False
    rt2: Optional[int] = None
    rs: Optional[int] = None
    base_reg: Optional[int] = None
    sign_extend: bool = False
    is_64bit_dest: bool = False
    is_acquire_release: bool = False
    is_simd: bool = False
    is_pair: bool = False
    is_exclusive: bool = False
    is_atomic: bool = False
    is_unprivileged: bool = False
    is_tag_access: bool = False
    writeback: bool = False
    single_register_no_writeback: bool = False

    def iss_info(self) -> Optional[IssInfo]:
        """The data abort instruction syndrome (ISV=1 fields), when the architecture allows one."""
        if not self.single_register_no_writeback:
            return None
        return IssInfo(sas=self.size.bit_length() - 1, sse=self.sign_extend, srt=self.rt,
                       sf=self.is_64bit_dest, ar=self.is_acquire_release)


def _bits(v: int, hi: int, lo: int) -> int:
    return (v >> lo) & ((1 << (hi - lo + 1)) - 1)


def _sext(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _xreg(read_reg: ReadReg, n: int) -> int:
    """A data/index register: number 31 is XZR here, never SP."""
    return 0 if n == REG_ZR_OR_SP else read_reg(n) & MASK64


def _base(read_reg: ReadReg, n: int) -> int:
    """A base register: number 31 is SP."""
    return read_reg(n) & MASK64


@dataclass(frozen=True)
class _GprType:
    esize: int
    is_load: bool
    sign: bool
    sf: bool


def _reg_type(size: int, v: int, opc: int) -> Optional[_GprType | str]:
    """Element size and direction from size:V:opc of the single-register forms (C4.1.88 tables).

    Returns "prfm" for prefetches and None for unallocated encodings.
    """
    if v:
        if opc & 0b10:
            if size != 0:
                return None
            return _GprType(16, bool(opc & 1), False, False)
        return _GprType(1 << size, bool(opc & 1), False, False)
    if opc == 0b00:
        return _GprType(1 << size, False, False, size == 3)
    if opc == 0b01:
        return _GprType(1 << size, True, False, size == 3)
    if opc == 0b10:
        if size == 3:
            return "prfm"
        return _GprType(1 << size, True, True, True)      # LDRSB/LDRSH/LDRSW to X
    if size >= 2:
        return None
    return _GprType(1 << size, True, True, False)          # LDRSB/LDRSH to W


def decode_memory_access(insn: int, read_reg: ReadReg, pc: Optional[int] = None,
                         dczid_block_bytes: int = 64) -> Optional[MemAccess]:
    """Decode the memory access of the A64 instruction `insn`.

    read_reg(n) gives Xn for n in 0..30 and SP for n == 31; it is called with
    31 only for base registers. `pc` (the instruction's address) is needed
    for PC-relative literal loads. Returns None for prefetches (they never
    fault), for instructions that access no memory, and for unallocated or
    unsupported encodings.
    """
    insn &= 0xFFFF_FFFF
    if (insn & 0xFFF8_0000) == 0xD508_0000:            # SYS (L=0, op0=1)
        return _decode_sys(insn, read_reg, dczid_block_bytes)
    if (insn & 0x0A00_0000) != 0x0800_0000:            # op0<3:0> = x1x0: loads and stores
        return None
    if (insn & 0xBFBF_0000) == 0x0C00_0000 or (insn & 0xBFA0_0000) == 0x0C80_0000:
        return _simd_multiple(insn, read_reg)
    if (insn & 0xBF9F_0000) == 0x0D00_0000 or (insn & 0xBF80_0000) == 0x0D80_0000:
        return _simd_single(insn, read_reg)
    if (insn & 0x3F00_0000) == 0x0800_0000:
        return _exclusive_ordered(insn, read_reg)
    if (insn & 0xFF20_0000) == 0xD920_0000:
        return _mte_tags(insn, read_reg, dczid_block_bytes)
    if (insn & 0x3F20_0C00) == 0x1900_0000:
        return _rcpc_unscaled(insn, read_reg)
    if (insn & 0x3B00_0000) == 0x1800_0000:
        return _literal(insn, pc)
    if (insn & 0x3A00_0000) == 0x2800_0000:
        return _pair(insn, read_reg)
    if (insn & 0x3A00_0000) == 0x3800_0000:
        if insn & (1 << 24):
            return _unsigned_offset(insn, read_reg)
        if not insn & (1 << 21):
            return _imm9(insn, read_reg)
        op4 = _bits(insn, 11, 10)
        if op4 == 0b00:
            return _atomic(insn, read_reg)
        if op4 == 0b10:
            return _register_offset(insn, read_reg)
        return _pac_load(insn, read_reg)
    return None


# ---- C4.1.88: Load/store register (unscaled immediate, immediate post/pre-indexed, unprivileged) ----

def _imm9(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    size, v, opc = _bits(insn, 31, 30), _bits(insn, 26, 26), _bits(insn, 23, 22)
    idx = _bits(insn, 11, 10)          # 00 unscaled, 01 post, 10 unprivileged, 11 pre
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    t = _reg_type(size, v, opc)
    if t is None or t == "prfm" or (idx == 0b10 and v):
        return None                    # unallocated, PRFUM, or SIMD&FP LDTR (none exists)
    assert isinstance(t, _GprType)
    base = _base(read_reg, rn)
    imm = _sext(_bits(insn, 20, 12), 9)
    addr = base if idx == 0b01 else (base + imm) & MASK64
    writeback = idx in (0b01, 0b11)
    kind = {0b00: "unscaled", 0b01: "post-index", 0b10: "unprivileged", 0b11: "pre-index"}[idx]
    return MemAccess(address=addr, size=t.esize, total_bytes=t.esize, is_read=t.is_load,
                     is_write=not t.is_load, rt=rt, kind=kind, base_reg=rn, sign_extend=t.sign,
                     is_64bit_dest=t.sf, is_simd=bool(v), is_unprivileged=idx == 0b10,
                     writeback=writeback, single_register_no_writeback=not v and not writeback)


def _unsigned_offset(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    size, v, opc = _bits(insn, 31, 30), _bits(insn, 26, 26), _bits(insn, 23, 22)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    t = _reg_type(size, v, opc)
    if t is None or t == "prfm":
        return None
    assert isinstance(t, _GprType)
    addr = (_base(read_reg, rn) + _bits(insn, 21, 10) * t.esize) & MASK64
    return MemAccess(address=addr, size=t.esize, total_bytes=t.esize, is_read=t.is_load,
                     is_write=not t.is_load, rt=rt, kind="unsigned-offset", base_reg=rn,
                     sign_extend=t.sign, is_64bit_dest=t.sf, is_simd=bool(v),
                     single_register_no_writeback=not v)


def _register_offset(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    size, v, opc = _bits(insn, 31, 30), _bits(insn, 26, 26), _bits(insn, 23, 22)
    rm, option, s = _bits(insn, 20, 16), _bits(insn, 15, 13), _bits(insn, 12, 12)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    if not option & 0b010:
        return None                    # option<1> = 0 is unallocated
    t = _reg_type(size, v, opc)
    if t is None or t == "prfm":
        return None
    assert isinstance(t, _GprType)
    offset = _xreg(read_reg, rm)
    if option == 0b010:                # UXTW
        offset &= 0xFFFF_FFFF
    elif option == 0b110:              # SXTW
        offset = _sext(offset, 32)
    shift = (t.esize.bit_length() - 1) if s else 0
    addr = (_base(read_reg, rn) + (offset << shift)) & MASK64
    return MemAccess(address=addr, size=t.esize, total_bytes=t.esize, is_read=t.is_load,
                     is_write=not t.is_load, rt=rt, kind="register-offset", base_reg=rn,
                     sign_extend=t.sign, is_64bit_dest=t.sf, is_simd=bool(v),
                     single_register_no_writeback=not v)


def _pac_load(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    """LDRAA/LDRAB (FEAT_PAuth). The address is computed from the raw base
    register: with a valid PAC the hardware would first strip it, so callers
    that need the exact FAR must remove the PAC field themselves."""
    if _bits(insn, 31, 24) != 0xF8:
        return None
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    imm = _sext((_bits(insn, 22, 22) << 9) | _bits(insn, 20, 12), 10) << 3
    writeback = bool(_bits(insn, 11, 11))
    addr = (_base(read_reg, rn) + imm) & MASK64
    kind = "LDRAB" if _bits(insn, 23, 23) else "LDRAA"
    return MemAccess(address=addr, size=8, total_bytes=8, is_read=True, is_write=False, rt=rt,
                     kind=kind, base_reg=rn, is_64bit_dest=True, writeback=writeback,
                     single_register_no_writeback=not writeback)


# ---- C4.1.88: Atomic memory operations (FEAT_LSE, FEAT_LRCPC LDAPR) ----

_ATOMIC_OPS = ("LDADD", "LDCLR", "LDEOR", "LDSET", "LDSMAX", "LDSMIN", "LDUMAX", "LDUMIN")


def _atomic(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    size, v = _bits(insn, 31, 30), _bits(insn, 26, 26)
    a, r = _bits(insn, 23, 23), _bits(insn, 22, 22)
    rs, o3, opc = _bits(insn, 20, 16), _bits(insn, 15, 15), _bits(insn, 14, 12)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    if v:
        return None
    esize = 1 << size
    base = _base(read_reg, rn)
    if o3 == 0:
        kind = _ATOMIC_OPS[opc]
    elif opc == 0b000:
        kind = "SWP"
    elif opc == 0b100 and a == 1 and r == 0 and rs == REG_ZR_OR_SP:
        return MemAccess(address=base, size=esize, total_bytes=esize, is_read=True, is_write=False,
                         rt=rt, kind="LDAPR", base_reg=rn, is_64bit_dest=size == 3,
                         is_acquire_release=True, single_register_no_writeback=True)
    else:
        return None                    # FEAT_LS64 and unallocated
    return MemAccess(address=base, size=esize, total_bytes=esize, is_read=True, is_write=True,
                     rt=rt, rs=rs, kind=kind, base_reg=rn, is_64bit_dest=size == 3,
                     is_acquire_release=bool(a or r), is_atomic=True)


# ---- C4.1.88: Load/store exclusive, load-acquire/store-release, compare and swap ----

def _exclusive_ordered(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    size = _bits(insn, 31, 30)
    o2, l, o1 = _bits(insn, 23, 23), _bits(insn, 22, 22), _bits(insn, 21, 21)
    rs, o0, rt2 = _bits(insn, 20, 16), _bits(insn, 15, 15), _bits(insn, 14, 10)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    base = _base(read_reg, rn)
    if o2 == 0 and o1 == 0:            # LDXR/LDAXR/STXR/STLXR
        esize = 1 << size
        return MemAccess(address=base, size=esize, total_bytes=esize, is_read=bool(l),
                         is_write=not l, rt=rt, rs=None if l else rs, kind="exclusive",
                         base_reg=rn, is_64bit_dest=size == 3, is_acquire_release=bool(o0),
                         is_exclusive=True)
    if o2 == 0 and o1 == 1:
        if size >= 2:                  # LDXP/LDAXP/STXP/STLXP
            esize = 4 if size == 2 else 8
            return MemAccess(address=base, size=esize, total_bytes=2 * esize, is_read=bool(l),
                             is_write=not l, rt=rt, rt2=rt2, rs=None if l else rs,
                             kind="exclusive-pair", base_reg=rn, is_64bit_dest=size == 3,
                             is_acquire_release=bool(o0), is_pair=True, is_exclusive=True)
        if rt2 != REG_ZR_OR_SP or rs & 1 or rt & 1:
            return None                # CASP needs even register pairs (UNDEFINED otherwise)
        esize = 8 if size & 1 else 4   # CASP: sz = insn<30>
        return MemAccess(address=base, size=esize, total_bytes=2 * esize, is_read=True,
                         is_write=True, rt=rt, rt2=rt + 1, rs=rs, kind="CASP", base_reg=rn,
                         is_64bit_dest=esize == 8, is_acquire_release=bool(l or o0),
                         is_pair=True, is_atomic=True)
    esize = 1 << size
    if o2 == 1 and o1 == 0:            # LDAR/LDLAR/STLR/STLLR
        return MemAccess(address=base, size=esize, total_bytes=esize, is_read=bool(l),
                         is_write=not l, rt=rt, kind="acquire-release", base_reg=rn,
                         is_64bit_dest=size == 3, is_acquire_release=True,
                         single_register_no_writeback=True)
    if rt2 != REG_ZR_OR_SP:
        return None
    return MemAccess(address=base, size=esize, total_bytes=esize, is_read=True, is_write=True,
                     rt=rt, rs=rs, kind="CAS", base_reg=rn, is_64bit_dest=size == 3,
                     is_acquire_release=bool(l or o0), is_atomic=True)


def _rcpc_unscaled(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    """LDAPUR*/STLUR* (FEAT_LRCPC2): unscaled signed offset, acquire/release."""
    size, opc = _bits(insn, 31, 30), _bits(insn, 23, 22)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    t = _reg_type(size, 0, opc)
    if not isinstance(t, _GprType):
        return None
    addr = (_base(read_reg, rn) + _sext(_bits(insn, 20, 12), 9)) & MASK64
    return MemAccess(address=addr, size=t.esize, total_bytes=t.esize, is_read=t.is_load,
                     is_write=not t.is_load, rt=rt, kind="rcpc-unscaled", base_reg=rn,
                     sign_extend=t.sign, is_64bit_dest=t.sf, is_acquire_release=True,
                     single_register_no_writeback=True)


# ---- C4.1.88: Load register (literal) ----

def _literal(insn: int, pc: Optional[int]) -> Optional[MemAccess]:
    opc, v, rt = _bits(insn, 31, 30), _bits(insn, 26, 26), _bits(insn, 4, 0)
    if v:
        if opc == 0b11:
            return None
        esize, sign, sf = 4 << opc, False, False
    else:
        if opc == 0b11:
            return None                # PRFM (literal)
        esize, sign, sf = ((4, False, False), (8, False, True), (4, True, True))[opc]
    if pc is None:
        raise ValueError("a literal load needs the instruction's pc")
    addr = (pc + (_sext(_bits(insn, 23, 5), 19) << 2)) & MASK64
    return MemAccess(address=addr, size=esize, total_bytes=esize, is_read=True, is_write=False,
                     rt=rt, kind="literal", sign_extend=sign, is_64bit_dest=sf, is_simd=bool(v),
                     single_register_no_writeback=not v)


# ---- C4.1.88: Load/store pair (no-allocate, post-index, offset, pre-index), STGP ----

def _pair(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    opc, v, idx, l = _bits(insn, 31, 30), _bits(insn, 26, 26), _bits(insn, 24, 23), _bits(insn, 22, 22)
    rt2, rn, rt = _bits(insn, 14, 10), _bits(insn, 9, 5), _bits(insn, 4, 0)
    imm7 = _sext(_bits(insn, 21, 15), 7)
    sign = sf = tag = False
    if opc == 0b11:
        return None
    if v:
        esize = 4 << opc
        scale = esize
    elif opc == 0b01:
        if idx == 0b00:
            return None                # no LDNPSW / STNGP
        if l:                          # LDPSW
            esize, scale, sign, sf = 4, 4, True, True
        else:                          # STGP (FEAT_MTE): offset scaled by the tag granule
            esize, scale, sf, tag = 8, TAG_GRANULE_BYTES, True, True
    else:
        esize = 8 if opc == 0b10 else 4
        scale, sf = esize, opc == 0b10
    base = _base(read_reg, rn)
    addr = base if idx == 0b01 else (base + imm7 * scale) & MASK64
    kind = {0b00: "pair-no-allocate", 0b01: "pair-post-index", 0b10: "pair-offset",
            0b11: "pair-pre-index"}[idx]
    return MemAccess(address=addr, size=esize, total_bytes=2 * esize, is_read=bool(l),
                     is_write=not l, rt=rt, rt2=rt2, kind="STGP" if tag else kind, base_reg=rn,
                     sign_extend=sign, is_64bit_dest=sf, is_simd=bool(v), is_pair=True,
                     is_tag_access=tag, writeback=idx in (0b01, 0b11))


# ---- C4.1.88: Load/store memory tags (FEAT_MTE) ----

def _mte_tags(insn: int, read_reg: ReadReg, dczid_block_bytes: int) -> Optional[MemAccess]:
    opc, op2 = _bits(insn, 23, 22), _bits(insn, 11, 10)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    imm = _sext(_bits(insn, 20, 12), 9) * TAG_GRANULE_BYTES
    base = _base(read_reg, rn)
    if op2 == 0b00:
        if opc == 0b01:                # LDG
            addr = ((base + imm) & MASK64) & ~(TAG_GRANULE_BYTES - 1)
            return MemAccess(address=addr, size=TAG_GRANULE_BYTES, total_bytes=TAG_GRANULE_BYTES,
                             is_read=True, is_write=False, rt=rt, kind="LDG", base_reg=rn,
                             is_tag_access=True)
        if _bits(insn, 20, 12) != 0:
            return None
        if opc == 0b00:                # STZGM: zeroes a DC ZVA block with its tags
            block, kind, load = dczid_block_bytes, "STZGM", False
        else:                          # STGM / LDGM
            block, kind, load = GM_BLOCK_BYTES, ("STGM" if opc == 0b10 else "LDGM"), opc == 0b11
        addr = base & ~(block - 1)
        return MemAccess(address=addr, size=block, total_bytes=block, is_read=load,
                         is_write=not load, rt=rt, kind=kind, base_reg=rn, is_tag_access=True)
    granules = 2 if opc & 0b10 else 1
    nbytes = granules * TAG_GRANULE_BYTES
    addr = base if op2 == 0b01 else (base + imm) & MASK64
    kind = ("STG", "STZG", "ST2G", "STZ2G")[opc]
    return MemAccess(address=addr, size=nbytes, total_bytes=nbytes, is_read=False, is_write=True,
                     rt=rt, kind=kind, base_reg=rn, is_tag_access=True,
                     writeback=op2 in (0b01, 0b11))


# ---- C4.1.88: Advanced SIMD load/store multiple structures ----

# opcode -> (registers transferred, elements per structure)
_MULTIPLE = {0b0000: (4, 4), 0b0010: (4, 1), 0b0100: (3, 3), 0b0110: (3, 1),
             0b0111: (1, 1), 0b1000: (2, 2), 0b1010: (2, 1)}


def _simd_multiple(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    q, l, post = _bits(insn, 30, 30), _bits(insn, 22, 22), _bits(insn, 23, 23)
    # Rm (post-index register) does not matter: the fault address is the base before update.
    opcode, size = _bits(insn, 15, 12), _bits(insn, 11, 10)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    if opcode not in _MULTIPLE:
        return None
    nregs, selem = _MULTIPLE[opcode]
    if size == 3 and q == 0 and selem > 1:
        return None
    total = (16 if q else 8) * nregs
    esize = 1 << size
    name = f"{'LD' if l else 'ST'}{selem}"
    return MemAccess(address=_base(read_reg, rn), size=esize, total_bytes=total, is_read=bool(l),
                     is_write=not l, rt=rt, kind=f"{name}-multiple", base_reg=rn, is_simd=True,
                     writeback=bool(post))


# ---- C4.1.88: Advanced SIMD load/store single structure (and LDnR) ----

def _simd_single(insn: int, read_reg: ReadReg) -> Optional[MemAccess]:
    l, r, post = _bits(insn, 22, 22), _bits(insn, 21, 21), _bits(insn, 23, 23)
    opcode, s, size = _bits(insn, 15, 13), _bits(insn, 12, 12), _bits(insn, 11, 10)
    rn, rt = _bits(insn, 9, 5), _bits(insn, 4, 0)
    scale = opcode >> 1
    selem = (((opcode & 1) << 1) | r) + 1
    replicate = False
    if scale == 3:
        if not l or s:
            return None
        esize, replicate = 1 << size, True
    elif scale == 0:
        esize = 1
    elif scale == 1:
        if size & 1:
            return None
        esize = 2
    else:
        if size & 0b10 or (size == 0b01 and s):
            return None
        esize = 4 if size == 0 else 8
    name = f"{'LD' if l else 'ST'}{selem}{'R' if replicate else ''}"
    return MemAccess(address=_base(read_reg, rn), size=esize, total_bytes=esize * selem,
                     is_read=bool(l), is_write=not l, rt=rt, kind=f"{name}-single", base_reg=rn,
                     is_simd=True, writeback=bool(post))


# ---- C5.3: DC / IC maintenance by VA (SYS with CRn = 7) ----

# (op1, CRm, op2) -> (name, writes memory). DC ZVA/GVA/GZVA write a whole
# DCZID_EL0 block; the others are cache maintenance (ESR CM=1).
_BLOCK_WRITES = {(3, 4, 1): "DC ZVA", (3, 4, 3): "DC GVA", (3, 4, 4): "DC GZVA"}
_MAINTENANCE = {
    (0, 6, 1): "DC IVAC", (0, 6, 3): "DC IGVAC", (0, 6, 5): "DC IGDVAC",
    (3, 10, 1): "DC CVAC", (3, 10, 3): "DC CGVAC", (3, 10, 5): "DC CGDVAC",
    (3, 11, 1): "DC CVAU",
    (3, 12, 1): "DC CVAP", (3, 12, 3): "DC CGVAP", (3, 12, 5): "DC CGDVAP",
    (3, 13, 1): "DC CVADP", (3, 13, 3): "DC CGVADP", (3, 13, 5): "DC CGDVADP",
    (3, 14, 1): "DC CIVAC", (3, 14, 3): "DC CIGVAC", (3, 14, 5): "DC CIGDVAC",
    (3, 5, 1): "IC IVAU",
}


def _decode_sys(insn: int, read_reg: ReadReg, dczid_block_bytes: int) -> Optional[MemAccess]:
    op1, crn, crm, op2 = _bits(insn, 18, 16), _bits(insn, 15, 12), _bits(insn, 11, 8), _bits(insn, 7, 5)
    rt = _bits(insn, 4, 0)
    if crn != 7:
        return None
    key = (op1, crm, op2)
    va = _xreg(read_reg, rt)
    if key in _BLOCK_WRITES:
        if dczid_block_bytes <= 0 or dczid_block_bytes & (dczid_block_bytes - 1):
            raise ValueError(f"DC ZVA block size {dczid_block_bytes} is not a power of two")
        addr = va & ~(dczid_block_bytes - 1)
        return MemAccess(address=addr, size=dczid_block_bytes, total_bytes=dczid_block_bytes,
                         is_read=False, is_write=True, rt=rt, kind=_BLOCK_WRITES[key],
                         is_tag_access=key != (3, 4, 1))
    if key in _MAINTENANCE:
        # Permission-checked as a read; the ESR reports WnR=1 with CM=1 (D17.2.37).
        return MemAccess(address=va, size=1, total_bytes=1, is_read=True, is_write=False, rt=rt,
                         kind=_MAINTENANCE[key], is_cache_maintenance=True)
    return None
