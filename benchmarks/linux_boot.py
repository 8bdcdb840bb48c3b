#!/usr/bin/env python3
"""Boot Debian's arm64 kernel to the initramfs marker: armvisor bare, as a VM, and QEMU.

All get the same Image and initramfs (`armvisor images fetch debian`), 4 CPUs
and 512 MiB: armvisor on the bare board, armvisor's hypervisor with one VM of
4 vCPUs pinned on 4 pCPUs (`--hyp`), and `qemu-system-aarch64 -M
virt,gic-version=3 -cpu cortex-a57 -smp 4 -m 512M` (TCG). The time measured
is from the start of each process until the init prints its marker. Also
printed: armvisor's exits to Python by kind, where its time went, and what
one VM exit costs by reason (`benchmarks/vm_exits.py`).

With --el2, instead: the kernel entered at EL2 (`--virtualization`, KVM
initialised in nVHE mode) against QEMU's `-M virt,virtualization=on`.

Usage: .venv/bin/python benchmarks/linux_boot.py [--runs N] [--smp N] [--el2]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time

from armvisor.devtools import qemu
from armvisor.cpu.native import native
from armvisor.errors import ArmvisorError
from armvisor.images.debian import cached_images
from armvisor.images.initramfs import INIT_MARKER
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig

APPEND = "console=ttyAMA0"


def time_to_marker(cmd: list, timeout: float = 300, marker: bytes = INIT_MARKER.encode(),
                   stdin=subprocess.DEVNULL) -> float:
    """Seconds from starting `cmd` (input from `stdin`) until `marker` appears on its
    output; then kill it."""
    return run_to_marker(cmd, timeout, marker, stdin)[0]


def run_to_marker(cmd: list, timeout: float = 300, marker: bytes = INIT_MARKER.encode(),
                  stdin=subprocess.DEVNULL) -> tuple:
    """time_to_marker's seconds, and the output up to the marker."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    try:
        while marker not in seen:
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"no marker within {timeout} s from: {' '.join(cmd[:3])} ...")
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    raise SystemExit(f"{cmd[0]} ended before the marker:\n{seen[-1500:].decode()}")
                seen += chunk
        return time.perf_counter() - start, seen
    finally:
        proc.kill()
        proc.wait()


def armvisor_cmd(kernel, initrd, smp: int, *extra: str) -> list:
    return [sys.executable, "-m", "armvisor", "run", "--smp", str(smp), "--memory", "512M",
            "--kernel", str(kernel), "--initrd", str(initrd), "--append", APPEND, *extra]


def qemu_cmd(kernel, initrd, smp: int, machine: str = "virt,gic-version=3") -> list:
    return qemu.virt_command(machine=machine, smp=smp, kernel=kernel,
                             extra=["-initrd", str(initrd), "-append", APPEND])


def compare_el2(kernel, initrd, smp: int, runs: int) -> None:
    """The kernel entered at EL2 (KVM in nVHE mode) on armvisor and on QEMU."""
    ours = statistics.median(time_to_marker(armvisor_cmd(kernel, initrd, smp,
                                                         "--virtualization"))
                             for _ in range(runs))
    print(f"  armvisor --virtualization: {ours:6.2f} s (median of {runs})")
    if not qemu.available():
        print("  qemu-system-aarch64 is not installed: no comparison")
        return
    theirs = statistics.median(time_to_marker(qemu_cmd(
        kernel, initrd, smp, machine="virt,gic-version=3,virtualization=on"))
        for _ in range(runs))
    print(f"  qemu virtualization=on:    {theirs:6.2f} s (median of {runs}, TCG)")
    print(f"  ratio armvisor/QEMU:       {ours / theirs:6.2f}")


class MarkerSeen(Exception):
    pass


class MarkerConsole:
    """An in-process board's console that ends the run at the init's marker (by raising
    MarkerSeen, which reaches the caller as the core's error: it is raised in a slice)."""

    def __init__(self) -> None:
        self.seen = bytearray()

    def __call__(self, data: bytes) -> None:
        self.seen.extend(data)
        if self.reached:
            raise MarkerSeen()

    @property
    def reached(self) -> bool:
        return INIT_MARKER.encode() in self.seen


