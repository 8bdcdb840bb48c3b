#!/usr/bin/env python3
"""Debian's kernel at its shell prompt: restoring a snapshot against booting, side by side
with QEMU's cold boot, in one run.

Three ways to get a 4-CPU Debian shell that answers, each from the start of
its process: armvisor boots it (cold), armvisor restores a snapshot taken at
the prompt (`--restore`), QEMU boots it (TCG). Cold boots are timed to the
initramfs marker; the restore to the answer of a command typed at once
(`echo`), since a restored shell prints nothing until asked. Also printed:
the snapshot's size and how long taking it took.

Usage: .venv/bin/python benchmarks/snapshot_restore.py [--runs N] [--hyp]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linux_boot import armvisor_cmd, qemu_cmd, time_to_marker  # noqa: E402

from armvisor.devtools import qemu  # noqa: E402
from armvisor.images.debian import cached_images  # noqa: E402

ANSWER = "restored-shell-answers"


def time_restore(snapshot: Path, timeout: float = 120) -> float:
    """Seconds from starting `armvisor run --restore` until the shell answers a command."""
    with tempfile.TemporaryFile() as typed:
        typed.write(f"echo {ANSWER[:8]}''{ANSWER[8:]}\n".encode())   # the echo line is not it
        typed.seek(0)
        return time_to_marker([sys.executable, "-m", "armvisor", "run", "--restore",
                               str(snapshot), "--quiet"], timeout,
                              marker=ANSWER.encode() + b"\r", stdin=typed)


def take_snapshot(kernel, initrd, path: Path, hyp: bool) -> None:
    """Boot to the prompt with --snapshot-at; the run goes on after it, so stop it then."""
    proc = subprocess.Popen(armvisor_cmd(kernel, initrd, 4, *(["--hyp"] if hyp else []),
                                         "--snapshot-at", "console:/ # ", "--snapshot-out",
                                         str(path), "--timeout", "300", "--quiet"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        for line in proc.stderr:
            if b"snapshot of" in line:
                return
        raise SystemExit("armvisor ended without writing the snapshot")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hyp", action="store_true", help="a 4-vCPU VM instead of bare")
    args = parser.parse_args()
    images = cached_images()
    kernel, initrd = images.kernel, images.initramfs
    extra = ["--hyp"] if args.hyp else []
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / "prompt.avs"
        take_snapshot(kernel, initrd, snapshot, args.hyp)
        rows = {"armvisor cold boot": [], "armvisor --restore": [], "qemu cold boot": []}
        for _ in range(args.runs):
            rows["armvisor cold boot"].append(
                time_to_marker(armvisor_cmd(kernel, initrd, 4, *extra)))
            rows["armvisor --restore"].append(time_restore(snapshot))
            if qemu.available():
                rows["qemu cold boot"].append(time_to_marker(qemu_cmd(kernel, initrd, 4)))
        size = snapshot.stat().st_size
    qemu_median = statistics.median(rows["qemu cold boot"]) if rows["qemu cold boot"] else None
    print(f"Debian {images.kernel_release}, 4 CPUs{' (one VM)' if args.hyp else ''}, "
          f"{args.runs} runs each; snapshot {size / 1e6:.1f} MB")
    for name, times in rows.items():
        if not times:
            print(f"  {name:22s}  (qemu-system-aarch64 not installed)")
            continue
        median = statistics.median(times)
        ratio = f"  {median / qemu_median:5.2f}x QEMU's boot" if qemu_median else ""
        print(f"  {name:22s} {median:6.2f} s (min {min(times):.2f}){ratio}")


if __name__ == "__main__":
    main()
