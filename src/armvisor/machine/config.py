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


# QEMU's virt board has two CFI flash banks: unit 0 holds the firmware code,
# unit 1 its variable store (hw/arm/virt.c virt_flash_create).
PFLASH_UNITS = (0, 1)


@dataclass(frozen=True)
class PflashSpec:
    """A file backing one flash bank (QEMU's -drive if=pflash,format=raw,file=...,unit=N)."""

    path: str
    unit: int
    read_only: bool = False


def _drive_options(text: str) -> dict:
    options = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ArmvisorError(f"bad --drive option {item!r}: expected key=value")
        options[key.strip()] = value.strip()
    return options


def _read_only(options: dict, what: str) -> bool:
    readonly = options.pop("readonly", "off")
    if readonly not in ("on", "off"):
        raise ArmvisorError(f"{what}: readonly must be on or off, not {readonly!r}")
    return readonly == "on"


def parse_drive(text: str) -> DriveSpec:
    """QEMU's -drive syntax, for what armvisor supports: file=, format=raw, if=virtio, readonly=."""
    drive = parse_any_drive(text)
    if isinstance(drive, PflashSpec):
        raise ArmvisorError("--drive: only if=virtio is supported here (a virtio-blk device)")
    return drive


def parse_any_drive(text: str, taken: Tuple[int, ...] = ()):
    """One --drive option: a virtio disk (DriveSpec) or a flash bank (PflashSpec).

    A pflash drive without unit= takes the lowest unit not in `taken`, as
    QEMU numbers drives of one interface in the order given.
    """
    options = _drive_options(text)
    interface = options.pop("if", "virtio")
    if interface not in ("virtio", "pflash"):
        raise ArmvisorError(f"--drive: if={interface} is not supported (virtio or pflash)")
    what = "--drive" if interface == "virtio" else "--drive if=pflash"
    path = options.pop("file", None)
    if not path:
        raise ArmvisorError(f"{what} needs file=PATH")
    if options.pop("format", "raw") != "raw":
        raise ArmvisorError(f"{what}: only format=raw is supported")
    read_only = _read_only(options, what)
    unit = options.pop("unit", None) if interface == "pflash" else None
    if options:
        raise ArmvisorError(f"{what}: unknown option(s) {', '.join(sorted(options))}")
    if interface == "virtio":
        return DriveSpec(path, read_only=read_only)
    return PflashSpec(path, _pflash_unit(unit, taken), read_only=read_only)


def _pflash_unit(text: Optional[str], taken: Tuple[int, ...]) -> int:
    if text is None:
        free = [unit for unit in PFLASH_UNITS if unit not in taken]
        if not free:
            raise ArmvisorError("--drive if=pflash: both flash units (0 and 1) are taken")
        return free[0]
    try:
        unit = int(text, 10)
    except ValueError:
        unit = None
    if unit not in PFLASH_UNITS:
        raise ArmvisorError(f"--drive if=pflash: unit must be 0 (code) or 1 (variables), "
                            f"not {text!r}")
    if unit in taken:
        raise ArmvisorError(f"--drive if=pflash: unit {unit} is given twice")
    return unit


def split_drives(texts) -> Tuple[Tuple[DriveSpec, ...], Tuple[PflashSpec, ...]]:
    """--drive options (strings or specs) as (virtio disks, flash banks), in order given."""
    disks, banks = [], []
    for item in texts:
        if isinstance(item, str):
            item = parse_any_drive(item, tuple(b.unit for b in banks)) if "=" in item \
                else DriveSpec(item)
        elif isinstance(item, PflashSpec) and item.unit in [b.unit for b in banks]:
            raise ArmvisorError(f"--drive if=pflash: unit {item.unit} is given twice")
        (banks if isinstance(item, PflashSpec) else disks).append(item)
    return tuple(disks), tuple(banks)


@dataclass(frozen=True)
class MachineConfig:
    kernel: Optional[str] = None
    smp: int = 1
    memory: int = 512 * MiB
    initrd: Optional[str] = None
    append: str = ""
    dtb: Optional[str] = None
    # How the guest calls PSCI, as the DTB says. None: QEMU virt's choice
    # without virtualization=on for a firmware boot ("hvc"), armvisor's "smc"
    # (QEMU's with EL2 emulated) for a kernel.
    psci_conduit: Optional[str] = None
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
    # QEMU's -bios: a firmware image copied into flash bank 0, run from its base.
    bios: Optional[str] = None
    pflash: Tuple[PflashSpec, ...] = ()   # files behind the flash banks (-drive if=pflash)
    # QEMU's virtualization=on: the CPUs start at EL2, which the guest owns
    # (its hypervisor, KVM); PSCI over SMC to armvisor's EL3 firmware.
    virtualization: bool = False
    # QEMU's secure=on: the firmware in flash0 owns EL3 (TF-A's BL1 at the reset
    # vector, every CPU starting there), with the Secure world's RAM, UART and
    # GPIO; armvisor's own EL3 firmware stands aside.
    secure: bool = False

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
        if self.psci_conduit is None:
            object.__setattr__(self, "psci_conduit", "smc" if self.virtualization else
                               "hvc" if self.runs_firmware else "smc")
        if self.virtualization and self.psci_conduit != "smc":
            raise ArmvisorError("--psci-conduit hvc: with --virtualization HVC belongs to the "
                                "guest's own EL2; PSCI goes over SMC")
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
        units = [bank.unit for bank in self.pflash]
        if len(set(units)) != len(units) or not set(units) <= set(PFLASH_UNITS):
            raise ArmvisorError(f"flash units must be distinct, 0 or 1, not {units}")
        if self.bios and 0 in units:
            # QEMU refuses the same (hw/arm/virt.c virt_firmware_init).
            raise ArmvisorError("flash0 holds either -bios or -drive if=pflash,unit=0, "
                                "not both")
        if not self.kernel and not self.runs_firmware:
            raise ArmvisorError("--kernel is required (or -bios, or -drive if=pflash,unit=0)")
        if self.secure and not self.runs_firmware:
            raise ArmvisorError("--secure runs firmware at EL3: give it with -bios or "
                                "-drive if=pflash,unit=0 (a --kernel then goes to it "
                                "through fw_cfg)")

    def pflash_read_only(self, unit: int) -> bool:
        return any(bank.unit == unit and bank.read_only for bank in self.pflash)

    @property
    def runs_firmware(self) -> bool:
        """The boot CPU starts in flash0 (QEMU's firmware boot): -bios or a pflash unit 0."""
        return bool(self.bios) or any(bank.unit == 0 for bank in self.pflash)
