"""AFFINITY_INFO (DEN0022D ch.5 "AFFINITY_INFO"; TF-A psci_affinity_info).

Since PSCI 1.0 only level 0 must be supported; TF-A refuses every higher
lowest_affinity_level with INVALID_PARAMETERS, and so do we.
"""

from __future__ import annotations

from armvisor.firmware.psci.common import cpu_index
from armvisor.firmware.psci.constants import CPU_POWER_LEVEL, PsciReturn
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerStateMachine


def affinity_info(platform: PsciPlatform, machine: PowerStateMachine,
                  target_affinity: int, lowest_affinity_level: int) -> int:
    if lowest_affinity_level > CPU_POWER_LEVEL:
        return PsciReturn.INVALID_PARAMETERS
    target = cpu_index(platform, target_affinity)
    if target is None:
        return PsciReturn.INVALID_PARAMETERS
    return int(machine.affinity_info(target))
