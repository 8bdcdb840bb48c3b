"""PSCI_FEATURES (DEN0022D ch.5 "PSCI_FEATURES"; TF-A psci_features)."""

from __future__ import annotations

from typing import Callable, Optional

from armvisor.firmware.psci.common import PsciFunction
from armvisor.firmware.psci.constants import PsciReturn

# SMCCC DEN0028 "SMCCC_VERSION": callers discover SMCCC >= 1.1 by asking
# PSCI_FEATURES for this ID, so PSCI must answer SUCCESS for it.
SMCCC_VERSION_FID = 0x8000_0000


def psci_features(fid: int, lookup: Callable[[int], Optional[PsciFunction]]) -> int:
    fid &= 0xFFFF_FFFF
    if fid == SMCCC_VERSION_FID:
        return PsciReturn.SUCCESS
    function = lookup(fid)
    if function is None or not function.advertised:
        return PsciReturn.NOT_SUPPORTED
    return function.feature_flags
