"""Exploration strategies: which schedule each run of an exploration tries.

A strategy turns a run number into a `Plan`, a small picklable recipe that
a worker turns into the run's Schedule (machine/schedule.py). Plans depend
only on the seed and the run number, never on other runs' results, so runs
can go to any worker in any order and an exploration repeats exactly.
Before the first plan the explorer shows the strategy the default run
(`prepare`): its length and its decision points.

- `RandomSlices`: each decision point is perturbed with a probability drawn
  per run (some runs change little, some a lot): slices of log-uniform
  length (short slices are what end a CPU between two close instructions),
  shuffled lane orders, short CPU_ON latencies, late IPI kicks.
- `Pct`: PCT-style (Burckhardt et al., ASPLOS 2010): random lane
  priorities (the order of each round), and `depth - 1` priority changes,
  each at a random synchronization point or a random instruction count of
  the default run; the CPU running there is cut and drops below every other.
- `Systematic`: CHESS-style preemption bounding around synchronization
  points: every schedule with 1..`preemptions` changes among the first
  `points` points of the default run (PSCI calls, MMIO accesses, exclusive
  loads and stores: end the slice there; CPU_ON: start the new CPU at once;
  IPIs: let the sender run on), the first point of each CPU, kind and place
  (an exclusive's address) before the second of any, so a spin loop's
  thousand iterations do not crowd out the rest.

    >>> from armvisor.explore.strategies import RandomSlices
    >>> strategy = RandomSlices(seed=1, slice_budget=50_000)
    >>> chooser = strategy.plan(3).chooser(None)
    >>> values = [chooser("slice", i, 50_000, {}) for i in range(200)]
    >>> all(1 <= v <= 50_000 for v in values) and any(v != 50_000 for v in values)
    True
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from armvisor.machine.board import POWER_ON_LATENCY
from armvisor.machine.schedule import NO_PREEMPTION, Chooser, Decision, Schedule

# A decision point of the default run: (kind, index, cpu, where): `where` is
# a sync point's kind ("psci", "mmio", "exclusive@0x40201b04"), else "".
Point = Tuple[str, int, Optional[int], str]


class Plan:
    """What one run tries: a Schedule for a machine about to run."""

    watch_sync = False

    def chooser(self, machine) -> Optional[Chooser]:
        return None

    def decisions(self) -> Tuple[Decision, ...]:
        return ()

    def schedule(self, machine) -> Schedule:
        return Schedule(self.decisions(), chooser=self.chooser(machine),
                        watch_sync=self.watch_sync or None)


@dataclass(frozen=True)
class Fixed(Plan):
    """Explicit decisions: a replay, a shrinking candidate, a systematic schedule."""

    fixed: Tuple[Decision, ...] = ()

    def decisions(self) -> Tuple[Decision, ...]:
        return self.fixed


@dataclass(frozen=True)
class Record(Plan):
    """The default schedule, noting the decision points it meets (the baseline run)."""

    watch_sync = True

    def chooser(self, machine) -> Chooser:
        return _Recorder()


class _Recorder:
    """A chooser that answers the default and keeps the points the strategies try
    (the runner reads them): the first PER_QUEUE of each (CPU, kind, where), so
    a long guest (Linux makes millions of MMIO accesses) costs little memory."""

    PER_QUEUE = 1024

    def __init__(self):
        self.points: List[Point] = []
        self._queues: Dict[tuple, int] = {}

    def __call__(self, kind, index, default, context):
        if kind in POINT_KINDS:
            point = (kind, index, context.get("cpu"), context.get("point", ""))
            queue = (point[2], kind, point[3])
            seen = self._queues.get(queue, 0)
            if seen < self.PER_QUEUE:
                self._queues[queue] = seen + 1
                self.points.append(point)
        return default


class Strategy:
    name = "strategy"

    def prepare(self, baseline) -> None:
        """Learn what the default run looks like (runner.Outcome of the Record plan)."""

    def plan(self, run: int) -> Optional[Plan]:
        """The plan of run `run` (1, 2, ...; run 0 is the default schedule); None when
        the strategy has nothing left to try."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


