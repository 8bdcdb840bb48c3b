#!/usr/bin/env python3
"""What one exception round trip costs: SVC from EL0 to an EL1 handler and ERET back.

The same tiny guest runs on:
- armvisor's board in this process, nothing subscribed to its trace:
  the exception path itself (native delivery: QEMU's own entry called from
  the C hook, armvisor/cpu/native_exceptions.py), and the same with native
  delivery off (ARMVISOR_NATIVE_EXCEPTIONS=0: the entry rebuilt in Python,
  entry.py);
- `armvisor run`, whose API keeps every trace event, so each exception also
  becomes an event in Python (kept in memory); with `--trace` also written
  as JSON; and with native delivery off;
- `qemu-system-aarch64 -M virt` (TCG).
Then an HVC from EL1 to the guest's own EL2 handler and ERET back, entered at
EL2 (`--virtualization`, taken natively), against QEMU's virtualization=on.
Each runs twice, with N and 11N SVCs: the difference divided by 10N is the
cost of one round trip; start-up and everything else cancel. The guest
powers off with PSCI SYSTEM_OFF over HVC, which QEMU virt without EL2
answers and armvisor's bare board answers with --psci-conduit hvc.

Usage: .venv/bin/python benchmarks/exception_round_trip.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from armvisor.cpu import native_exceptions
from armvisor.devtools import qemu
from armvisor.devtools.cross import build_program, have_cross_tools
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import svc_el0_loop  # noqa: E402  (benchmarks/machine.py)

# EL0 loops on SVC #0, the EL1 handler ERETs; SVC #1 powers off, over HVC: QEMU's
# virt without EL2 answers PSCI there (the program is benchmarks/machine.py's).
SVC_LOOP = svc_el0_loop(power_off="ldr x0, =0x84000008\n    hvc #0")

# Round trips per run (N; the second run has 11N): enough for the difference
# to stand well above start-up noise. `armvisor run` keeps every trace event
# in memory (the API's default), and Python's garbage collector scans them
# all again and again: its cost per exception grows with the run, so its rows
# all use the same, smaller N.
FAST, SLOW = 1_000_000, 20_000

# Entered at EL2: a handler at VBAR_EL2 + 0x400 (lower EL, AArch64) that ERETs,
# then EL1 loops on HVC #0; SMC from EL1 powers off (HCR_EL2.TSC is clear).
HVC_LOOP = """
    adr x0, 8f
    msr vbar_el2, x0
    ldr x0, =0x80000000        // HCR_EL2.RW
    msr hcr_el2, x0
    adr x0, 1f
    msr elr_el2, x0
    mov x0, #0x3c5             // EL1h, DAIF masked
    msr spsr_el2, x0
    isb
    eret
1:  ldr x1, ={iters}
2:  hvc #0
    subs x1, x1, #1
    b.ne 2b
    system_off
    .balign 2048
8:  .skip 0x400
    eret
"""


def armvisor_cmd(elf: Path, *extra: str) -> list:
    return [sys.executable, "-m", "armvisor", "run", "--kernel", str(elf),
            "--psci-conduit", "hvc", "--timeout", "600", *extra]


def environment(native: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != native_exceptions.ENV_SWITCH}
    return env if native else {**env, native_exceptions.ENV_SWITCH: "0"}


def process(command: Callable[[Path], list], native: bool = True) -> Callable[[Path], float]:
    """Seconds for a whole process run of `command(elf)`."""
    def seconds(elf: Path) -> float:
        start = time.perf_counter()
        done = subprocess.run(command(elf), env=environment(native), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=900)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command(elf)[:3])} ... exited {done.returncode}:\n"
                             f"{done.stderr.decode(errors='replace')[-2000:]}")
        return elapsed
    return seconds


def use_native_delivery(native: bool) -> None:
    """This process's boards deliver exceptions natively or not from now on."""
    wanted = environment(native)
    os.environ.clear()
    os.environ.update(wanted)
    native_exceptions.native_delivery.cache_clear()     # the self-test reads the switch


