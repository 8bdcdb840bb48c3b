"""What makes a run a failure: the predicates `armvisor explore` stops on.

A predicate looks at one run. While it runs, `condition(machine)` may give
a stop condition (armvisor.api.Condition), so the run ends as soon as the
failure shows; when it has ended, `verdict(end, condition)` says why it
failed (a sentence), or None. Predicates are plain picklable objects: they travel to
worker processes and Dask workers with the run.

    >>> from armvisor.explore.predicates import parse_event
    >>> spec = parse_event("psci.call function=CPU_ON result=SUCCESS")
    >>> spec.name, spec.fields
    ('psci.call', (('function', 'CPU_ON'), ('result', 'SUCCESS')))
    >>> spec.matches("psci.call", {"function": "CPU_ON", "result": 0, "target": 2})
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Callable, Dict, Optional, Tuple

from armvisor.api import Condition
from armvisor.errors import ArmvisorError, GuestError
from armvisor.machine.runloop import HANG


@dataclass
class RunEnd:
    """How a run ended, as the predicates see it."""

    machine: object                     # the armvisor.api.Machine
    status: Optional[int]               # exit status once the guest ended, else None
    error: Optional[BaseException]      # GuestError the run raised, if any
    budget_spent: bool                  # stopped at the instruction budget


class Predicate:
    """A failure the explorer looks for (see the module docstring)."""

    def condition(self, machine) -> Optional[Condition]:
        return None

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        """Why the run failed, or None; `condition` is what `condition()` gave for it."""
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


# -- console -----------------------------------------------------------------------


class ConsoleMatch(Predicate):
    """The console printed a line matching `pattern` (a regular expression) since the
    schedule's start."""

    def __init__(self, pattern: str):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ArmvisorError(f"--until-console {pattern!r}: not a regular expression "
                                f"({exc})") from None
        self.pattern = pattern

    def condition(self, machine) -> Condition:
        return _ConsoleRegex(re.compile(self.pattern))

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        start = condition.start if isinstance(condition, _ConsoleRegex) else 0
        text = end.machine.console.output[start:].decode("utf-8", "replace")
        found = re.search(self.pattern, text)
        if found is None:
            return None
        return f"the console printed {_line_around(text, found)!r}"

    def describe(self) -> str:
        return f"console /{self.pattern}/"


class _ConsoleRegex(Condition):
    # Searched again only when lines were completed, in those lines, so a line
    # printed over two slices is seen whole.
    def __init__(self, regex: "re.Pattern"):
        self.regex = regex
        self.hit = False

    def attach(self, machine):
        self._console = machine.console
        self.start = self.seen = len(machine.console.output)

    def met(self):
        # Whole lines only, so the run stops once the matching line is complete
        # (the verdict at the end also sees an unfinished last line).
        if self.hit:
            return True
        output = self._console.output
        end = output.rfind(b"\n", self.seen) + 1
        if end > self.seen:
            text = output[self.seen:end].decode("utf-8", "replace")
            self.seen = end
            self.hit = self.regex.search(text) is not None
        return self.hit


def _line_around(text: str, found: "re.Match") -> str:
    begin = text.rfind("\n", 0, found.start()) + 1
    end = text.find("\n", found.end())
    return text[begin:end if end >= 0 else len(text)].strip()


# -- the run loop's verdicts ---------------------------------------------------------


class Crash(Predicate):
    """The guest stopped the machine: a fault the board refused, an exception loop."""

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        if isinstance(end.error, GuestError) and str(end.error) != HANG:
            return f"the guest crashed: {end.error}"
        return None

    def describe(self) -> str:
        return "crash"


class Hang(Predicate):
    """Every CPU waits for an interrupt nothing can raise, or the guest has not ended
    within the run's instruction budget (CPUs spinning on each other)."""

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        if isinstance(end.error, GuestError) and str(end.error) == HANG:
            return "the guest hangs: every CPU waits for an interrupt that nothing can raise"
        if end.budget_spent and end.status is None and end.error is None:
            return "the guest hangs: it did not end within the instruction budget"
        return None

    def describe(self) -> str:
        return "hang"


# -- trace events ------------------------------------------------------------------


