"""One run of an exploration: a machine, a schedule, the predicates, an outcome.

`Target` says what to run (Machine's arguments, where the schedule starts,
the budget, the predicates); `run_plan(target, plan)` runs it once under a
strategy's plan and returns an `Outcome`: small, picklable data that a
worker process or a Dask worker sends back. Every run is deterministic
(the machine's counter runs on instructions), so an outcome's decisions
replay it exactly.

A schedule may start late, at `start` instructions into a run under the
default schedule: then boot is not explored (and, with a snapshot of that
point, not paid again on every run). `armvisor run --schedule` replays such
a schedule by running to the same point before arming it.

    >>> import armvisor
    >>> from armvisor.explore import runner, predicates, strategies
    >>> target = runner.Target(dict(kernel="guests/build/boot_data.elf", smp=2),
    ...                        predicates=(predicates.ConsoleMatch("RESULT: FAIL"),))
    >>> outcome = runner.run_plan(target, strategies.Fixed())      # the default schedule
    >>> outcome.status, outcome.failed
    ('passed', False)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

from armvisor.api import AnyOf, Instructions, Machine
from armvisor.errors import ArmvisorError, GuestError, GuestTimeout
from armvisor.explore import exclusives
from armvisor.explore.predicates import Predicate, RunEnd
from armvisor.explore.strategies import Plan, Point
from armvisor.machine.schedule import Decision

# Instructions a run may take when nobody said (a guest spinning forever
# would otherwise run until the host timeout).
DEFAULT_BUDGET = 200_000_000
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Target:
    """What every run of an exploration runs (picklable: it travels to the workers)."""

    machine: dict                           # armvisor.Machine's keyword arguments
    predicates: Tuple[Predicate, ...] = ()
    start: int = 0                          # instructions under the default schedule first
    snapshot: Optional[str] = None          # a snapshot at the start point (a shortcut)
    snapshot_is_start: bool = False         # the snapshot itself is the start (no `start`)
    max_instructions: int = DEFAULT_BUDGET  # per run, from the start
    timeout: float = RUN_TIMEOUT            # host seconds per run (a safety net)

    def start_data(self) -> Optional[dict]:
        """The schedule file's `start`: where its decisions begin to count."""
        if self.snapshot_is_start:
            return {"snapshot": os.path.abspath(self.snapshot)}
        return {"instructions": self.start} if self.start else None


@dataclass(frozen=True)
class Outcome:
    """How one run ended."""

    run: int
    status: str                             # failed, passed, cut, crashed, timeout
    reason: str = ""                        # why it failed (or the error of another end)
    decisions: Tuple[Decision, ...] = ()    # its non-default decisions: they replay it
    instructions: int = 0                   # run since the start
    console: str = ""                       # printed since the start (kept for failures)
    predicate: int = -1                     # which predicate failed it
    points: Tuple[Point, ...] = ()          # decision points met (the baseline run)
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)   # decision points by kind

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def start_machine(target: Target) -> Machine:
    """A machine at the point where the schedule starts."""
    if target.snapshot is not None and (target.snapshot_is_start or
                                        os.path.exists(target.snapshot)):
        return Machine.restore(target.snapshot, keep_trace=False)
    machine = Machine(**dict(target.machine, deterministic=True), keep_trace=False)
    if target.start:
        try:
            status = machine.run(until=Instructions(target.start), timeout=target.timeout)
        except BaseException:
            machine.close()
            raise
        if status is not None:
            machine.close()
            raise ArmvisorError(f"the guest ended after {machine.instructions} instructions, "
                                f"before the schedule's start at {target.start}")
    return machine


def run_plan(target: Target, plan: Plan, run: int = 0, keep_console: bool = False) -> Outcome:
    """Run `target` once under `plan` (run number `run`, for the record)."""
    began = time.monotonic()
    machine = start_machine(target)
    try:
        base, printed = machine.instructions, len(machine.console.output)
        schedule = plan.schedule(machine)
        schedule.start = target.start_data()
        machine.board.use_schedule(schedule)
        if schedule.watch_sync:
            exclusives.watch(machine)
        watched = [(p, p.condition(machine)) for p in target.predicates]
        budget = Instructions(target.max_instructions)
        until = AnyOf([c for _, c in watched if c is not None] + [budget])
        status = error = None
        try:
            status = machine.run(until=until, timeout=target.timeout)
        except GuestError as exc:
            error = exc
        except GuestTimeout as exc:
            return Outcome(run, "timeout", str(exc), tuple(schedule.taken),
                           machine.instructions - base, seconds=time.monotonic() - began)
        end = RunEnd(machine, status, error,
                     budget_spent=status is None and error is None and budget.met())
        verdicts = [(i, p.verdict(end, c)) for i, (p, c) in enumerate(watched)]
        failing = next(((i, why) for i, why in verdicts if why), None)
        if failing is not None:
            kind, reason, keep = "failed", failing[1], True
        elif error is not None:
            kind, reason, keep = "crashed", str(error), keep_console
        elif status is None:
            kind, reason, keep = "cut", "the instruction budget ran out", keep_console
        else:
            kind, reason, keep = "passed", "", keep_console
        return Outcome(
            run, kind, reason, tuple(schedule.taken), machine.instructions - base,
            console=machine.console.output[printed:].decode("utf-8", "replace") if keep else "",
            predicate=failing[0] if failing else -1,
            points=tuple(getattr(schedule.chooser, "points", ())),
            seconds=time.monotonic() - began, counts=dict(schedule.counts))
    finally:
        machine.close()


def run_many(target: Target, plans, keep_console: bool = False):
    """Several runs in one task: [(run, plan), ...] -> [Outcome, ...] (a worker's job)."""
    return [run_plan(target, plan, run, keep_console) for run, plan in plans]
