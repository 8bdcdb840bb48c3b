"""The Python API (armvisor.explore) and a Dask cluster as the executor."""

from __future__ import annotations

import re

import pytest

import armvisor.explore as ex
from tests.explore.conftest import BUGS, armvisor, describe

pytestmark = pytest.mark.guest

FAIL = ex.ConsoleMatch("RESULT: FAIL")


def machine(name):
    return dict(kernel=BUGS[name].elf, smp=BUGS[name].smp)


def test_the_api_finds_the_missing_wait_and_replays_it(guests, tmp_path):
    result = ex.explore(machine("boot_data"), until=[FAIL], runs=BUGS["boot_data"].budget)
    assert result.found is not None and 0 < result.found.run < BUGS["boot_data"].budget
    assert "cpu 1 read boot data 0x0" in result.confirmed.console
    assert len(result.decisions) <= len(result.found.decisions)
    path = str(tmp_path / "boot_data.schedule.json")
    result.save(path)
    again = ex.replay(path, machine("boot_data"), until=[FAIL])
    assert again.failed and again.console == result.confirmed.console


def test_an_exploration_repeats_for_a_seed(guests):
    first, second = (ex.explore(machine("race_counter"), until=[FAIL], runs=100, seed=4,
                                shrink=False) for _ in range(2))
    assert first.found is not None
    assert (first.found.run, first.found.decisions) == (second.found.run, second.found.decisions)


def lost_update(m):
    """A Python predicate: the guest's final line says how many CPUs it counted."""
    found = re.search(r"lost update: (\d+) cpus counted", m.console.text)
    return found and f"only {found.group(1)} CPUs counted"


def test_a_python_predicate(guests):
    result = ex.explore(machine("race_counter"), until=[ex.Check(lost_update)], runs=100)
    assert result.found is not None and result.found.reason.startswith("only ")


def test_the_api_finds_the_deadlock_with_a_budget(guests):
    result = ex.explore(machine("lock_order"), until=[ex.Hang()], runs=100,
                        max_instructions=5_000_000, strategy="random")
    assert result.found is not None and "instruction budget" in result.found.reason


def test_a_dask_local_cluster_finds_the_lost_update(guests):
    distributed = pytest.importorskip("distributed")
    # One worker thread in this process: light, and enough to show the path.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = ex.explore(machine("race_counter"), until=[FAIL],
                            runs=BUGS["race_counter"].budget, dask=client)
    assert result.found is not None and "lost update" in result.confirmed.console


def test_the_command_line_on_a_dask_scheduler(guests, tmp_path):
    distributed = pytest.importorskip("distributed")
    bug = BUGS["race_counter"]
    # Over TCP on the loopback, so the armvisor process can reach it.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        proc = armvisor("explore", "--kernel", bug.elf, "--smp", bug.smp, *bug.until,
                        "--runs", bug.budget, "--dask", cluster.scheduler_address,
                        "--out", tmp_path / "s.json")
    assert proc.returncode == 0, describe(proc)
    assert "found a failure" in proc.stdout and (tmp_path / "s.json").is_file()


@pytest.mark.parametrize("module", ["armvisor.explore", "armvisor.explore.runner"])
def test_docstring_examples_that_run_guests(guests, monkeypatch, module):
    import doctest
    import importlib

    from tests.explore.conftest import REPO
    monkeypatch.chdir(REPO)
    failed, tried = doctest.testmod(importlib.import_module(module))
    assert tried and failed == 0


def test_runs_start_from_a_snapshot_so_boot_is_paid_once(guests, tmp_path):
    result = ex.explore(machine("race_counter"), until=[FAIL], start=20_000,
                        runs=BUGS["race_counter"].budget)
    assert result.snapshot_note == "each run restores a snapshot taken there"
    assert result.found is not None and "lost update" in result.confirmed.console


def test_the_exclusive_loads_and_stores_of_a_guest(guests):
    from armvisor.explore import exclusives
    from armvisor.machine.symbols import KernelSymbols
    found = exclusives.addresses(BUGS["lock_order"].elf)
    table = KernelSymbols(BUGS["lock_order"].elf).table
    where = {table.lookup(address).split("+")[0] for address in found}
    assert {"spin_lock", "spin_unlock"} <= where


@pytest.mark.parametrize("name", ["race_counter", "lock_order"])
def test_watching_sync_points_changes_no_run(guests, name):
    # Strategies that ask at sync points hook the exclusives and count MMIO
    # accesses; a replay without sync decisions does neither: both must run
    # the same interleaving.
    from armvisor.explore import runner, strategies
    target = runner.Target(machine(name), (FAIL,), max_instructions=3_000_000)
    for run in range(1, 8):
        found = runner.run_plan(target, strategies.RandomPlan(0, run, 50_000), run, True)
        plain = runner.run_plan(target, strategies.Fixed(found.decisions), run, True)
        watched = runner.run_plan(target, strategies.SyncPlan(found.decisions), run, True)
        assert (plain.instructions, plain.console, plain.status) == \
            (watched.instructions, watched.console, watched.status) == \
            (found.instructions, found.console, found.status)


def test_the_api_finds_two_successes_for_one_cpu_on_without_the_vpsci_lock(guests):
    """The planted bug 'vpsci-unlocked' found through the API, by its trace: two
    CPU_ON calls for the same vCPU answered SUCCESS in one round."""
    import armvisor
    race = str(BUGS["race_counter"].elf).replace("race_counter", "psci_race")
    machine = dict(vms=[armvisor.VM(race, smp=5)], plant=["vpsci-unlocked"])
    result = ex.explore(machine, until=[ex.ConsoleMatch("rounds with exactly one SUCCESS: got "
                                                        r"(?!100 )")], runs=50)
    assert result.found is not None and result.found.run < 50
    assert "RESULT: FAIL" in result.confirmed.console