def _named_results() -> Dict[str, int]:
    from armvisor.firmware.psci.constants import PsciReturn
    return {member.name: int(member) for member in PsciReturn}


@dataclass(frozen=True)
class EventSpec:
    """A trace event name and field tests: `name field=value ...`.

    A value matches a field's string form (shell-style wildcards allowed), an
    integer field written in any base (0x10), or a PSCI return code by name
    (result=SUCCESS).
    """

    name: str
    fields: Tuple[Tuple[str, str], ...]

    def matches(self, kind: str, fields: dict) -> bool:
        if not fnmatchcase(kind, self.name):
            return False
        return all(key in fields and _value_matches(fields[key], want)
                   for key, want in self.fields)

    def __str__(self) -> str:
        return " ".join([self.name] + [f"{k}={v}" for k, v in self.fields])


def _value_matches(value, want: str) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return value == int(want, 0)
        except ValueError:
            named = _named_results().get(want)
            if named is not None:
                return value == named
    return fnmatchcase(str(value), want)


def parse_event(text: str) -> EventSpec:
    """'psci.call function=CPU_ON result=SUCCESS' -> EventSpec (ArmvisorError if malformed)."""
    words = text.split()
    if not words or "=" in words[0]:
        raise ArmvisorError(f"--until-event {text!r}: give an event name first, then "
                            "field=value tests (e.g. 'psci.call function=CPU_ON')")
    fields = []
    for word in words[1:]:
        key, equals, value = word.partition("=")
        if not equals or not key or not value:
            raise ArmvisorError(f"--until-event {text!r}: {word!r} is not field=value")
        fields.append((key, value))
    return EventSpec(words[0], tuple(fields))


class EventCount(Predicate):
    """`count` trace events matching `spec` (with `same`: all with one value of that field)."""

    def __init__(self, spec: EventSpec, count: int = 1, same: Optional[str] = None):
        if count < 1:
            raise ArmvisorError(f"--count must be 1 or more, not {count}")
        self.spec, self.count, self.same = spec, count, same

    def condition(self, machine) -> Condition:
        return _EventCounter(self)

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        if not isinstance(condition, _EventCounter) or condition.hit is None:
            return None
        where = "" if self.same is None else f" with {self.same}={condition.hit}"
        return f"{self.count} events '{self.spec}'{where}"

    def describe(self) -> str:
        same = "" if self.same is None else f", same {self.same}"
        return f"event '{self.spec}' x{self.count}{same}"


class _EventCounter(Condition):
    def __init__(self, predicate: EventCount):
        self.predicate = predicate
        self.seen: Dict[object, int] = {}
        self.hit = None                      # the `same` value (or True) once counted

    def attach(self, machine):
        self._machine = machine
        machine.trace.subscribe(self._on_event)

    def _on_event(self, event) -> None:
        p = self.predicate
        if self.hit is not None or not p.spec.matches(event.kind, event.fields):
            return
        if p.same is None:
            key = True
        elif p.same in event.fields:
            key = event.fields[p.same]
            key = key if isinstance(key, (int, str)) else repr(key)
        else:
            return
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] >= p.count:
            self.hit = key
            self._machine._interrupt_slice()      # stop right after the event

    def met(self):
        return self.hit is not None


# -- Python ------------------------------------------------------------------------


class Check(Predicate):
    """A Python test of the machine: `check(machine)` returns a reason (str or True) when
    the run has failed, else a false value. Asked after every slice and at the end.

    With worker processes or Dask, `check` must be picklable (a module-level function).
    """

    def __init__(self, check: Callable[[object], object], name: Optional[str] = None):
        self.check = check
        self.name = name or getattr(check, "__name__", "check")

    def condition(self, machine) -> Condition:
        return _CheckCondition(self.check)

    def verdict(self, end: RunEnd, condition: Optional[Condition] = None) -> Optional[str]:
        result = self.check(end.machine)
        if not result:
            return None
        return result if isinstance(result, str) else f"{self.name} returned {result!r}"

    def describe(self) -> str:
        return f"python {self.name}"


class _CheckCondition(Condition):
    def __init__(self, check):
        self.check = check

    def attach(self, machine):
        self._machine = machine

    def met(self):
        return bool(self.check(self._machine))
