"""What a machine is built from: the `armvisor run` options, validated."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from armvisor.cpu.models import CPU_MODELS
from armvisor.errors import ArmvisorError
from armvisor.machine.memmap import MAX_CPUS

MiB = 1 << 20
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
class MachineConfig:
    kernel: str
    smp: int = 1
    memory: int = 512 * MiB
    initrd: Optional[str] = None
    append: str = ""
    dtb: Optional[str] = None
    psci_conduit: str = "smc"
    cpu: str = "cortex-a57"
    slice_budget: int = 50_000            # instructions per round-robin slice
    no_reboot: bool = False

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
        if self.slice_budget < 1:
            raise ArmvisorError("the slice budget must be at least one instruction")
