"""One run loop for every way armvisor runs: the bare board and the hypervisor.

The loop owns what both modes share: turns over the lanes (pCPUs) in a fixed
order, the slice budget, the clock (host or deterministic), timer deadlines,
idle sleep, hang detection, the timeout and stop conditions. What a lane
does with its turn belongs to the board that drives the loop (`Driver`): in
bare mode a lane runs its own core; under the hypervisor a pCPU runs its
EL2 work and then one vCPU.

Hazards the loop exists to avoid:
- Time must not pass unseen: timers are compared with the clock after every
  slice, and in deterministic mode a slice ends at the next deadline, so an
  interrupt arrives on time rather than a whole slice late.
- A turn costs 10-20 us of Python, so slices must not be needlessly short:
  on the host clock, a CPU that is the only one that can run (a kernel
  booting on CPU 0 while the others wait in WFI) keeps running past its
  slice until the next deadline, up to LONE_SLICE_TICKS, sized with the
  clock's learnt instruction rate. Nothing else could have run in those
  turns; an interrupt for another CPU ends the slice as before (the "kick").
  Deterministic runs and explicit schedules keep their slices, which are
  part of the interleaving.
- A machine where nothing can run and nothing can wake is a hang, reported
  at once instead of sleeping until the timeout.
- Waiting for a deadline sleeps on the host (or, deterministic, jumps the
  virtual clock), never spins; the sleep also ends at the timeout.
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Callable, List, Optional, Protocol

from armvisor.errors import GuestError, GuestTimeout
from armvisor.machine.clock import Clock
from armvisor.machine.config import MAX_SLICE_BUDGET, check_timeout
from armvisor.machine.schedule import Schedule

# Longest host sleep while every CPU waits, so typed input and the RTC are seen.
MAX_IDLE_SLEEP = 0.05
# Host clock: the longest a CPU that runs alone goes without a turn of the
# loop (typed input, the RTC, --timeout and a debugger's interrupt are seen
# between turns); 5 ms in 16 ns ticks, half of QEMU's round-robin kick period.
LONE_SLICE_TICKS = 312_500
HANG = "every CPU is off or waiting for an interrupt that nothing can raise: the guest hangs"


class HostIO(Protocol):
    """The host side of the console as the loop needs it (see console.HostConsole)."""

    input_open: bool

    def poll(self) -> None:
        """Between rounds: pass what was typed to the guest."""

    def wait(self, seconds: float) -> None:
        """Host clock, idle: sleep up to `seconds`, passing input to the guest if some comes."""

    def idle(self, now: int, deadline: int) -> int:
        """Deterministic clock, idle: the counter value to go on from (`now` < result <=
        `deadline`), or `now` once input was passed to the guest (see RunLoop._idle)."""


class NoInput:
    input_open = False

    def poll(self) -> None:
        pass

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def idle(self, now: int, deadline: int) -> int:
        return deadline


class Driver(Protocol):
    """What the loop asks of the machine it drives (machine.board, hypervisor.hyp)."""

    lane_count: int

    def run_turn(self, lane: int, budget: int) -> bool:
        """Give lane `lane` its turn; True if guest code ran (False: off or idle)."""

    def finished(self) -> Optional[int]:
        """The exit status once the machine has ended (a reset that reboots is not an end)."""

    def expire_timers(self) -> None:
        """Raise the interrupt lines of every timer whose deadline has passed."""

    def next_deadline(self) -> Optional[int]:
        """The nearest timer or RTC deadline, in counter ticks (None: nothing armed)."""

    def has_work(self) -> bool:
        """Something can run on the next turn without time passing."""

    def wants_turn(self, lane: int) -> bool:
        """Lane `lane` would do something with a turn now (the schedule decides its slice)."""

    def others_can_run(self, lane: int) -> bool:
        """A lane other than `lane` has guest code to run now (not only a turn to take)."""

    def tick(self) -> None:
        """Between turns: devices that follow the wall clock (the RTC)."""

    def report(self) -> str:
        """The diagnosis for a hang or a timeout."""


class Condition(Protocol):
    """A stop condition for `RunLoop.run(until=...)` (see armvisor.api)."""

    def clip(self, lane: int, budget: int) -> int:
        """The budget of lane `lane`'s next slice, so the condition is seen soon enough
        (0: the lane does not run this turn)."""

    def met(self) -> bool: ...


# prctl(2) PR_SET_TIMERSLACK: how late the kernel may end this thread's sleeps so
# as to batch wake-ups; 50 us by default, which every idle wait for a guest
# timer would add to its latency. QEMU sets 1 ns for the same reason
# (util/qemu-timer.c init_clocks).
PR_SET_TIMERSLACK = 29
TIMER_SLACK_NS = 1


def timer_slack_tightener() -> Callable[[], bool]:
    """A function that lets the calling thread's sleeps end on time (Linux only; elsewhere
    it does nothing). prctl is looked up here, once: opening libc costs 12 us, and a
    debugger runs the loop again for every step."""
    if not sys.platform.startswith("linux"):
        return lambda: False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: False
    return lambda: prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) == 0


class RunLoop:
    """The loop of one machine; it keeps its place in the round between runs and snapshots."""

    def __init__(self, board: Driver, clock: Clock, slice_budget: int,
                 schedule: Optional[Schedule] = None):
        self.board = board
        self.clock = clock
        self.slice_budget = slice_budget
        self.schedule = schedule or Schedule()
        self.host: HostIO = NoInput()
        self.order: List[int] = []       # this round's lane order (the schedule's "order")
        self.position = 0                # the next turn in `order`
        self.ran = False                 # some lane ran guest code in this round
        self.turns = 0                   # turns given so far: a place in the run (debug history)
        # The slack is the running thread's, so each run sets it (a loop may move threads).
        self._tighten_timer_slack = timer_slack_tightener()

    def run(self, timeout: Optional[float] = None, until: Optional[Condition] = None,
            host: Optional[HostIO] = None) -> Optional[int]:
        """Run until the machine ends (its exit status) or `until` holds (None).

        Raises GuestTimeout after `timeout` host seconds, GuestError on a hang
        or a guest that stopped the machine. The loop can be entered again
        after it returned None: the machine goes on where it stopped, in the
        middle of a round if it stopped there, so stopping does not change
        the interleaving.
        """
        check_timeout(timeout)
        self._tighten_timer_slack()
        self.host = host or NoInput()
        board, clock, schedule = self.board, self.clock, self.schedule
        deadline = None if timeout is None else time.monotonic() + timeout
        status = board.finished()
        if status is not None:           # ended in an earlier run: nothing runs any more
            return status
        if until is not None and until.met():
            return None
        while True:
            if self.position >= len(self.order):
                self.order = schedule.decide("order", list(range(board.lane_count)))
                self.position = 0
                self.ran = False
            while self.position < len(self.order):
                lane = self.order[self.position]
                self.position += 1
                if not board.wants_turn(lane):
                    continue
                budget = schedule.decide("slice", self.slice_budget, cpu=lane)
                if clock.deterministic:
                    left = clock.ticks_left(board.next_deadline())
                    if left is not None:
                        budget = min(budget, left)
                elif schedule.is_default and not board.others_can_run(lane):
                    budget = self._lone_budget(budget)
                if until is not None:
                    budget = until.clip(lane, budget)
                    if budget <= 0:          # held back (a debugger resumed other CPUs only)
                        continue
                self.turns += 1
                if not board.run_turn(lane, max(budget, 1)):
                    continue
                self.ran = True
                status = board.finished()
                if status is not None:
                    return status
                board.expire_timers()
                if until is not None and until.met():
                    return None
            if not self.ran:
                self._idle(deadline)
            self.host.poll()
            board.tick()
            status = board.finished()
            if status is not None:
                return status
            if until is not None and until.met():
                return None
            if deadline is not None and time.monotonic() > deadline:
                raise GuestTimeout(f"timeout after {timeout:g} s", board.report())

    def _lone_budget(self, budget: int) -> int:
        """Host clock, one CPU can run: instructions until the next deadline or for
        LONE_SLICE_TICKS, whichever comes first, never fewer than `budget`."""
        ticks = LONE_SLICE_TICKS
        deadline = self.board.next_deadline()
        if deadline is not None:
            ticks = min(ticks, max(deadline - self.clock.counter(), 0))
        more = self.clock.instructions_within(ticks)
        return budget if more is None else min(max(budget, more), MAX_SLICE_BUDGET)

    def save_state(self) -> dict:
        return {"order": list(self.order), "position": self.position, "ran": self.ran,
                "turns": self.turns, "schedule": self.schedule.save_state()}

    def restore_state(self, state: dict) -> None:
        self.order = [int(lane) for lane in state["order"]]
        self.position, self.ran = int(state["position"]), bool(state["ran"])
        self.turns = int(state.get("turns", 0))
        self.schedule.restore_state(state["schedule"])

    def _idle(self, deadline: Optional[float]) -> None:
        """Nothing ran: wait for the next deadline, an interrupt or input."""
        board, clock = self.board, self.clock
        board.expire_timers()
        if board.has_work():
            return
        next_at = board.next_deadline()
        if clock.deterministic and next_at is not None:
            # Nothing runs until the next deadline: virtual time jumps there,
            # unless someone may type: then it follows the host's time while
            # idle (QEMU's icount sleep=on), so a guest waiting for input
            # sees it before its next deadline, not after every timeout.
            # Where it went is the host's answer, which --record logs.
            clock.advance_to(self.host.idle(clock.vtime, next_at) if self.host.input_open
                             else next_at)
            board.expire_timers()
            return
        if next_at is None and not self.host.input_open:
            raise GuestError(HANG, board.report())
        wait = MAX_IDLE_SLEEP
        if next_at is not None:
            wait = min(wait, clock.host_seconds_until(next_at))
        if deadline is not None:
            wait = min(wait, max(deadline - time.monotonic(), 0.0))
        self.host.wait(wait)
        board.expire_timers()
