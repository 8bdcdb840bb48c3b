"""kvm-unit-tests' arm64 suite on armvisor, bare and under --hyp, against QEMU 7.2 TCG.

Every [section] of arm/unittests.cfg that applies to arm64 is one test here,
run with its own -smp, -append and parameters, four times in sequence:
`qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a57` (TCG), armvisor's
bare board, armvisor --hyp and armvisor --virtualization (entered at EL2, as
QEMU's virtualization=on; PSCI over SMC), each with the environment file kvm-unit-tests'
runner hands a TCG run as -initrd (TARGET=qemu, QEMU_ACCEL=tcg,
ERRATA_FORCE=y). Neither side gets chr-testdev here (test_kvm_unit_tests_runner
runs the suite's own runner, which uses it): a test prints its SUMMARY and
EXIT: STATUS lines and powers off through PSCI, and is judged by those
(kvm_unit_tests.outcome).

QEMU without virtualization=on has no EL2 and names HVC as the PSCI conduit
in its DTB, and answers HVC; the bare board runs with --psci-conduit hvc to
be that machine (a VM's conduit is HVC anyway). RAM is QEMU's default for
virt, 128 MiB, unless the cfg says `-m`.

The rule: every test QEMU passes passes on armvisor in both modes. A test
that cannot pass yet because armvisor lacks a feature is an xfail naming the
feature (EXPECTED_FAILURES), and one the cfg asks for a machine armvisor
cannot be (GICv2, MTE, live migration) is an xfail naming that; nothing is
skipped quietly. The table (test | QEMU | bare | --hyp) goes to
kvm-unit-tests.md in pytest's base temporary directory and to the terminal
summary.

The suite is built by `scripts/fetch-thirdparty kvm-unit-tests` into the
cache; the test list comes from the archive itself, so it is the same
whether or not the build is there. Without the build, or without QEMU, the
tests skip saying why, and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from armvisor.devtools import qemu
from tests.thirdparty import kvm_unit_tests as kut

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "scripts" / "fetch-thirdparty"
THIRDPARTY = Path(os.environ.get("ARMVISOR_THIRDPARTY", REPO.parent / "shared" / "thirdparty"))
ARCH = "arm64"

# The runner's MAX_SMP (scripts/runtime.bash: the host's CPUs), which several
# sections use for -smp. armvisor runs every CPU on one host thread, so more
# than 8 would only cost time: the gic tests stop at 8 themselves.
MAX_SMP = int(os.environ.get("MAX_SMP", min(os.cpu_count() or 1, 8)))
# Tests that report SKIP below a CPU count (its-trigger: its_prerequisites(4)
# targets collections at PEs 2 and 3): run with at least that many on both
# sides, so a small host still checks them.
MIN_SMP = {"its-trigger": 4}
DEFAULT_MEMORY = "128M"          # QEMU's default RAM for -M virt
QEMU_MACHINE = "virt,gic-version=3"
QEMU_CPU = "cortex-a57"          # kvm-unit-tests' PROCESSOR for arm64, armvisor's default CPU
# How long after its own timeout a runner process may take to be stopped.
SLACK_S = 15

ISSUE = "issue 12"
# Tests that fail on armvisor because a feature is missing, and which one.
EXPECTED_FAILURES = {
    # debug-bp passes since the guest's exceptions are taken natively: QEMU
    # delivers a hardware breakpoint with its breakpoint syndrome (EC 0x31).
    # debug-sstep passes since patches/unicorn/0004 rebuilds the cached flags on
    # MSR DAIFSet/DAIFClr (software step's active state depends on PSTATE.D),
    # debug-wp since the guest's watchpoints are memory hooks
    # (cpu/guest_watchpoints.py; Unicorn compiled out QEMU's).
}
# Groups that need more than a machine: the runner migrates the guest between
# two QEMUs (MIGRATION=yes); alone, such a test waits for a migration forever.
UNRUNNABLE_GROUPS = {"migration": "live migration (the runner's two-QEMU migration) is "
                                  "not modelled by armvisor"}
NOT_RUN_MIGRATION = "not run (migration)"
# armvisor options a test needs beyond the machine's (none now). micro-bench's
# ipi test is a ping-pong of 65536 IPIs in which each CPU spins (YIELD) until
# the other one answers; it once needed `--slice 2000` (a round trip cost two
# whole slices), and runs with the default since a spinning CPU gives its
# slice up (patches/unicorn/0006): about 60 us a round trip bare, 100 us in a VM.
ARMVISOR_OPTIONS: Dict[str, List[str]] = {}
# The same test on QEMU's default multi-threaded TCG has two vCPU threads
# spinning on this 2-core host: measured 4 s idle, 49 s and over the 90 s
# timeout with the host busy. One TCG thread runs it in about 4 s.
QEMU_OPTIONS = {"micro-bench": ["-accel", "tcg,thread=single"]}
# "el2": entered at EL2, as QEMU's virtualization=on (PSCI over SMC).
MODES = {"bare": ["--psci-conduit", "hvc"], "hyp": ["--hyp"], "el2": ["--virtualization"]}


def _archive() -> Optional[Path]:
    found = sorted(THIRDPARTY.glob("kvm-unit-tests-*.tar.gz"))
    return found[-1] if found else None


def _cfg_from_archive() -> List[kut.UnitTest]:
    """arm/unittests.cfg as the archive holds it (no build needed to list the tests)."""
    archive = _archive()
    if archive is None:
        return []
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/arm/unittests.cfg"))
        text = tar.extractfile(member).read().decode()
    return [t for t in kut.unittests_cfg(text) if t.arch in ("", ARCH)]


CFG = _cfg_from_archive()


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI must run kvm-unit-tests: see scripts/fetch-thirdparty)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def suite() -> Path:
    """The built suite's directory (arm/*.flat), built into the cache once."""
    if not CFG:
        _unavailable(f"no kvm-unit-tests-*.tar.gz in {THIRDPARTY} (set ARMVISOR_THIRDPARTY)")
    try:
        done = subprocess.run([str(FETCH), "kvm-unit-tests"], capture_output=True, text=True,
                              timeout=900)
    except subprocess.TimeoutExpired:
        _unavailable("building kvm-unit-tests took over 15 minutes")
    if done.returncode != 0:
        _unavailable("kvm-unit-tests cannot be built here: "
                     + (done.stderr.strip().splitlines() or ["no reason given"])[-1])
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def qemu_version() -> str:
    if not qemu.available():
        _unavailable(f"{qemu.QEMU} is not installed (Debian package qemu-system-arm): "
                     "nothing to compare with")
    return subprocess.run([qemu.QEMU, "-h"], capture_output=True, text=True,
                          timeout=30).stdout.splitlines()[0]


