"""kvm-unit-tests' own files, read the way its runner reads them.

Three jobs, each done as kvm-unit-tests' scripts do it, so a run here is the
run its developers make: `unittests_cfg` reads arm/unittests.cfg as
scripts/common.bash (for_each_unittest) does; `shell_words` expands a value
the way the runner's `eval` expands it (bash itself does it: `smp =
$((($MAX_SMP < 8)?$MAX_SMP:8))`, quoted test_args, `disabled_if = [[ ... ]]`);
`environment_file` writes what scripts/arch-run.bash (initrd_create ->
env_params, env_errata) hands a TCG run as -initrd; `outcome` reads the
console as scripts/runtime.bash and arm/run judge it.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import pytest

# Where the module's table goes for the terminal summary (tests/thirdparty/conftest.py).
TABLE_KEY = pytest.StashKey[str]()
# scripts/runtime.bash, run(): `local timeout="${TIMEOUT:-${11:-90s}}"`.
DEFAULT_TIMEOUT = "90s"
# The QEMU target's name for its parameter lines (scripts/vmm.bash,
# vmm_unittest_params_name: "extra_params|qemu_params").
PARAMS_KEYS = ("extra_params", "qemu_params")
# coreutils timeout(1) suffixes, which the runner's TIMEOUT goes to.
TIMEOUT_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# lib/arm/io.c exit(): `printf("\nEXIT: STATUS=%d\n", ((code) << 1) | 1)`.
EXIT_LINE = re.compile(r"^EXIT: STATUS=(\d+)\s*$")
# lib/report.c report_summary(): "SUMMARY: %d tests[, %d unexpected failures]
# [, %d known failures][, %d expected failures][, %d skipped]".
SUMMARY_LINE = re.compile(r"^SUMMARY: (\d+) tests(.*)$")
# report_summary() returns 77 >> 1 when every test skipped; scripts/runtime.bash
# reads exit status 77 as SKIP.
SKIP_STATUS = 77


class CfgError(ValueError):
    """arm/unittests.cfg says something the runner would not accept."""


@dataclass
class UnitTest:
    """One [name] section of arm/unittests.cfg, its values as written."""
    name: str
    file: str = ""
    smp: str = "1"
    test_args: str = ""
    params: str = ""                  # qemu_params / extra_params
    groups: Tuple[str, ...] = ()
    arch: str = ""
    accel: str = ""
    machine: str = ""
    timeout: str = ""
    disabled_if: str = ""
    other: Dict[str, str] = field(default_factory=dict)   # kvmtool_params, check, ...

    def timeout_s(self) -> float:
        return parse_timeout(self.timeout or DEFAULT_TIMEOUT)


def parse_timeout(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)([smhd]?)\s*", text)
    if match is None:
        raise CfgError(f"bad timeout {text!r}")
    return float(match.group(1)) * TIMEOUT_UNITS[match.group(2)]


def unittests_cfg(text: str) -> List[UnitTest]:
    """Every [name] section, in file order (scripts/common.bash, for_each_unittest)."""
    tests: List[UnitTest] = []
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()              # bash's `read -r` drops the blanks around a line
        section = re.fullmatch(r"\[(.*)\]", line)
        if section:
            tests.append(UnitTest(section.group(1)))
            continue
        entry = re.fullmatch(r"([A-Za-z_]+) *= *(.*)", line)
        if entry is None:
            continue
        if not tests:
            raise CfgError(f"{line!r} before the first [section]")
        key, value = entry.groups()
        test = tests[-1]
        if key in PARAMS_KEYS and value.startswith('"""'):
            value = _triple_quoted(value[3:], lines, test.name)
        if key == "file":
            test.file = value
        elif key == "smp":
            test.smp = value
        elif key == "test_args":
            test.test_args = value
        elif key in PARAMS_KEYS:
            test.params = value
        elif key == "groups":
            test.groups = tuple(value.split())
        elif key in ("arch", "accel", "machine", "timeout", "disabled_if"):
            setattr(test, key, value)
        else:
            test.other[key] = value
    return tests


def _triple_quoted(first: str, lines, name: str) -> str:
    """A `qemu_params = \"\"\"...\"\"\"` value that may span lines."""
    parts = [first]
    while not parts[-1].rstrip().endswith('"""'):
        try:
            parts.append(next(lines))
        except StopIteration:
            raise CfgError(f"[{name}]: unterminated \"\"\"") from None
    parts[-1] = parts[-1].rstrip()[:-3]
    # A backslash at the end of a line joins it to the next, as in the runner.
    return "\n".join(parts).replace("\\\n", "")


def shell_words(text: str, variables: Mapping[str, str]) -> List[str]:
    """`text` split and expanded as the runner's `eval` does, by bash itself."""
    script = 'eval "set -- $1"; [ $# -eq 0 ] || printf "%s\\0" "$@"'
    done = subprocess.run(["bash", "-c", script, "bash", text], capture_output=True,
                          env={**_plain_env(), **variables}, timeout=10)
    if done.returncode != 0:
        raise CfgError(f"bash cannot expand {text!r}: {done.stderr.decode().strip()}")
    return [word.decode() for word in done.stdout.split(b"\0")[:-1]]


