#!/usr/bin/env python3
"""armvisor machine benchmark: guest MIPS, cost per exit, CPU_ON latency, SMP boot times.

Run from the repository: `.venv/bin/python benchmarks/machine.py`. Exit costs
are measured as the difference between two runs of the same loop with N and
2N iterations, so machine start-up and the loop's own instructions cancel.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from armvisor.devtools import qemu
from armvisor.devtools.cross import build_program
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from armvisor.trace import TraceBus

REPO = Path(__file__).resolve().parent.parent

MIPS_LOOP = """
    ldr x1, ={iters}
1:  add x2, x2, #1
    add x3, x3, x2
    eor x4, x4, x3
    add x5, x5, #3
    orr x6, x6, x5
    add x7, x7, x6
    subs x1, x1, #1
    b.ne 1b
    system_off
"""

# One iteration: stores and loads of several widths and a pair, at x2.
MEMORY_BODY = """
1:  str x1, [x2]
    stp x1, x1, [x2, #16]
    strb w1, [x2, #40]
    ldr x3, [x2, #8]
    ldp x4, x5, [x2, #16]
    ldrh w6, [x2, #40]
    add x7, x7, x3
    subs x1, x1, #1
    b.ne 1b
    system_off
"""

# Stores and loads to RAM (MMU off), several widths and a pair per iteration:
# every store takes Unicorn's slow path (RAM is executable with the MMU off).
MEMORY_LOOP = """
    ldr x1, ={iters}
    adr x2, buffer
""" + MEMORY_BODY + """
    .balign 64
buffer: .skip 64
"""

# The same loop with the MMU on and the data in an execute-never 2 MiB block:
# stores take Unicorn's fast path (UNICORN-FACTS.md, "Why guest loads and
# stores are slow"). Identity map of RAM's first GiB in 2 MiB blocks, Normal
# write-back (MAIR attr 1), blocks from 0x41000000 on UXN|PXN.
MEMORY_MMU_LOOP = """
    adr x10, l1
    adr x11, l2
    orr x12, x11, #3              // table descriptor
    str x12, [x10, #8]            // L1[1]: 0x40000000-0x7fffffff
    ldr x12, =0x40000705          // block, attr 1, inner shareable, AF
    mov x13, #0
2:  cmp x13, #8
    b.lo 3f
    orr x12, x12, #(3 << 53)      // UXN | PXN from block 8 (0x41000000) on
3:  str x12, [x11, x13, lsl #3]
    add x12, x12, #0x200000
    add x13, x13, #1
    cmp x13, #512
    b.ne 2b
    dsb sy
    ldr x12, =0xff00
    msr mair_el1, x12
    ldr x12, =((1 << 23) | (3 << 12) | (1 << 10) | (1 << 8) | 32)
    msr tcr_el1, x12
    msr ttbr0_el1, x10
    isb
    mrs x12, sctlr_el1
    ldr x13, =((1 << 12) | (1 << 2) | 1)
    orr x12, x12, x13
    msr sctlr_el1, x12
    isb
    ldr x1, ={iters}
    ldr x2, =0x41000000
""" + MEMORY_BODY + """
    .balign 4096
l1: .skip 4096
l2: .skip 4096
"""

# EL1 sets up a vector table, drops to EL0, and EL0 loops on SVC; the handler ERETs.
SVC_EL0_LOOP = """
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
    svc #1                     // imm 1: power off
    .balign 2048
vectors:
    .skip 0x400
    mrs x9, esr_el1            // lower EL, AArch64, synchronous
    and x9, x9, #0xffff
    cbnz x9, off
    eret
off:
    {power_off}
    .balign 16
    .skip 256
stack_top:
"""


def svc_el0_loop(power_off: str = "system_off") -> str:
    """SVC_EL0_LOOP ending with `power_off` (PSCI SYSTEM_OFF over the conduit the run
    uses: `system_off` is SMC); `{iters}` is left for the caller to fill."""
    return SVC_EL0_LOOP.format(iters="{iters}", power_off=power_off)

MMIO_LOOP = """
    ldr x1, ={iters}
    ldr x2, =0x09000018        // UARTFR
1:  ldr w3, [x2]
    subs x1, x1, #1
    b.ne 1b
    system_off
"""

PSCI_LOOP = """
    ldr x1, ={iters}
1:  ldr x0, =0x84000000        // PSCI_VERSION
    smc #0
    subs x1, x1, #1
    b.ne 1b
    system_off
"""


def run_once(elf: Path, smp: int = 1, trace: TraceBus | None = None) -> tuple[float, BareBoard]:
    start = time.perf_counter()
    machine = BareBoard(MachineConfig(kernel=str(elf), smp=smp), trace=trace,
                      console=lambda data: None)
    status = machine.run(timeout=600)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"benchmark guest {elf.name} ended with status {status}")
    return elapsed, machine


def per_iteration(workdir: Path, name: str, source: str, n: int, repeat: int = 3) -> float:
    """Seconds per loop iteration, from runs with n and 11n iterations (median of `repeat`)."""
    small = build_program(workdir, source.format(iters=n), f"{name}_1")
    large = build_program(workdir, source.format(iters=11 * n), f"{name}_2")
    diffs = []
    for _ in range(repeat):
        t1, _ = run_once(small)
        t2, _ = run_once(large)
        diffs.append((t2 - t1) / (10 * n))
    return statistics.median(diffs)


def guest_mips(workdir: Path, iters: int) -> float:
    elf = build_program(workdir, MIPS_LOOP.format(iters=iters), "mips")
    elapsed, machine = run_once(elf)
    return machine.lanes[0].core.executed / elapsed / 1e6


def memory_mips(workdir: Path, iters: int, source: str = MEMORY_LOOP) -> float:
    elf = build_program(workdir, source.format(iters=iters), "memory")
    elapsed, machine = run_once(elf)
    return machine.lanes[0].core.executed / elapsed / 1e6


def cpu_on_latency(smp: int) -> list[float]:
    """Host microseconds from each CPU_ON call to the target's first instruction."""
    trace = TraceBus()
    calls, latencies = {}, []

    def watch(event):
        if event.kind == "psci.call" and event.fields.get("function") == "CPU_ON" \
                and event.fields.get("result") == 0:
            target = event.fields["args"][0] if event.fields.get("args") else None
            calls[target] = event.ts_us
        elif event.kind == "power.state" and event.fields.get("new") == "ON" \
                and event.fields.get("old") == "ON_PENDING":
            started = calls.pop(event.cpu, None)
            if started is not None:
                latencies.append(event.ts_us - started)

    trace.subscribe(watch)
    run_once(REPO / "guests/build/smp_demo.elf", smp, trace)
    return latencies


def irq_figures() -> dict:
    """guests/bench_irq.c on 2 CPUs: {name: nanoseconds} from its "bench:" lines."""
    out = bytearray()
    machine = BareBoard(MachineConfig(kernel=str(REPO / "guests/build/bench_irq.elf"), smp=2),
                      console=out.extend)
    if machine.run(timeout=300) != 0:
        raise SystemExit("bench_irq did not power off")
    return _bench_lines(out.decode())


def irq_figures_on_qemu() -> dict:
    """The same program under qemu-system-aarch64 -M virt (TCG), if it is installed."""
    if not qemu.available():
        return {}
    proc = subprocess.run(
        qemu.virt_command(machine="virt,virtualization=on,gic-version=3", smp=2,
                          kernel=REPO / "guests/build/bench_irq.elf"),
        capture_output=True, text=True, timeout=300)
    return _bench_lines(proc.stdout)


def irq_comparison(runs: int) -> tuple[dict, dict]:
    """bench_irq on armvisor and on QEMU, alternating, `runs` times each:
    {name: [nanoseconds per run]} for each (QEMU's empty without QEMU)."""
    ours: dict = {}
    theirs: dict = {}
    for _ in range(runs):
        for figures, into in ((irq_figures(), ours), (irq_figures_on_qemu(), theirs)):
            for name, value in figures.items():
                into.setdefault(name, []).append(value)
    return ours, theirs


def _bench_lines(text: str) -> dict:
    figures = {}
    for line in text.splitlines():
        if line.startswith("bench: "):
            name, value = line[len("bench: "):].split("=")
            figures[name] = int(value.split()[0])
    return figures


def smp_boot(smp: int, repeat: int = 3) -> float:
    return min(run_once(REPO / "guests/build/smp_demo.elf", smp)[0] for _ in range(repeat))


def print_irq_figures(runs: int) -> None:
    """The interrupt figures side by side: medians (and ranges) of `runs` alternating runs,
    since QEMU's own vary several times over between runs on a 2-core host."""
    ours, qemu = irq_comparison(runs)
    labels = {"icc_iar_eoir_pair": "ICC_IAR1 + ICC_EOIR1 pair (target < 10 us)",
              "sgi_round_trip": "SGI round trip, 2 CPUs (send, handler, reply)",
              "timer_latency": "virtual timer latency, average",
              "timer_latency_max": "virtual timer latency, worst"}
    print(f"  interrupts, medians of {runs} runs each (min-max), armvisor and QEMU alternating:")
    for name, label in labels.items():
        mine = ours[name]
        line = (f"  {label + ':':48s} {statistics.median(mine) / 1000:8.2f} us "
                f"({min(mine) / 1000:.1f}-{max(mine) / 1000:.1f})")
        if name in qemu:
            theirs = qemu[name]
            line += (f"   QEMU TCG {statistics.median(theirs) / 1000:.2f} us "
                     f"({min(theirs) / 1000:.1f}-{max(theirs) / 1000:.1f}), "
                     f"ratio {statistics.median(mine) / statistics.median(theirs):.2f}")
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loops (a smoke run)")
    parser.add_argument("--irq-runs", type=int, default=3,
                        help="runs of the interrupt figures on each (medians, alternating)")
    parser.add_argument("--irq-only", action="store_true",
                        help="only the interrupt figures, armvisor against QEMU")
    args = parser.parse_args()
    if args.irq_only:
        print_irq_figures(args.irq_runs)
        return 0
    scale = 10 if args.quick else 1
    demo = REPO / "guests/build/smp_demo.elf"
    if not demo.exists():
        print("build the guests first: make -C guests", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("armvisor machine benchmark (one host thread; lower is better except MIPS)")
        print(f"  guest MIPS, ALU loop, 1 CPU:      {guest_mips(work, 50_000_000 // scale):8.0f}")
        print(f"  guest MIPS, load/store loop:      {memory_mips(work, 5_000_000 // scale):8.0f}"
              "   (6 of 9 instructions access RAM, MMU off)")
        print(f"  guest MIPS, load/store loop:      "
              f"{memory_mips(work, 50_000_000 // scale, MEMORY_MMU_LOOP):8.0f}"
              "   (MMU on, data execute-never)")
        svc = per_iteration(work, "svc", svc_el0_loop(), 20_000 // scale)
        print(f"  EL0 SVC round trip:               {svc * 1e6:8.2f} us   (target < 10 us)")
        mmio = per_iteration(work, "mmio", MMIO_LOOP, 50_000 // scale)
        print(f"  MMIO read (PL011 UARTFR):         {mmio * 1e6:8.2f} us")
        psci = per_iteration(work, "psci", PSCI_LOOP, 20_000 // scale)
        print(f"  PSCI call (PSCI_VERSION over SMC): {psci * 1e6:7.2f} us")
    lat = cpu_on_latency(4)
    if lat:
        print(f"  CPU_ON -> first instruction:      {statistics.median(lat):8.1f} us median "
              f"(max {max(lat):.1f}, {len(lat)} calls, 4 CPUs, 50k-instruction slices)")
    print_irq_figures(args.irq_runs)
    for smp in (1, 4, 16, 64):
        print(f"  SMP demo boot, {smp:2d} CPUs:           {smp_boot(smp):8.3f} s"
              + ("   (target < 10 s)" if smp == 64 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
