"""Virtual PSCI for one VM, with KVM's semantics (Linux arch/arm64/kvm/psci.c
and hypercalls.c), not the EL3 firmware's.

What a guest sees here, and why it differs from the firmware (TF-A rules):
- A vCPU is either OFF or ON. KVM has no ON_PENDING: CPU_ON stages the
  target's reset and marks it runnable in one step under a lock, so of
  several racing CPU_ONs for one vCPU exactly one gets SUCCESS and the
  others ALREADY_ON (kvm_psci_vcpu_on, under vcpu->arch.mp_state_lock).
- CPU_SUSPEND is WFI (kvm_psci_vcpu_suspend): power_state is not looked at,
  standby and power-down both keep the registers and return SUCCESS after
  the wake-up. KVM does no power_state validation, so neither do we.
- CPU_ON checks the entry point against the VM's RAM and answers
  INVALID_ADDRESS: stricter than KVM, which starts the vCPU anywhere and
  lets it fault. A guest that passes a bad address gets told, as on TF-A.
- Every result is x0 with x1..x3 zeroed (KVM's smccc_set_retval(val, 0, 0, 0)).
- SYSTEM_OFF / SYSTEM_RESET / SYSTEM_RESET2 stop every vCPU of the VM first
  (kvm_prepare_system_event) and do not return. After a reset the caller
  (the hypervisor) reboots the VM with `reset()`.
- MIGRATE and MIGRATE_INFO_UP_CPU are NOT_SUPPORTED, as KVM's switch has no
  case for them; MIGRATE_INFO_TYPE says 2 (no Trusted OS needing migration).
- SMCCC_ARCH_FEATURES answers the Spectre workarounds as this machine's EL3
  firmware does ("not required"): no instruction runs speculatively here,
  and the guest should not see a different story under the hypervisor.
- SMC32 calls see their arguments narrowed to 32 bits, as the EL3 firmware
  does (KVM narrows x1..x3 of the 32-bit calls: kvm_psci_narrow_to_32bit).
"""

from __future__ import annotations

import enum
import threading
from typing import Callable, Optional, Protocol, Sequence, Union

from armvisor.firmware.psci import constants as psci_c
from armvisor.firmware.psci.constants import AffinityInfo, MigrateInfoType, PsciReturn
from armvisor.firmware.smccc import (
    MASK32,
    MASK64,
    SMCCC_ARCH_FEATURES,
    SMCCC_ARCH_WORKAROUND_1,
    SMCCC_ARCH_WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3,
    SMCCC_NOT_REQUIRED,
    SMCCC_NOT_SUPPORTED,
    SMCCC_SUCCESS,
    SMCCC_VERSION,
    SMCCC_VERSION_WORD,
    SMCCC_WORKAROUND_NOT_NEEDED_HERE,
    FunctionId,
    to_register,
)
from armvisor.trace.bus import TraceBus

# MPIDR_EL1 affinity fields, DDI0487 D23.2 "MPIDR_EL1": Aff3 [39:32], Aff2
# [23:16], Aff1 [15:8], Aff0 [7:0]. Linux calls this MPIDR_HWID_BITMASK; any
# other bit set in a target makes KVM answer INVALID_PARAMETERS.
MPIDR_HWID_BITMASK = 0xFF_00FF_FFFF
MPIDR_LEVEL_BITS = 8
# AFFINITY_INFO lowest_affinity_level 0..3 (DEN0022D ch.5 "AFFINITY_INFO").
MAX_AFFINITY_LEVEL = 3

# What PSCI_VERSION says: 1.1, the version KVM gives a new VM by default.
VPSCI_VERSION_WORD = psci_c.version_word(1, 1)