# The change tried at each kind of point: end the slice at a sync point; start
# the new CPU at once on CPU_ON; let an IPI's sender run on; keep a planted
# bug's unlocked window open while the other CPUs run (the defaults: the
# slice goes on, POWER_ON_LATENCY, the sender's slice ends at once, the
# window closes with the caller's slice).
def _alternative(kind: str, slice_budget: int) -> Optional[int]:
    return {"sync": 0, "power_on": 0, "kick": slice_budget, "window": 1}.get(kind)


# The decision kinds that are points a strategy may change one at a time.
POINT_KINDS = ("sync", "power_on", "kick", "window")


def _rng(seed: int, run: int, salt: str) -> random.Random:
    return random.Random(f"{salt}:{seed}:{run}")


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high] (low >= 1), each power of two about as likely as the next."""
    if high <= low:
        return low
    return min(high, max(low, int(math.exp(rng.uniform(math.log(low), math.log(high + 1))))))


# -- random slices ---------------------------------------------------------------------


# How often a run changes each point: a few runs barely move, a few move everything.
INTENSITIES = (0.02, 0.1, 0.3, 0.6)


@dataclass(frozen=True)
class RandomPlan(Plan):
    seed: int
    run: int
    slice_budget: int

    def chooser(self, machine) -> Chooser:
        rng = _rng(self.seed, self.run, "random")
        p = rng.choice(INTENSITIES)
        budget = self.slice_budget

        def choose(kind, index, default, context):
            if rng.random() >= p:
                return default
            if kind == "slice":
                return _log_uniform(rng, 1, default)
            if kind == "order":
                order = list(default)
                rng.shuffle(order)
                return order
            if kind == "power_on":
                return rng.randint(0, default)
            if kind == "kick":
                return _log_uniform(rng, 1, budget)
            if kind == "window":
                return 1
            return default
        return choose


class RandomSlices(Strategy):
    name = "random"

    def __init__(self, seed: int = 0, slice_budget: int = 50_000):
        self.seed, self.slice_budget = seed, slice_budget

    def plan(self, run: int) -> Plan:
        return RandomPlan(self.seed, run, self.slice_budget)

    def describe(self) -> str:
        return f"random (seed {self.seed})"


# -- PCT -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PctPlan(Plan):
    priorities: Tuple[int, ...]            # lane -> priority (higher runs first in a round)
    steps: Tuple[Tuple[str, int], ...]     # points where a CPU is cut: (kind, index)
    instructions: Tuple[int, ...]          # instruction counts where a CPU is cut
    slice_budget: int = 50_000

    watch_sync = True

    def chooser(self, machine) -> Chooser:
        priority = dict(enumerate(self.priorities))
        steps = set(self.steps)
        changes = list(self.instructions)
        base = machine.instructions if machine is not None else 0
        lowered = [0]

        def lower(lane) -> None:
            # Below every initial priority (all >= 1) and every earlier change.
            lowered[0] += 1
            priority[lane] = -lowered[0]

        def choose(kind, index, default, context):
            if kind == "order":
                return sorted(default, key=lambda lane: -priority.get(lane, 0))
            if (kind, index) in steps:
                lower(context.get("cpu"))
                return _alternative(kind, self.slice_budget)
            if kind != "slice" or not changes:
                return default
            now = (machine.instructions if machine is not None else 0) - base
            while changes and changes[0] < now + default:
                at = changes.pop(0)
                lower(context.get("cpu"))
                if at >= now:
                    return max(1, at - now)
            return default
        return choose


class Pct(Strategy):
    """Change points fall on the default run's synchronization points (PSCI calls,
    MMIO, CPU_ON, IPIs) or, as often, on instruction counts: spin loops make
    many instructions and few synchronization points, so neither alone would
    place them well."""

    name = "pct"

    def __init__(self, seed: int = 0, depth: int = 3, lanes: int = 1, slice_budget: int = 50_000):
        if depth < 1:
            raise ValueError("PCT depth must be 1 or more")
        self.seed, self.depth, self.lanes, self.slice_budget = seed, depth, lanes, slice_budget
        self.length = 1
        self.steps: Dict[str, int] = {}           # decision points of the default run, by kind

    def prepare(self, baseline) -> None:
        self.length = max(1, baseline.instructions)
        self.steps = {kind: count for kind, count in baseline.counts.items()
                      if kind in POINT_KINDS and count}

    def plan(self, run: int) -> Plan:
        rng = _rng(self.seed, run, "pct")
        priorities = list(range(1, self.lanes + 1))
        rng.shuffle(priorities)
        steps, instructions = [], []
        total = sum(self.steps.values())
        for _ in range(self.depth - 1):
            if total and rng.random() < 0.5:
                # A point drawn uniformly among all of them: a kind by its count.
                pick = rng.randrange(total)
                for kind, count in self.steps.items():
                    if pick < count:
                        steps.append((kind, pick))
                        break
                    pick -= count
            else:
                instructions.append(rng.randrange(self.length))
        return PctPlan(tuple(priorities), tuple(steps), tuple(sorted(instructions)),
                       self.slice_budget)

    def describe(self) -> str:
        return f"pct (depth {self.depth}, seed {self.seed})"


# -- systematic ------------------------------------------------------------------------




def interleave(points: Sequence[Point]) -> List[Point]:
    """The points, the first of each (CPU, kind, where) before the second of any.

    A CPU's first CPU_ON or IPI thus comes early, though another CPU's
    console output may have made hundreds of MMIO sync points before it.

    >>> interleave([("sync", 0, 0, "mmio"), ("sync", 1, 0, "mmio"), ("sync", 2, 1, "mmio"),
    ...             ("sync", 3, 0, "psci")])
    [('sync', 0, 0, 'mmio'), ('sync', 2, 1, 'mmio'), ('sync', 3, 0, 'psci'), ('sync', 1, 0, 'mmio')]
    """
    queues: Dict[tuple, List[Point]] = {}
    for point in points:
        queues.setdefault((point[2], point[0], point[3]), []).append(point)
    ordered: List[Point] = []
    for column in itertools.zip_longest(*queues.values()):
        ordered += [p for p in column if p is not None]
    return ordered


@dataclass
class Systematic(Strategy):
    name = "systematic"
    preemptions: int = 2
    points: int = 64
    slice_budget: int = 50_000
    candidates: List[Point] = field(default_factory=list)
    _combinations: List[Tuple[int, ...]] = field(default_factory=list)

    def prepare(self, baseline) -> None:
        usable = [p for p in baseline.points
                  if _alternative(p[0], self.slice_budget) is not None]
        self.candidates = interleave(usable)[:self.points]
        self._combinations = [c for size in range(1, self.preemptions + 1)
                              for c in itertools.combinations(range(len(self.candidates)), size)]

    @property
    def size(self) -> int:
        """How many schedules the search has (besides the default one)."""
        return len(self._combinations)

    def plan(self, run: int) -> Optional[Plan]:
        if not 1 <= run <= len(self._combinations):
            return None
        chosen = [self.candidates[i] for i in self._combinations[run - 1]]
        return SyncPlan(tuple(Decision(kind, index, _alternative(kind, self.slice_budget))
                              for kind, index, _cpu, _where in chosen))

    def describe(self) -> str:
        return (f"systematic (up to {self.preemptions} preemptions among the first "
                f"{len(self.candidates) or self.points} sync points)")


@dataclass(frozen=True)
class SyncPlan(Fixed):
    """Fixed decisions that count sync points (so a "sync" decision finds its point)."""

    watch_sync = True


STRATEGIES = ("random", "pct", "systematic")


def make(name: str, *, seed: int = 0, slice_budget: int = 50_000, lanes: int = 1,
         depth: int = 3, preemptions: int = 2, points: int = 64) -> Strategy:
    """The strategy called `name` (one of STRATEGIES)."""
    if name == "random":
        return RandomSlices(seed, slice_budget)
    if name == "pct":
        return Pct(seed, depth, lanes, slice_budget)
    if name == "systematic":
        return Systematic(preemptions=preemptions, points=points, slice_budget=slice_budget)
    raise ValueError(f"unknown strategy {name!r} (one of {', '.join(STRATEGIES)})")


__all__ = ["Plan", "Fixed", "Record", "Strategy", "RandomSlices", "Pct", "Systematic",
           "STRATEGIES", "make", "interleave", "NO_PREEMPTION", "POWER_ON_LATENCY"]
