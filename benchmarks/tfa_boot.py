#!/usr/bin/env python3
"""Boot TF-A -> U-Boot -> Debian's Linux on 4 CPUs to the init's marker: armvisor and QEMU.

The flash image is `scripts/fetch-thirdparty tf-a` (TF-A 2.8, BL33 Debian's
U-Boot), the kernel and initramfs `armvisor images fetch debian`'s; both
machines get `secure=on,virtualization=on`, `-cpu max`, 4 CPUs and 1 GiB,
and are timed from the start of the process until the init prints its
marker (U-Boot's 2 s autoboot countdown included on both).

Then, in-process, what the holding pen costs: from reset CPUs 1-3 spin in
TF-A's BL1 on WFE until Linux's CPU_ON (QEMU's TCG runs WFE as a yield;
Unicorn runs it as a NOP). With patch 0006 a CPU whose WFE runs while
another CPU could run ends its slice there (cpu/core.py yield_to_others);
the same boot with those reports switched off shows what that saves.

Usage: .venv/bin/python benchmarks/tfa_boot.py [--runs N] [--smp N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linux_boot import MarkerConsole, MarkerSeen, time_to_marker  # noqa: E402

from armvisor.cpu.native import native  # noqa: E402
from armvisor.devtools import qemu  # noqa: E402
from armvisor.errors import ArmvisorError, GuestError  # noqa: E402
from armvisor.images.debian import cached_images  # noqa: E402
from armvisor.images.initramfs import INIT_MARKER  # noqa: E402
from armvisor.machine.board import BareBoard  # noqa: E402
from armvisor.machine.config import MachineConfig  # noqa: E402

FETCH = Path(__file__).resolve().parents[1] / "scripts" / "fetch-thirdparty"
APPEND = "console=ttyAMA0"
MEMORY = "1G"


def flash_image() -> Path:
    done = subprocess.run([str(FETCH), "tf-a"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tfa_boot: no TF-A build: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1]) / "flash.bin"


def armvisor_cmd(flash, kernel, initrd, smp: int) -> list:
    return [sys.executable, "-m", "armvisor", "run", "--secure", "--virtualization",
            "--cpu", "max", "-bios", str(flash), "--kernel", str(kernel), "--initrd", str(initrd),
            "--append", APPEND, "--smp", str(smp), "--memory", MEMORY]


def qemu_cmd(flash, kernel, initrd, smp: int) -> list:
    return qemu.virt_command(machine="virt,secure=on,virtualization=on,gic-version=3",
                             cpu="max", smp=smp, memory=MEMORY,
                             extra=["-bios", str(flash), "-kernel", str(kernel),
                                    "-initrd", str(initrd), "-append", APPEND])


def in_process(flash, kernel, initrd, smp: int, yields: bool) -> tuple:
    """Seconds to the marker, slices that ended on a WFE, WFE/YIELDs run, instructions."""
    console = MarkerConsole()
    start = time.perf_counter()
    board = BareBoard(MachineConfig(bios=str(flash), kernel=str(kernel), initrd=str(initrd),
                                    smp=smp, memory=1 << 30, append=APPEND, cpu="max",
                                    virtualization=True, secure=True), console=console)
    if not yields:
        # Measurement only: the reports patch 0006 adds, off for every core.
        for lane in board.lanes:
            native().uc_armvisor_set_yield_reports(lane.core.handle, False)
    try:
        board.run(timeout=600)
    except (MarkerSeen, GuestError):
        if not console.reached:
            raise
    seconds = time.perf_counter() - start
    counts = board.exit_counts()
    result = (seconds, counts.get("yield", 0), sum(lane.core.yields for lane in board.lanes),
              sum(lane.core.executed for lane in board.lanes))
    board.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="boots per machine (median)")
    parser.add_argument("--smp", type=int, default=4)
    args = parser.parse_args()
    try:
        images = cached_images()
    except ArmvisorError as exc:
        print(f"tfa_boot: {exc}", file=sys.stderr)
        return 2
    flash = flash_image()
    kernel, initrd = images.kernel, images.initramfs
    print(f"TF-A -> U-Boot -> Debian {images.kernel_release}, {args.smp} CPUs, {MEMORY}, "
          f"to '{INIT_MARKER}'")
    ours = statistics.median(time_to_marker(armvisor_cmd(flash, kernel, initrd, args.smp))
                             for _ in range(args.runs))
    print(f"  armvisor --secure:     {ours:6.2f} s (median of {args.runs})")
    if qemu.available():
        theirs = statistics.median(time_to_marker(qemu_cmd(flash, kernel, initrd, args.smp))
                                   for _ in range(args.runs))
        print(f"  qemu-system-aarch64:   {theirs:6.2f} s (median of {args.runs}, TCG)")
        print(f"  ratio armvisor/QEMU:   {ours / theirs:6.2f}")
    else:
        print("  qemu-system-aarch64 is not installed: no comparison")
    if native().uc_armvisor_set_yield_reports is None:
        print("  (this Unicorn lacks patch 0006: no yield measurement)")
        return 0
    print("the holding pen, in-process (one run each):")
    for yields in (True, False):
        seconds, slices, wfes, executed = in_process(flash, kernel, initrd, args.smp, yields)
        seen = f"{slices:,} slices ended on a WFE, {wfes:,} WFE/YIELD run, " if yields else ""
        print(f"  WFE yields {'on ' if yields else 'off'}: {seconds:6.2f} s, {seen}"
              f"{executed / 1e6:,.0f} M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