@pytest.fixture(scope="module")
def environment(tmp_path_factory, qemu_version: str) -> Path:
    """The -initrd file of kvm-unit-tests' runner under TCG."""
    errata = {k: v for k, v in os.environ.items() if k.startswith("ERRATA_")}
    path = tmp_path_factory.mktemp("kvm-unit-tests") / "environ"
    path.write_text(kut.environment_file(qemu_version, os.uname().release, errata))
    return path


@dataclass
class Table:
    qemu_version: str = ""
    rows: Dict[str, List[str]] = field(default_factory=dict)

    def render(self) -> str:
        head = ["test", f"QEMU ({self.qemu_version or 'qemu-system-aarch64'}, TCG)",
                "armvisor bare", "armvisor --hyp", "armvisor --virtualization"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in self.rows.items()]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def table(request, tmp_path_factory):
    """Rows filled by each test; written and shown when the module ends."""
    made = Table()
    yield made
    if not made.rows:
        return
    text = (f"kvm-unit-tests, MAX_SMP={MAX_SMP}: each run's verdict (SUMMARY)\n\n"
            + made.render())
    path = tmp_path_factory.getbasetemp() / "kvm-unit-tests.md"
    path.write_text(text)
    request.config.stash[kut.TABLE_KEY] = f"{path}\n\n{text}"


@dataclass(frozen=True)
class Run:
    command: List[str]
    returncode: Optional[int]
    stdout: str
    stderr: str
    seconds: float
    outcome: kut.Outcome

    def describe(self) -> str:
        return (f"command: {' '.join(self.command)}\nexit: {self.returncode} after "
                f"{self.seconds:.1f} s\n--- stdout ---\n{self.stdout[-3000:]}\n"
                f"--- stderr ---\n{self.stderr[-2000:]}")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def run(command: List[str], timeout_s: float, typed: Optional[str] = None) -> Run:
    """`command`'s run and verdict; `typed` is its console input (none by default)."""
    start = time.monotonic()
    stdin = {"input": typed} if typed is not None else {"stdin": subprocess.DEVNULL}
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              env=_env(), cwd=REPO, timeout=timeout_s + SLACK_S, **stdin)
        returncode, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = None
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
    seconds = time.monotonic() - start
    # armvisor's --timeout exits 4; QEMU is stopped by ours.
    timed_out = returncode is None or (command[0] == sys.executable and returncode == 4)
    if returncode not in (0, None, 4) and not out:
        verdict = kut.Outcome("ERROR", (err.strip().splitlines() or ["no output"])[-1], 0)
    else:
        verdict = kut.outcome(out, timed_out)
    return Run(command, returncode, out, err, seconds, verdict)


def cell(result: Run) -> str:
    return f"{result.outcome.cell()}, {result.seconds:.1f} s".replace("|", "/")


