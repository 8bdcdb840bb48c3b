"""Predicate parsing and verdicts, on fake machines: no guest runs."""

import pytest

from armvisor.errors import ArmvisorError, GuestError
from armvisor.explore.predicates import (Check, ConsoleMatch, Crash, EventCount, Hang, RunEnd,
                                         parse_event)
from armvisor.machine.runloop import HANG
from armvisor.trace.bus import Event


class FakeConsole:
    def __init__(self):
        self.output = bytearray()

    @property
    def text(self):
        return self.output.decode()


class FakeTrace:
    def __init__(self):
        self.subscribers = []

    def subscribe(self, callback):
        self.subscribers.append(callback)

    def emit(self, kind, **fields):
        for callback in self.subscribers:
            callback(Event(kind, 0, 0.0, fields))


class FakeMachine:
    def __init__(self):
        self.console = FakeConsole()
        self.trace = FakeTrace()
        self.interrupted = 0

    def _interrupt_slice(self):
        self.interrupted += 1


def end(machine=None, status=None, error=None, budget_spent=False):
    return RunEnd(machine or FakeMachine(), status, error, budget_spent)


# -- --until-event syntax ------------------------------------------------------------


def test_event_spec_parses_name_and_fields():
    spec = parse_event("  psci.call   function=CPU_ON result=SUCCESS ")
    assert spec.name == "psci.call"
    assert spec.fields == (("function", "CPU_ON"), ("result", "SUCCESS"))
    assert str(spec) == "psci.call function=CPU_ON result=SUCCESS"


@pytest.mark.parametrize("text", ["", "function=CPU_ON", "psci.call function", "psci.call =x",
                                  "psci.call function="])
def test_event_spec_rejects_malformed_text(text):
    with pytest.raises(ArmvisorError, match="--until-event"):
        parse_event(text)


@pytest.mark.parametrize("want, value, expected", [
    ("CPU_ON", "CPU_ON", True), ("CPU_ON", "CPU_OFF", False), ("CPU_*", "CPU_OFF", True),
    ("SUCCESS", 0, True), ("ALREADY_ON", -4, True), ("ALREADY_ON", 0, False),
    ("2", 2, True), ("0x10", 16, True), ("3", 2, False), ("None", None, True),
])
def test_event_field_values(want, value, expected):
    spec = parse_event(f"psci.call f={want}")
    assert spec.matches("psci.call", {"f": value}) is expected


def test_event_spec_needs_every_field_and_the_name():
    spec = parse_event("psci.call function=CPU_ON")
    assert not spec.matches("psci.call", {})
    assert not spec.matches("vpsci.call", {"function": "CPU_ON"})
    assert parse_event("*psci.call function=CPU_ON").matches("vpsci.call", {"function": "CPU_ON"})


def run_events(predicate, events):
    machine = FakeMachine()
    condition = predicate.condition(machine)
    condition.attach(machine)
    for kind, fields in events:
        machine.trace.emit(kind, **fields)
    return machine, condition


CPU_ON_OK = ("psci.call", {"function": "CPU_ON", "result": 0, "target": 2})


def test_event_count_with_same_field_needs_that_many_for_one_value():
    predicate = EventCount(parse_event("psci.call function=CPU_ON result=SUCCESS"), 2, "target")
    machine, condition = run_events(predicate, [
        CPU_ON_OK, ("psci.call", {"function": "CPU_ON", "result": 0, "target": 3})])
    assert not condition.met() and predicate.verdict(end(machine), condition) is None
    machine.trace.emit(*CPU_ON_OK[:1], **CPU_ON_OK[1])
    assert condition.met() and machine.interrupted == 1
    assert predicate.verdict(end(machine), condition) == (
        "2 events 'psci.call function=CPU_ON result=SUCCESS' with target=2")


def test_event_count_without_same_counts_every_match():
    predicate = EventCount(parse_event("gic.sgi"), 3)
    _, condition = run_events(predicate, [("gic.sgi", {}), ("cpu.wfi", {}), ("gic.sgi", {})])
    assert not condition.met()
    _, condition = run_events(predicate, [("gic.sgi", {})] * 3)
    assert condition.met()


def test_event_count_must_be_positive():
    with pytest.raises(ArmvisorError, match="--count"):
        EventCount(parse_event("gic.sgi"), 0)


# -- console ----------------------------------------------------------------------------


def test_console_regex_is_checked_when_given():
    with pytest.raises(ArmvisorError, match="not a regular expression"):
        ConsoleMatch("RESULT: (FAIL")


def test_console_match_sees_whole_lines_printed_since_the_start():
    machine = FakeMachine()
    machine.console.output += b"RESULT: FAIL before the start\n"
    predicate = ConsoleMatch(r"RESULT: FAIL \w+")
    condition = predicate.condition(machine)
    condition.attach(machine)
    assert not condition.met()
    machine.console.output += b"RESULT: FA"
    assert not condition.met()
    machine.console.output += b"IL lost"           # the line is not finished yet
    assert not condition.met()
    machine.console.output += b" update\nmore"
    assert condition.met()
    assert predicate.verdict(end(machine), condition) == \
        "the console printed 'RESULT: FAIL lost update'"


def test_console_verdict_also_reads_an_unfinished_last_line():
    machine = FakeMachine()
    predicate = ConsoleMatch("panic")
    condition = predicate.condition(machine)
    condition.attach(machine)
    machine.console.output += b"kernel panic"
    assert not condition.met()
    assert predicate.verdict(end(machine), condition) == "the console printed 'kernel panic'"


# -- the run loop's ends -----------------------------------------------------------------


def test_crash_and_hang_tell_the_run_loop_errors_apart():
    crash, hang = GuestError("cpu1: exception loop"), GuestError(HANG)
    assert Crash().verdict(end(error=crash)) == "the guest crashed: cpu1: exception loop"
    assert Crash().verdict(end(error=hang)) is None
    assert Hang().verdict(end(error=hang)).startswith("the guest hangs: every CPU waits")
    assert Hang().verdict(end(error=crash)) is None


def test_hang_counts_a_spent_budget_only_when_the_guest_did_not_end():
    assert "instruction budget" in Hang().verdict(end(budget_spent=True))
    assert Hang().verdict(end(status=0)) is None
    assert Hang().verdict(end()) is None


def test_python_check():
    predicate = Check(lambda m: "bad" if m.console.text else None, name="printed")
    machine = FakeMachine()
    condition = predicate.condition(machine)
    condition.attach(machine)
    assert not condition.met() and predicate.verdict(end(machine)) is None
    machine.console.output += b"x"
    assert condition.met() and predicate.verdict(end(machine)) == "bad"
    assert Check(lambda m: True, name="always").verdict(end()) == "always returned True"