# PSCI_FEATURES: the functions KVM's kvm_psci_1_x_call reports implemented
# with PSCI 1.1 (SYSTEM_SUSPEND only when userspace enabled it; not here).
# CPU_SUSPEND's flags are 0: original power_state format, platform-coordinated.
_ADVERTISED = frozenset({
    psci_c.PSCI_VERSION, psci_c.CPU_SUSPEND_32, psci_c.CPU_SUSPEND_64, psci_c.CPU_OFF,
    psci_c.CPU_ON_32, psci_c.CPU_ON_64, psci_c.AFFINITY_INFO_32, psci_c.AFFINITY_INFO_64,
    psci_c.MIGRATE_INFO_TYPE, psci_c.SYSTEM_OFF, psci_c.SYSTEM_RESET, psci_c.PSCI_FEATURES,
    SMCCC_VERSION, psci_c.SYSTEM_RESET2_32, psci_c.SYSTEM_RESET2_64,
})

# SMCCC_ARCH_FEATURES answers, the same as the EL3 firmware's (smccc.py docstring).
_ARCH_FEATURES = {
    SMCCC_VERSION: SMCCC_SUCCESS,
    SMCCC_ARCH_FEATURES: SMCCC_SUCCESS,
    SMCCC_ARCH_WORKAROUND_1: SMCCC_WORKAROUND_NOT_NEEDED_HERE,
    SMCCC_ARCH_WORKAROUND_2: SMCCC_NOT_REQUIRED,
    SMCCC_ARCH_WORKAROUND_3: SMCCC_WORKAROUND_NOT_NEEDED_HERE,
}

_WORKAROUNDS = frozenset({SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2,
                          SMCCC_ARCH_WORKAROUND_3})

# A handler's outcome: x0 (x1..x3 become 0), the full x0..x3, or None when
# the caller does not return.
_Outcome = Union[int, list, None]


class VcpuPower(enum.Enum):
    """A vCPU's PSCI power state. KVM has no ON_PENDING (see the module docstring)."""

    OFF = "off"
    ON = "on"


class VpsciActions(Protocol):
    """What the hypervisor does when the guest changes power states."""

    def start_vcpu(self, vcpu: int, entry: int, context_id: int) -> None:
        """Reset the vCPU's core: PC = entry, EL1h, MMU off, DAIF masked,
        x0 = context_id, caller's endianness; then make it runnable. Called
        under the VM's lock, before `state_of(vcpu)` turns ON (KVM stages
        the reset before it publishes RUNNABLE)."""

    def stop_vcpu(self, vcpu: int) -> None:
        """The calling vCPU stops (CPU_OFF); `state_of` is already OFF."""

    def wait_for_interrupt(self, vcpu: int) -> None:
        """CPU_SUSPEND: block the vCPU as for WFI. `call` returns the result
        registers (SUCCESS) right after, to be written before it blocks."""

    def system_off(self) -> None:
        """SYSTEM_OFF: the VM ends (every vCPU is already OFF)."""

    def system_reset(self) -> None:
        """SYSTEM_RESET(2): the VM restarts; the hypervisor calls `reset()`."""