def unrunnable_on_armvisor(test: kut.UnitTest) -> Optional[str]:
    """Why armvisor cannot be the machine this section asks for, if it cannot."""
    for group, why in UNRUNNABLE_GROUPS.items():
        if group in test.groups:
            return why
    try:
        kut.machine_options(kut.shell_words(test.params, {}))
    except kut.CfgError as exc:
        return f"armvisor has no '{exc}': a machine it is not (QEMU's result is shown)"
    return None


@pytest.mark.parametrize("name", [t.name for t in CFG] or ["(no archive)"])
def test_kvm_unit_test(name: str, suite: Path, environment: Path, table: Table,
                       qemu_version: str):
    table.qemu_version = qemu_version
    test = next(t for t in CFG if t.name == name)
    if any(group in test.groups for group in UNRUNNABLE_GROUPS):
        table.rows[name] = [NOT_RUN_MIGRATION] * 4   # alone, such a test waits forever
        pytest.xfail(unrunnable_on_armvisor(test))

    smp = max(kut.smp_count(test, MAX_SMP), MIN_SMP.get(name, 0))
    append = kut.append_text(test)
    flat = str(suite / "arm" / test.file)
    timeout_s = test.timeout_s()
    params = kut.shell_words(test.params, {})
    try:
        machine: Optional[kut.MachineOptions] = kut.machine_options(params)
    except kut.CfgError as exc:
        machine, missing = None, str(exc)  # QEMU still runs it, as the cfg says
    memory = (machine.memory if machine else None) or DEFAULT_MEMORY
    theirs = run(qemu.virt_command(machine=QEMU_MACHINE, cpu=QEMU_CPU, smp=smp, memory=memory,
                                   kernel=flat,
                                   extra=["-initrd", str(environment),
                                          *(["-append", append] if append else []),
                                          *(machine.qemu if machine else params),
                                          *QEMU_OPTIONS.get(name, [])]),
                 timeout_s)
    if machine is None:
        table.rows[name] = [cell(theirs)] + [f"not run (no {missing})"] * 3
        pytest.xfail(unrunnable_on_armvisor(test))

    results = {}
    for mode, options in MODES.items():
        results[mode] = run([sys.executable, "-m", "armvisor", "run", "--kernel", flat,
                             "--initrd", str(environment),
                             *(["--append", append] if append else []),
                             "--smp", str(smp), "-m", memory, *options,
                             *ARMVISOR_OPTIONS.get(name, []), "--timeout", f"{timeout_s:g}"],
                            timeout_s)
    table.rows[name] = [cell(theirs)] + [cell(results[mode]) for mode in MODES]

    for result in results.values():
        assert "Traceback" not in result.stderr, result.describe()
    if theirs.outcome.result != "PASS":
        return                            # QEMU does not pass it: nothing to hold armvisor to
    behind = {mode: r for mode, r in results.items() if r.outcome.result != "PASS"}
    if "el2" in behind:
        # Entered at EL2, armvisor is held to QEMU entered at EL2 (virtualization=on).
        at_el2 = run(qemu.virt_command(
            machine=QEMU_MACHINE + ",virtualization=on", cpu=QEMU_CPU, smp=smp, memory=memory,
            kernel=flat, extra=["-initrd", str(environment),
                                *(["-append", append] if append else []),
                                *(machine.qemu if machine else params),
                                *QEMU_OPTIONS.get(name, [])]), timeout_s)
        table.rows[name][-1] += f" (QEMU virtualization=on: {cell(at_el2)})"
        if at_el2.outcome.result != "PASS":
            del behind["el2"]
    if name in EXPECTED_FAILURES:
        assert behind, f"{name} passes now: take it out of EXPECTED_FAILURES"
        pytest.xfail(EXPECTED_FAILURES[name])
    assert not behind, "\n\n".join(f"[{mode}] QEMU passes it\n{r.describe()}"
                                    for mode, r in behind.items())


def test_the_cfg_lists_the_arm64_suite():
    """The parser reads the archive's cfg: the sections everyone knows are there."""
    if not CFG:
        _unavailable(f"no kvm-unit-tests-*.tar.gz in {THIRDPARTY}")
    names = {t.name for t in CFG}
    assert {"selftest-setup", "psci", "timer", "gicv3-ipi", "micro-bench"} <= names
    timer = next(t for t in CFG if t.name == "timer")
    assert (timer.file, timer.timeout_s(), timer.groups) == ("timer.flat", 10.0, ("timer",))
    setup = next(t for t in CFG if t.name == "selftest-setup")
    assert kut.append_text(setup) == "setup smp=2 mem=256"
    assert kut.machine_options(kut.shell_words(setup.params, {})).memory == "256M"


