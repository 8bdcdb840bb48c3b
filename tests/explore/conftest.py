"""Exploring the guests with planted concurrency bugs (guests/race_counter.c,
boot_data.c, lock_order.c): the guests are built once with `make -C guests`.

Budgets: every test states how many runs the explorer may take to find its
bug (with seed 0 it needs far fewer; the margin lets a strategy change keep
the test meaningful). A run of these guests takes tens of milliseconds, so
the tests stay short even on a loaded 2-core machine; their subprocess
timeouts are generous for the same reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUESTS = REPO / "guests"
# Wall-clock limit for one armvisor subprocess (an explore of a few hundred runs).
PROCESS_TIMEOUT = 600


@dataclass(frozen=True)
class Bug:
    name: str
    smp: int
    until: tuple            # explore's failure options
    budget: int             # runs explore may take (random strategy, seed 0)

    @property
    def elf(self) -> str:
        return str(GUESTS / "build" / f"{self.name}.elf")


FAIL_LINE = ("--until-console", "RESULT: FAIL")
BUGS = {
    "race_counter": Bug("race_counter", 4, FAIL_LINE, budget=100),
    "boot_data": Bug("boot_data", 2, FAIL_LINE, budget=100),
    "lock_order": Bug("lock_order", 2, ("--until-hang", "--max-instructions", "5000000"),
                      budget=100),
}


@pytest.fixture(scope="session")
def guests() -> Path:
    if shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("make") is None:
        pytest.skip("needs make and aarch64-linux-gnu-gcc to build the guests")
    proc = subprocess.run(["make", "-C", str(GUESTS)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"make -C guests failed:\n{proc.stdout}\n{proc.stderr}")
    return GUESTS / "build"


def armvisor(*args, cwd=None, timeout=PROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m armvisor ARGS` with this checkout's sources."""
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "armvisor", *map(str, args)],
                          capture_output=True, text=True, errors="replace", cwd=cwd or REPO,
                          env=env, stdin=subprocess.DEVNULL, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"command: {' '.join(map(str, proc.args))}\nexit code: {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