class VirtualPsci:
    """PSCI 1.1 and the SMCCC 1.1 architecture calls for the vCPUs of one VM."""

    def __init__(self, vcpu_count: int, mpidr_of: Callable[[int], int], actions: VpsciActions,
                 entry_valid: Callable[[int], bool], trace: Optional[TraceBus] = None,
                 vm: str = "vm0",
                 unlocked_cpu_on: Optional[Callable[[int, int, int, int], bool]] = None):
        if vcpu_count < 1:
            raise ValueError(f"a VM needs at least one vCPU, not {vcpu_count}")
        self._count = vcpu_count
        self._actions = actions
        self._entry_valid = entry_valid
        self._trace = trace
        self._vm = vm
        self._mpidr = [mpidr_of(i) & MPIDR_HWID_BITMASK for i in range(vcpu_count)]
        self._vcpu_of_mpidr = {mpidr: i for i, mpidr in enumerate(self._mpidr)}
        if len(self._vcpu_of_mpidr) != vcpu_count:
            raise ValueError(f"{vm}: two vCPUs share an MPIDR")
        # The VM's lock (KVM: kvm->lock, now per-vCPU mp_state_lock). Reentrant
        # so that an action may read state_of() without deadlocking.
        self._lock = threading.RLock()
        # Planted bug "vpsci-unlocked" (machine/planted.py): asked after the
        # check, True when the change is left for later, outside the lock.
        self._unlocked_cpu_on = unlocked_cpu_on
        self._power = [VcpuPower.OFF] * vcpu_count
        self._handlers: dict[int, tuple[str, int, Callable[[int, Sequence[int]], _Outcome]]] = {
            # fid: (name, how many of x1.. it reads, handler)
            psci_c.PSCI_VERSION: ("PSCI_VERSION", 0, self._version),
            psci_c.CPU_SUSPEND_32: ("CPU_SUSPEND", 3, self._cpu_suspend),
            psci_c.CPU_SUSPEND_64: ("CPU_SUSPEND", 3, self._cpu_suspend),
            psci_c.CPU_OFF: ("CPU_OFF", 0, self._cpu_off),
            psci_c.CPU_ON_32: ("CPU_ON", 3, self._cpu_on),
            psci_c.CPU_ON_64: ("CPU_ON", 3, self._cpu_on),
            psci_c.AFFINITY_INFO_32: ("AFFINITY_INFO", 2, self._affinity_info),
            psci_c.AFFINITY_INFO_64: ("AFFINITY_INFO", 2, self._affinity_info),
            psci_c.MIGRATE_32: ("MIGRATE", 1, self._not_supported),
            psci_c.MIGRATE_64: ("MIGRATE", 1, self._not_supported),
            psci_c.MIGRATE_INFO_TYPE: ("MIGRATE_INFO_TYPE", 0, self._migrate_info_type),
            psci_c.MIGRATE_INFO_UP_CPU_32: ("MIGRATE_INFO_UP_CPU", 0, self._not_supported),
            psci_c.MIGRATE_INFO_UP_CPU_64: ("MIGRATE_INFO_UP_CPU", 0, self._not_supported),
            psci_c.SYSTEM_OFF: ("SYSTEM_OFF", 0, self._system_off),
            psci_c.SYSTEM_RESET: ("SYSTEM_RESET", 0, self._system_reset),
            psci_c.SYSTEM_RESET2_32: ("SYSTEM_RESET2", 2, self._system_reset2),
            psci_c.SYSTEM_RESET2_64: ("SYSTEM_RESET2", 2, self._system_reset2),
            psci_c.PSCI_FEATURES: ("PSCI_FEATURES", 1, self._psci_features),
            SMCCC_VERSION: ("SMCCC_VERSION", 0, self._smccc_version),
            SMCCC_ARCH_FEATURES: ("SMCCC_ARCH_FEATURES", 1, self._arch_features),
            # The workarounds are answered in call() (no-ops); listed for their names.
            SMCCC_ARCH_WORKAROUND_1: ("SMCCC_ARCH_WORKAROUND_1", 0, self._not_supported),
            SMCCC_ARCH_WORKAROUND_2: ("SMCCC_ARCH_WORKAROUND_2", 1, self._not_supported),
            SMCCC_ARCH_WORKAROUND_3: ("SMCCC_ARCH_WORKAROUND_3", 0, self._not_supported),
        }
        self.reset()

    # -- the hypervisor's side ---------------------------------------------------------

    @property
    def vcpu_count(self) -> int:
        return self._count

    def state_of(self, vcpu: int) -> VcpuPower:
        self._check_vcpu(vcpu)
        return self._power[vcpu]

    def reset(self) -> None:
        """VM (re)boot: vCPU 0 ON, every other vCPU OFF."""
        with self._lock:
            for vcpu in range(self._count):
                self._set_power(vcpu, VcpuPower.ON if vcpu == 0 else VcpuPower.OFF)

    def save_state(self) -> dict:
        """Each vCPU's power state is all there is: CPU_ON has no pending state
        (it completes under the lock), and the lock is only held inside a call."""
        return {"power": [power.value for power in self._power]}

    def restore_state(self, state: dict) -> None:
        power = state["power"]
        if len(power) != self._count:
            raise ValueError(f"the snapshot's {self._vm} has {len(power)} vCPUs, "
                             f"this one {self._count}")
        self._power = [VcpuPower(value) for value in power]

    def call(self, vcpu: int, regs: Sequence[int]) -> Optional[list[int]]:
        """An HVC (or trapped SMC) from `vcpu` with x0..x7 = `regs`.

        Returns the new x0..x3, or None when the call does not return to the
        caller (CPU_OFF, SYSTEM_OFF, SYSTEM_RESET, SYSTEM_RESET2).
        """
        self._check_vcpu(vcpu)
        x = [r & MASK64 for r in regs[:8]] + [0] * max(0, 8 - len(regs))
        fid = FunctionId.decode(x[0])
        args = x[1:] if fid.smc64 else [a & MASK32 for a in x[1:]]
        name, argc, handler = self._handlers.get(
            fid.raw, (f"unknown({fid.raw:#x})", 0, self._not_supported))
        outcome: _Outcome
        if self._trace is not None:
            self._trace.emit("vpsci.enter", vcpu, vm=self._vm, function=name)
        if fid.raw in _WORKAROUNDS:
            # Nothing to mitigate: the call leaves every register as it was, as
            # the EL3 firmware's does.
            outcome = x[:4]
        else:
            outcome = handler(vcpu, args)
        if self._trace is not None:
            result = None if outcome is None else \
                int(outcome[0] if isinstance(outcome, list) else outcome)
            extra = {}
            if name.startswith("CPU_ON") and result == PsciReturn.SUCCESS:
                extra["target"] = self._vcpu_of_mpidr.get(args[0])    # for CPU_ON's flow
            # On the calling vCPU's track: `cpu` is the vCPU, `vm` says whose.
            self._trace.emit("vpsci.call", vcpu, vm=self._vm, vcpu=vcpu, function=name,
                             args=tuple(args[:argc]), result=result, **extra)
        if outcome is None:
            return None
        if isinstance(outcome, list):
            return outcome
        return [to_register(int(outcome)), 0, 0, 0]

    # -- helpers -----------------------------------------------------------------------

    def _check_vcpu(self, vcpu: int) -> None:
        if not 0 <= vcpu < self._count:
            raise ValueError(f"{self._vm} has no vCPU {vcpu}")

    def _set_power(self, vcpu: int, new: VcpuPower) -> None:
        old = self._power[vcpu]
        if old is new:
            return
        self._power[vcpu] = new
        if self._trace is not None:
            self._trace.emit("vcpu.power", vcpu, vm=self._vm, vcpu=vcpu,
                             old=old.value, new=new.value)

    def _stop_all(self) -> None:
        """kvm_prepare_system_event: no vCPU runs again until the VM is re-initialised."""
        for vcpu in range(self._count):
            self._set_power(vcpu, VcpuPower.OFF)

    @staticmethod
    def _valid_affinity(mpidr: int) -> bool:
        return not mpidr & ~MPIDR_HWID_BITMASK

    # -- the functions -----------------------------------------------------------------

    def _not_supported(self, vcpu: int, args: Sequence[int]) -> int:
        return PsciReturn.NOT_SUPPORTED

    def _version(self, vcpu: int, args: Sequence[int]) -> int:
        return VPSCI_VERSION_WORD

    def _cpu_suspend(self, vcpu: int, args: Sequence[int]) -> int:
        # Standby or power-down: a WFI that keeps the registers, as KVM does.
        # Reserved power_state bits are refused (DEN0022 allows it; KVM does
        # not check, and a guest probing the error would sleep forever).
        if args[0] & psci_c.POWER_STATE_RESERVED_MASK:
            return PsciReturn.INVALID_PARAMETERS
        self._actions.wait_for_interrupt(vcpu)
        return PsciReturn.SUCCESS

    def _cpu_off(self, vcpu: int, args: Sequence[int]) -> None:
        # Even the last ON vCPU may go: KVM leaves such a VM idle, not ended.
        with self._lock:
            self._set_power(vcpu, VcpuPower.OFF)
            self._actions.stop_vcpu(vcpu)
        return None

    def _cpu_on(self, vcpu: int, args: Sequence[int]) -> int:
        target_mpidr, entry, context_id = args[0], args[1], args[2]
        if not self._valid_affinity(target_mpidr):
            return PsciReturn.INVALID_PARAMETERS
        target = self._vcpu_of_mpidr.get(target_mpidr)
        if target is None:
            return PsciReturn.INVALID_PARAMETERS
        # Stricter than KVM (which lets the new vCPU fault); checked before the
        # power state, in TF-A's order.
        if not self._entry_valid(entry):
            return PsciReturn.INVALID_ADDRESS
        if self._unlocked_cpu_on is not None and self._power[target] is VcpuPower.OFF and \
                self._unlocked_cpu_on(vcpu, target, entry, context_id):
            return PsciReturn.SUCCESS         # checked; started by finish_cpu_on, later
        # The check and the change are one step under the VM lock: there is no
        # window in which a second caller could also see the target OFF.
        with self._lock:
            if self._power[target] is VcpuPower.ON:
                return PsciReturn.ALREADY_ON
            self._actions.start_vcpu(target, entry, context_id)
            self._set_power(target, VcpuPower.ON)
        return PsciReturn.SUCCESS

    def finish_cpu_on(self, target: int, entry: int, context_id: int) -> None:
        """Planted bug: the second half of an unlocked CPU_ON. A second caller that also
        saw the target OFF restarts it here: the double start a lock prevents."""
        self._actions.start_vcpu(target, entry, context_id)
        self._set_power(target, VcpuPower.ON)

    def _affinity_info(self, vcpu: int, args: Sequence[int]) -> int:
        target, level = args[0], args[1]
        if not self._valid_affinity(target) or level > MAX_AFFINITY_LEVEL:
            return PsciReturn.INVALID_PARAMETERS
        # Affinity fields below `level` are ignored: every vCPU of that group counts.
        mask = MPIDR_HWID_BITMASK & ~((1 << (level * MPIDR_LEVEL_BITS)) - 1)
        target &= mask
        matching = [i for i, mpidr in enumerate(self._mpidr) if mpidr & mask == target]
        if not matching:
            return PsciReturn.INVALID_PARAMETERS
        with self._lock:
            on = any(self._power[i] is VcpuPower.ON for i in matching)
        return AffinityInfo.ON if on else AffinityInfo.OFF

    def _migrate_info_type(self, vcpu: int, args: Sequence[int]) -> int:
        return MigrateInfoType.NOT_PRESENT_OR_MP

    def _system_off(self, vcpu: int, args: Sequence[int]) -> None:
        with self._lock:
            self._stop_all()
        self._actions.system_off()
        return None

    def _system_reset(self, vcpu: int, args: Sequence[int]) -> None:
        with self._lock:
            self._stop_all()
        self._actions.system_reset()
        return None

    def _system_reset2(self, vcpu: int, args: Sequence[int]) -> Optional[int]:
        # reset_type is a 32-bit parameter in both conventions (KVM: u32 arg).
        reset_type = args[0] & MASK32
        if reset_type != psci_c.RESET2_SYSTEM_WARM_RESET and not reset_type & psci_c.RESET2_VENDOR_BIT:
            return PsciReturn.INVALID_PARAMETERS
        # A vendor reset is a plain reset for a VM, as in KVM.
        return self._system_reset(vcpu, args)

    def _psci_features(self, vcpu: int, args: Sequence[int]) -> int:
        fid = args[0] & MASK32
        return PsciReturn.SUCCESS if fid in _ADVERTISED else PsciReturn.NOT_SUPPORTED

    def _smccc_version(self, vcpu: int, args: Sequence[int]) -> int:
        return SMCCC_VERSION_WORD

    def _arch_features(self, vcpu: int, args: Sequence[int]) -> int:
        return _ARCH_FEATURES.get(args[0] & MASK32, SMCCC_NOT_SUPPORTED)
