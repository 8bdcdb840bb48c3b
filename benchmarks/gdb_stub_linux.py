#!/usr/bin/env python3
"""What the GDB stub costs Debian's kernel booting on 4 CPUs (bare board).

Four ways to boot the same Image and initramfs to the init's marker, one
after the other in each round, medians over the rounds:
  no stub        `armvisor run` as linux_boot.py runs it;
  stub attached  `-S --gdb tcp::PORT`, gdb-multiarch attached, nothing set, `continue`;
  + hbreak       the same with one hardware breakpoint on an address the kernel
                 never executes;
  + watch        the same with one 8-byte write watchpoint (gdb's `watch`, a
                 hardware watchpoint: Z2) on a RAM page the boot never touches.
What is timed is the guest's own boot from its first console output to the
marker, so that neither the process start-up nor the wait for gdb (with -S
the machine waits before its first instruction) counts, the same for every
kind. What differs is the stub's cost while the guest runs: its polling for
Ctrl-C between slices and the points' hooks.

Usage: .venv/bin/python benchmarks/gdb_stub_linux.py [--runs N] [--smp N]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linux_boot import armvisor_cmd  # noqa: E402

from armvisor.devtools.ports import free_port, listening  # noqa: E402
from armvisor.errors import ArmvisorError  # noqa: E402
from armvisor.images.debian import cached_images  # noqa: E402
from armvisor.images.initramfs import INIT_MARKER  # noqa: E402

GDB = shutil.which("gdb-multiarch")
MARKER = INIT_MARKER.encode()
GO = b"armvisor-bench: continuing"
# 512 MiB of RAM from 0x40000000, MMU off when gdb sets the points (-S), so
# these are physical addresses too. The last page is never executed (Linux
# runs from its virtual addresses once the MMU is on); the page at +256 MiB is
# free memory the boot to the initramfs's init never writes (checked: the
# watchpoint would stop the boot and no marker would come).
COLD_CODE = 0x5FFFF000
COLD_DATA = 0x50000000
POINTS = {
    "stub attached": [],
    "+ hbreak (cold)": [f"hbreak *{COLD_CODE:#x}"],
    "+ watch (cold page)": [f"watch *(long *){COLD_DATA:#x}"],
}


def boot(cmd: list, gdb_commands=None, timeout: float = 300) -> float:
    """Seconds from the guest's first console output to the marker."""
    port = free_port()
    if gdb_commands is not None:
        cmd = cmd + ["-S", "--gdb", f"tcp::{port}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    gdb = None
    first = None
    try:
        if gdb_commands is not None:
            while not listening(port):
                if proc.poll() is not None or time.perf_counter() - start > 60:
                    raise SystemExit(f"the stub never listened: {proc.stdout.read().decode()}")
                time.sleep(0.005)
            script = ["set pagination off", "set confirm off", f"target remote :{port}",
                      *gdb_commands, f"echo {GO.decode()}\\n", "continue"]
            gdb = subprocess.Popen([GDB, "-q", "-nx", "-batch",
                                    *[arg for c in script for arg in ("-ex", c)]],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
            said = b""
            while GO not in said:
                chunk = os.read(gdb.stdout.fileno(), 4096)
                if not chunk:
                    raise SystemExit(f"gdb ended before continuing:\n{said.decode()}")
                said += chunk
            if gdb_commands and b"Hardware" not in said:
                raise SystemExit(f"gdb did not set a hardware point:\n{said.decode()}")
        seen = b""
        while MARKER not in seen:
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"no marker within {timeout} s")
            ready_fds, _, _ = select.select([proc.stdout], [], [], 1)
            if ready_fds:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    raise SystemExit(f"armvisor ended before the marker:\n{seen[-1500:].decode()}")
                if first is None:
                    first = time.perf_counter()
                seen += chunk
        return time.perf_counter() - first
    finally:
        for p in (proc, gdb):
            if p is not None:
                p.kill()
                p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (median)")
    parser.add_argument("--smp", type=int, default=4)
    args = parser.parse_args()
    if GDB is None:
        print("needs gdb-multiarch (scripts/setup installs it)", file=sys.stderr)
        return 1
    try:
        images = cached_images()
    except ArmvisorError as exc:
        print(exc, file=sys.stderr)
        return 1
    cmd = armvisor_cmd(images.kernel, images.initramfs, args.smp, "--quiet")
    times = {"no stub": []}
    times.update({label: [] for label in POINTS})
    for _ in range(args.runs):
        times["no stub"].append(boot(cmd))
        for label, commands in POINTS.items():
            times[label].append(boot(cmd, commands))
    print(f"Debian's kernel, {args.smp} CPUs, to {INIT_MARKER!r}, median of {args.runs}")
    base = statistics.median(times["no stub"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:22s} {median:6.2f} s  {100 * (median / base - 1):+5.1f}%"
              f"   ({', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
