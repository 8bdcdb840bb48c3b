"""Bad input to `armvisor explore` and `armvisor run --schedule`: one line on
stderr, exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.explore.conftest import BUGS, armvisor

pytestmark = pytest.mark.guest


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armvisor: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("args, words", [
    ((), ["--until-console"]),
    (("--until-console", "RESULT: (FAIL"), ["not a regular expression"]),
    (("--until-event", "function=CPU_ON"), ["event name first"]),
    (("--until-event", "psci.call function"), ["not field=value"]),
    (("--until-crash", "--count", "2"), ["--count and --same go with --until-event"]),
    (("--until-event", "psci.call", "--count", "0"), ["--count"]),
    (("--until-crash", "--runs", "0"), ["--runs"]),
    (("--until-crash", "--jobs", "0"), ["--jobs"]),
    (("--until-crash", "--jobs", "2", "--dask", "tcp://127.0.0.1:1"), ["--jobs or --dask"]),
    (("--until-crash", "--strategy", "exhaustive"), ["--strategy"]),
    (("--until-crash", "--max-instructions", "0"), ["--max-instructions"]),
    (("--until-crash", "--pcpus", "2"), ["--pcpus needs --hyp"]),
])
def test_bad_explore_options(guests, args, words):
    bug = BUGS["boot_data"]
    one_line_error(armvisor("explore", "--kernel", bug.elf, "--smp", 2, *args), *words)


def test_explore_needs_a_readable_kernel(tmp_path):
    one_line_error(armvisor("explore", "--kernel", tmp_path / "missing.elf", "--until-crash"),
                   "missing.elf")


def run_with(schedule, tmp_path, *extra):
    bug = BUGS["boot_data"]
    path = tmp_path / "s.json"
    if schedule is not None:
        path.write_text(schedule if isinstance(schedule, str) else json.dumps(schedule))
    return armvisor("run", "--kernel", bug.elf, "--smp", 2, "--schedule", path, *extra)


GOOD = {"format": "armvisor-schedule", "version": 1, "start": None, "decisions": []}


@pytest.mark.parametrize("schedule, words", [
    (None, ["cannot read schedule"]),
    ("{not json", ["not JSON"]),
    ({"format": "something else"}, ["not an armvisor schedule"]),
    (dict(GOOD, version=99), ["version 99"]),
    (dict(GOOD, decisions=[{"kind": "later", "index": 0, "value": 1}]), ["unknown decision kind"]),
    (dict(GOOD, decisions=[{"kind": "sync", "index": -1, "value": 0}]), ["non-negative"]),
    (dict(GOOD, start={"instructions": "soon"}), ["'start' must be"]),
    (dict(GOOD, start={"snapshot": "/nowhere/s.snap"}), ["Python API"]),
])
def test_bad_schedule_files(guests, tmp_path, schedule, words):
    one_line_error(run_with(schedule, tmp_path, "--deterministic"), *words)


def test_a_schedule_needs_a_deterministic_run(guests, tmp_path):
    one_line_error(run_with(GOOD, tmp_path), "--deterministic")


def test_an_empty_schedule_is_the_default_run(guests, tmp_path):
    proc = run_with(GOOD, tmp_path, "--deterministic")
    assert proc.returncode == 0 and "RESULT: PASS" in proc.stdout, proc.stderr
