"""SYSTEM_SUSPEND (DEN0022D ch.5 "SYSTEM_SUSPEND"; TF-A psci_system_suspend).

A power-down suspend to the system level, allowed only for the last core
whose affinity is not OFF (a suspended core still counts as ON).
"""

from __future__ import annotations

from armvisor.firmware.psci.common import Outcome, validate_entry_point
from armvisor.firmware.psci.constants import SYSTEM_POWER_LEVEL, PsciReturn
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerState, PowerStateMachine


def system_suspend(platform: PsciPlatform, machine: PowerStateMachine, caller: int,
                   entry: int, context_id: int) -> Outcome:
    # TF-A checks for other running cores before it looks at the entry point.
    if not machine.others_all_off(caller):
        return PsciReturn.DENIED
    rc = validate_entry_point(platform, entry)
    if rc != PsciReturn.SUCCESS:
        return rc
    with machine.lock_of(caller).held_by(caller):
        machine.transition(caller, PowerState.POWERDOWN, suspend_level=SYSTEM_POWER_LEVEL)
    platform.suspend_powerdown(caller, entry, context_id)
    return None
