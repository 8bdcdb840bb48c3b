"""Exclusive and ordered loads and stores as synchronization points.

Unicorn runs LDXR/STXR (and LDAR/STLR) natively, and a hook on every
instruction would slow every run. But a guest's code is known before it
runs: the explorer finds these instructions in the kernel ELF's executable
segments and puts a code hook on each of their addresses (as a debugger's
breakpoint: nothing else slows down), which asks the schedule's "sync"
question there. Only a schedule that watches sync points gets the hooks, and
a replay installs the same ones, so the points are counted alike.

Limits: an ELF kernel only (a raw Image has no segments to scan), code run
where it was linked (the guests here, or an identity map), and code the
guest writes at run time is not seen.

    >>> from armvisor.explore.exclusives import is_exclusive_or_ordered
    >>> [is_exclusive_or_ordered(w) for w in (0x885ffc20, 0x88027c23, 0x889ffc22, 0xd503203f)]
    [True, True, True, False]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

# Arm ARM C4.1.66 "Load/store exclusive and ordered": op0 = xx00, bit 27 = 1,
# bits 29:24 = 001000 (LDXR, LDAXR, STXR, STLXR, LDXP, STXP, LDAR, STLR, ...).
CLASS_MASK, CLASS_VALUE = 0x3F00_0000, 0x0800_0000
PF_X = 1


def is_exclusive_or_ordered(word: int) -> bool:
    return word & CLASS_MASK == CLASS_VALUE


@lru_cache(maxsize=8)
def addresses(kernel: str) -> Tuple[int, ...]:
    """Addresses of the exclusive and ordered loads and stores in `kernel`'s code."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(kernel, "rb") as handle:
            elf = ELFFile(handle)
            if elf["e_machine"] != "EM_AARCH64":
                return ()
            found = []
            for segment in elf.iter_segments():
                if segment["p_type"] != "PT_LOAD" or not segment["p_flags"] & PF_X:
                    continue
                data, base = segment.data(), segment["p_vaddr"]
                for offset in range(0, len(data) - 3, 4):
                    if is_exclusive_or_ordered(int.from_bytes(data[offset:offset + 4], "little")):
                        found.append(base + offset)
            return tuple(found)
    except (OSError, ELFError):
        return ()


def watch(machine) -> int:
    """Hook every exclusive or ordered load/store of `machine`'s guest(s) to the board's
    schedule (its `at_sync`); returns how many addresses were hooked."""
    from unicorn import UC_HOOK_CODE
    if machine.hypervisor is None:
        groups = [(machine.board.config.kernel, [cpu.core for cpu in machine.cpus])]
    else:
        groups = [(vm.config.kernel, [vcpu.core for vcpu in vm.vcpus])
                  for vm in machine.hypervisor.vms]
    board = machine.board
    hooked = 0
    for kernel, cores in groups:
        found = addresses(kernel)
        hooked += len(found)
        for core in cores:
            def reached(uc, address, size, user, core=core):
                board.schedule.at_sync(core, f"exclusive@{address:#x}")
            for address in found:
                core.uc.hook_add(UC_HOOK_CODE, reached, begin=address, end=address)
            if found:
                core.flush_code()
    return hooked
