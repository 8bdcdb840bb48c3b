#!/usr/bin/env python3
"""What one exception round trip costs: SVC from EL0 to an EL1 handler and ERET back.

The same tiny guest runs on armvisor's bare board (native delivery: QEMU's own
exception entry called from the C hook, see armvisor/cpu/native_exceptions.py),
on armvisor with native delivery off (ARMVISOR_NATIVE_EXCEPTIONS=0: the
entry rebuilt in Python, entry.py) and on `qemu-system-aarch64 -M virt`
(TCG). Each is a whole process run twice, with N and 11N SVCs: the
difference divided by 10N is the cost of one round trip, process start-up and
everything else cancel. The guest powers off with PSCI SYSTEM_OFF over HVC,
which QEMU virt without EL2 answers and armvisor's bare board answers with
--psci-conduit hvc.

Usage: .venv/bin/python benchmarks/exception_round_trip.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from armvisor.devtools import qemu
from armvisor.devtools.cross import build_program, have_cross_tools

# EL1 sets up its vectors and drops to EL0, which loops on SVC #0; the
# handler (lower EL, AArch64, synchronous: VBAR_EL1 + 0x400) ERETs, or powers
# off when the SVC's immediate (ESR_EL1.ISS) is 1.
SVC_LOOP = """
    adr x0, vectors
    msr vbar_el1, x0
    adr x0, stack_top
    msr sp_el0, x0
    adr x0, el0_code
    msr elr_el1, x0
    msr spsr_el1, xzr          // EL0t, interrupts unmasked
    isb
    eret
el0_code:
    ldr x1, ={iters}
1:  svc #0
    subs x1, x1, #1
    b.ne 1b
    svc #1
    .balign 2048
vectors:
    .skip 0x400
    mrs x9, esr_el1
    and x9, x9, #0xffff
    cbnz x9, off
    eret
off:
    ldr x0, =0x84000008        // PSCI SYSTEM_OFF
    hvc #0
    .balign 16
    .skip 256
stack_top:
"""

# Round trips per run for each system (N; the second run has 11N): enough for
# the difference to stand well above process start-up noise.
ITERATIONS = {"armvisor": 100_000, "armvisor, Python entry": 20_000, "QEMU": 1_000_000}


def armvisor_cmd(elf: Path) -> list:
    return [sys.executable, "-m", "armvisor", "run", "--kernel", str(elf),
            "--psci-conduit", "hvc", "--timeout", "600"]


def seconds(cmd: list, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=900)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... exited {done.returncode}:\n"
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def per_round_trip(work: Path, label: str, command, env: dict, n: int, repeat: int) -> float:
    small = build_program(work, SVC_LOOP.format(iters=n), f"svc_{n}")
    large = build_program(work, SVC_LOOP.format(iters=11 * n), f"svc_{11 * n}")
    diffs = []
    for _ in range(repeat):
        diffs.append((seconds(command(large), env) - seconds(command(small), env)) / (10 * n))
    return statistics.median(diffs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs per system (median)")
    parser.add_argument("--quick", action="store_true", help="10x fewer iterations")
    args = parser.parse_args()
    if not have_cross_tools():
        print("needs Debian's binutils-aarch64-linux-gnu", file=sys.stderr)
        return 2
    scale = 10 if args.quick else 1
    native_env = {k: v for k, v in os.environ.items() if k != "ARMVISOR_NATIVE_EXCEPTIONS"}
    python_env = {**native_env, "ARMVISOR_NATIVE_EXCEPTIONS": "0"}
    systems = [("armvisor", armvisor_cmd, native_env),
               ("armvisor, Python entry", armvisor_cmd, python_env)]
    if qemu.available():
        systems.append(("QEMU", lambda elf: qemu.virt_command(kernel=elf), native_env))
    print("EL0 SVC -> EL1 handler -> ERET, one round trip "
          f"(difference of N and 11N, median of {args.repeat}):")
    with tempfile.TemporaryDirectory() as tmp:
        for label, command, env in systems:
            n = ITERATIONS[label] // scale
            cost = per_round_trip(Path(tmp) / label.split(",")[0], label, command, env, n,
                                  args.repeat)
            print(f"  {label + ':':28s} {cost * 1e6:8.3f} us   (N = {n:,})")
    if not qemu.available():
        print("  qemu-system-aarch64 is not installed: no comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
