"""Harness for the bare-metal AArch64 guests in guests/.

The session fixture builds them with `make -C guests`; `run_guest` boots one
on armvisor (default) or, with ARMVISOR_TEST_RUNNER=qemu, on
qemu-system-aarch64 -M virt, so the guests themselves can be validated
against the machine armvisor copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pytest

from armvisor.devtools import qemu

REPO = Path(__file__).resolve().parents[2]
GUESTS = REPO / "guests"
BUILD = GUESTS / "build"
CROSS_GCC = "aarch64-linux-gnu-gcc"
RUNNER_ENV = "ARMVISOR_TEST_RUNNER"
RUN_TIMEOUT_S = 120
# Extra wall time before the harness gives up on the runner process itself.
HARNESS_SLACK_S = 60


def runner_kind() -> str:
    """'armvisor' (default) or 'qemu'."""
    kind = os.environ.get(RUNNER_ENV, "armvisor").strip().lower() or "armvisor"
    if kind not in ("armvisor", "qemu"):
        raise pytest.UsageError(f"{RUNNER_ENV} must be 'armvisor' or 'qemu', not {kind!r}")
    return kind


@dataclass
class GuestRun:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line.rstrip("\r") for line in self.stdout.splitlines()]

    def describe(self) -> str:
        return (f"command: {' '.join(self.cmd)}\nexit code: {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}")

    def assert_passed(self) -> None:
        assert "RESULT: PASS" in self.lines, self.describe()
        assert not any(line.startswith("RESULT: FAIL") for line in self.lines), self.describe()
        assert self.returncode == 0, self.describe()

    def assert_lines(self, expected: Sequence[str]) -> None:
        """Each expected string must be a whole output line."""
        have = set(self.lines)
        missing = [line for line in expected if line not in have]
        assert not missing, f"missing lines: {missing}\n{self.describe()}"

    def line_starting(self, prefix: str) -> str:
        for line in self.lines:
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starts with {prefix!r}\n{self.describe()}")


def qemu_command(elf: Path, smp: int, conduit: Optional[str]) -> list[str]:
    # virtualization=on makes QEMU start CPUs at EL2 with the SMC conduit;
    # without it they start at EL1 and PSCI goes over HVC.
    machine = "virt,gic-version=3" if conduit == "hvc" else "virt,virtualization=on,gic-version=3"
    return qemu.virt_command(machine=machine, smp=smp, kernel=elf)


def armvisor_command(elf: Path, smp: int, conduit: Optional[str]) -> list[str]:
    cmd = [sys.executable, "-m", "armvisor", "run", "--smp", str(smp), "--kernel", str(elf),
           "--timeout", str(RUN_TIMEOUT_S)]
    if conduit:
        cmd += ["--psci-conduit", conduit]
    return cmd


@pytest.fixture(scope="session")
def guest_build() -> Path:
    """Builds every guest once per session; skips when the cross compiler is missing."""
    if shutil.which(CROSS_GCC) is None:
        pytest.skip(f"{CROSS_GCC} not installed: cannot build the AArch64 guests")
    if shutil.which("make") is None:
        pytest.skip("make not installed: cannot build the AArch64 guests")
    proc = subprocess.run(["make", "-C", str(GUESTS)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"make -C guests failed:\n{proc.stdout}\n{proc.stderr}")
    return BUILD


RunGuest = Callable[..., GuestRun]


@pytest.fixture(params=["bare", "hyp", "el2"])
def run_guest(request, guest_build: Path) -> RunGuest:
    """run_guest(name, smp, conduit=None, extra_args=(), stdin=None) -> GuestRun.

    On armvisor every guest test runs three times: on the bare board, as a VM
    under the hypervisor (`--hyp`, its vCPUs pinned on as many pCPUs), and
    entered at EL2 (`--virtualization`, as QEMU's virtualization=on: the
    guests' start-up code drops to EL1), with the same checks. `request.param`
    is the mode.

    stdin: bytes for the guest's UART (the runner's stdin), handed over as a
    regular file so they arrive byte for byte (the text-mode pipe of
    subprocess.run would re-encode them); both runners read it to EOF.
    """
    kind = runner_kind()
    if kind == "qemu" and not qemu.available():
        pytest.skip("qemu-system-aarch64 not installed")
    if kind == "qemu" and request.param == "hyp":
        pytest.skip("the hypervisor mode is armvisor's")
    if kind == "qemu" and request.param == "el2":
        pytest.skip("QEMU's runs already enter at EL2 unless the conduit is HVC")
    hyp = {"hyp": ["--hyp"], "el2": ["--virtualization"]}.get(request.param, [])
    # The VM's DTB names the conduit; a program left to the default uses SMC in
    # both modes (trapped to the hypervisor by HCR_EL2.TSC in a VM, as under KVM).

    def run(name: str, smp: int, conduit: Optional[str] = None,
            extra_args: Sequence[str] = (), stdin: Optional[bytes] = None) -> GuestRun:
        elf = guest_build / f"{name}.elf"
        assert elf.is_file(), f"{elf} was not built"
        if request.param == "el2" and conduit == "hvc":
            pytest.skip("with --virtualization HVC is the guest's own EL2's, not PSCI's")
        if kind == "qemu":
            cmd = qemu_command(elf, smp, conduit)
        else:
            cmd = armvisor_command(elf, smp, conduit or "smc") + hyp + list(extra_args)
        env = dict(os.environ)
        src = str(REPO / "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with tempfile.TemporaryFile() if stdin is not None else nullcontext() as feed:
            if feed is not None:
                feed.write(stdin)
                feed.seek(0)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                      cwd=REPO, env=env, timeout=RUN_TIMEOUT_S + HARNESS_SLACK_S,
                                      stdin=feed)
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                pytest.fail(f"{' '.join(cmd)} timed out; output so far:\n{out}")
        return GuestRun(cmd, proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def on_armvisor() -> bool:
    return runner_kind() == "armvisor"


@pytest.fixture
def guest_mode(request) -> str:
    """Where the guest runs: 'bare' (armvisor's board and EL3 firmware, TF-A's PSCI
    rules, also when entered at EL2), 'hyp' (a VM, KVM's PSCI rules) or 'qemu'."""
    if runner_kind() == "qemu":
        return "qemu"
    mode = request.node.callspec.params.get("run_guest", "bare")
    # Entered at EL2, the guest still calls armvisor's EL3 firmware: the bare board's rules.
    return "bare" if mode == "el2" else mode
