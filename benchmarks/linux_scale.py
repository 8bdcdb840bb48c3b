#!/usr/bin/env python3
"""How Debian's boot grows with CPUs: armvisor (bare) and QEMU TCG, 1 to 64 CPUs.

Each machine boots the same Image and initramfs to the init's marker with
N CPUs and 512 MiB (linux_boot.py's command lines), one after the other for
each N. Printed per N: the seconds to the marker, the CPUs the kernel says it
brought up ("smp: Brought up 1 node, N CPUs"), and the seconds each CPU
beyond the first added, for both and as a ratio.

Usage: .venv/bin/python benchmarks/linux_scale.py [--cpus 1,4,16,64] [--runs N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linux_boot import armvisor_cmd, qemu_cmd, run_to_marker  # noqa: E402

from armvisor.devtools import qemu  # noqa: E402
from armvisor.errors import ArmvisorError  # noqa: E402
from armvisor.images.debian import cached_images  # noqa: E402
from armvisor.images.initramfs import INIT_MARKER  # noqa: E402

BROUGHT_UP = re.compile(rb"smp: Brought up \d+ nodes?, (\d+) CPUs?")


def boot(cmd: list, timeout: float) -> tuple:
    """(seconds to the marker, CPUs brought up) for one boot."""
    elapsed, seen = run_to_marker(cmd, timeout)
    found = BROUGHT_UP.search(seen)
    return elapsed, int(found.group(1)) if found else 1


def median_boot(cmd: list, runs: int, timeout: float) -> tuple:
    results = [boot(cmd, timeout) for _ in range(runs)]
    return statistics.median(r[0] for r in results), min(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", default="1,4,16,64", help="CPU counts, comma-separated")
    parser.add_argument("--runs", type=int, default=1, help="boots per machine and count (median)")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    try:
        counts = [int(n) for n in args.cpus.split(",")]
        images = cached_images()
    except (ValueError, ArmvisorError) as exc:
        print(f"linux_scale: {exc}", file=sys.stderr)
        return 2
    with_qemu = qemu.available()
    print(f"Debian {images.kernel_release}, 512 MiB, to '{INIT_MARKER}', median of {args.runs}")
    print(f"{'CPUs':>5} {'armvisor':>9} {'up':>4} {'QEMU':>8} {'up':>4} {'ratio':>6}")
    first = None
    for n in counts:
        ours, ours_up = median_boot(armvisor_cmd(images.kernel, images.initramfs, n),
                                    args.runs, args.timeout)
        theirs, theirs_up = (median_boot(qemu_cmd(images.kernel, images.initramfs, n),
                                         args.runs, args.timeout)
                             if with_qemu else (float("nan"), 0))
        print(f"{n:5d} {ours:8.2f}s {ours_up:4d} {theirs:7.2f}s {theirs_up:4d} "
              f"{ours / theirs:6.2f}", flush=True)
        if first is None:
            first = (n, ours, theirs)
        elif n > first[0]:
            added = n - first[0]
            print(f"{'':5s} per CPU beyond {first[0]}: armvisor {(ours - first[1]) / added:.2f} s, "
                  f"QEMU {(theirs - first[2]) / added:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
