"""CPU_SUSPEND with the original power_state format (DEN0022D ch.5 "CPU_SUSPEND").

Any StateID is accepted: QEMU virt describes no idle states, so there is no
platform table to check it against. Power levels 0 (core), 1 (cluster) and
2 (system) are accepted for both state types; the level a core asks for is
recorded and the state machine coordinates it (a cluster is only as deep as
its shallowest core, TF-A's default plat_get_target_pwr_state). From the
caller's side every power-down resumes the same way, at `entry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from armvisor.firmware.psci.common import Outcome, validate_entry_point
from armvisor.firmware.psci.constants import (
    MAX_POWER_LEVEL,
    POWER_STATE_ID_MASK,
    POWER_STATE_LEVEL_MASK,
    POWER_STATE_LEVEL_SHIFT,
    POWER_STATE_RESERVED_MASK,
    POWER_STATE_TYPE_POWERDOWN,
    POWER_STATE_TYPE_SHIFT,
    PsciReturn,
)
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerState, PowerStateMachine


@dataclass(frozen=True)
class PowerStateParam:
    state_id: int
    powerdown: bool
    level: int


def decode_power_state(power_state: int) -> Optional[PowerStateParam]:
    """None when a reserved bit is set (TF-A psci_check_power_state)."""
    power_state &= 0xFFFF_FFFF      # a 32-bit parameter even in the SMC64 call
    if power_state & POWER_STATE_RESERVED_MASK:
        return None
    return PowerStateParam(
        state_id=power_state & POWER_STATE_ID_MASK,
        powerdown=((power_state >> POWER_STATE_TYPE_SHIFT) & 1) == POWER_STATE_TYPE_POWERDOWN,
        level=(power_state >> POWER_STATE_LEVEL_SHIFT) & POWER_STATE_LEVEL_MASK,
    )


def cpu_suspend(platform: PsciPlatform, machine: PowerStateMachine, caller: int,
                power_state: int, entry: int, context_id: int) -> Outcome:
    param = decode_power_state(power_state)
    if param is None or param.level > MAX_POWER_LEVEL:
        return PsciReturn.INVALID_PARAMETERS
    if not param.powerdown:
        # Entry point and context are ignored for standby: the core resumes in place.
        with machine.lock_of(caller).held_by(caller):
            machine.transition(caller, PowerState.STANDBY, suspend_level=param.level)
        platform.suspend_standby(caller)
        return PsciReturn.SUCCESS
    rc = validate_entry_point(platform, entry)
    if rc != PsciReturn.SUCCESS:
        return rc
    with machine.lock_of(caller).held_by(caller):
        machine.transition(caller, PowerState.POWERDOWN, suspend_level=param.level)
    platform.suspend_powerdown(caller, entry, context_id)
    return None
