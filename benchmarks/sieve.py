#!/usr/bin/env python3
"""kvm-unit-tests' sieve (memory-bound, one CPU) on armvisor and on QEMU, side by side.

The same command line for both, QEMU's (`-M virt,gic-version=3 -cpu cortex-a57
-smp 1 -m 256 -kernel arm/sieve.flat`): `armvisor-qemu` takes it for armvisor.
The sieve runs three times over 100 M bytes (MMU off, MMU on, vmalloc'd
memory), so nearly all of it is guest loads and stores: what patches 0001 and
0002 (stores on the fast path) are for. Each is timed from the start of its
process to its exit; the runs alternate so load on the host hits both alike.

Needs `scripts/fetch-thirdparty kvm-unit-tests`.

Usage: .venv/bin/python benchmarks/sieve.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from armvisor.devtools import qemu

FETCH = Path(__file__).resolve().parents[1] / "scripts" / "fetch-thirdparty"
ARGS = ["-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-smp", "1", "-m", "256",
        "-nographic", "-nic", "none", "-no-reboot"]
# What the sieve prints for its 100 M bytes: the primes below 10^8.
ANSWER = b"5761455 out of 100000000"


def timed(command: list) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=1800, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if done.stdout.count(ANSWER) != 3:
        raise SystemExit(f"sieve: {command[0]} did not finish its three sieves:\n"
                         f"{(done.stdout + done.stderr).decode(errors='replace')[-800:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per machine (median)")
    args = parser.parse_args()
    done = subprocess.run([str(FETCH), "kvm-unit-tests"], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"sieve: no kvm-unit-tests: {done.stderr.strip()}", file=sys.stderr)
        return 2
    flat = Path(done.stdout.strip().splitlines()[-1]) / "arm" / "sieve.flat"
    ours_cmd = [shutil.which("armvisor-qemu") or str(Path(sys.executable).parent / "armvisor-qemu"),
                *ARGS, "-kernel", str(flat)]
    theirs_cmd = [qemu.QEMU, *ARGS, "-kernel", str(flat)] if qemu.available() else None
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(timed(ours_cmd))
        if theirs_cmd:
            theirs.append(timed(theirs_cmd))
    print(f"kvm-unit-tests sieve, 1 CPU, 256 MiB ({args.runs} runs each, alternating)")
    print(f"  armvisor:             {statistics.median(ours):7.1f} s   "
          f"({', '.join(f'{s:.1f}' for s in ours)})")
    if theirs:
        print(f"  qemu-system-aarch64:  {statistics.median(theirs):7.1f} s   "
              f"({', '.join(f'{s:.1f}' for s in theirs)}, TCG)")
        print(f"  ratio armvisor/QEMU:  {statistics.median(ours) / statistics.median(theirs):7.2f}"
              "   (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
