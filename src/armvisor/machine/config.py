"""What a machine is built from: the `armvisor run` options, validated."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from armvisor.cpu.models import CPU_MODELS
from armvisor.errors import ArmvisorError
from armvisor.machine.dtb import check_bootargs
from armvisor.machine.memmap import MAX_CPUS
from armvisor.machine.memmap import VIRTIO_MMIO_SLOTS as VIRTIO_SLOTS

MiB = 1 << 20
SLICE_DEFAULT = 50_000                    # instructions per round-robin slice
# RAM must fit below the 256 GiB the virt board's low memory map allows with
# a 40-bit PA space; QEMU's own limit for -M virt (without highmem) is 255 GiB.
MAX_MEMORY = 255 << 30
MIN_MEMORY = 16 * MiB
# The slice budget goes to the C hook's int64_t counter, so anything from 2^63
# up would wrap negative there and the guest would never run. Long before
# that a slice is too long to be useful: the run loop checks --timeout, input
# and the other CPUs only between slices, and at ~2000 MIPS 10^9 instructions
# already take about half a second.
MAX_SLICE_BUDGET = 1_000_000_000

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": MiB, "K": 1 << 10, "M": MiB, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """QEMU's -m syntax: a number with an optional K/M/G/T suffix; no suffix means MiB."""
    match = _SIZE.match(text)
    if not match:
        raise ArmvisorError(f"bad size {text!r}: expected a number with an optional K, M, G or T "
                            "suffix, e.g. 512M")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def format_size(size: int) -> str:
    """Bytes as a person reads them in a message: 512 MiB, 1.5 GiB, 300 bytes."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


def check_whole_number(what: str, value: object) -> None:
    """An int, not a float or a string: the Python API gets no click conversion."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArmvisorError(f"{what} must be a whole number, not {value!r}")


def check_timeout(timeout: Optional[float]) -> None:
    """--timeout: None (no limit) or a positive, finite number of seconds.

    NaN would never compare greater than the clock (the run would silently
    have no timeout), and a negative value would time out after one slice.
    """
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not math.isfinite(timeout) or timeout <= 0:
        raise ArmvisorError(f"--timeout must be a positive number of seconds, not {timeout!r}")


@dataclass(frozen=True)
class DriveSpec:
    """A disk image behind a virtio-blk device (QEMU's -drive file=...,format=raw,if=virtio)."""

    path: str
    read_only: bool = False


def parse_drive(text: str) -> DriveSpec:
    """QEMU's -drive syntax, for what armvisor supports: file=, format=raw, if=virtio, readonly=."""
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ArmvisorError(f"bad --drive option {item!r}: expected key=value")
        options[key.strip()] = value.strip()
    path = options.pop("file", None)
    if not path:
        raise ArmvisorError("--drive needs file=PATH")
    if options.pop("format", "raw") != "raw":
        raise ArmvisorError("--drive: only format=raw is supported")
    if options.pop("if", "virtio") != "virtio":
        raise ArmvisorError("--drive: only if=virtio is supported (a virtio-blk device)")
    readonly = options.pop("readonly", "off")
    if readonly not in ("on", "off"):
        raise ArmvisorError(f"--drive: readonly must be on or off, not {readonly!r}")
    if options:
        raise ArmvisorError(f"--drive: unknown option(s) {', '.join(sorted(options))}")
    return DriveSpec(path, read_only=readonly == "on")


@dataclass(frozen=True)
class MachineConfig:
    kernel: str
    smp: int = 1
    memory: int = 512 * MiB
    initrd: Optional[str] = None
    append: str = ""
    dtb: Optional[str] = None
    psci_conduit: str = "smc"
    cpu: str = "cortex-a57"
    slice_budget: int = SLICE_DEFAULT
    no_reboot: bool = False
    drives: Tuple[DriveSpec, ...] = ()
    virtio_console: bool = False          # a virtio-console (hvc0) whose output goes to stdout
    chr_testdev: bool = False             # ... or QEMU's chr-testdev behind it (exit codes)
    # The generic counter runs on instructions (1 tick each) instead of the
    # host clock, so runs that use timers repeat exactly.
    deterministic: bool = False
    # QEMU's -snapshot: disk writes stay in memory (and in machine snapshots).
    disk_snapshot: bool = False
    plant: tuple = ()                   # planted bugs (machine/planted.py), tests only

    def __post_init__(self) -> None:
        check_whole_number("--smp", self.smp)
        check_whole_number("--memory", self.memory)
        check_whole_number("--slice", self.slice_budget)
        if not 1 <= self.smp <= MAX_CPUS:
            raise ArmvisorError(f"--smp must be between 1 and {MAX_CPUS}, not {self.smp}")
        if not MIN_MEMORY <= self.memory <= MAX_MEMORY:
            raise ArmvisorError(f"--memory must be between {MIN_MEMORY // MiB}M and "
                                f"{MAX_MEMORY >> 30}G, not {self.memory} bytes")
        if self.memory % (64 << 10):
            raise ArmvisorError("--memory must be a multiple of 64K")
        if self.psci_conduit not in ("smc", "hvc"):
            raise ArmvisorError(f"--psci-conduit must be smc or hvc, not {self.psci_conduit!r}")
        if self.cpu not in CPU_MODELS:
            raise ArmvisorError(f"--cpu must be one of {', '.join(CPU_MODELS)}, not {self.cpu!r}")
        if len(self.drives) + (self.virtio_console or self.chr_testdev) > VIRTIO_SLOTS:
            raise ArmvisorError(f"at most {VIRTIO_SLOTS} virtio devices")
        if not 1 <= self.slice_budget <= MAX_SLICE_BUDGET:
            raise ArmvisorError(f"--slice must be between 1 and {MAX_SLICE_BUDGET:,} "
                                f"instructions, not {self.slice_budget}")
        check_bootargs(self.append, "--append")
