"""System register encodings and the bits armvisor sets or reads.

Encodings are (op0, op1, CRn, CRm, op2) as in the Arm ARM (DDI0487) D19
"AArch64 System Register Descriptions"; Unicorn reaches registers it has no
id for through UC_ARM64_REG_CP_REG with this tuple.
"""

from __future__ import annotations

from typing import NamedTuple


class SysReg(NamedTuple):
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int

    @classmethod
    def from_insn(cls, insn: int) -> "SysReg":
        """The register named by an MRS/MSR/SYS instruction word (C5.2 / C6.2.195)."""
        return cls(2 + ((insn >> 19) & 1), (insn >> 16) & 7, (insn >> 12) & 0xF,
                   (insn >> 8) & 0xF, (insn >> 5) & 7)

    @classmethod
    def from_key(cls, key: int) -> "SysReg":
        """From op0:op1:CRn:CRm:op2 packed as in the instruction's bits [20:5] (see _hooks.c)."""
        return cls(key >> 14, (key >> 11) & 7, (key >> 7) & 0xF, (key >> 3) & 0xF, key & 7)

    def __str__(self) -> str:
        return f"S{self.op0}_{self.op1}_C{self.crn}_C{self.crm}_{self.op2}"


# EL3 / EL2 controls the machine owns.
SCR_EL3 = SysReg(3, 6, 1, 1, 0)
HCR_EL2 = SysReg(3, 4, 1, 1, 0)
VPIDR_EL2 = SysReg(3, 4, 0, 0, 0)
VMPIDR_EL2 = SysReg(3, 4, 0, 0, 5)
CPTR_EL2 = SysReg(3, 4, 1, 1, 2)
CPTR_EL3 = SysReg(3, 6, 1, 1, 2)
ZCR_EL2 = SysReg(3, 4, 1, 2, 0)
ZCR_EL3 = SysReg(3, 6, 1, 2, 0)
CNTHCTL_EL2 = SysReg(3, 4, 14, 1, 0)
CNTVOFF_EL2 = SysReg(3, 4, 14, 0, 3)
MDCR_EL2 = SysReg(3, 4, 1, 1, 1)

# EL1 state read on exception entry.
SCTLR_EL1 = SysReg(3, 0, 1, 0, 0)
TCR_EL1 = SysReg(3, 0, 2, 0, 2)
SPSR_EL1 = SysReg(3, 0, 4, 0, 0)
MIDR_EL1 = SysReg(3, 0, 0, 0, 0)
MPIDR_EL1 = SysReg(3, 0, 0, 0, 5)

# SCR_EL3 bits (D19.2.117).
SCR_NS = 1 << 0
SCR_SMD = 1 << 7
SCR_HCE = 1 << 8
SCR_RW = 1 << 10
SCR_APK = 1 << 16
SCR_API = 1 << 17

# CPTR_EL3.EZ (D19.2.32): SVE is not trapped to EL3. ZCR_ELx.LEN (D19.2.169):
# the largest vector length a lower EL may use, in 128-bit units minus one.
CPTR_EL3_EZ = 1 << 8
ZCR_LEN_MAX = 0xF

# HCR_EL2 bits (D19.2.48).
HCR_FMO = 1 << 3
HCR_IMO = 1 << 4
HCR_AMO = 1 << 5
HCR_VF = 1 << 6
HCR_VI = 1 << 7
HCR_TWI = 1 << 13
HCR_TID3 = 1 << 18
HCR_TSC = 1 << 19
HCR_TDZ = 1 << 28
HCR_RW = 1 << 31
HCR_APK = 1 << 40
HCR_API = 1 << 41

# MDCR_EL2.HPMN [4:0] (Arm ARM D19, MDCR_EL2): event counters below it belong to EL1 and EL0.
MDCR_HPMN_SHIFT = 0

# SCTLR_EL1 bits (D19.2.118).
SCTLR_M = 1 << 0
SCTLR_SPAN = 1 << 23
SCTLR_DSSBS = 1 << 44
# Reset value with the MMU and caches off: the RES1 bits 29, 28, 23, 22, 20, 11.
SCTLR_EL1_RESET = 0x30D0_0800

# PSTATE / SPSR fields (C5.2.19 and D1.4).
PSTATE_SP = 1 << 0             # SPSel: 1 = SP_ELx
PSTATE_EL_SHIFT = 2
PSTATE_F = 1 << 6
PSTATE_I = 1 << 7
PSTATE_A = 1 << 8
PSTATE_D = 1 << 9
PSTATE_DAIF = PSTATE_D | PSTATE_A | PSTATE_I | PSTATE_F
PSTATE_BTYPE_MASK = 3 << 10
PSTATE_SSBS = 1 << 12
PSTATE_IL = 1 << 20
PSTATE_SS = 1 << 21
PSTATE_PAN = 1 << 22
PSTATE_MODE_EL0T = 0b0000
PSTATE_MODE_EL1T = 0b0100
PSTATE_MODE_EL1H = 0b0101
# EL1h with D, A, I and F masked: how PSCI and the boot protocol start a CPU.
PSTATE_EL1H_MASKED = PSTATE_DAIF | PSTATE_MODE_EL1H

# CPACR_EL1 (D19.2.30): ZEN [17:16], FPEN [21:20].
CPACR_ZEN_SHIFT = 16
CPACR_FPEN_SHIFT = 20


def pstate_el(pstate: int) -> int:
    return (pstate >> PSTATE_EL_SHIFT) & 3


def cpacr_allows(cpacr: int, shift: int, el: int) -> bool:
    """FPEN/ZEN: 0b01 traps EL0 only, 0b11 traps nothing, 0bx0 traps EL0 and EL1."""
    field = (cpacr >> shift) & 3
    return field == 3 or (field == 1 and el == 1)
