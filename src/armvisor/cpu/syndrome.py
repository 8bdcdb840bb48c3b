"""ESR_ELx values for synchronous exceptions taken to EL1 (Arm ARM DDI0487 D17.2.37 "ESR_EL1").

Unicorn never writes ESR_ELx (UNICORN-FACTS.md), so the core rebuilds the
syndrome of every exception it delivers from these builders. An ESR is
EC[31:26] (exception class), IL[25] (1 = 32-bit instruction; every A64
instruction is 32-bit), ISS[24:0], ISS2[36:32] (always 0 here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# ---- ESR_ELx field positions (D17.2.37) ----
ESR_EC_SHIFT = 26
ESR_EC_MASK = 0x3F
ESR_IL = 1 << 25
ESR_ISS_MASK = 0x1FF_FFFF

# ---- Exception classes, ESR_ELx.EC (D17.2.37, table "EC encodings") ----
EC_UNKNOWN = 0x00
EC_WFX = 0x01
EC_CP15_32 = 0x03
EC_CP15_64 = 0x04
EC_CP14_32 = 0x05
EC_CP14_LS = 0x06
EC_FP_ASIMD = 0x07
EC_CP10 = 0x08
EC_PAC_TRAP = 0x09          # PAuth instruction trapped by HCR_EL2.API / SCR_EL3.API
EC_LS64 = 0x0A
EC_CP14_64 = 0x0C
EC_BTI = 0x0D
EC_ILLEGAL_STATE = 0x0E
EC_SVC32 = 0x11
EC_HVC32 = 0x12
EC_SMC32 = 0x13
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
EC_SYS64 = 0x18
EC_SVE = 0x19
EC_ERET = 0x1A
EC_TSTART = 0x1B
EC_FPAC = 0x1C              # pointer authentication failure (FEAT_FPAC)
EC_PAC = EC_FPAC
EC_SME = 0x1D
EC_IABT_LOWER = 0x20
EC_IABT_CUR = 0x21
EC_PC_ALIGN = 0x22
EC_DABT_LOWER = 0x24
EC_DABT_CUR = 0x25
EC_SP_ALIGN = 0x26
EC_MOPS = 0x27
EC_FP_EXC32 = 0x28
EC_FP_EXC64 = 0x2C
EC_SERROR = 0x2F
EC_BREAKPT_LOWER = 0x30
EC_BREAKPT_CUR = 0x31
EC_SOFTSTP_LOWER = 0x32
EC_SOFTSTP_CUR = 0x33
EC_WATCHPT_LOWER = 0x34
EC_WATCHPT_CUR = 0x35
EC_BKPT32 = 0x38
EC_VECTOR_CATCH = 0x3A
EC_BRK64 = 0x3C

EC_NAMES: dict[int, str] = {
    EC_UNKNOWN: "UNKNOWN", EC_WFX: "WFx", EC_CP15_32: "CP15_32", EC_CP15_64: "CP15_64",
    EC_CP14_32: "CP14_32", EC_CP14_LS: "CP14_LS", EC_FP_ASIMD: "FP_ASIMD", EC_CP10: "CP10",
    EC_PAC_TRAP: "PAC_TRAP", EC_LS64: "LS64", EC_CP14_64: "CP14_64", EC_BTI: "BTI",
    EC_ILLEGAL_STATE: "ILLEGAL_STATE", EC_SVC32: "SVC32", EC_HVC32: "HVC32",
    EC_SMC32: "SMC32", EC_SVC64: "SVC64", EC_HVC64: "HVC64", EC_SMC64: "SMC64",
    EC_SYS64: "SYS64", EC_SVE: "SVE", EC_ERET: "ERET", EC_TSTART: "TSTART",
    EC_FPAC: "FPAC", EC_SME: "SME", EC_IABT_LOWER: "IABT_LOWER", EC_IABT_CUR: "IABT_CUR",
    EC_PC_ALIGN: "PC_ALIGN", EC_DABT_LOWER: "DABT_LOWER", EC_DABT_CUR: "DABT_CUR",
    EC_SP_ALIGN: "SP_ALIGN", EC_MOPS: "MOPS", EC_FP_EXC32: "FP_EXC32",
    EC_FP_EXC64: "FP_EXC64", EC_SERROR: "SERROR", EC_BREAKPT_LOWER: "BREAKPT_LOWER",
    EC_BREAKPT_CUR: "BREAKPT_CUR", EC_SOFTSTP_LOWER: "SOFTSTP_LOWER",
    EC_SOFTSTP_CUR: "SOFTSTP_CUR", EC_WATCHPT_LOWER: "WATCHPT_LOWER",
    EC_WATCHPT_CUR: "WATCHPT_CUR", EC_BKPT32: "BKPT32", EC_VECTOR_CATCH: "VECTOR_CATCH",
    EC_BRK64: "BRK64",
}

# ---- Fault status codes, ISS.DFSC / ISS.IFSC (D17.2.37, data/instruction abort ISS) ----
FSC_ADDR_SIZE_L0 = 0x00          # 0b0000LL: address size fault, level LL
FSC_TRANSLATION_L0 = 0x04        # 0b0001LL: translation fault, level LL
FSC_ACCESS_FLAG_L0 = 0x08        # 0b0010LL: access flag fault, level LL (L0 only with LPA2)
FSC_PERMISSION_L0 = 0x0C         # 0b0011LL: permission fault, level LL (L0 only with LPA2)
FSC_SYNC_EXTERNAL = 0x10         # synchronous external abort, not on a table walk
FSC_SYNC_TAG_CHECK = 0x11        # FEAT_MTE2 synchronous tag check fault
FSC_SYNC_EXTERNAL_WALK_LM1 = 0x13  # external abort on walk, level -1 (LPA2)
FSC_SYNC_EXTERNAL_WALK_L0 = 0x14  # 0b0101LL: external abort on walk, level LL
FSC_SYNC_PARITY = 0x18
FSC_SYNC_PARITY_WALK_L0 = 0x1C   # 0b0111LL
FSC_ALIGNMENT = 0x21
FSC_ADDR_SIZE_LM1 = 0x29
FSC_TRANSLATION_LM1 = 0x2B
FSC_TLB_CONFLICT = 0x30
FSC_UNSUPPORTED_ATOMIC_UPDATE = 0x31
FSC_LOCKDOWN = 0x34
FSC_UNSUPPORTED_EXCLUSIVE = 0x35

# ---- Data/instruction abort ISS bits (D17.2.37, "ISS encoding for an exception from a Data Abort") ----
ISS_DA_ISV = 1 << 24
ISS_DA_SAS_SHIFT = 22
ISS_DA_SSE = 1 << 21
ISS_DA_SRT_SHIFT = 16
ISS_DA_SF = 1 << 15
ISS_DA_AR = 1 << 14
ISS_DA_VNCR = 1 << 13
ISS_DA_FNV = 1 << 10             # FAR not valid
ISS_DA_EA = 1 << 9
ISS_DA_CM = 1 << 8               # fault came from a cache maintenance instruction
ISS_DA_S1PTW = 1 << 7            # stage-2 fault on a stage-1 walk
ISS_DA_WNR = 1 << 6
ISS_FSC_MASK = 0x3F

# ---- WFx ISS.TI (D17.2.37, "ISS encoding for an exception from a WF* instruction") ----
WFX_TI_WFI = 0b00
WFX_TI_WFE = 0b01
WFX_TI_WFIT = 0b10
WFX_TI_WFET = 0b11
# CV=1, COND=0b1110 (AL): what QEMU reports for any trapped A64 instruction
# (A64 has no conditional WFx/FP instructions; the Arm ARM leaves these
# fields to the AArch32 case, and this is the "unconditional" encoding).
_ISS_CV_AL = (1 << 24) | (0xE << 20)


def _esr(ec: int, iss: int = 0, il: bool = True) -> int:
    return ((ec & ESR_EC_MASK) << ESR_EC_SHIFT) | (ESR_IL if il else 0) | (iss & ESR_ISS_MASK)


def fsc_translation(level: int) -> int:
    return FSC_TRANSLATION_LM1 if level < 0 else FSC_TRANSLATION_L0 + _check_level(level)


def fsc_access_flag(level: int) -> int:
    return FSC_ACCESS_FLAG_L0 + _check_level(level)


def fsc_permission(level: int) -> int:
    return FSC_PERMISSION_L0 + _check_level(level)


def fsc_address_size(level: int) -> int:
    return FSC_ADDR_SIZE_LM1 if level < 0 else FSC_ADDR_SIZE_L0 + _check_level(level)


def fsc_external_walk(level: int) -> int:
    return FSC_SYNC_EXTERNAL_WALK_LM1 if level < 0 else FSC_SYNC_EXTERNAL_WALK_L0 + _check_level(level)


def _check_level(level: int) -> int:
    if not 0 <= level <= 3:
        raise ValueError(f"translation level {level} out of range")
    return level


def esr_unknown() -> int:
    """Unknown reason: UNDEFINED instructions, including sysreg accesses that UNDEF."""
    return _esr(EC_UNKNOWN)


def esr_svc(imm16: int) -> int:
    return _esr(EC_SVC64, imm16 & 0xFFFF)


def esr_hvc(imm16: int) -> int:
    return _esr(EC_HVC64, imm16 & 0xFFFF)


def esr_smc(imm16: int) -> int:
    return _esr(EC_SMC64, imm16 & 0xFFFF)


def esr_brk(imm16: int) -> int:
    return _esr(EC_BRK64, imm16 & 0xFFFF)


def esr_wfx(is_wfe: bool, ti: Optional[int] = None) -> int:
    """WFI/WFE trap; `ti` overrides the TI field for WFIT/WFET."""
    if ti is None:
        ti = WFX_TI_WFE if is_wfe else WFX_TI_WFI
    return _esr(EC_WFX, _ISS_CV_AL | (ti & 0b11))


def esr_fp_access_trap() -> int:
    """FP/AdvSIMD access trapped by CPACR_EL1.FPEN (ISS as QEMU builds it for A64: CV=1, COND=AL)."""
    return _esr(EC_FP_ASIMD, _ISS_CV_AL)


def esr_sve_access_trap() -> int:
    """SVE access trapped by CPACR_EL1.ZEN: ISS is RES0."""
    return _esr(EC_SVE)


def esr_illegal_state() -> int:
    return _esr(EC_ILLEGAL_STATE)


def esr_pc_alignment() -> int:
    """Misaligned PC; FAR_ELx holds the faulting PC."""
    return _esr(EC_PC_ALIGN)


def esr_sp_alignment() -> int:
    return _esr(EC_SP_ALIGN)


# DFSC of a debug exception (D17.2.37, "ISS encoding for an exception from a
# Watchpoint exception": DFSC 0b100010, Debug exception).
FSC_DEBUG = 0b100010


def esr_watchpoint(same_el: bool, is_write: bool) -> int:
    """Watchpoint exception: WnR says a store, CM (cache maintenance) is not modelled."""
    return _esr(EC_WATCHPT_CUR if same_el else EC_WATCHPT_LOWER,
                (ISS_DA_WNR if is_write else 0) | FSC_DEBUG)


def esr_bti(btype: int) -> int:
    """Branch target exception: ISS[1:0] = PSTATE.BTYPE at the time of the fault."""
    return _esr(EC_BTI, btype & 0b11)


def esr_pac_fail(instruction_key: bool, key_b: bool) -> int:
    """FEAT_FPAC authentication failure: ISS[1] = 1 for data keys, ISS[0] = 1 for key B."""
    return _esr(EC_FPAC, (0 if instruction_key else 0b10) | (1 if key_b else 0))


def esr_sysreg_trap(op0: int, op1: int, crn: int, crm: int, op2: int, rt: int, is_read: bool) -> int:
    """Trapped MSR/MRS/SYS (EC 0x18). ISS: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] Rt[9:5] CRm[4:1] Direction[0]."""
    iss = ((op0 & 3) << 20) | ((op2 & 7) << 17) | ((op1 & 7) << 14) | ((crn & 0xF) << 10) \
        | ((rt & 0x1F) << 5) | ((crm & 0xF) << 1) | (1 if is_read else 0)
    return _esr(EC_SYS64, iss)


def esr_sysreg_trap_for_insn(insn: int) -> Optional[int]:
    """The EC 0x18 syndrome for an MSR/MRS/SYS/SYSL word, or None if it is not one.

    C5.2 / C6.2: 1101_0101_00 L op0(2) op1(3) CRn CRm op2 Rt. MSR (immediate)
    has op0=0 and reports Rt=0b11111.
    """
    if (insn & 0xFFC0_0000) != 0xD500_0000:
        return None
    is_read = bool((insn >> 21) & 1)
    op0 = (insn >> 19) & 3
    op1 = (insn >> 16) & 7
    crn = (insn >> 12) & 0xF
    crm = (insn >> 8) & 0xF
    op2 = (insn >> 5) & 7
    rt = insn & 0x1F
    if op0 == 0 and crn != 4:
        return None          # hints, barriers, CLREX: not system register accesses
    return esr_sysreg_trap(op0, op1, crn, crm, op2, rt, is_read)


@dataclass(frozen=True)
class IssInfo:
    """The instruction syndrome for a data abort (ISV=1): valid only for a
    single general-purpose register load/store without writeback, and only
    for aborts the architecture reports with ISV=1 (stage-2 aborts to EL2;
    stage-1 aborts to EL1 report ISV=0 apart from FEAT_LS64)."""
    sas: int        # log2(access size in bytes)
    sse: bool       # sign-extending load
    srt: int        # transfer register (31 = XZR/WZR)
    sf: bool        # 64-bit register transfer
    ar: bool        # acquire/release semantics


def esr_instruction_abort(same_el: bool, ifsc: int, s1ptw: bool = False, ea: bool = False) -> int:
    """Instruction abort: EC 0x21 from the current EL, 0x20 from a lower EL. FAR_ELx holds the fetch VA."""
    iss = (ifsc & ISS_FSC_MASK) | (ISS_DA_S1PTW if s1ptw else 0) | (ISS_DA_EA if ea else 0)
    return _esr(EC_IABT_CUR if same_el else EC_IABT_LOWER, iss)


def esr_data_abort(same_el: bool, dfsc: int, wnr: bool, cm: bool = False, s1ptw: bool = False,
                   isv_info: Optional[IssInfo | tuple[int, bool, int, bool, bool]] = None,
                   fnv: bool = False, ea: bool = False) -> int:
    """Data abort: EC 0x25 from the current EL, 0x24 from a lower EL.

    WnR is forced to 1 for cache maintenance (CM=1), as the Arm ARM requires
    for faults on cache maintenance and address translation instructions.
    `isv_info` is an IssInfo or a (sas, sse, srt, sf, ar) tuple.
    """
    iss = (dfsc & ISS_FSC_MASK)
    if wnr or cm:
        iss |= ISS_DA_WNR
    if cm:
        iss |= ISS_DA_CM
    if s1ptw:
        iss |= ISS_DA_S1PTW
    if fnv:
        iss |= ISS_DA_FNV
    if ea:
        iss |= ISS_DA_EA
    if isv_info is not None:
        info = isv_info if isinstance(isv_info, IssInfo) else IssInfo(*isv_info)
        if not 0 <= info.sas <= 3:
            raise ValueError(f"SAS {info.sas} out of range")
        iss |= ISS_DA_ISV | (info.sas << ISS_DA_SAS_SHIFT) | ((info.srt & 0x1F) << ISS_DA_SRT_SHIFT)
        iss |= (ISS_DA_SSE if info.sse else 0) | (ISS_DA_SF if info.sf else 0) | (ISS_DA_AR if info.ar else 0)
    return _esr(EC_DABT_CUR if same_el else EC_DABT_LOWER, iss)


_FSC_NAMES: dict[int, str] = {
    FSC_SYNC_EXTERNAL: "sync external abort",
    FSC_SYNC_TAG_CHECK: "tag check fault",
    FSC_SYNC_EXTERNAL_WALK_LM1: "sync external abort on walk, level -1",
    FSC_SYNC_PARITY: "sync parity/ECC error",
    FSC_ALIGNMENT: "alignment fault",
    FSC_ADDR_SIZE_LM1: "address size fault, level -1",
    FSC_TRANSLATION_LM1: "translation fault, level -1",
    FSC_TLB_CONFLICT: "TLB conflict abort",
    FSC_UNSUPPORTED_ATOMIC_UPDATE: "unsupported atomic hardware update",
    FSC_LOCKDOWN: "lockdown abort",
    FSC_UNSUPPORTED_EXCLUSIVE: "unsupported exclusive or atomic access",
}


def fsc_name(fsc: int) -> str:
    kinds = {0x00: "address size fault", 0x04: "translation fault", 0x08: "access flag fault",
             0x0C: "permission fault", 0x14: "sync external abort on walk",
             0x1C: "sync parity/ECC error on walk"}
    base = fsc & ~0b11
    if base in kinds:
        return f"{kinds[base]}, level {fsc & 0b11}"
    return _FSC_NAMES.get(fsc, f"fsc {fsc:#04x}")


def decode_esr(esr: int) -> dict[str, object]:
    """A readable breakdown of an ESR value, for traces and debug output."""
    ec = (esr >> ESR_EC_SHIFT) & ESR_EC_MASK
    iss = esr & ESR_ISS_MASK
    out: dict[str, object] = {
        "ec": ec, "ec_name": EC_NAMES.get(ec, f"EC_{ec:#04x}"),
        "il": bool(esr & ESR_IL), "iss": iss,
    }
    if ec in (EC_SVC64, EC_HVC64, EC_SMC64, EC_BRK64):
        out["imm16"] = iss & 0xFFFF
    elif ec == EC_WFX:
        out["ti"] = iss & 0b11
    elif ec == EC_SYS64:
        out.update(op0=(iss >> 20) & 3, op2=(iss >> 17) & 7, op1=(iss >> 14) & 7,
                   crn=(iss >> 10) & 0xF, rt=(iss >> 5) & 0x1F, crm=(iss >> 1) & 0xF,
                   is_read=bool(iss & 1))
    elif ec in (EC_DABT_LOWER, EC_DABT_CUR, EC_IABT_LOWER, EC_IABT_CUR):
        fsc = iss & ISS_FSC_MASK
        out.update(fsc=fsc, fsc_name=fsc_name(fsc), s1ptw=bool(iss & ISS_DA_S1PTW),
                   ea=bool(iss & ISS_DA_EA), fnv=bool(iss & ISS_DA_FNV))
        if ec in (EC_DABT_LOWER, EC_DABT_CUR):
            out.update(wnr=bool(iss & ISS_DA_WNR), cm=bool(iss & ISS_DA_CM),
                       isv=bool(iss & ISS_DA_ISV))
            if iss & ISS_DA_ISV:
                out.update(sas=(iss >> ISS_DA_SAS_SHIFT) & 3, sse=bool(iss & ISS_DA_SSE),
                           srt=(iss >> ISS_DA_SRT_SHIFT) & 0x1F, sf=bool(iss & ISS_DA_SF),
                           ar=bool(iss & ISS_DA_AR))
    elif ec == EC_BTI:
        out["btype"] = iss & 0b11
    return out
