"""The seed hypervisor's console on QEMU and on armvisor, run and compared line by line.

willamhou/hypervisor (tests/thirdparty/test_seed_hypervisor.py) never powers
off: the default build waits forever in its Guest Interrupt Injection Test,
the multi_pcpu build spins after its panic. So a run is stopped by us: once
the console has been quiet for a while (everything printed, the program
waiting), or at a hard limit. `compare` then holds armvisor's transcript
against QEMU's up to where QEMU stopped.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional

import pytest

SUMMARY_KEY = pytest.StashKey[List[str]]()

# The generic counter's value at boot differs by design: QEMU's starts at 0 when
# the machine is created, armvisor's runs on the host clock. Masked, nothing else.
VARIABLE_LINES = [(re.compile(r"^(\[TIMER\] Counter: )\d+$"), r"\1N")]
# A result line: "[PASS] name", "Test 3 PASSED", "Checking mem_size... PASS".
RESULT_LINE = re.compile(r"\b(PASS|FAIL)(ED)?\b")


def transcript(output: str) -> List[str]:
    """The console's non-empty lines, trailing blanks dropped, variable values masked."""
    lines = []
    for raw in output.replace("\r", "").splitlines():
        line = raw.rstrip()
        if not line:
            continue
        for pattern, replacement in VARIABLE_LINES:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def results(lines: List[str]) -> dict:
    """How many PASS and FAIL lines (PASS, PASSED, [PASS]; the same for FAIL)."""
    counts = {"PASS": 0, "FAIL": 0}
    for line in lines:
        match = RESULT_LINE.search(line)
        if match:
            counts[match.group(1)] += 1
    return counts


@dataclass
class Comparison:
    qemu: List[str]
    armvisor: List[str]
    matched: int = 0                      # leading lines equal on both sides
    first_difference: Optional[int] = None  # index into qemu, None when all of QEMU's matched

    @property
    def ok(self) -> bool:
        return self.first_difference is None

    @property
    def further(self) -> List[str]:
        """What armvisor printed after QEMU's last line (allowed: it got further)."""
        return self.armvisor[len(self.qemu):] if self.ok else []

    def summary(self) -> str:
        q, a = results(self.qemu), results(self.armvisor[:len(self.qemu)])
        text = (f"QEMU printed {len(self.qemu)} lines ({q['PASS']} PASS, {q['FAIL']} FAIL); "
                f"armvisor printed {len(self.armvisor)}, the first {self.matched} as QEMU's "
                f"({a['PASS']} PASS, {a['FAIL']} FAIL among those)")
        if not self.ok:
            i = self.first_difference
            theirs = self.armvisor[i] if i < len(self.armvisor) else "(nothing: armvisor stopped)"
            text += (f"\nfirst difference at line {i + 1}:\n  QEMU:     {self.qemu[i]}\n"
                     f"  armvisor: {theirs}")
        elif self.further:
            text += (f"\narmvisor got further than QEMU: {len(self.further)} more lines, "
                     f"the first: {self.further[0]}")
        else:
            text += f"\nboth stop after: {self.qemu[-1] if self.qemu else '(nothing)'}"
        return text

    def report(self, context: int = 8) -> str:
        """The summary, then the transcripts side by side around the first difference (or
        their ends), as a unified diff of QEMU's (-) against armvisor's (+)."""
        upto = self.armvisor if not self.ok else self.armvisor[:len(self.qemu) + 20]
        diff = list(difflib.unified_diff(self.qemu, upto, "QEMU", "armvisor", n=context,
                                         lineterm=""))
        if not diff:
            tail = "\n".join(f"  {line}" for line in self.qemu[-context:])
            return f"{self.summary()}\nthe transcripts agree; QEMU's last lines:\n{tail}"
        return self.summary() + "\n" + "\n".join(diff[:200])


def compare(qemu: List[str], armvisor: List[str]) -> Comparison:
    matched = 0
    for theirs, ours in zip(qemu, armvisor):
        if theirs != ours:
            break
        matched += 1
    first = None if matched == len(qemu) else matched
    return Comparison(qemu, armvisor, matched, first)


@dataclass
class Run:
    command: List[str]
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    stopped_by: str = ""            # "quiet", "limit" or "exit N"
    last_output_s: float = 0.0      # when its console printed last, from the start
    lines: List[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"command: {' '.join(self.command)}\n{self.stopped_by} after "
                f"{self.seconds:.1f} s\n--- stderr (end) ---\n{self.stderr[-1500:]}")


def run_until_quiet(command: List[str], *, quiet_s: float, limit_s: float, env=None,
                    cwd=None) -> Run:
    """Run `command`, its console on stdout, until it has printed something and then been
    quiet for `quiet_s`, or exited, or `limit_s` passed; then stop it (this process only)."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    out: List[bytes] = []
    err: List[bytes] = []
    last = [None]

    def pump(stream, sink, mark):
        for chunk in iter(lambda: stream.read1(4096), b""):
            sink.append(chunk)
            if mark:
                last[0] = time.monotonic()

    readers = [threading.Thread(target=pump, args=(proc.stdout, out, True), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, False), daemon=True)]
    for reader in readers:
        reader.start()
    stopped_by = "limit"
    while time.monotonic() - start < limit_s:
        code = proc.poll()
        if code is not None:
            stopped_by = f"exit {code}"
            break
        if last[0] is not None and time.monotonic() - last[0] >= quiet_s:
            stopped_by = f"quiet for {quiet_s:.0f} s"
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    stdout = b"".join(out).decode(errors="replace")
    return Run(command, stdout, b"".join(err).decode(errors="replace"),
               time.monotonic() - start, stopped_by, (last[0] or start) - start,
               transcript(stdout))
