"""CPU_ON (DEN0022D ch.5 "CPU_ON"; TF-A psci_cpu_on + psci_cpu_on_start)."""

from __future__ import annotations

from armvisor.firmware.psci.common import cpu_index, validate_entry_point
from armvisor.firmware.psci.constants import AffinityInfo, PsciReturn
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerState, PowerStateMachine


def cpu_on(platform: PsciPlatform, machine: PowerStateMachine, caller: int,
           target_mpidr: int, entry: int, context_id: int) -> int:
    target = cpu_index(platform, target_mpidr)
    if target is None:
        return PsciReturn.INVALID_PARAMETERS
    rc = validate_entry_point(platform, entry)
    if rc != PsciReturn.SUCCESS:
        return rc
    # The test and the ON_PENDING write are one step under the target's lock,
    # so of two racing callers exactly one sees OFF.
    with machine.lock_of(target).held_by(caller):
        affinity = machine.affinity_info(target)
        if affinity is AffinityInfo.ON:
            return PsciReturn.ALREADY_ON
        if affinity is AffinityInfo.ON_PENDING:
            return PsciReturn.ON_PENDING
        machine.transition(target, PowerState.ON_PENDING)
        if not platform.power_on(target, entry, context_id):
            machine.transition(target, PowerState.OFF)
            return PsciReturn.INTERNAL_FAILURE
    return PsciReturn.SUCCESS
