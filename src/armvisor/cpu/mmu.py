"""A Python walk of the EL1&0 stage-1 translation tables (Arm ARM DDI0487 D8, VMSAv8-64).

Unicorn walks the tables natively; this walk runs only after it reports an
abort, to tell which fault it was (translation, access flag, permission,
address size, external abort on the walk) and at which level, so the ESR's
FSC is right, and to translate VAs for diagnostics. It follows QEMU's
(Unicorn's) order of checks: VA range, walk faults, access flag, permission.

Not modelled: 52-bit addresses (FEAT_LPA/LPA2: output addresses are masked
to 48 bits, level -1 never happens), stage 2, AArch32, EPAN, permission
indirection (FEAT_S1PIE), and the contiguous bit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Optional

from armvisor.cpu import syndrome

MASK64 = (1 << 64) - 1
OA_BITS = 48                       # 52-bit output addresses are not modelled
OA_MASK = (1 << OA_BITS) - 1

# ---- SCTLR_EL1 (Arm ARM D17.2, "SCTLR_EL1") ----
SCTLR_M = 1 << 0                   # stage-1 MMU enable
SCTLR_WXN = 1 << 19                # write permission implies execute-never

# ---- TCR_EL1 (Arm ARM D17.2, "TCR_EL1") ----
TCR_T0SZ_SHIFT = 0
TCR_EPD0 = 1 << 7
TCR_TG0_SHIFT = 14
TCR_T1SZ_SHIFT = 16
TCR_EPD1 = 1 << 23
TCR_TG1_SHIFT = 30
TCR_IPS_SHIFT = 32
TCR_TBI0 = 1 << 37
TCR_TBI1 = 1 << 38
TCR_HA = 1 << 39                   # hardware Access flag update (FEAT_HAFDBS)
TCR_HD = 1 << 40                   # hardware dirty state (DBM) update
TCR_HPD0 = 1 << 41                 # hierarchical permissions disabled (FEAT_HPDS)
TCR_HPD1 = 1 << 42
TCR_TBID0 = 1 << 51                # TBI applies to data accesses only (FEAT_PAuth)
TCR_TBID1 = 1 << 52
TCR_E0PD0 = 1 << 55                # EL0 access to this half faults (FEAT_E0PD)
TCR_E0PD1 = 1 << 56

# TG0 and TG1 encode the granule differently (TCR_EL1.TG0 / TCR_EL1.TG1).
TG0_GRANULE_SHIFT = {0b00: 12, 0b01: 16, 0b10: 14}
TG1_GRANULE_SHIFT = {0b10: 12, 0b11: 16, 0b01: 14}
GRANULE_4K, GRANULE_16K, GRANULE_64K = 12, 14, 16

# TCR_EL1.IPS -> output address size in bits.
IPS_BITS = {0b000: 32, 0b001: 36, 0b010: 40, 0b011: 42, 0b100: 44, 0b101: 48, 0b110: 52}

# TxSZ limits without FEAT_LVA / FEAT_TTST: larger or smaller values behave as the limit.
TSZ_MIN = 16
TSZ_MAX = 39

# Levels at which a block descriptor is allowed, per granule, without FEAT_LPA2
# (D8, "Translation table descriptor formats").
BLOCK_LEVELS = {GRANULE_4K: (1, 2), GRANULE_16K: (2,), GRANULE_64K: (2,)}

# ---- VMSAv8-64 descriptor bits (D8, "Translation table descriptor formats") ----
DESC_VALID = 1 << 0
DESC_TABLE = 1 << 1                # table (levels 0-2) or page (level 3); 0 = block
DESC_AP1 = 1 << 6                  # AP[1]: EL0 access
DESC_AP2 = 1 << 7                  # AP[2]: read-only
DESC_AF = 1 << 10
DESC_DBM = 1 << 51
DESC_PXN = 1 << 53
DESC_UXN = 1 << 54
TABLE_PXN = 1 << 59
TABLE_UXN = 1 << 60
TABLE_AP0 = 1 << 61                # APTable[0]: no EL0 access below
TABLE_AP1 = 1 << 62                # APTable[1]: no write access below


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"
    EXEC = "exec"


@dataclass(frozen=True)
class Stage1Regs:
    sctlr: int                     # SCTLR_EL1
    tcr: int                       # TCR_EL1
    ttbr0: int                     # TTBR0_EL1
    ttbr1: int                     # TTBR1_EL1
    pan: bool = False              # PSTATE.PAN
    pa_bits: int = 48              # ID_AA64MMFR0_EL1.PARange as a size


@dataclass(frozen=True)
class WalkResult:
    ok: bool
    pa: Optional[int] = None
    fsc: Optional[int] = None      # syndrome.FSC_* value when not ok
    level: int = 0
    reason: str = ""
    descriptor: Optional[int] = None   # the leaf descriptor, when the walk reached one
    block_size: Optional[int] = None
    readable: bool = False         # permissions at the accessing EL, when a leaf was found
    writable: bool = False
    executable: bool = False


ReadPhys64 = Callable[[int], int]


def _fault(fsc: int, level: int, reason: str, **kw: object) -> WalkResult:
    return WalkResult(ok=False, fsc=fsc, level=level, reason=reason, **kw)  # type: ignore[arg-type]


def walk_stage1(va: int, access: Access, el: int, regs: Stage1Regs, read_phys64: ReadPhys64,
                check_permissions: bool = True) -> WalkResult:
    """Translate `va` for an `access` from EL`el` (0 or 1) through the EL1&0 stage-1 tables.

    Unprivileged loads/stores (LDTR/STTR) at EL1 are checked as el=0.
    read_phys64 reads a little-endian descriptor; any exception it raises
    is reported as a synchronous external abort on the walk.
    check_permissions=False skips the access flag and permission checks
    (a plain translation, for diagnostics).
    """
    va &= MASK64
    pa_size = min(regs.pa_bits, OA_BITS)
    if not regs.sctlr & SCTLR_M:
        # MMU off: flat mapping; a VA beyond the PA size is an address size fault at level 0.
        if va >> pa_size:
            return _fault(syndrome.fsc_address_size(0), 0, "MMU off: address beyond PA size")
        return WalkResult(ok=True, pa=va, level=0, reason="MMU off", readable=True,
                          writable=True, executable=True)

    tcr = regs.tcr
    upper = (va >> 55) & 1
    if upper:
        tsz = (tcr >> TCR_T1SZ_SHIFT) & 0x3F
        granule = TG1_GRANULE_SHIFT.get((tcr >> TCR_TG1_SHIFT) & 3, GRANULE_4K)
        epd, tbi, tbid = tcr & TCR_EPD1, tcr & TCR_TBI1, tcr & TCR_TBID1
        hpd, e0pd, ttbr = tcr & TCR_HPD1, tcr & TCR_E0PD1, regs.ttbr1
    else:
        tsz = (tcr >> TCR_T0SZ_SHIFT) & 0x3F
        granule = TG0_GRANULE_SHIFT.get((tcr >> TCR_TG0_SHIFT) & 3, GRANULE_4K)
        epd, tbi, tbid = tcr & TCR_EPD0, tcr & TCR_TBI0, tcr & TCR_TBID0
        hpd, e0pd, ttbr = tcr & TCR_HPD0, tcr & TCR_E0PD0, regs.ttbr0
    if access is Access.EXEC and tbid:
        tbi = 0
    tsz = min(max(tsz, TSZ_MIN), TSZ_MAX)
    inputsize = 64 - tsz
    region = f"TTBR{upper}"

    # D8 "VA input range": bits above the input size (below bit 56 with TBI) must all equal bit 55.
    top = 56 if tbi else 64
    topbits = (va >> inputsize) & ((1 << (top - inputsize)) - 1)
    if topbits != (((1 << (top - inputsize)) - 1) if upper else 0):
        return _fault(syndrome.fsc_translation(0), 0, f"VA outside the {region} range")
    # The Arm ARM pseudocode reports walk-disabled faults at level 0 (AArch64.TranslationTableWalk).
    if epd:
        return _fault(syndrome.fsc_translation(0), 0, f"{region} walks disabled (EPD)")
    if el == 0 and e0pd:
        return _fault(syndrome.fsc_translation(0), 0, f"EL0 access to {region} half (E0PD)")

    stride = granule - 3
    levels = -(-(inputsize - granule) // stride)
    level = 4 - levels
    ha, hd = bool(tcr & TCR_HA), bool(tcr & TCR_HD)
    ips = IPS_BITS.get((tcr >> TCR_IPS_SHIFT) & 7, OA_BITS)
    oa_size = min(ips, pa_size)

    start_bits = inputsize - (granule + stride * (3 - level))
    table = ttbr & OA_MASK
    if table >> oa_size:
        return _fault(syndrome.fsc_address_size(0), 0, f"{region} base beyond PA size")
    table &= ~(max(8 << start_bits, 64) - 1)      # BADDR low bits are RES0; CnP is bit 0

    no_el0 = read_only = pxn_table = uxn_table = False
    nbits = start_bits
    while True:
        shift = granule + stride * (3 - level)
        index = (va >> shift) & ((1 << nbits) - 1)
        desc_addr = table + 8 * index
        try:
            desc = read_phys64(desc_addr) & MASK64
        except Exception as exc:   # any failure to read RAM is an external abort on the walk
            return _fault(syndrome.fsc_external_walk(level), level,
                          f"descriptor read at {desc_addr:#x} failed: {exc}")
        if not desc & DESC_VALID:
            return _fault(syndrome.fsc_translation(level), level, f"invalid descriptor at level {level}",
                          descriptor=desc)
        if level < 3 and desc & DESC_TABLE:
            nxt = desc & OA_MASK & ~((1 << granule) - 1)
            if nxt >> oa_size:
                return _fault(syndrome.fsc_address_size(level), level,
                              f"table address beyond PA size at level {level}", descriptor=desc)
            if not hpd:
                pxn_table |= bool(desc & TABLE_PXN)
                uxn_table |= bool(desc & TABLE_UXN)
                no_el0 |= bool(desc & TABLE_AP0)
                read_only |= bool(desc & TABLE_AP1)
            table = nxt
            level += 1
            nbits = stride
            continue
        if level == 3 and not desc & DESC_TABLE:
            return _fault(syndrome.fsc_translation(3), 3, "reserved level 3 descriptor", descriptor=desc)
        if level < 3 and level not in BLOCK_LEVELS[granule]:
            return _fault(syndrome.fsc_translation(level), level,
                          f"block descriptor not allowed at level {level}", descriptor=desc)
        break

    block_size = 1 << shift
    oa = desc & OA_MASK & ~(block_size - 1)
    if oa >> oa_size:
        return _fault(syndrome.fsc_address_size(level), level, "output address beyond PA size",
                      descriptor=desc)
    pa = oa | (va & (block_size - 1))

    # D8 "Memory access control": stage-1 permissions for the EL1&0 regime.
    ap2 = bool(desc & DESC_AP2) and not (hd and desc & DESC_DBM)   # DBM: writable-clean
    ap2 = ap2 or (read_only and not hpd)
    ap1 = bool(desc & DESC_AP1) and not (no_el0 and not hpd)
    uxn = bool(desc & DESC_UXN) or (uxn_table and not hpd)
    pxn = bool(desc & DESC_PXN) or (pxn_table and not hpd)
    user_r, user_w = ap1, ap1 and not ap2
    priv_r, priv_w = True, not ap2
    priv_x = not (pxn or user_w)   # memory writable at EL0 is never executable at EL1
    user_x = not uxn
    if regs.sctlr & SCTLR_WXN:
        priv_x = priv_x and not priv_w
        user_x = user_x and not user_w
    if el == 0:
        r, w, x = user_r, user_w, user_x
    else:
        r, w, x = priv_r, priv_w, priv_x
        if regs.pan and user_r and access is not Access.EXEC:
            r = w = False          # PAN: EL1 data access to EL0-accessible memory
    leaf = dict(descriptor=desc, block_size=block_size, readable=r, writable=w, executable=x)

    if check_permissions:
        if not desc & DESC_AF and not ha:
            return _fault(syndrome.fsc_access_flag(level), level, f"access flag clear at level {level}",
                          pa=pa, **leaf)
        allowed = {Access.READ: r, Access.WRITE: w, Access.EXEC: x}[access]
        if not allowed:
            why = _permission_reason(access, el, regs.pan and user_r and el != 0, w, r)
            return _fault(syndrome.fsc_permission(level), level, why, pa=pa, **leaf)
    return WalkResult(ok=True, pa=pa, level=level, reason="ok", **leaf)  # type: ignore[arg-type]


def _permission_reason(access: Access, el: int, pan_hit: bool, w: bool, r: bool) -> str:
    if pan_hit and access is not Access.EXEC:
        return "PAN: EL1 data access to EL0-accessible page"
    if access is Access.EXEC:
        return f"execute-never at EL{el}"
    if access is Access.WRITE and r:
        return f"read-only at EL{el}"
    return f"no access at EL{el}"


def translate_va(va: int, regs: Stage1Regs, read_phys64: ReadPhys64, el: int = 1) -> Optional[int]:
    """The PA `va` maps to, ignoring permissions and the access flag; None if it does not map."""
    res = walk_stage1(va, Access.READ, el, regs, read_phys64, check_permissions=False)
    return res.pa if res.ok else None
