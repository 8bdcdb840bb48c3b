"""What breakpoints and watchpoints cost the guest (armvisor.debug.points), 1 CPU.

Three loops from benchmarks/machine.py (ALU; loads and stores with the MMU
off; the same with the MMU on and data pages execute-never, Unicorn's fast
path), each with: nothing set, one breakpoint at an address never executed,
and one 8-byte write watchpoint on a page never touched. Median of 3.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine as bench  # noqa: E402

import armvisor  # noqa: E402
from armvisor.debug.points import SW_BREAK, WRITE_WATCH, Breakpoints, Watchpoints  # noqa: E402
from armvisor.devtools.cross import build_program  # noqa: E402

COLD = 0x48000000


def timed(elf: Path, setup) -> float:
    m = armvisor.Machine(kernel=str(elf), memory="256M")
    m.boot()
    setup(m)
    start = time.perf_counter()
    assert m.run(timeout=600) == 0
    elapsed = time.perf_counter() - start
    m.close()
    return elapsed


def main() -> None:
    work = Path(tempfile.mkdtemp())
    loops = [("ALU loop", bench.MIPS_LOOP, 20_000_000),
             ("load/store, MMU off", bench.MEMORY_LOOP, 1_000_000),
             ("load/store, MMU on, XN data", bench.MEMORY_MMU_LOOP, 5_000_000)]
    setups = [("nothing set", lambda m: None),
              ("1 breakpoint (cold)", lambda m: Breakpoints(m.cpus).insert(SW_BREAK, COLD)),
              ("1 watchpoint (cold page)",
               lambda m: Watchpoints(lambda cpu: m.cpus).insert(m.cpus[0], WRITE_WATCH, COLD, 8))]
    print("cost of debug points, seconds (median of 3), 1 CPU")
    for name, source, iters in loops:
        elf = build_program(work, source.format(iters=iters), name.split()[0].replace("/", ""))
        base = None
        for label, setup in setups:
            t = statistics.median(timed(elf, setup) for _ in range(3))
            base = base or t
            print(f"  {name:30s} {label:26s} {t:7.3f} s  x{t / base:5.2f}")


if __name__ == "__main__":
    main()
