"""Tiny inline-assembly guests for the core and board tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import armvisor

from armvisor.devtools.cross import build_program, have_cross_tools


def two_cpu_machine(kernel: str, mode: str, slice_budget: int) -> armvisor.Machine:
    """`mode` "bare": 2 CPUs on the board; "hyp": a VM's 2 vCPUs pinned on 2 pCPUs."""
    if mode == "bare":
        return armvisor.Machine(kernel=kernel, smp=2, slice=slice_budget)
    return armvisor.Machine(vms=[armvisor.VM(kernel=kernel, smp=2)], slice=slice_budget)


def build(tmp_path: Path, body: str, name: str = "guest") -> Path:
    if not have_cross_tools():
        pytest.skip("needs Debian's binutils-aarch64-linux-gnu")
    return build_program(tmp_path, body, name)


# QEMU virt's GICv3 frames (IHI0069 12.8, 12.10, 12.11): the distributor, and
# CPU 0's redistributor SGI/PPI frame (RD_base + 64 KiB).
GICD_BASE = 0x0800_0000
GICR_SGI_BASE = 0x080A_0000 + 0x1_0000
GICD_CTLR_ARE_NS_GRP1 = 0x12         # ARE_NS (bit 4) | EnableGrp1NS (bit 1), NS view
GICR_IGROUPR0, GICR_ISENABLER0, GICR_ISPENDR0, GICR_IPRIORITYR = 0x80, 0x100, 0x200, 0x400


def enable_ppi(intid: int) -> str:
    """Assembly: the distributor on, PPI `intid` group 1, enabled, priority 0x80, and the
    CPU interface taking every priority. Leaves x1 = CPU 0's SGI/PPI frame."""
    return f"""
    ldr x1, ={GICD_BASE:#x}
    mov w2, #{GICD_CTLR_ARE_NS_GRP1}
    str w2, [x1]
    ldr x1, ={GICR_SGI_BASE:#x}
    mov w2, #{1 << intid:#x}
    str w2, [x1, #{GICR_IGROUPR0}]
    str w2, [x1, #{GICR_ISENABLER0}]
    mov w2, #0x80
    strb w2, [x1, #{GICR_IPRIORITYR + intid}]
    mov x2, #0xff
    msr s3_0_c4_c6_0, x2          // ICC_PMR_EL1: let every priority through
    mov x2, #1
    msr s3_0_c12_c12_7, x2        // ICC_IGRPEN1_EL1
"""