def board(native: bool) -> Callable[[Path], float]:
    """Seconds of BareBoard.run in this process, with nothing subscribed to the trace."""
    def seconds(elf: Path) -> float:
        use_native_delivery(native)
        with contextlib.redirect_stderr(io.StringIO()):     # "native delivery is off": we know
            machine = BareBoard(MachineConfig(kernel=str(elf), psci_conduit="hvc"),
                                console=lambda data: None)
        assert machine.lanes[0].core.native_exceptions == native
        return timed_run(machine, elf)
    return seconds


def board_at_el2() -> Callable[[Path], float]:
    """Seconds of BareBoard.run entered at EL2 (--virtualization), nothing on the trace."""
    def seconds(elf: Path) -> float:
        use_native_delivery(True)           # an earlier measure may have switched it off
        machine = BareBoard(MachineConfig(kernel=str(elf), virtualization=True),
                            console=lambda data: None)
        return timed_run(machine, elf)
    return seconds


def timed_run(machine: BareBoard, elf: Path) -> float:
    """Seconds of `machine.run` until the guest powers off; the machine is closed after."""
    start = time.perf_counter()
    if machine.run(timeout=600) != 0:
        raise SystemExit(f"{elf.name} did not power off")
    elapsed = time.perf_counter() - start
    machine.close()
    return elapsed


def per_round_trip(work: Path, seconds: Callable[[Path], float], n: int, repeat: int,
                   program: str = SVC_LOOP) -> float:
    small = build_program(work, program.format(iters=n), f"loop_{n}")
    large = build_program(work, program.format(iters=11 * n), f"loop_{11 * n}")
    diffs = [(seconds(large) - seconds(small)) / (10 * n) for _ in range(repeat)]
    return statistics.median(diffs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs per system (median)")
    parser.add_argument("--quick", action="store_true", help="10x fewer iterations")
    parser.add_argument("--el2", action="store_true", help="only the HVC to EL2 round trip")
    args = parser.parse_args()
    if not have_cross_tools():
        print("needs Debian's binutils-aarch64-linux-gnu", file=sys.stderr)
        return 2
    scale = 10 if args.quick else 1
    saved = dict(os.environ)
    systems = [] if args.el2 else [
        ("board, native", board(True), FAST),
        ("board, Python entry", board(False), SLOW),
        ("armvisor run, native", process(armvisor_cmd), SLOW),
        ("armvisor run --trace, native",
         process(lambda elf: armvisor_cmd(elf, "--trace", str(elf.with_suffix(".json")))),
         SLOW),
        ("armvisor run, Python entry", process(armvisor_cmd, native=False), SLOW),
    ]
    if qemu.available() and not args.el2:
        systems.append(("QEMU", process(lambda elf: qemu.virt_command(kernel=elf)), FAST))
    print("EL0 SVC -> EL1 handler -> ERET, one round trip "
          f"(difference of N and 11N, median of {args.repeat}):")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, seconds, n in systems:
                n //= scale
                cost = per_round_trip(Path(tmp) / label.replace(" ", "_"), seconds, n,
                                      args.repeat)
                print(f"  {label + ':':30s} {cost * 1e6:8.3f} us   (N = {n:,})")
        print("EL1 HVC -> the guest's EL2 handler -> ERET, one round trip:")
        el2 = [("board --virtualization", board_at_el2(), FAST)]
        if qemu.available():
            el2.append(("QEMU virtualization=on", process(lambda elf: qemu.virt_command(
                machine="virt,virtualization=on,gic-version=3", kernel=elf)), FAST))
        with tempfile.TemporaryDirectory() as tmp:
            for label, seconds, n in el2:
                n //= scale
                cost = per_round_trip(Path(tmp) / label.replace(" ", "_"), seconds, n,
                                      args.repeat, HVC_LOOP)
                print(f"  {label + ':':30s} {cost * 1e6:8.3f} us   (N = {n:,})")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if not qemu.available():
        print("  qemu-system-aarch64 is not installed: no comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
