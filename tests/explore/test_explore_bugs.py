"""`armvisor explore` finds each planted bug from the command line, saves a
schedule that `armvisor run --schedule` replays exactly, and the default
schedule (a plain `armvisor run --deterministic`) never shows the bug."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.explore.conftest import BUGS, GUESTS, armvisor, describe

pytestmark = pytest.mark.guest


@pytest.mark.parametrize("name", sorted(BUGS))
def test_the_default_schedule_passes(guests, name):
    bug = BUGS[name]
    proc = armvisor("run", "--deterministic", "--smp", bug.smp, "--kernel", bug.elf,
                    "--timeout", 120)
    assert proc.returncode == 0 and "RESULT: PASS" in proc.stdout, describe(proc)


def explore(bug, tmp_path, *extra):
    out = tmp_path / f"{bug.name}.schedule.json"
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                    "--runs", bug.budget, "--seed", 0, "--jobs", 1, "--out", out, *extra)
    assert proc.returncode == 0, describe(proc)
    assert out.is_file(), describe(proc)
    found = re.search(r"found a failure at run (\d+)", proc.stdout)
    assert found and int(found.group(1)) < bug.budget, describe(proc)
    replay = re.search(r"replay: +(.*)", proc.stdout).group(1)
    return out, shlex.split(replay)


def replay(command, tmp_path, timeout=None):
    assert command[:3] == ["armvisor", "run", "--deterministic"]
    args = command[2:]
    if timeout is not None:                     # a hang: bound it here, not in 60 s
        args[args.index("--timeout") + 1] = str(timeout)
    return armvisor("run", *args, cwd=tmp_path)


@pytest.mark.parametrize("name", ["race_counter", "boot_data"])
def test_explore_finds_a_wrong_result_and_run_replays_it(guests, tmp_path, name):
    bug = BUGS[name]
    out, command = explore(bug, tmp_path)
    assert "--schedule" in command and str(out) in command
    first, second = replay(command, tmp_path), replay(command, tmp_path)
    assert first.returncode == 0, describe(first)
    assert any(line.startswith("RESULT: FAIL") for line in first.stdout.splitlines()), \
        describe(first)
    assert first.stdout == second.stdout


def test_explore_finds_the_lock_order_deadlock_as_a_hang(guests, tmp_path):
    bug = BUGS["lock_order"]
    out, command = explore(bug, tmp_path)
    assert "--timeout" in command
    # The replay spins until its timeout (exit 4), both CPUs in spin_lock.
    first, second = replay(command, tmp_path, timeout=3), replay(command, tmp_path, timeout=3)
    assert first.returncode == 4, describe(first)
    assert "RESULT" not in first.stdout and first.stdout == second.stdout
    cpus = [line for line in first.stderr.splitlines() if re.match(r"\s*cpu\d: running", line)]
    assert len(cpus) == 2 and all("spin_lock" in line for line in cpus), describe(first)


@pytest.mark.parametrize("name, budget", [("race_counter", 50), ("boot_data", 50),
                                          ("lock_order", 150)])
def test_the_systematic_search_finds_them_too(guests, tmp_path, name, budget):
    # Its single preemptions come first: at a UART access inside the lost
    # update's window, at the CPU_ON before the boot data is written, and
    # right after CPU 0 took lock B (an exclusive store) for the deadlock.
    bug = BUGS[name]
    out = tmp_path / "s.json"
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                    "--strategy", "systematic", "--runs", budget, "--jobs", 1, "--out", out)
    assert proc.returncode == 0 and "systematic" in proc.stdout, describe(proc)
    command = shlex.split(re.search(r"replay: +(.*)", proc.stdout).group(1))
    timeout = 3 if "--timeout" in command else None
    first, second = replay(command, tmp_path, timeout), replay(command, tmp_path, timeout)
    assert first.stdout == second.stdout
    if timeout is None:
        assert "RESULT: FAIL" in first.stdout, describe(first)
    else:
        assert first.returncode == 4 and "RESULT" not in first.stdout, describe(first)


def test_pct_finds_the_lost_update(guests, tmp_path):
    bug = BUGS["race_counter"]
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                    "--strategy", "pct", "--runs", 200, "--jobs", 1, "--out", tmp_path / "s.json")
    assert proc.returncode == 0, describe(proc)


def test_local_processes_find_the_same_run(guests, tmp_path):
    bug = BUGS["race_counter"]
    serial = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                      "--runs", bug.budget, "--jobs", 1, "--no-shrink", "--out", tmp_path / "a")
    pool = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                    "--runs", bug.budget, "--jobs", 2, "--no-shrink", "--out", tmp_path / "b")
    assert serial.returncode == 0 and pool.returncode == 0, describe(pool)
    run = re.compile(r"found a failure at run (\d+)")
    assert run.search(serial.stdout).group(1) == run.search(pool.stdout).group(1)
    assert (tmp_path / "a").read_text().split('"replay"')[0] == \
        (tmp_path / "b").read_text().split('"replay"')[0]


def test_a_late_start_is_replayed_from_the_same_point(guests, tmp_path):
    bug = BUGS["race_counter"]
    out, command = explore(bug, tmp_path, "--start-at", 20000)
    assert '"instructions": 20000' in out.read_text()
    first, second = replay(command, tmp_path), replay(command, tmp_path)
    assert "RESULT: FAIL" in first.stdout and first.stdout == second.stdout, describe(first)


def test_a_trace_event_predicate(guests, tmp_path):
    bug = BUGS["race_counter"]
    cpu_on = "psci.call function=CPU_ON result=SUCCESS"
    # Three CPUs start once each: three successes, never two for one target.
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, "--until-event", cpu_on,
                    "--count", 3, "--runs", 5, "--jobs", 1, "--out", tmp_path / "s.json")
    assert proc.returncode == 0 and "the default schedule fails already" in proc.stdout, \
        describe(proc)
    assert "3 events 'psci.call function=CPU_ON result=SUCCESS'" in proc.stdout
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, "--until-event", cpu_on,
                    "--count", 2, "--same", "target", "--runs", 5, "--jobs", 1,
                    "--out", tmp_path / "t.json")
    assert proc.returncode == 1 and "no failure found" in proc.stdout, describe(proc)
    assert not (tmp_path / "t.json").exists()


def test_a_spent_budget_exits_1(guests, tmp_path):
    bug = BUGS["boot_data"]
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp,
                    "--until-console", "never printed", "--runs", 4, "--jobs", 1, cwd=tmp_path)
    assert proc.returncode == 1, describe(proc)
    assert proc.stdout.startswith("no failure found: the budget ran out"), describe(proc)
    assert "4 runs" in proc.stdout and list(tmp_path.iterdir()) == []
    proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp,
                    "--until-console", "never printed", "--strategy", "systematic",
                    "--preemptions", 1, "--sync-points", 3, "--runs", 100, "--jobs", 1,
                    cwd=tmp_path)
    assert proc.returncode == 1 and "the systematic search is complete" in proc.stdout, \
        describe(proc)
    assert "4 runs" in proc.stdout                  # the default one and 3 single changes


# Bugs planted in armvisor's own models (machine/planted.py, --plant-bug): a
# lock removed. Budgets in runs; the hotplug guest notices a lost CPU only
# after its 5 s (virtual) wait, so its runs may go that far and few are needed.
MODEL_BUGS = {
    "vpsci-unlocked": (("--kernel", GUESTS / "build" / "psci_race.elf", "--smp", 5, "--hyp"),
                       (), 50),
    "psci-off-unlocked": (("--kernel", GUESTS / "build" / "hotplug.elf", "--smp", 2),
                          ("--max-instructions", 400_000_000, "--shrink-runs", 10), 20),
}


@pytest.mark.parametrize("bug", sorted(MODEL_BUGS))
def test_explore_finds_a_model_bug_with_its_lock_removed(guests, tmp_path, bug):
    machine, extra, budget = MODEL_BUGS[bug]
    out = tmp_path / "found.schedule.json"
    proc = armvisor("explore", *machine, "--plant-bug", bug, "--until-console", "RESULT: FAIL",
                    *extra, "--runs", budget, "--jobs", 1, "--out", out)
    assert proc.returncode == 0, describe(proc)
    found = re.search(r"found a failure at run (\d+)", proc.stdout)
    assert found and int(found.group(1)) < budget, describe(proc)
    command = shlex.split(re.search(r"replay: +(.*)", proc.stdout).group(1))
    assert "--plant-bug" in command
    first, second = replay(command, tmp_path), replay(command, tmp_path)
    assert "RESULT: FAIL" in first.stdout and first.stdout == second.stdout, describe(first)
