"""The shared run loop against a scripted board: no guest, no Unicorn."""

import sys
from typing import List, Optional

import pytest

from armvisor.errors import GuestError, GuestTimeout
from armvisor.machine.clock import Clock
from armvisor.machine.runloop import RunLoop


class FakeCore:
    """What the deterministic clock reads of a core: instructions retired."""

    def __init__(self):
        self.executed = 0
        self.base = 0

    def start_virtual_clock(self, now):
        self.base, self.origin = now, self.executed

    def virtual_now(self):
        return self.base + self.executed - self.origin


class ScriptedBoard:
    """Lanes that run `work[i]` slices each, timers at fixed deadlines."""

    def __init__(self, clock: Clock, work: List[int], deadlines=(), status=0):
        self.clock = clock
        self.work = list(work)
        self.lane_count = len(work)
        self.cores = [FakeCore() for _ in work]
        self.deadlines = sorted(deadlines)
        self.fired: List[int] = []
        self.budgets: List[int] = []
        self.status = status
        self.ticks = 0

    def run_turn(self, lane, budget):
        if self.work[lane] <= 0:
            return False
        core = self.cores[lane]
        self.clock.enter(core)
        core.executed += budget
        self.elapse(budget)
        self.clock.leave(core)
        self.budgets.append(budget)
        self.work[lane] -= 1
        return True

    def elapse(self, instructions):
        """The host time a slice takes: none here (TimedBoard)."""

    def finished(self) -> Optional[int]:
        return self.status if not any(self.work) and not self.deadlines else None

    def expire_timers(self):
        now = self.clock.counter()
        while self.deadlines and self.deadlines[0] <= now:
            self.fired.append(self.deadlines.pop(0))

    def next_deadline(self):
        return self.deadlines[0] if self.deadlines else None

    def has_work(self):
        return any(self.work)

    def wants_turn(self, lane):
        return True

    def others_can_run(self, lane):
        return any(self.wants_turn(other) for other in range(self.lane_count) if other != lane)

    def tick(self):
        self.ticks += 1

    def report(self):
        return "report"


def test_runs_every_lane_until_the_board_ends():
    board = ScriptedBoard(Clock(), [2, 3])
    assert RunLoop(board, board.clock, 100).run() == 0
    assert board.budgets == [100] * 5


def test_deterministic_slices_end_at_the_next_deadline_and_idle_jumps_there():
    clock = Clock(deterministic=True)
    board = ScriptedBoard(clock, [1], deadlines=[30, 10_000])
    RunLoop(board, clock, 100).run()
    assert board.budgets == [30]           # cut at the first deadline
    assert board.fired == [30, 10_000]     # the second by jumping the clock while idle
    assert clock.vtime == 10_000


def test_nothing_to_run_and_nothing_armed_is_a_hang():
    board = ScriptedBoard(Clock(), [0])
    board.finished = lambda: None
    with pytest.raises(GuestError, match="hangs") as error:
        RunLoop(board, board.clock, 100).run()
    assert error.value.report == "report"


def test_the_timeout_ends_an_idle_wait():
    clock = Clock()
    board = ScriptedBoard(clock, [0], deadlines=[clock.counter() + 62_500_000 * 3600])
    with pytest.raises(GuestTimeout):
        RunLoop(board, clock, 100).run(timeout=0.2)


class AfterSlices:
    def __init__(self, count, cap=None):
        self.count, self.cap, self.seen = count, cap, 0

    def clip(self, lane, budget):
        self.seen += 1
        return min(budget, self.cap) if self.cap else budget

    def met(self):
        return self.seen > self.count


def test_until_stops_between_slices_and_the_run_continues():
    board = ScriptedBoard(Clock(), [5])
    loop = RunLoop(board, board.clock, 100)
    assert loop.run(until=AfterSlices(1, cap=7)) is None
    assert board.budgets == [7, 7]
    assert loop.run() == 0
    assert board.budgets == [7, 7, 100, 100, 100]


def test_an_ended_machine_stays_ended():
    board = ScriptedBoard(Clock(), [1], status=5)
    loop = RunLoop(board, board.clock, 100)
    assert loop.run() == 5
    assert loop.run() == 5
    assert board.budgets == [100]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_run_lets_its_sleeps_end_on_time():
    """The kernel's default 50 us timer slack was added to every guest timer's latency:
    a run sets its thread's to 1 ns, as QEMU does."""
    import ctypes
    import threading
    from armvisor.machine.runloop import PR_SET_TIMERSLACK, TIMER_SLACK_NS
    pr_get_timerslack = 30
    seen = []

    def thread():               # its own thread: the kernel's default slack, then a run's
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_TIMERSLACK, 50_000, 0, 0, 0)
        seen.append(libc.prctl(pr_get_timerslack, 0, 0, 0, 0))
        board = ScriptedBoard(Clock(), [1])
        RunLoop(board, board.clock, 100).run()
        seen.append(libc.prctl(pr_get_timerslack, 0, 0, 0, 0))

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert seen == [50_000, TIMER_SLACK_NS] and TIMER_SLACK_NS == 1


