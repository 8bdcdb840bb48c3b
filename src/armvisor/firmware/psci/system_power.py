"""SYSTEM_OFF, SYSTEM_RESET, SYSTEM_RESET2 (DEN0022D ch.5, same-named sections).

None of them returns to the caller. Core states are left as they are: after
a reset the machine starts again with Firmware.cold_boot.
"""

from __future__ import annotations

from armvisor.firmware.psci.common import Outcome
from armvisor.firmware.psci.constants import (
    RESET2_SYSTEM_WARM_RESET,
    RESET2_VENDOR_BIT,
    PsciReturn,
)
from armvisor.firmware.psci.platform import PsciPlatform


def system_off(platform: PsciPlatform) -> Outcome:
    platform.system_off()
    return None


def system_reset(platform: PsciPlatform) -> Outcome:
    platform.system_reset()
    return None


def system_reset2(platform: PsciPlatform, reset_type: int, cookie: int) -> Outcome:
    """Only the architectural warm reset exists here; it is the same reset as
    SYSTEM_RESET because the machine keeps no state across either. Vendor
    types and reserved architectural types are INVALID_PARAMETERS, as TF-A
    answers when the platform defines none."""
    del cookie      # only meaningful for vendor-specific resets
    reset_type &= 0xFFFF_FFFF
    if reset_type & RESET2_VENDOR_BIT:
        return PsciReturn.INVALID_PARAMETERS
    if reset_type != RESET2_SYSTEM_WARM_RESET:      # reserved architectural type
        return PsciReturn.INVALID_PARAMETERS
    platform.system_reset()
    return None
