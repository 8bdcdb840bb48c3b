"""The EL3 firmware: SMCCC dispatch and PSCI, modelled in Python."""

from armvisor.firmware.psci import (
    AffinityInfo,
    LockContention,
    PowerState,
    PsciPlatform,
    PsciReturn,
    PsciStateError,
)
from armvisor.firmware.smccc import Firmware, FunctionId

__all__ = [
    "AffinityInfo",
    "Firmware",
    "FunctionId",
    "LockContention",
    "PowerState",
    "PsciPlatform",
    "PsciReturn",
    "PsciStateError",
]