# -- host clock: a CPU that runs alone ------------------------------------------------

class HostTime:
    """The host's counter as the clock reads it, moved by the scripted board only."""

    def __init__(self, monkeypatch, start=1_000_000):
        self.now = start
        monkeypatch.setattr("armvisor.machine.clock.host_counter", lambda: self.now)


class TimedBoard(ScriptedBoard):
    """Each instruction takes `ticks_per_insn` counter ticks; lane i wants turns while
    it has work, or always if `busy`."""

    def __init__(self, clock, host, work, ticks_per_insn=1, deadlines=(), busy=()):
        super().__init__(clock, work, deadlines)
        self.host, self.ticks_per_insn, self.busy = host, ticks_per_insn, set(busy)

    def elapse(self, instructions):
        self.host.now += int(instructions * self.ticks_per_insn)

    def wants_turn(self, lane):
        return self.work[lane] > 0 or lane in self.busy


def test_a_cpu_that_runs_alone_keeps_going_until_the_next_deadline(monkeypatch):
    """Host clock: once the clock has learnt the rate (the first slice), a lone CPU's
    slice ends at the next timer deadline instead of every `slice` instructions."""
    from armvisor.machine.runloop import LONE_SLICE_TICKS
    host = HostTime(monkeypatch)
    clock = Clock()
    board = TimedBoard(clock, host, [3], ticks_per_insn=2,
                       deadlines=[host.now + 2 * 5_000 + 2 * 40_000])
    RunLoop(board, clock, 5_000).run()
    assert clock.rate == pytest.approx(0.5)
    assert board.budgets == [5_000, 40_000, LONE_SLICE_TICKS // 2]   # the last: nothing armed


def test_without_a_deadline_a_lone_slice_lasts_lone_slice_ticks(monkeypatch):
    from armvisor.machine.runloop import LONE_SLICE_TICKS
    host = HostTime(monkeypatch)
    clock = Clock()
    board = TimedBoard(clock, host, [2])
    RunLoop(board, clock, 5_000).run()
    assert board.budgets == [5_000, LONE_SLICE_TICKS]


def test_cpus_that_share_the_machine_keep_their_slices(monkeypatch):
    from armvisor.machine.runloop import LONE_SLICE_TICKS
    host = HostTime(monkeypatch)
    clock = Clock()
    board = TimedBoard(clock, host, [2, 2])
    RunLoop(board, clock, 5_000).run()
    assert board.budgets == [5_000] * 3 + [LONE_SLICE_TICKS]    # lane 1 ends alone
    # Lane 0 has nothing left but still wants turns (it will run once an interrupt comes).
    board = TimedBoard(clock, host, [0, 3], busy=[0])
    RunLoop(board, clock, 5_000).run()
    assert board.budgets == [5_000] * 3


def test_deterministic_runs_and_explicit_schedules_keep_their_slices(monkeypatch):
    from armvisor.machine.schedule import Decision, Schedule
    host = HostTime(monkeypatch)
    board = TimedBoard(Clock(deterministic=True), host, [3])
    RunLoop(board, board.clock, 5_000).run()
    assert board.budgets == [5_000] * 3
    board = TimedBoard(Clock(), host, [3])
    RunLoop(board, board.clock, 5_000, Schedule((Decision("slice", 2, 7),))).run()
    assert board.budgets == [5_000, 5_000, 7]


def test_the_clock_learns_the_rate_from_long_enough_running(monkeypatch):
    from armvisor.machine.clock import RATE_SAMPLE_MIN_TICKS
    host = HostTime(monkeypatch)
    clock, core = Clock(), FakeCore()
    assert clock.instructions_within(1_000) is None
    clock.enter(core)
    core.executed += 10
    host.now += RATE_SAMPLE_MIN_TICKS - 1
    clock.leave(core)
    assert clock.rate is None                     # too short to say
    clock.enter(core)
    core.executed += 2 * RATE_SAMPLE_MIN_TICKS - 10
    host.now += 1                                 # with the first: long enough
    clock.leave(core)
    assert clock.rate == 2.0 and clock.instructions_within(1_000) == 2_000
    clock.enter(core)
    core.executed += 4_000                        # a slow slice pulls the estimate down
    host.now += 4_000
    clock.leave(core)
    assert clock.rate == pytest.approx(1.75)
    assert Clock(deterministic=True).instructions_within(1_000) == 1_000
