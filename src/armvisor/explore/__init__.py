"""Schedule exploration: run a guest under many interleavings until one fails.

Every run is deterministic, so the schedule of a failing run (its
non-default decisions, machine/schedule.py) replays it exactly; the
explorer shrinks it to few decisions and saves it for
`armvisor run --schedule FILE` (the command line is `armvisor explore`).

    >>> import armvisor.explore as ex
    >>> guest = dict(kernel="guests/build/race_counter.elf", smp=4)
    >>> result = ex.explore(guest, until=[ex.ConsoleMatch("RESULT: FAIL")], runs=100, seed=0)
    >>> result.found.run, result.found.reason
    (16, "the console printed 'RESULT: FAIL lost update: 3 cpus counted, 4 online'")
    >>> len(result.decisions) < len(result.found.decisions)       # shrunk
    True
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "race_counter.schedule.json")
    >>> result.save(path)
    >>> again = ex.replay(path, guest, until=[ex.ConsoleMatch("RESULT: FAIL")])
    >>> again.failed, again.console == result.confirmed.console
    (True, True)

Pieces: predicates.py (what a failure is), strategies.py (which schedule
each run tries), runner.py (one run), shrink.py, executors.py (this
process, local processes, Dask), explorer.py (the loop).
"""

from __future__ import annotations

from typing import Optional, Sequence

from armvisor.explore import executors
from armvisor.explore.explorer import Exploration
from armvisor.explore.explorer import explore as _explore
from armvisor.explore.predicates import (Check, ConsoleMatch, Crash, EventCount, EventSpec, Hang,
                                         Predicate, parse_event)
from armvisor.explore.runner import DEFAULT_BUDGET, RUN_TIMEOUT, Outcome, Target, run_plan
from armvisor.explore.strategies import STRATEGIES, Fixed, make
from armvisor.machine.config import SLICE_DEFAULT
from armvisor.machine.schedule import Decision, Schedule


def explore(machine: dict, until: Sequence[Predicate], *, strategy: str = "random",
            runs: int = 100, seed: int = 0, jobs: int = 1, dask=None, start: int = 0,
            snapshot: Optional[str] = None, max_instructions: Optional[int] = None,
            timeout: float = RUN_TIMEOUT, shrink: bool = True, shrink_runs: int = 200,
            depth: int = 3, preemptions: int = 2, points: int = 64,
            progress=None) -> Exploration:
    """Explore `machine` (armvisor.Machine's keyword arguments; deterministic is implied)
    until a run meets one of the `until` predicates, or `runs` runs are done.

    `dask`: a scheduler address or a distributed.Client (else `jobs` local
    processes; 1 runs everything in this process). `start`: instructions run
    under the default schedule before the explored one arms; `snapshot`: a
    snapshot file (Machine.snapshot) to start every run from instead of reset.
    `max_instructions`: per run (a run past it is a hang for `Hang()`); by
    default 20 times the default run's length, 10M at least.
    """
    if not until:
        raise ValueError("give at least one predicate to stop on (until=[...])")
    target = Target(dict(machine), tuple(until), start=start, snapshot=snapshot,
                    snapshot_is_start=snapshot is not None,
                    max_instructions=max_instructions or DEFAULT_BUDGET, timeout=timeout)
    lanes = machine.get("pcpus") or max(
        [machine.get("smp", 1)] + [getattr(vm, "smp", 1) for vm in machine.get("vms") or []])
    chosen = make(strategy, seed=seed, slice_budget=machine.get("slice", SLICE_DEFAULT),
                  lanes=lanes, depth=depth, preemptions=preemptions, points=points)
    with executors.make(jobs, dask) as executor:
        return _explore(target, chosen, runs, executor, shrink=shrink,
                        shrink_runs=shrink_runs, size_budget=max_instructions is None,
                        progress=progress)


def replay(path: str, machine: dict, until: Sequence[Predicate] = (), *,
           max_instructions: int = DEFAULT_BUDGET, timeout: float = RUN_TIMEOUT) -> Outcome:
    """Run `machine` once under the schedule file `path`; the Outcome keeps the console."""
    schedule = Schedule.load(path)
    start = schedule.start or {}
    target = Target(dict(machine), tuple(until), start=int(start.get("instructions", 0)),
                    snapshot=start.get("snapshot"), snapshot_is_start="snapshot" in start,
                    max_instructions=max_instructions, timeout=timeout)
    decisions = tuple(Decision(kind, index, value)
                      for (kind, index), value in schedule.decisions.items())
    return run_plan(target, Fixed(decisions), keep_console=True)


__all__ = ["explore", "replay", "Exploration", "Outcome", "Target", "Predicate", "ConsoleMatch",
           "Crash", "Hang", "EventCount", "EventSpec", "Check", "parse_event", "STRATEGIES"]
