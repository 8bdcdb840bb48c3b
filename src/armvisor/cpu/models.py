"""The CPU models a guest can see (`--cpu`).

Unicorn always executes as its MAX model. `cortex-a57` hides what an A57
does not have by trapping the ID registers (HCR_EL2.TID3) and answering
them here, as QEMU's `-cpu cortex-a57` would report them; it also makes
the guest run faster (no PAuth, SVE, BTI or MTE to emulate: UNICORN-FACTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from armvisor.cpu.sysregs import SysReg


def _id(crm: int, op2: int) -> SysReg:
    """The ID register space op0=3, op1=0, CRn=0, CRm=1..7 (D19.2, Table D19-1)."""
    return SysReg(3, 0, 0, crm, op2)


ID_AA64PFR0_EL1 = _id(4, 0)
ID_AA64PFR1_EL1 = _id(4, 1)
ID_AA64ZFR0_EL1 = _id(4, 4)
ID_AA64DFR0_EL1 = _id(5, 0)
ID_AA64DFR1_EL1 = _id(5, 1)
ID_AA64AFR0_EL1 = _id(5, 4)
ID_AA64AFR1_EL1 = _id(5, 5)
ID_AA64ISAR0_EL1 = _id(6, 0)
ID_AA64ISAR1_EL1 = _id(6, 1)
ID_AA64ISAR2_EL1 = _id(6, 2)
ID_AA64MMFR0_EL1 = _id(7, 0)
ID_AA64MMFR1_EL1 = _id(7, 1)
ID_AA64MMFR2_EL1 = _id(7, 2)

# PMCR_EL0.N, the PMU's event counters (devices/pmu.py), as QEMU's cortex-a57
# (reset_pmcr_el0 0x41013000); MDCR_EL2.HPMN gives them all to EL1 and EL0.
PMU_COUNTERS = 6


@dataclass(frozen=True)
class CpuModel:
    name: str
    compatible: str                      # the DTB cpu node's compatible
    midr: Optional[int]                  # None: keep Unicorn's own
    trap_id_registers: bool              # HCR_EL2.TID3
    id_registers: Dict[SysReg, int] = field(default_factory=dict)
    pauth: bool = False                  # leave PAuth usable (SCR/HCR API, APK)
    sve: bool = False
    pan: bool = False                    # FEAT_PAN visible: PSTATE.PAN set on exception entry

    def id_register(self, reg: SysReg) -> int:
        """Value of a trapped ID register; unlisted ones in the ID space read as zero (RAZ)."""
        return self.id_registers.get(reg, 0)


# Cortex-A57 r1p0 as QEMU's target/arm/cpu64.c aarch64_a57_initfn reports it,
# with AArch32 removed (Unicorn runs AArch64 only) and EL2/EL3 not offered to
# the guest (it runs at EL1, as under `-M virt` without virtualization=on).
CORTEX_A57 = CpuModel(
    name="cortex-a57",
    compatible="arm,cortex-a57",
    midr=0x411F_D070,
    trap_id_registers=True,
    id_registers={
        # EL0=1, EL1=1 (AArch64 only), FP=0, AdvSIMD=0, GIC=1 (system register interface).
        ID_AA64PFR0_EL1: 0x0000_0000_0100_0011,
        ID_AA64DFR0_EL1: 0x0000_0000_1030_5106,
        # AES=2 (with PMULL), SHA1=1, SHA2=1, CRC32=1.
        ID_AA64ISAR0_EL1: 0x0000_0000_0001_1120,
        # PARange=4 (44 bits), ASIDBits=2 (16), BigEnd=1, SNSMem=1, TGran16 no, 64K and 4K yes.
        ID_AA64MMFR0_EL1: 0x0000_0000_0000_1124,
    },
)

MAX = CpuModel(
    name="max",
    compatible="arm,arm-v8",       # what QEMU's DTB says for -cpu max
    midr=None,
    trap_id_registers=False,
    pauth=True,
    sve=True,
    pan=True,
)

CPU_MODELS: Dict[str, CpuModel] = {m.name: m for m in (CORTEX_A57, MAX)}
