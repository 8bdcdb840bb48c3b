"""PSCI 1.1 as Trusted Firmware-A's lib/psci structures it: a frontend that
validates arguments, a per-CPU power state machine, one module per operation."""

from armvisor.firmware.psci.constants import AffinityInfo, MigrateInfoType, PsciReturn
from armvisor.firmware.psci.frontend import PsciService
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import (
    CpuLock,
    LocalState,
    LockContention,
    PowerState,
    PowerStateMachine,
    PsciStateError,
)

__all__ = [
    "AffinityInfo",
    "CpuLock",
    "LocalState",
    "LockContention",
    "MigrateInfoType",
    "PowerState",
    "PowerStateMachine",
    "PsciPlatform",
    "PsciReturn",
    "PsciService",
    "PsciStateError",
]
