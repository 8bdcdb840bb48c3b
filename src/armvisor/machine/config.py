"""What a machine is built from: the `armvisor run` options, validated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from armvisor.cpu.models import CPU_MODELS
from armvisor.errors import ArmvisorError
from armvisor.machine.memmap import MAX_CPUS
from armvisor.machine.memmap import VIRTIO_MMIO_SLOTS as VIRTIO_SLOTS

MiB = 1 << 20
SLICE_DEFAULT = 50_000                    # instructions per round-robin slice
# RAM must fit below the 256 GiB the virt board's low memory map allows with
# a 40-bit PA space; QEMU's own limit for -M virt (without highmem) is 255 GiB.
MAX_MEMORY = 255 << 30
MIN_MEMORY = 16 * MiB

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": MiB, "K": 1 << 10, "M": MiB, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """QEMU's -m syntax: a number with an optional K/M/G/T suffix; no suffix means MiB."""
    match = _SIZE.match(text)
    if not match:
        raise ArmvisorError(f"bad size {text!r}: expected a number with an optional K, M, G or T "
                            "suffix, e.g. 512M")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


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
    # The generic counter runs on instructions (1 tick each) instead of the
    # host clock, so runs that use timers repeat exactly.
    deterministic: bool = False

    def __post_init__(self) -> None:
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
        if len(self.drives) + self.virtio_console > VIRTIO_SLOTS:
            raise ArmvisorError(f"at most {VIRTIO_SLOTS} virtio devices")
        if self.slice_budget < 1:
            raise ArmvisorError("the slice budget must be at least one instruction")
