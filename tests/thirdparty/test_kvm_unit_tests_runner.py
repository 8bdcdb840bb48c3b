"""kvm-unit-tests' own runner (run_tests.sh) drives armvisor through `armvisor-qemu`, the
QEMU-style entry point (qemu_compat.py): its PASS/FAIL/SKIP for each test is what a
direct armvisor run of the same test says."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import pytest

from tests.thirdparty import kvm_unit_tests as kut
from tests.thirdparty.test_kvm_unit_tests import (CFG, DEFAULT_MEMORY, MODES, REPO, environment,
                                                  qemu_version, run, suite)  # noqa: F401

# A cross-section: setup and SMP, exceptions, PSCI, IPIs through the GIC, timers, PMU.
SUBSET = ["selftest-setup", "selftest-smp", "selftest-vectors-kernel", "psci", "gicv3-ipi",
          "timer", "pmu-cycle-counter", "cache"]
RESULT = re.compile(r"^\x1b\[\d+m(PASS|FAIL|SKIP)\x1b\[0m (\S+)", re.M)


@pytest.fixture(scope="module")
def armvisor_qemu(tmp_path_factory):
    """An executable that is `armvisor-qemu` from this checkout (run_tests.sh needs a path)."""
    path = tmp_path_factory.mktemp("bin") / "armvisor-qemu"
    path.write_text(f"#!/bin/sh\nPYTHONPATH={REPO / 'src'} exec {sys.executable} "
                    f"-m armvisor.qemu_compat \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_run_tests_sh_reports_what_direct_runs_report(suite, environment, armvisor_qemu):
    env = dict(os.environ, QEMU=str(armvisor_qemu), MAX_SMP=str(min(os.cpu_count() or 1, 8)))
    done = subprocess.run(["./run_tests.sh", *SUBSET], cwd=suite, env=env, capture_output=True,
                          text=True, timeout=1800)
    verdicts = dict((name, verdict) for verdict, name in RESULT.findall(done.stdout))
    assert sorted(verdicts) == sorted(SUBSET), done.stdout + done.stderr
    tests = {test.name: test for test in CFG}
    for name in SUBSET:
        test = tests[name]
        smp = kut.smp_count(test, int(env["MAX_SMP"]))
        append = kut.append_text(test)
        memory = kut.machine_options(kut.shell_words(test.params, {})).memory or DEFAULT_MEMORY
        direct = run([sys.executable, "-m", "armvisor", "run", "--kernel",
                      str(suite / "arm" / test.file), "--initrd", str(environment),
                      *(["--append", append] if append else []), "--smp", str(smp),
                      "-m", memory, *MODES["bare"], "--timeout", f"{test.timeout_s():g}"],
                     test.timeout_s())
        assert verdicts[name] == direct.outcome.result, (name, done.stdout, direct.describe())


def test_bad_qemu_arguments_are_one_line_errors(armvisor_qemu):
    for args, words in ((["-machine", "virt,gic-version=2"], "gic-version=2"),
                        (["-device", "pci-testdev"], "pci-testdev"),
                        (["-accel", "kvm"], "kvm"), (["-frobnicate", "x"], "-frobnicate")):
        done = subprocess.run([str(armvisor_qemu), *args], capture_output=True, text=True)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr


def test_what_the_runner_asks_before_it_runs(armvisor_qemu):
    def ask(*args):
        return subprocess.run([str(armvisor_qemu), *args], capture_output=True, text=True).stdout

    assert "ARM Virtual Machine" in ask("-machine", "?")
    assert "virtconsole" in ask("-machine", "virt", "-device", "?")
    assert "testdev" in ask("-chardev", "?")
    assert ask("-h").startswith("QEMU emulator version 7.2.0")
    missing = subprocess.run([str(armvisor_qemu), "-kernel", "_NO_FILE_4Uhere_"],
                             capture_output=True, text=True)
    assert "could not load kernel '_NO_FILE_4Uhere_'" in missing.stderr
