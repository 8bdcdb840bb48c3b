"""Helpers several PSCI operations share (the parts of TF-A's psci_common.c we need)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from armvisor.firmware.psci.constants import PsciReturn
from armvisor.firmware.psci.platform import PsciPlatform

# What an operation hands back: a value for x0, or None when the caller does
# not return (CPU_OFF, power-down suspend, SYSTEM_OFF/RESET).
Outcome = Optional[int]

MASK32 = 0xFFFF_FFFF


def validate_entry_point(platform: PsciPlatform, entry: int) -> PsciReturn:
    """TF-A psci_validate_entry_point: the platform's NS-RAM check, then the
    AArch64 rule that a Thumb-looking entry (bit 0 set) is refused."""
    if not platform.entry_point_valid(entry):
        return PsciReturn.INVALID_ADDRESS
    if entry & 1:
        return PsciReturn.INVALID_ADDRESS
    return PsciReturn.SUCCESS


def cpu_index(platform: PsciPlatform, mpidr: int) -> Optional[int]:
    """TF-A plat_core_pos_by_mpidr, guarded against a platform answering out of range."""
    cpu = platform.cpu_of_mpidr(mpidr)
    if cpu is None or not 0 <= cpu < platform.cpu_count:
        return None
    return cpu


@dataclass(frozen=True)
class PsciFunction:
    """One row of the frontend's function table."""

    fid: int
    name: str
    argc: int                                   # how many of x1.. it reads
    handler: Callable[[int, Sequence[int]], Outcome]   # (caller cpu, args) -> outcome
    since: tuple[int, int]                      # first PSCI version that defines it
    advertised: bool = True                     # PSCI_FEATURES reports it implemented
    feature_flags: int = 0                      # PSCI_FEATURES result when advertised
