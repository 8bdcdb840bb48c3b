"""The EL3 runtime: SMC Calling Convention decoding and dispatch (Arm DEN0028).

`Firmware.smc` is the single door from a core's SMC (or HVC, when the machine
routes PSCI there) into the firmware. It decodes the function ID, narrows
SMC32 arguments, routes owner 0 (Arm architecture calls) to itself and the
PSCI range of owner 4 (standard secure service) to the PSCI frontend, and
answers everything else with NOT_SUPPORTED, as TF-A's runtime service
framework does for an unregistered owner.

SMCCC_ARCH_FEATURES and the Spectre workarounds: this machine executes no
instruction speculatively, so no firmware mitigation is ever needed. Queries
answer as TF-A does on a core it knows to be unaffected:
  WORKAROUND_1 (CVE-2017-5715)  -> 1   "implemented, not required on this PE"
  WORKAROUND_2 (CVE-2018-3639)  -> -2  NOT_REQUIRED ("do not call")
  WORKAROUND_3 (CVE-2022-23960) -> 1   "implemented, not required on this PE"
  anything else                 -> -1  NOT_SUPPORTED
Linux reads 1 and -2 as "not affected". Calling a workaround is a no-op
that leaves every register as it was (TF-A's SMC_RET0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from armvisor.errors import ArmvisorError
from armvisor.firmware.psci import constants as psci_c
from armvisor.firmware.psci.frontend import PsciService
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerState, PowerStateMachine, PsciStateError
from armvisor.trace.bus import TraceBus

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF

# Function ID fields, DEN0028 "Function Identifiers" (SMC32/SMC64 table).
FID_FAST_BIT = 1 << 31          # 1 = fast call, 0 = yielding call
FID_SMC64_BIT = 1 << 30         # 1 = SMC64 calling convention
FID_OWNER_SHIFT = 24            # bits [29:24]
FID_OWNER_MASK = 0x3F
FID_RESERVED_MASK = 0x00FF_0000  # bits [23:16] must be zero for SMCCC <= 1.2 fast calls
FID_NUMBER_MASK = 0xFFFF         # bits [15:0]

# Owning entity numbers, DEN0028 "Owning Entity Number" table.
OWNER_ARCH = 0
OWNER_CPU = 1
OWNER_SIP = 2
OWNER_OEM = 3
OWNER_STANDARD_SECURE = 4
OWNER_STANDARD_HYP = 5
OWNER_VENDOR_HYP = 6

# Arm Architecture Calls, DEN0028 ch."Arm Architecture Calls".
SMCCC_VERSION = 0x8000_0000
SMCCC_ARCH_FEATURES = 0x8000_0001
SMCCC_ARCH_SOC_ID = 0x8000_0002
SMCCC_ARCH_WORKAROUND_1 = 0x8000_8000
SMCCC_ARCH_WORKAROUND_2 = 0x8000_7FFF
SMCCC_ARCH_WORKAROUND_3 = 0x8000_3FFF

# Return codes, DEN0028 "Return codes" (shared by the Arm Architecture Calls).
SMCCC_SUCCESS = 0
SMCCC_NOT_SUPPORTED = -1
SMCCC_NOT_REQUIRED = -2
SMCCC_INVALID_PARAMETER = -3
SMCCC_WORKAROUND_NOT_NEEDED_HERE = 1   # ARCH_FEATURES for WORKAROUND_1/3

# This firmware speaks SMCCC 1.1: x0-x3 results, x4-x17 preserved. (1.2 would
# also pass arguments and results in x4-x17, which no PSCI call needs.)
SMCCC_VERSION_WORD = (1 << 16) | 1

_ARCH_FEATURES: dict[int, int] = {
    SMCCC_VERSION: SMCCC_SUCCESS,
    SMCCC_ARCH_FEATURES: SMCCC_SUCCESS,
    SMCCC_ARCH_WORKAROUND_1: SMCCC_WORKAROUND_NOT_NEEDED_HERE,
    SMCCC_ARCH_WORKAROUND_2: SMCCC_NOT_REQUIRED,
    SMCCC_ARCH_WORKAROUND_3: SMCCC_WORKAROUND_NOT_NEEDED_HERE,
}

_ARCH_NAMES: dict[int, str] = {
    SMCCC_VERSION: "SMCCC_VERSION",
    SMCCC_ARCH_FEATURES: "SMCCC_ARCH_FEATURES",
    SMCCC_ARCH_WORKAROUND_1: "SMCCC_ARCH_WORKAROUND_1",
    SMCCC_ARCH_WORKAROUND_2: "SMCCC_ARCH_WORKAROUND_2",
    SMCCC_ARCH_WORKAROUND_3: "SMCCC_ARCH_WORKAROUND_3",
}


@dataclass(frozen=True)
class FunctionId:
    """A decoded SMCCC function identifier (W0 of the call)."""

    raw: int
    fast: bool
    smc64: bool
    owner: int
    reserved: int       # bits [23:16]; nonzero makes the ID unknown
    number: int

    @classmethod
    def decode(cls, x0: int) -> "FunctionId":
        raw = x0 & MASK32   # the ID is W0; the upper half of X0 is ignored
        return cls(
            raw=raw,
            fast=bool(raw & FID_FAST_BIT),
            smc64=bool(raw & FID_SMC64_BIT),
            owner=(raw >> FID_OWNER_SHIFT) & FID_OWNER_MASK,
            reserved=(raw & FID_RESERVED_MASK) >> 16,
            number=raw & FID_NUMBER_MASK,
        )

    @property
    def is_psci(self) -> bool:
        return (self.fast and self.owner == OWNER_STANDARD_SECURE and self.reserved == 0
                and self.number <= psci_c.PSCI_FUNCTION_NUMBER_MAX)

    @property
    def is_arch(self) -> bool:
        # Arm Architecture Calls are all SMC32 fast calls.
        return self.fast and not self.smc64 and self.owner == OWNER_ARCH and self.reserved == 0


# Owner names for calls nobody here answers (DEN0028 "Owning Entity Number"):
# 48-49 Trusted Application calls, 50-63 Trusted OS calls.
_OWNER_NAMES = {OWNER_ARCH: "Arm", OWNER_CPU: "CPU", OWNER_SIP: "SiP", OWNER_OEM: "OEM",
                OWNER_STANDARD_SECURE: "standard secure", OWNER_STANDARD_HYP: "standard hyp",
                OWNER_VENDOR_HYP: "vendor hyp"}
OWNER_TRUSTED_APP, OWNER_TRUSTED_OS = 48, 50
# PSCI's function names from its constants (CPU_ON_64 -> CPU_ON): one table for both conventions.
_PSCI_NAMES = {value: name.removesuffix("_32").removesuffix("_64")
               for name, value in vars(psci_c).items()
               if name.isupper() and isinstance(value, int) and value >> 24 in (0x84, 0xC4)}


def describe_call(x0: int) -> str:
    """A call's name as a person reads it in a trace: the PSCI or Arm architecture call,
    else its owner and ID (e.g. "SiP 0xc2000001"). For calls made to firmware other
    than this one (the guest's own at EL3, --secure), which the trace shows by name."""
    fid = FunctionId.decode(x0)
    if fid.is_psci and fid.raw in _PSCI_NAMES:
        return _PSCI_NAMES[fid.raw]
    if fid.is_arch and fid.raw in _ARCH_NAMES:
        return _ARCH_NAMES[fid.raw]
    if not fid.fast:
        return f"yielding {fid.raw:#010x}"
    if fid.owner >= OWNER_TRUSTED_OS:
        owner = "trusted OS"
    elif fid.owner >= OWNER_TRUSTED_APP:
        owner = "trusted app"
    else:
        owner = _OWNER_NAMES.get(fid.owner, f"owner {fid.owner}")
    return f"{owner} {fid.raw:#010x}"


def to_register(value: int) -> int:
    """A result as the 64-bit register value: negatives become two's complement."""
    return value & MASK64


class Firmware:
    """The EL3 firmware the machine calls on every SMC, and on core power events."""

    def __init__(self, platform: PsciPlatform, trace: TraceBus,
                 psci_version: tuple[int, int] = (1, 1)):
        self._platform = platform
        self._trace = trace
        self._machine = PowerStateMachine(platform.cpu_count, trace,
                                          cluster_of=lambda cpu: platform.mpidr_of(cpu) >> 8)
        try:
            self._psci = PsciService(platform, self._machine, trace, tuple(psci_version))
        except ValueError as exc:
            raise ArmvisorError(str(exc)) from exc

    @property
    def psci_version(self) -> tuple[int, int]:
        return self._psci.version

    @property
    def power(self) -> PowerStateMachine:
        """The state machine, for diagnostics (domain states, locks)."""
        return self._machine

    # -- machine-facing lifecycle -----------------------------------------------------

    def cold_boot(self, boot_cpu: int = 0) -> None:
        """The boot core is ON, every other core OFF (also after SYSTEM_RESET)."""
        self._machine.reset(boot_cpu)

    def warm_boot_finished(self, cpu: int) -> None:
        """A core started by CPU_ON, or resuming from a power-down suspend, runs its
        first instruction (TF-A psci_warmboot_entrypoint). TF-A panics for an OFF
        core; so do we. Repeating it for a core already ON does nothing."""
        state = self._machine.state_of(cpu)
        if state is PowerState.OFF:
            raise PsciStateError(f"cpu{cpu} warm-booted but PSCI has it OFF")
        if state is not PowerState.ON:
            # No lock here: TF-A only takes the lock as a rendezvous with
            # cpu_on_start, which wrote ON_PENDING before powering the core.
            self._machine.transition(cpu, PowerState.ON)

    def wake(self, cpu: int) -> bool:
        """A wake-up event reached `cpu`. Returns True when it left a suspend state."""
        if self._machine.state_of(cpu) in (PowerState.STANDBY, PowerState.POWERDOWN):
            self._machine.transition(cpu, PowerState.ON)
            return True
        return False

    def state_of(self, cpu: int) -> PowerState:
        return self._machine.state_of(cpu)

    # -- snapshots -------------------------------------------------------------------

    def save_state(self) -> dict:
        """The power state machine is all the firmware holds: SMCCC and PSCI
        answers are fixed by the version, migrate info is a constant."""
        return {"psci_version": list(self._psci.version), "power": self._machine.save_state()}

    def restore_state(self, state: dict) -> None:
        if tuple(state["psci_version"]) != self._psci.version:
            saved, mine = state["psci_version"], self._psci.version
            raise ValueError(f"the snapshot's firmware speaks PSCI {saved[0]}.{saved[1]}, "
                             f"this one {mine[0]}.{mine[1]}")
        self._machine.restore_state(state["power"])

    # -- the SMC door ------------------------------------------------------------------

    def smc(self, cpu: int, regs: Sequence[int]) -> Optional[list[int]]:
        """Handle an SMC from `cpu` with x0..x7 = `regs`.

        Returns the new x0..x3 (x1..x3 as the caller left them unless a call
        produces them), or None when the call does not return to the caller.
        """
        x = [r & MASK64 for r in regs[:8]] + [0] * max(0, 8 - len(regs))
        self._ensure_running(cpu)
        fid = FunctionId.decode(x[0])
        args = [r & MASK32 for r in x[1:]] if not fid.smc64 else x[1:]
        if fid.is_psci:
            result = self._psci.call(cpu, fid.raw, args)
        elif fid.is_arch:
            result = self._arch_call(cpu, fid.raw, args, x)
        else:
            self._trace.emit("smccc.call", cpu, function=f"unknown({fid.raw:#x})",
                             fid=fid.raw, owner=fid.owner, result=SMCCC_NOT_SUPPORTED)
            result = SMCCC_NOT_SUPPORTED
        if result is None:
            return None
        if isinstance(result, list):
            return result
        return [to_register(int(result)), x[1], x[2], x[3]]

    def _ensure_running(self, cpu: int) -> None:
        """A core that executes an SMC is running, whatever the machine told us."""
        state = self._machine.state_of(cpu)
        if state is PowerState.OFF:
            raise PsciStateError(f"cpu{cpu} made an SMC but PSCI has it OFF")
        if state is PowerState.ON_PENDING:
            self.warm_boot_finished(cpu)
        elif state is not PowerState.ON:
            self.wake(cpu)

    def _arch_call(self, cpu: int, fid: int, args: Sequence[int], x: list[int]) -> int | list[int]:
        name = _ARCH_NAMES.get(fid, f"unknown({fid:#x})")
        result: int | list[int]
        if fid == SMCCC_VERSION:
            result = SMCCC_VERSION_WORD
        elif fid == SMCCC_ARCH_FEATURES:
            result = _ARCH_FEATURES.get(args[0] & MASK32, SMCCC_NOT_SUPPORTED)
        elif fid in (SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3):
            result = x[:4]
        else:
            result = SMCCC_NOT_SUPPORTED
        self._trace.emit("smccc.call", cpu, function=name, fid=fid, args=tuple(args[:1]),
                         result=result if isinstance(result, int) else None)
        return result
