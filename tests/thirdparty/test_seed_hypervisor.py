"""The seed hypervisor (willamhou/hypervisor) on armvisor against QEMU 7.2, line by line.

A multi-pCPU type-1 hypervisor in Rust, written for `qemu-system-aarch64 -M
virt,virtualization=on -cpu max -smp 4`: it starts at EL2, brings up its GIC
through ICC_SRE_EL2 and the ICH_* list registers, runs its own test suite
(page tables, stage 2, vCPUs, GICD/GICR emulation, FF-A, ...) with guests at
EL1 and prints a line for each step and result. Two builds, by
`scripts/fetch-thirdparty seed-hypervisor` from ../shared/thirdparty: the
default one and `--features multi_pcpu`.

Both run with the same arguments, its author's QEMU command line plus the
`-nic none` a QEMU installed without recommends needs: QEMU itself, and armvisor
through `armvisor-qemu` (qemu_compat.py: --virtualization --cpu max --smp 4
--memory 2G). Neither ends by itself (on QEMU 7.2 the default build waits
forever in its Guest Interrupt Injection Test after 193 PASS lines, the
multi_pcpu build panics in its FF-A proxy tests, tests/test_ffa.rs:980), so
each run is stopped once its console has been quiet for a while
(seed_transcripts.run_until_quiet). armvisor must print exactly QEMU's lines
up to where QEMU stopped (the counter's value at boot masked:
seed_transcripts.VARIABLE_LINES); lines after that are allowed and reported
as armvisor getting further. The comparison of each build is in the assertion
message and in the terminal summary.

Without the build (no Debian Rust here) or without QEMU the tests skip saying
why, and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from armvisor.devtools import qemu
from tests.thirdparty import seed_transcripts as st

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "scripts" / "fetch-thirdparty"
# The ELF of each build in the fetch-thirdparty cache directory.
BUILDS = {"default": "hypervisor", "multi_pcpu": "hypervisor-multi_pcpu"}
# Its author's command line (its Makefile's QEMU_FLAGS) and `-nic none`.
MACHINE_ARGS = ["-M", "virt,virtualization=on,gic-version=3", "-cpu", "max", "-smp", "4",
                "-m", "2G", "-nographic", "-nic", "none"]
# Quiet periods that end a run: QEMU prints its whole transcript in about a second,
# armvisor in about 1.5 s (measured with the machine loaded); the margins are for a
# loaded 2-core host.
QEMU_QUIET_S, QEMU_LIMIT_S = 10, 240
ARMVISOR_QUIET_S, ARMVISOR_LIMIT_S = 30, 900
# A QEMU transcript shorter than this is not the run these tests compare against.
QEMU_MIN_LINES = 100


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI must run the seed hypervisor: see scripts/fetch-thirdparty)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def builds() -> Path:
    """The cache directory holding both builds, built once (about a minute on 2 cores)."""
    try:
        done = subprocess.run([str(FETCH), "seed-hypervisor"], capture_output=True, text=True,
                              timeout=1200)
    except subprocess.TimeoutExpired:
        _unavailable("building the seed hypervisor took over 20 minutes")
    if done.returncode != 0:
        _unavailable("the seed hypervisor cannot be built here: "
                     + (done.stderr.strip().splitlines() or ["no reason given"])[-1])
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def have_qemu():
    if not qemu.available():
        _unavailable(f"{qemu.QEMU} is not installed (Debian package qemu-system-arm): "
                     "nothing to compare with")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize("build", list(BUILDS))
def test_seed_hypervisor_prints_what_it_prints_on_qemu(build, builds, have_qemu, request):
    elf = builds / BUILDS[build]
    args = MACHINE_ARGS + ["-kernel", str(elf)]
    theirs = st.run_until_quiet([qemu.QEMU, *args], quiet_s=QEMU_QUIET_S, limit_s=QEMU_LIMIT_S)
    assert len(theirs.lines) >= QEMU_MIN_LINES, \
        f"QEMU printed only {len(theirs.lines)} lines\n{theirs.describe()}\n{theirs.stdout[-3000:]}"
    ours = st.run_until_quiet([sys.executable, "-m", "armvisor.qemu_compat", *args],
                              quiet_s=ARMVISOR_QUIET_S, limit_s=ARMVISOR_LIMIT_S,
                              env=_env(), cwd=REPO)
    comparison = st.compare(theirs.lines, ours.lines)
    report = (f"seed hypervisor, {build} build: {comparison.summary()}\n"
              f"  last line printed after {theirs.last_output_s:.1f} s on QEMU, "
              f"{ours.last_output_s:.1f} s on armvisor (each stopped when quiet for "
              f"{QEMU_QUIET_S} s / {ARMVISOR_QUIET_S} s)")
    request.config.stash.setdefault(st.SUMMARY_KEY, []).append(report)
    assert comparison.ok, (f"{build} build: armvisor's transcript differs from QEMU's\n"
                           f"{comparison.report()}\n--- armvisor ---\n{ours.describe()}")


def test_the_comparison_allows_armvisor_to_get_further():
    qemu_lines = st.transcript("a\n\n[TIMER] Counter: 12\n  [PASS] x\r\n")
    assert qemu_lines == ["a", "[TIMER] Counter: N", "  [PASS] x"]
    same = st.compare(qemu_lines, st.transcript("a\n[TIMER] Counter: 99999\n  [PASS] x\n"))
    assert same.ok and not same.further and "both stop after:   [PASS] x" in same.summary()
    further = st.compare(qemu_lines, qemu_lines + ["  [PASS] y"])
    assert further.ok and further.further == ["  [PASS] y"]
    assert "armvisor got further than QEMU: 1 more lines" in further.summary()


def test_the_comparison_names_the_first_difference():
    qemu_lines = ["start", "  [PASS] one", "  [PASS] two"]
    differs = st.compare(qemu_lines, ["start", "  [FAIL] one", "  [PASS] two"])
    assert not differs.ok and differs.matched == 1 and differs.first_difference == 1
    text = differs.report()
    assert "first difference at line 2" in text and "-  [PASS] one" in text \
        and "+  [FAIL] one" in text
    short = st.compare(qemu_lines, ["start"])
    assert not short.ok and "(nothing: armvisor stopped)" in short.summary()
    assert st.results(qemu_lines) == {"PASS": 2, "FAIL": 0}
