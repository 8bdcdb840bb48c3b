#!/usr/bin/env python3
"""What one exit from a VM costs, by reason, under armvisor's hypervisor and on the bare board.

Each figure is the difference between runs of the same guest loop with N and
11N iterations (start-up and the loop's own instructions cancel), one vCPU:
- hvc:  PSCI_VERSION over HVC, served by the VM's virtual PSCI (bare: the EL3 firmware),
- mmio: a PL011 UARTFR read (the VM's own PL011),
- icc:  an ICC_IAR1_EL1 read + ICC_EOIR1_EL1 write pair (the vGIC's CPU interface).
Usage: .venv/bin/python benchmarks/vm_exits.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from armvisor.devtools.cross import build_program
from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.hyp import Hypervisor
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from armvisor.trace import TraceBus

CONDUIT = {"bare": "smc", "vm": "hvc"}
LOOPS = {
    "hvc": """
    ldr x19, ={iters}
1:  ldr x0, =0x84000000
    {conduit} #0
    subs x19, x19, #1
    b.ne 1b
""",
    "mmio": """
    ldr x19, ={iters}
    ldr x2, =0x09000018
1:  ldr w3, [x2]
    subs x19, x19, #1
    b.ne 1b
""",
    "icc": """
    ldr x19, ={iters}
1:  mrs x0, S3_0_C12_C12_0
    msr S3_0_C12_C12_1, x0
    subs x19, x19, #1
    b.ne 1b
""",
}
OFF = """
    ldr x0, =0x84000008
    {conduit} #0
    b .
"""


def timed(mode: str, elf: Path) -> float:
    start = time.perf_counter()
    if mode == "bare":
        machine = BareBoard(MachineConfig(kernel=str(elf), psci_conduit="smc"), console=lambda d: None)
        machine.run(timeout=300)
    else:
        hyp = Hypervisor(1, [VmConfig(name="bench", kernel=str(elf), smp=1, memory=64 << 20)],
                         TraceBus(), lambda d: None)
        hyp.run(timeout=300)
        hyp.close()
    return time.perf_counter() - start


def per_exit(work: Path, mode: str, name: str, n: int) -> float:
    conduit = CONDUIT[mode]
    body = LOOPS[name] + OFF
    small = build_program(work, body.format(iters=n, conduit=conduit), f"{mode}_{name}_1")
    large = build_program(work, body.format(iters=11 * n, conduit=conduit), f"{mode}_{name}_2")
    return statistics.median((timed(mode, large) - timed(mode, small)) / (10 * n)
                             for _ in range(3))


def main() -> int:
    counts = {"hvc": 5000, "mmio": 20000, "icc": 5000}
    labels = {"hvc": "PSCI_VERSION call (SMC bare, HVC in a VM)", "mmio": "PL011 register read",
              "icc": "ICC_IAR1 + ICC_EOIR1 pair"}
    print("cost of one exit by reason, in us               bare board    VM (--hyp)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in counts.items():
            bare = per_exit(Path(tmp), "bare", name, n) * 1e6
            vm = per_exit(Path(tmp), "vm", name, n) * 1e6
            print(f"  {labels[name]:44s} {bare:8.2f}  {vm:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
