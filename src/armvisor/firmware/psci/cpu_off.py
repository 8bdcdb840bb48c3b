"""CPU_OFF (DEN0022D ch.5 "CPU_OFF"; TF-A psci_do_cpu_off).

TF-A only answers DENIED when a Secure Payload Dispatcher or the platform's
pwr_domain_off_early hook refuses; this machine has neither, so CPU_OFF
always succeeds, even for the last running core (then nothing runs until a
reset, which is what TF-A does too; the machine should notice that no core
is left and report it).
"""

from __future__ import annotations

from armvisor.firmware.psci.common import Outcome
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerState, PowerStateMachine


def cpu_off(platform: PsciPlatform, machine: PowerStateMachine, caller: int) -> Outcome:
    with machine.lock_of(caller).held_by(caller):
        machine.transition(caller, PowerState.OFF)
    platform.power_off(caller)
    return None