def shell_condition(text: str, variables: Mapping[str, str]) -> bool:
    """A `disabled_if` test, true when bash says so."""
    done = subprocess.run(["bash", "-c", 'eval "$1"', "bash", text], capture_output=True,
                          env={**_plain_env(), **variables}, timeout=10)
    return done.returncode == 0


def _plain_env() -> Dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def smp_count(test: UnitTest, max_smp: int) -> int:
    words = shell_words(test.smp, {"MAX_SMP": str(max_smp)})
    if len(words) != 1 or not words[0].isdigit():
        raise CfgError(f"[{test.name}]: smp = {test.smp!r} is not a CPU count")
    return int(words[0])


@dataclass(frozen=True)
class MachineOptions:
    """A section's QEMU parameters split for the two machines."""
    memory: Optional[str]          # `-m`, as armvisor spells a size (QEMU: a bare number is MiB)
    qemu: List[str]                # the rest, for QEMU as written


def machine_options(params: List[str]) -> MachineOptions:
    """Only what armvisor's board can honour is accepted: `-m SIZE` and
    `-machine gic-version=3` (its GIC). Anything else raises CfgError naming
    it, so a test that needs it is reported, not run on the wrong machine."""
    memory, rest = None, []
    words = iter(params)
    for word in words:
        value = next(words, None) if word in ("-m", "-machine", "-M") else None
        if word == "-m" and value is not None:
            memory = value + "M" if value.isdigit() else value
        elif word in ("-machine", "-M") and value == "gic-version=3":
            rest += [word, value]
        else:
            raise CfgError(" ".join(filter(None, [word, value])))
    return MachineOptions(memory, rest)


def append_text(test: UnitTest) -> Optional[str]:
    """The -append argument, or None: the runner leaves -append out when empty."""
    if not test.test_args:
        return None
    return " ".join(shell_words(test.test_args, {}))


def environment_file(qemu_version_string: str, kernel_release: str,
                     errata: Optional[Mapping[str, str]] = None) -> str:
    """What arch-run.bash's initrd_create writes for `ACCEL=tcg` on QEMU.

    env_params: TARGET, QEMU_ACCEL, QEMU_VERSION_STRING and its numbers (read
    as `IFS='[ .]' read -r _ _ _ MAJOR MINOR MICRO rest`), then the host
    kernel's version (KERNEL_*). env_errata: under TCG it exports
    ERRATA_FORCE=y (no errata.txt lookup) and appends every ERRATA_* variable
    of the environment as NAME=VALUE lines.
    """
    words = re.split(r"[ .]", qemu_version_string)
    major, minor, micro = (words[3:6] + ["", "", ""])[:3]
    version, _, rest = kernel_release.partition(".")
    patchlevel, _, rest = rest.partition(".")
    sublevel, _, extra = rest.partition("-")
    sublevel = re.match(r"\d*", sublevel).group(0)
    extra = re.match(r"\d*", extra).group(0)
    lines = [("TARGET", "qemu"), ("QEMU_ACCEL", "tcg"),
             ("QEMU_VERSION_STRING", qemu_version_string), ("QEMU_MAJOR", major),
             ("QEMU_MINOR", minor), ("QEMU_MICRO", micro),
             ("KERNEL_VERSION_STRING", kernel_release), ("KERNEL_VERSION", version),
             ("KERNEL_PATCHLEVEL", patchlevel), ("KERNEL_SUBLEVEL", sublevel),
             ("KERNEL_EXTRAVERSION", extra)]
    lines += sorted({"ERRATA_FORCE": "y", **(errata or {})}.items())
    return "".join(f"{name}={value}\n" for name, value in lines)


@dataclass(frozen=True)
class Outcome:
    """A run judged as the runner judges it: PASS, FAIL, SKIP or TIMEOUT."""
    result: str
    summary: str            # the SUMMARY line's text, or why there is none
    failures: int

    def cell(self) -> str:
        return f"{self.result} ({self.summary})" if self.summary else self.result


def outcome(console: str, timed_out: bool) -> Outcome:
    """The verdict from the console: EXIT: STATUS (the code the runner would
    get from chr-testdev), checked against the SUMMARY line's failure count."""
    lines = [line.rstrip("\r") for line in console.splitlines()]
    summary, failures = "", 0
    for line in lines:
        match = SUMMARY_LINE.match(line)
        if match:
            summary = f"{match.group(1)} tests{match.group(2)}"
            failed = re.search(r"(\d+) unexpected failures", match.group(2))
            failures = int(failed.group(1)) if failed else 0
    if timed_out:
        return Outcome("TIMEOUT", summary, failures)
    status = next((int(m.group(1)) for m in map(EXIT_LINE.match, lines) if m), None)
    if status is None:
        return Outcome("FAIL", summary or "no EXIT line", failures)
    if status == SKIP_STATUS:
        return Outcome("SKIP", summary, failures)
    code = status >> 1
    return Outcome("PASS" if code == 0 and failures == 0 else "FAIL", summary, failures)
