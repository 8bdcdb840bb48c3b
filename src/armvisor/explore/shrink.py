"""Shrinking a failing schedule: fewer decisions, values nearer the defaults.

Greedy, as delta debugging does it: drop chunks of decisions (halves, then
quarters, ... then single ones) while the failure still shows; then move
each remaining value toward its default, as far as it still fails (a binary
search). Every candidate is a real run, and
the result is the decisions a failing run actually took (a candidate's
decision may be left unused, or land on its default), so it replays that
run exactly.

`try_runs(candidates)` runs several candidates (in parallel, when the
executor can) and returns their outcomes in order; the first failing one
wins, so the result does not depend on which worker finished first.

    >>> from armvisor.machine.schedule import Decision
    >>> from armvisor.explore.runner import Outcome
    >>> def fake(candidates):             # fails while decision ("slice", 7) is kept
    ...     return [Outcome(0, "failed" if any(d.index == 7 for d in c) else "passed",
    ...                     decisions=tuple(c)) for c in candidates]
    >>> found = [Decision("slice", i, 10) for i in range(20)]
    >>> result = shrink(found, fake, defaults={"slice": 50_000})
    >>> [(d.index, d.value) for d in result.decisions]   # any value fails: it moved
    [(7, 46875)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from armvisor.explore.runner import Outcome
from armvisor.machine.schedule import Decision

TryRuns = Callable[[List[Tuple[Decision, ...]]], List[Outcome]]


@dataclass
class Shrunk:
    decisions: Tuple[Decision, ...]
    outcome: Optional[Outcome]          # the last failing run (None: nothing shrank)
    runs: int                           # candidates tried


def shrink(decisions: Sequence[Decision], try_runs: TryRuns, defaults: Dict[str, int],
           same_failure: Callable[[Outcome], bool] = lambda o: o.failed,
           max_runs: int = 200, batch: int = 1) -> Shrunk:
    """Fewer, smaller decisions that still fail (see the module docstring).

    `defaults` gives each kind's default value, for moving values toward it
    (kinds without one, such as "order" and "sync", are only dropped).
    `same_failure` tells whether a candidate's outcome is still the failure
    being shrunk (not another one). `batch` candidates run at a time.
    """
    state = _State(tuple(decisions), try_runs, same_failure, max_runs, max(1, batch))
    state.drop_chunks()
    state.move_values(defaults)
    return Shrunk(state.best, state.outcome, state.runs)


class _State:
    def __init__(self, best, try_runs, same_failure, max_runs, batch):
        self.best: Tuple[Decision, ...] = best
        self.outcome: Optional[Outcome] = None
        self.try_runs, self.same_failure = try_runs, same_failure
        self.max_runs, self.batch = max_runs, batch
        self.runs = 0

    def first_failing(self, candidates: List[Tuple[Decision, ...]]) -> bool:
        """Try candidates in order, a batch at a time; keep the first that still fails."""
        for start in range(0, len(candidates), self.batch):
            left = self.max_runs - self.runs
            if left <= 0:
                return False
            chunk = candidates[start:start + min(self.batch, left)]
            self.runs += len(chunk)
            for outcome in self.try_runs(chunk):
                if self.same_failure(outcome):
                    self.best, self.outcome = outcome.decisions, outcome
                    return True
        return False

    def drop_chunks(self) -> None:
        parts = 2
        while self.best and self.runs < self.max_runs:
            size = max(1, -(-len(self.best) // parts))        # ceil
            starts = range(0, len(self.best), size)
            candidates = [self.best[:s] + self.best[s + size:] for s in starts]
            if self.first_failing(candidates):
                parts = max(2, parts - 1)
            elif size == 1:
                return
            else:
                parts = min(parts * 2, len(self.best))

    def move_values(self, defaults: Dict[str, int]) -> None:
        # One decision at a time, a binary search between its value (fails)
        # and the default (taken to pass), down to an eighth of the value.
        # `best` may change under us (a candidate can shift later points), so
        # decisions are looked up by (kind, index) each time.
        for kind, index in [(d.kind, d.index) for d in self.best]:
            if kind not in defaults:
                continue
            far = defaults[kind]
            while self.runs < self.max_runs:
                current = next((d for d in self.best if (d.kind, d.index) == (kind, index)), None)
                if current is None or not isinstance(current.value, int):
                    break
                near = current.value
                if abs(far - near) <= max(1, abs(near) // 8):
                    break
                middle = (near + far) // 2
                candidate = tuple(Decision(kind, index, middle) if d is current else d
                                  for d in self.best)
                if not self.first_failing([candidate]):
                    far = middle