def profile_armvisor(kernel, initrd, smp: int) -> None:
    """One in-process boot to the marker: exit counts and where the time went."""
    console = MarkerConsole()
    start = time.perf_counter()
    machine = BareBoard(MachineConfig(kernel=str(kernel), initrd=str(initrd), smp=smp,
                                    memory=512 << 20, append=APPEND), console=console)
    created = time.perf_counter()
    try:
        machine.run(timeout=300)
    except Exception:                      # noqa: BLE001 - the marker ends the run
        pass
    total = time.perf_counter() - start
    inside = sum(lane.core.run_seconds for lane in machine.lanes)
    instructions = sum(lane.core.executed for lane in machine.lanes)
    print(f"\nwhere armvisor's {total:.2f} s went (in-process run, {smp} CPUs):")
    print(f"  machine creation (cores, RAM, devices):  {created - start:6.2f} s")
    print(f"  inside uc_emu_start (guest code, JIT,    {inside:6.2f} s   "
          f"{instructions / 1e6:,.0f} M instructions")
    print("    and the exits handled in hooks)")
    print(f"  scheduler, devices, idle between slices: {total - inside - (created - start):6.2f} s")
    print("exits by kind (all CPUs):")
    for kind, count in sorted(machine.exit_counts().items(), key=lambda kv: -kv[1]):
        if count:
            print(f"  {kind:40s} {count:10,d}")
    machine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="boots per machine (median)")
    parser.add_argument("--smp", type=int, default=4)
    parser.add_argument("--el2", action="store_true",
                        help="enter the kernel at EL2 (--virtualization vs virtualization=on)")
    args = parser.parse_args()
    try:
        images = cached_images()
    except ArmvisorError as exc:
        print(f"linux_boot: {exc}", file=sys.stderr)
        return 2
    kernel, initrd = images.kernel, images.initramfs
    print(f"Debian {images.kernel_release}, {args.smp} CPUs, 512 MiB, to '{INIT_MARKER}'")
    patches = native().patches
    print(f"  cores on {'Unicorn 2.1.4 + ' + patches if patches else 'stock Unicorn 2.1.4'}")
    if args.el2:
        compare_el2(kernel, initrd, args.smp, args.runs)
        return 0
    ours = statistics.median(time_to_marker(armvisor_cmd(kernel, initrd, args.smp))
                             for _ in range(args.runs))
    print(f"  armvisor (bare):       {ours:6.2f} s (median of {args.runs})")
    vm = statistics.median(time_to_marker(armvisor_cmd(kernel, initrd, args.smp, "--hyp"))
                           for _ in range(args.runs))
    print(f"  armvisor VM (--hyp):   {vm:6.2f} s (median of {args.runs}, {args.smp} vCPUs pinned "
          f"on {args.smp} pCPUs)")
    print(f"  ratio VM/bare:         {vm / ours:6.2f}   (target <= 1.3)")
    if qemu.available():
        theirs = statistics.median(time_to_marker(qemu_cmd(kernel, initrd, args.smp))
                                   for _ in range(args.runs))
        print(f"  qemu-system-aarch64:   {theirs:6.2f} s (median of {args.runs}, TCG)")
        print(f"  ratio armvisor/QEMU:   {ours / theirs:6.2f}   (target <= 3)")
        print(f"  ratio VM/QEMU:         {vm / theirs:6.2f}")
        # One TCG thread, as armvisor runs every core: is the gap QEMU's parallelism?
        single = statistics.median(time_to_marker(qemu_cmd(kernel, initrd, args.smp)
                                                  + ["-accel", "tcg,thread=single"])
                                   for _ in range(args.runs))
        print(f"  qemu, one TCG thread:  {single:6.2f} s (median of {args.runs}, "
              f"-accel tcg,thread=single; armvisor/that {ours / single:.2f})")
    else:
        print("  qemu-system-aarch64 is not installed: no comparison")
    profile_armvisor(kernel, initrd, args.smp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
