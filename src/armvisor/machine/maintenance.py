"""Cache and TLB maintenance that one core broadcasts and the others must see."""

from __future__ import annotations

from typing import Iterable, List

from armvisor.cpu.core import Core


def broadcast_maintenance(source: Core, cores: Iterable[Core]) -> None:
    """Apply `source`'s TLBI ...IS and IC IVAU of its last slice to `cores` (source included).

    Called between slices, before any other core runs: the moment these
    operations become observable in a one-thread round-robin machine. TLB
    invalidation goes to the other cores (the source did its own).
    Instruction-cache invalidation goes to every core, the source too: code
    that a device wrote into RAM (a virtio-blk read) bypasses Unicorn's
    self-modifying-code detection on all of them.
    """
    tlbi, ic_all, ranges = source.take_maintenance()
    if not (tlbi or ic_all or ranges):
        return
    physical = None
    for core in cores:
        if tlbi and core is not source:
            core.flush_tlb()
        if ic_all:
            core.flush_code()
        elif ranges:
            if core is source or core.mmu_enabled:
                core.flush_code(ranges)
            else:
                # With its MMU off a core names memory by physical address.
                if physical is None:
                    physical = physical_ranges(source, ranges)
                core.flush_code(physical)


def physical_ranges(core: Core, ranges: List[tuple]) -> List[tuple]:
    """`ranges` of virtual addresses as `core` translates them (untranslatable ones dropped)."""
    out = []
    for start, end in ranges:
        pa = core.translate(start)
        if pa is not None:
            out.append((pa, pa + (end - start)))
    return out
