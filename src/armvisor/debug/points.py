"""Breakpoints (Z0, Z1) and watchpoints (Z2, Z3, Z4) that leave guest memory alone.

GDB manual, "Packets", `Z type,addr,kind`: 0 software breakpoint, 1
hardware breakpoint, 2 write, 3 read, 4 access watchpoint.

Both kinds of breakpoint are the same thing here: a UC_HOOK_CODE bounded to
one address on every CPU (cpu/stepping.Breakpoints), so no BRK is written
into guest memory and a guest that checksums or copies its code sees its
own bytes. They differ only in the stop reason reported (`swbreak` or
`hwbreak`).

A watchpoint is a UC_HOOK_MEM_READ|WRITE bounded to the watched bytes, on
every core that shares the memory. Measured on Unicorn 2.1.4 (see the
README): the hook sees the PHYSICAL address (with the MMU on too), so the
debugger's virtual range is translated once, when it is set, through the
selected CPU. On the patched Unicorn (patches/unicorn/0005) only the hooked
page's accesses leave the TLB fast path; stock Unicorn sends every load and
store of a core with any memory hook through its slow path, so the hooks
exist only while a watchpoint is set.

A hit must stop before the instruction, as on QEMU for Arm (its
gdb_stop_before_watchpoint; GDB's AArch64 port treats watchpoints as
non-steppable and single-steps the access itself). Unicorn calls the hook
before the access. With 0005 an emu_stop from the hook leaves before the
access with PC on the instruction; stock Unicorn ends the slice right after
the access (its check_exit_request): the store is done but the instruction
is not. So the hook saves the registers and the bytes about to change, and
`settle` puts them back: either way the machine is exactly as before the
instruction. An exclusive store (STXR) reaches the
hook as a READ from Unicorn's compare-and-swap; the instruction is decoded
to tell stores from loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
from unicorn import arm64_const as A

from armvisor.cpu.core import Stop
from armvisor.cpu.watch_hooks import access_direction, hook_range, page_pieces

SW_BREAK, HW_BREAK, WRITE_WATCH, READ_WATCH, ACCESS_WATCH = range(5)
SP_ID = 31


class Breakpoints:
    """Z0/Z1 on every CPU (the API's per-CPU code hooks)."""

    def __init__(self, cpus):
        self.cpus = cpus
        self.kinds: Dict[int, Set[int]] = {}

    def insert(self, kind: int, address: int) -> None:
        if not self.kinds.get(address):
            for cpu in self.cpus:
                cpu._breakpoints().add(address)
        self.kinds.setdefault(address, set()).add(kind)

    def remove(self, kind: int, address: int) -> None:
        kinds = self.kinds.get(address)
        if not kinds or kind not in kinds:
            return
        kinds.discard(kind)
        if not kinds:
            del self.kinds[address]
            for cpu in self.cpus:
                cpu._breakpoints().remove(address)

    def reason(self, address: int) -> str:
        return "swbreak" if SW_BREAK in self.kinds.get(address, ()) else "hwbreak"

    def resume_from(self, cpu) -> None:
        """`cpu` goes on from where it stopped: a breakpoint there was already reported."""
        pc = cpu.regs.pc
        if pc in self.kinds:
            cpu._breakpoints().resume_from(pc)

    def clear(self) -> None:
        for address, kinds in list(self.kinds.items()):
            for kind in list(kinds):
                self.remove(kind, address)


@dataclass
class Watch:
    kind: int
    va: int
    length: int
    pieces: List[Tuple[int, int, int]]        # (pa, length, va) within one page each
    hooks: List[Tuple[object, int]] = field(default_factory=list)   # (core, hook handle)


@dataclass
class WatchHit:
    cpu: int                  # index into machine.cpus
    kind: int
    va: int                   # the watched address the access touched (what gdb asked for)
    regs: List[int]
    memory: Tuple[int, bytes]


class Watchpoints:
    """Z2/Z3/Z4: memory hooks on the watched physical bytes only, and the hits they see."""

    def __init__(self, group: Callable[[object], list]):
        self._group = group                  # the CPUs that share a CPU's memory
        self.watches: Dict[Tuple[int, int, int], Watch] = {}
        self.hit: Optional[WatchHit] = None
        self.suppressed = None               # a core stepping over its own hit
        # A debugger replaying the past: hits never stop; with `scan` a list,
        # each is noted there as (cpu, its exact count before the access, va, kind).
        self.passive = False
        self.scan: Optional[list] = None

    def insert(self, cpu, kind: int, va: int, length: int) -> bool:
        """False if the range does not translate on `cpu` (the debugger then says so)."""
        key = (kind, va, length)
        if key in self.watches:
            return True
        pieces = []
        for address, chunk in page_pieces(va, length):
            pa = cpu.translate(address)
            if pa is None:
                return False
            pieces.append((pa, chunk, address))
        watch = Watch(kind, va, length, pieces)
        for other in self._group(cpu):
            for pa, chunk, piece_va in pieces:
                callback = self._callback(other, watch, pa, chunk, piece_va)
                handle = other.core.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, callback,
                                                None, *hook_range(pa, chunk))
                watch.hooks.append((other.core, handle))
            _retranslate(other.core)
        self.watches[key] = watch
        return True

    def remove(self, kind: int, va: int, length: int) -> None:
        watch = self.watches.pop((kind, va, length), None)
        if watch is None:
            return
        cores = []
        for core, handle in watch.hooks:
            core.uc.hook_del(handle)
            if core not in cores:
                cores.append(core)
        for core in cores:
            _retranslate(core)

    def clear(self) -> None:
        for key in list(self.watches):
            self.remove(*key)

    def _callback(self, cpu, watch: Watch, pa: int, length: int, va: int):
        core = cpu.core

        def on_access(uc, access, address, size, _value, _user):
            try:
                if self.hit is not None or core is self.suppressed:
                    return
                if address + size <= pa or address >= pa + length:
                    return                       # the widened range caught a neighbour
                is_read, is_write = access_direction(core, access)
                wanted = {WRITE_WATCH: is_write, READ_WATCH: is_read and not is_write,
                          ACCESS_WATCH: True}[watch.kind]
                if not wanted:
                    return
                if self.passive:
                    if self.scan is not None and core.counting:
                        self.scan.append((cpu.index, core.retired - 1,
                                          va + max(0, address - pa), watch.kind))
                    return
                regs = [core.read_x(n) for n in range(31)] + [core.read_x(SP_ID)]
                self.hit = WatchHit(cpu.index, watch.kind, va + max(0, address - pa),
                                    regs, (address, bytes(uc.mem_read(address, size))))
                core.stop(Stop.MACHINE)
            except Exception as exc:            # noqa: BLE001 - a hook must not lose errors
                core.fail(exc)

        return on_access

    def settle(self, cpus) -> Optional[WatchHit]:
        """After the run stopped: undo the half-done access of a hit; returns the hit."""
        hit, self.hit = self.hit, None
        if hit is None:
            return None
        core = cpus[hit.cpu].core
        for n, value in enumerate(hit.regs[:31]):
            core.write_x(n, value)
        core.write_reg(A.UC_ARM64_REG_SP, hit.regs[31])
        address, data = hit.memory
        core.uc.mem_write(address, data)
        if core.counting:
            core.uncount()                   # undone: it runs again on resume
        return hit


def _retranslate(core) -> None:
    """Code translated before a memory hook changed may not see it: drop it."""
    core.flush_code()
    core.flush_tlb()