def test_values_expand_as_the_runner_expands_them():
    cfg = kut.unittests_cfg("""
# a comment
[a]
file = gic.flat
smp = $((($MAX_SMP < 8)?$MAX_SMP:8))
test_args = 'setup smp=2 mem=256'
qemu_params = \"\"\"-m 256 \\
  -machine gic-version=3\"\"\"
groups = gic nodefault
timeout = 2m
""")
    (a,) = cfg
    assert (kut.smp_count(a, 12), kut.smp_count(a, 2)) == (8, 2)
    assert kut.append_text(a) == "setup smp=2 mem=256"
    assert kut.shell_words(a.params, {}) == ["-m", "256", "-machine", "gic-version=3"]
    assert (a.groups, a.timeout_s()) == (("gic", "nodefault"), 120.0)
    with pytest.raises(kut.CfgError, match="gic-version=2"):
        kut.machine_options(["-machine", "gic-version=2"])


def test_the_environment_file_is_what_the_runner_writes_under_tcg():
    text = kut.environment_file("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)",
                                "6.1.0-9-amd64")
    assert text.splitlines() == [
        "TARGET=qemu", "QEMU_ACCEL=tcg",
        "QEMU_VERSION_STRING=QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)",
        "QEMU_MAJOR=7", "QEMU_MINOR=2", "QEMU_MICRO=22",
        "KERNEL_VERSION_STRING=6.1.0-9-amd64", "KERNEL_VERSION=6", "KERNEL_PATCHLEVEL=1",
        "KERNEL_SUBLEVEL=0", "KERNEL_EXTRAVERSION=9", "ERRATA_FORCE=y"]


@pytest.mark.parametrize("console,result", [
    ("PASS: a\nSUMMARY: 1 tests\n\nEXIT: STATUS=1\n", "PASS"),
    ("FAIL: a\nSUMMARY: 2 tests, 1 unexpected failures\n\nEXIT: STATUS=3\n", "FAIL"),
    ("SKIP: a\nSUMMARY: 1 tests, 1 skipped\n\nEXIT: STATUS=77\n", "SKIP"),
    ("PASS: a\n", "FAIL"),                          # no EXIT line: it never finished
])
def test_a_console_is_judged_by_its_exit_and_summary_lines(console, result):
    assert kut.outcome(console, timed_out=False).result == result
    assert kut.outcome(console, timed_out=True).result == "TIMEOUT"


# The migration group asks the runner to migrate the guest when it prints
# MIGRATION_PROMPT, then to type a key. armvisor's snapshots are such a
# migration: one process saves the machine at the prompt (--snapshot-at), a
# new one restores it (--restore) and gets the key, so the ITS, LPI and GIC
# state and the tables in guest memory must all survive the move. The ITS
# tests aim at PEs 2 and 3, so they get at least 4 CPUs.
MIGRATION_PROMPT = "Now migrate the VM"
ITS_MIGRATION_TESTS = [t.name for t in CFG if t.name.startswith("its-") and "migration" in t.groups]


# Not entered at EL2: there its-trigger itself fails on QEMU (virtualization=on:
# 4 of 6 checks) and times out on armvisor, so a migration of it has nothing
# to be held to.
ITS_MIGRATION_MODES = [mode for mode in MODES if mode != "el2"]


@pytest.mark.parametrize("mode", ITS_MIGRATION_MODES)
@pytest.mark.parametrize("name", ITS_MIGRATION_TESTS or ["(no archive)"])
def test_its_migration_through_a_snapshot(name: str, mode: str, suite: Path, environment: Path,
                                          tmp_path: Path):
    test = next(t for t in CFG if t.name == name)
    smp = max(kut.smp_count(test, MAX_SMP), 4)
    snapshot = tmp_path / "at-the-prompt.snap"
    append = kut.append_text(test)
    timeout_s = test.timeout_s()
    first = subprocess.Popen(
        [sys.executable, "-m", "armvisor", "run", "--kernel", str(suite / "arm" / test.file),
         "--initrd", str(environment), *(["--append", append] if append else []),
         "--smp", str(smp), "-m", DEFAULT_MEMORY, *MODES[mode], "--timeout", f"{timeout_s:g}",
         "--snapshot-at", f"console:{MIGRATION_PROMPT}", "--snapshot-out", str(snapshot)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", env=_env(), cwd=REPO)
    deadline = time.monotonic() + timeout_s + SLACK_S
    while not snapshot.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    first.kill()                      # it waits for the key at the prompt: done with it
    before = first.communicate()[0]
    assert snapshot.exists(), f"no snapshot at {MIGRATION_PROMPT!r}:\n{before[-3000:]}"
    after = run([sys.executable, "-m", "armvisor", "run", "--restore", str(snapshot),
                 "--timeout", f"{timeout_s:g}"], timeout_s, typed="\n")
    assert "Traceback" not in after.stderr, after.describe()
    assert after.outcome.result == "PASS", after.describe()
