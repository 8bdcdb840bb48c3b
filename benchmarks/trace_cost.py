#!/usr/bin/env python3
"""What `--trace` costs a Linux boot: Debian's kernel to the init's marker, in-process,
with and without the Chrome trace writer.

Both boots are `--deterministic`, so they run the same instructions and emit
the same events; the runs alternate (with, without, with, ...) so that a
busy host slows both alike. Printed: the median of each, the difference in
percent (target <= 5%), and the trace's size and event count.

Usage: .venv/bin/python benchmarks/trace_cost.py [--runs N] [--smp N] [--hyp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from armvisor.api import VM, Machine
from armvisor.errors import ArmvisorError
from armvisor.images.debian import cached_images
from armvisor.images.initramfs import INIT_MARKER
from armvisor.trace import TraceBus
from armvisor.trace.chrome import ChromeTraceWriter

APPEND = "console=ttyAMA0"


class MarkerSeen(Exception):
    pass


def boot_seconds(kernel, initrd, smp: int, hyp: bool, trace_path) -> tuple:
    """(wall, CPU) seconds to the marker; CPU time is what a busy host disturbs least."""
    seen = bytearray()

    def console(data: bytes) -> None:
        seen.extend(data)
        if INIT_MARKER.encode() in seen:
            raise MarkerSeen()

    bus = TraceBus()
    writer = ChromeTraceWriter(trace_path) if trace_path else None
    if writer is not None:
        bus.subscribe(writer.on_event)
    start, cpu_start = time.perf_counter(), time.process_time()
    common = dict(deterministic=True, trace=bus, console=console)
    if hyp:
        machine = Machine(vms=[VM(str(kernel), smp=smp, memory=512 << 20, initrd=str(initrd),
                                  append=APPEND, name="vm0")], **common)
    else:
        machine = Machine(str(kernel), smp=smp, memory=512 << 20, initrd=str(initrd),
                          append=APPEND, **common)
    try:
        machine.run(timeout=300)
    except Exception:                      # noqa: BLE001 - the marker ends the run
        pass                               # (raised inside a device, it comes back wrapped)
    finally:
        if writer is not None:
            writer.close()
        machine.close()
    if INIT_MARKER.encode() not in seen:
        raise SystemExit(f"no marker: {bytes(seen[-800:]).decode(errors='replace')}")
    return time.perf_counter() - start, time.process_time() - cpu_start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="boots of each kind (median)")
    parser.add_argument("--smp", type=int, default=4)
    parser.add_argument("--hyp", action="store_true", help="boot as a VM of 4 vCPUs")
    args = parser.parse_args()
    try:
        images = cached_images()
    except ArmvisorError as exc:
        print(f"trace_cost: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "boot.json")
        plain, traced = [], []
        for _ in range(args.runs):
            traced.append(boot_seconds(images.kernel, images.initramfs, args.smp, args.hyp, path))
            plain.append(boot_seconds(images.kernel, images.initramfs, args.smp, args.hyp, None))
        size = os.path.getsize(path)
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
    mode = "as a VM (--hyp)" if args.hyp else "bare"
    print(f"Debian {images.kernel_release}, {args.smp} CPUs {mode}, --deterministic, "
          f"to '{INIT_MARKER}', median of {args.runs}")
    for column, what in ((0, "wall"), (1, "CPU")):
        without = statistics.median(t[column] for t in plain)
        with_ = statistics.median(t[column] for t in traced)
        print(f"  {what:4s} without --trace: {without:6.2f} s   "
              f"{sorted(round(t[column], 2) for t in plain)}")
        print(f"  {what:4s} with --trace:    {with_:6.2f} s   "
              f"{sorted(round(t[column], 2) for t in traced)}")
        print(f"  {what:4s} cost:            {100 * (with_ - without) / without:+6.1f} %   "
              "(target <= 5 %)")
    print(f"  trace:            {size / 1e6:.1f} MB, {len(records):,} records, "
          f"{sum(1 for r in records if r.get('ph') == 'i'):,} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
