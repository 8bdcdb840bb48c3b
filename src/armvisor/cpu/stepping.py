"""Exact stepping and code breakpoints on one core, for the API and debuggers.

The block-budget hook stops only between blocks; an exact instruction count
uses Unicorn's own `count` (a code hook on every instruction, so only while
stepping: Unicorn drops it, and the code translated with it, on the next
normal run). A breakpoint is a UC_HOOK_CODE bounded to one address, which
Unicorn compiles into that instruction only; the code already translated
must be flushed for it to take effect.
"""

from __future__ import annotations

from typing import Callable, Dict

from unicorn import UC_HOOK_CODE, UcError

from armvisor.cpu.core import NO_UNTIL, Core, Stop

# The budget a step runs under: Unicorn's count, not the block hook, ends it.
STEP_BUDGET = 1 << 62


def step(core: Core, instructions: int = 1) -> Stop:
    """Run exactly `instructions` instructions on `core` (fewer if it stops first).

    An exception the guest takes counts as the instruction that raised it.
    """
    state = core._budget
    state.budget = STEP_BUDGET
    core.stop_reason = None
    begin = core._next_pc if core._next_pc is not None else core.pc
    core._next_pc = None
    executed = state.executed
    retired_before = state.retired
    # Unicorn's count cannot be resumed: a step never stops early for the
    # trace's ring of natively taken exceptions (past its size, they are
    # counted as untraced).
    keep_all, state.exceptions_keep_all = state.exceptions_keep_all, 0
    try:
        status = core._native.uc_emu_start(core.handle, begin, NO_UNTIL, 0, instructions)
    finally:
        state.exceptions_keep_all = keep_all
    core.catch_up_exceptions()
    if core._take_count_stop():
        # A debugger's exact stop came first: charge what the exact count says ran.
        state.executed = executed + (state.retired - retired_before)
        return Stop.BUDGET
    if status != 0:
        core.error = UcError(status)
        return Stop.FAULT
    # The block hook charged whole blocks; charge what really ran (the
    # deterministic clock counts these).
    state.executed = executed + instructions
    if core._take_exception_loop() or core.error is not None:
        return Stop.MACHINE
    return core.stop_reason or Stop.BUDGET


class Breakpoints:
    """Addresses where a core stops before executing the instruction there."""

    def __init__(self, core: Core, hit: Callable[[Core, int], None]):
        self.core = core
        self._hit = hit
        self._hooks: Dict[int, int] = {}
        self._skip_once = None       # resuming on a breakpoint must not stop there again
        # A debugger replaying the past: hits are reported (or not) but never stop.
        self.passive = False

    def add(self, address: int) -> None:
        if address in self._hooks:
            return
        self._hooks[address] = self.core.uc.hook_add(UC_HOOK_CODE, self._on_code,
                                                     begin=address, end=address)
        self.core.flush_code()

    def remove(self, address: int) -> None:
        handle = self._hooks.pop(address, None)
        if handle is not None:
            self.core.uc.hook_del(handle)
            self.core.flush_code()

    def clear(self) -> None:
        for address in list(self._hooks):
            self.remove(address)

    def resume_from(self, address: int) -> None:
        """The core stopped on `address`: let its next execution there go through."""
        self._skip_once = address

    def _on_code(self, uc, address: int, size: int, _user) -> None:
        if self._skip_once == address:
            self._skip_once = None
            return
        self._skip_once = None
        if self.core._budget.stopped_at:
            return                   # an exact count stopped the core before this instruction
        self._hit(self.core, address)
        if self.passive:
            return
        if self.core.counting:
            self.core.uncount()      # counted as it started, but it runs on resume
        self.core.stop(Stop.MACHINE, resume_pc=address)
