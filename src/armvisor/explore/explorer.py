"""An exploration: the default run, then many runs under a strategy, fanned out
over an executor until one fails or the budget is spent; then shrinking.

The default schedule runs first (run 0), in this process: it tells whether
the guest already fails without help, gives the strategies the run's length
and decision points, and, when the schedule starts late, is where the
snapshot of the start point is taken and checked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Tuple

from armvisor.errors import ArmvisorError
from armvisor.explore import runner
from armvisor.explore.executors import Executor, InProcess
from armvisor.explore.runner import Outcome, Target
from armvisor.explore.shrink import shrink as shrink_decisions
from armvisor.explore.strategies import Fixed, Record, Strategy
from armvisor.machine.board import POWER_ON_LATENCY
from armvisor.machine.config import SLICE_DEFAULT
from armvisor.machine.schedule import Decision, Schedule

# Without a given budget, a run may take this many times the default run's
# instructions (and at least MIN_BUDGET): a spinning deadlock then ends as a
# hang soon, and a slow but correct interleaving still has room.
BUDGET_FACTOR = 20
MIN_BUDGET = 10_000_000

# Runs per task sent to a pool: a run takes tens of milliseconds, so one per
# task would spend a good part of it on pickling and messages.
RUNS_PER_TASK = 4

Progress = Callable[["Exploration"], None]


@dataclass
class Exploration:
    """What an exploration found."""

    target: Target
    strategy: str
    baseline: Optional[Outcome] = None
    found: Optional[Outcome] = None          # the first failing run, as found
    decisions: Tuple[Decision, ...] = ()     # its decisions, shrunk
    confirmed: Optional[Outcome] = None      # the shrunk schedule run once more
    runs: int = 0                            # runs done (the default one included)
    failures: int = 0                        # failing runs seen
    statuses: Counter = field(default_factory=Counter)
    shrink_runs: int = 0
    seconds: float = 0.0
    exhausted: bool = False                  # the strategy had nothing left to try
    snapshot_note: str = ""                  # how runs reach the start point
    _began: float = field(default_factory=time.monotonic, repr=False)

    @property
    def rate(self) -> float:
        """Runs per second so far."""
        elapsed = time.monotonic() - self._began
        return self.runs / elapsed if elapsed > 0 else 0.0

    def schedule(self) -> Schedule:
        """The failing schedule (start and decisions), as a file would hold it."""
        if self.found is None:
            raise ArmvisorError("the exploration found no failure")
        schedule = Schedule(start=self.target.start_data())
        schedule.taken = list(self.decisions)
        return schedule

    def save(self, path: str, **extra) -> None:
        """Write the failing schedule (for `armvisor run --schedule`, Schedule.load)."""
        found = self.found
        info = {"run": found.run, "strategy": self.strategy, "reason": found.reason,
                "decisions_before_shrinking": len(found.decisions)}
        try:
            self.schedule().save(path, found=info, **extra)
        except OSError as exc:
            raise ArmvisorError(f"cannot write {path}: {exc.strerror}") from None


def explore(target: Target, strategy: Strategy, runs: int, executor: Optional[Executor] = None,
            shrink: bool = True, shrink_runs: int = 200, size_budget: bool = False,
            progress: Optional[Progress] = None) -> Exploration:
    """Up to `runs` runs (the default schedule's included) until one fails.

    `size_budget`: set the target's instruction budget from the default run
    (BUDGET_FACTOR times its length); else the target's stands.
    """
    if runs < 1:
        raise ArmvisorError(f"--runs must be 1 or more, not {runs}")
    executor = executor or InProcess()
    result = Exploration(target, strategy.describe())
    scratch = tempfile.mkdtemp(prefix="armvisor-explore-")
    try:
        target = _with_snapshot(target, scratch, result)
        result.target = target
        baseline = runner.run_plan(target, Record(), 0, keep_console=True)
        _count(result, baseline, progress)
        result.baseline = baseline
        # A default run that did not end (cut) keeps the budget it was given.
        if size_budget and baseline.status == "passed":
            target = replace(target, max_instructions=max(
                MIN_BUDGET, BUDGET_FACTOR * baseline.instructions))
            result.target = target
        if baseline.failed:
            result.found, result.decisions, result.confirmed = baseline, (), baseline
            return result
        strategy.prepare(baseline)
        found = _search(target, strategy, runs, executor, result, progress)
        if found is None:
            return result
        result.found, result.decisions = found, found.decisions
        if shrink and found.decisions:
            _shrink(target, executor, result, shrink_runs, progress)
        result.confirmed = runner.run_plan(target, Fixed(result.decisions), found.run,
                                           keep_console=True)
        if not result.confirmed.failed:
            raise RuntimeError(f"run {found.run}'s schedule did not fail again: "
                               "a run is not deterministic")
        return result
    finally:
        result.seconds = time.monotonic() - result._began
        shutil.rmtree(scratch, ignore_errors=True)


def _count(result: Exploration, outcome: Outcome, progress: Optional[Progress]) -> None:
    result.runs += 1
    result.statuses[outcome.status] += 1
    result.failures += outcome.failed
    if progress is not None:
        progress(result)


def _search(target: Target, strategy: Strategy, runs: int, executor: Executor,
            result: Exploration, progress: Optional[Progress]) -> Optional[Outcome]:
    """Runs 1 .. runs-1, at most a few tasks per worker in flight; the failing run with
    the lowest number among those done when the first failure came back."""
    per_task = 1 if executor.workers == 1 else RUNS_PER_TASK
    in_flight: Dict[object, int] = {}
    failures: List[Outcome] = []
    next_run = 1
    try:
        while True:
            while not failures and not result.exhausted and next_run < runs and \
                    len(in_flight) < 2 * executor.workers:
                batch = []
                while next_run < runs and len(batch) < per_task:
                    plan = strategy.plan(next_run)
                    if plan is None:
                        result.exhausted = True
                        break
                    batch.append((next_run, plan))
                    next_run += 1
                if batch:
                    in_flight[executor.submit(runner.run_many, target, batch)] = batch[0][0]
            if not in_flight:
                break
            for handle in executor.wait(list(in_flight)):
                del in_flight[handle]
                for outcome in executor.result(handle):
                    _count(result, outcome, progress)
                    if outcome.failed:
                        failures.append(outcome)
    finally:
        executor.cancel(list(in_flight))
    return min(failures, key=lambda o: o.run) if failures else None


def _shrink(target: Target, executor: Executor, result: Exploration, max_runs: int,
            progress: Optional[Progress]) -> None:
    found = result.found

    def try_runs(candidates):
        handles = [executor.submit(runner.run_plan, target, Fixed(c), found.run)
                   for c in candidates]
        outcomes = [executor.result(h) for h in handles]
        result.shrink_runs += len(outcomes)
        if progress is not None:
            progress(result)
        return outcomes

    defaults = {"slice": target.machine.get("slice", SLICE_DEFAULT),
                "power_on": POWER_ON_LATENCY, "kick": 0}
    shrunk = shrink_decisions(
        found.decisions, try_runs, defaults,
        same_failure=lambda o: o.failed and o.predicate == found.predicate,
        max_runs=max_runs, batch=executor.workers)
    result.decisions = shrunk.decisions


def _with_snapshot(target: Target, scratch: str, result: Exploration) -> Target:
    """The target, with a snapshot of its start point when one can be made and proves
    faithful (a run from it matches a run that boots); else every run boots."""
    if target.snapshot is not None or not target.start:
        result.snapshot_note = "from the given snapshot" if target.snapshot else ""
        return target
    path = os.path.join(scratch, "start.snapshot")
    machine = runner.start_machine(target)
    try:
        machine.snapshot(path)
    except Exception as exc:  # noqa: BLE001 - any part that cannot save its state yet
        result.snapshot_note = (f"each run boots there (this machine cannot be "
                                f"snapshotted yet: {type(exc).__name__}: {exc})")
        return target
    finally:
        machine.close()
    with_snapshot = replace(target, snapshot=path)
    booted = runner.run_plan(target, Fixed(), 0, keep_console=True)
    restored = runner.run_plan(with_snapshot, Fixed(), 0, keep_console=True)
    if (booted.status, booted.instructions, booted.console) != \
            (restored.status, restored.instructions, restored.console):
        result.snapshot_note = ("each run boots there (a run from the snapshot differed "
                                "from one that boots)")
        return target
    result.snapshot_note = "each run restores a snapshot taken there"
    return with_snapshot
