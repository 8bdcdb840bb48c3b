"""The PSCI frontend: the function table and argument narrowing (TF-A psci_smc_handler).

It knows which functions exist at the configured PSCI version and which of
their parameters are 32-bit even in the SMC64 form (power_state,
lowest_affinity_level, reset_type: TF-A casts them to unsigned int). SMC32
truncation of every argument has already been done by the SMCCC dispatcher.
"""

from __future__ import annotations

from typing import Optional, Sequence

from armvisor.firmware.psci import constants as c
from armvisor.firmware.psci.affinity_info import affinity_info
from armvisor.firmware.psci.common import MASK32, Outcome, PsciFunction, cpu_index
from armvisor.firmware.psci.cpu_off import cpu_off
from armvisor.firmware.psci.cpu_on import cpu_on
from armvisor.firmware.psci.cpu_suspend import cpu_suspend
from armvisor.firmware.psci.features import psci_features
from armvisor.firmware.psci.migrate import migrate, migrate_info_type, migrate_info_up_cpu
from armvisor.firmware.psci.platform import PsciPlatform
from armvisor.firmware.psci.state import PowerStateMachine
from armvisor.firmware.psci.system_power import system_off, system_reset, system_reset2
from armvisor.firmware.psci.system_suspend import system_suspend
from armvisor.trace.bus import TraceBus

V0_2, V1_0, V1_1 = (0, 2), (1, 0), (1, 1)

# CPU_SUSPEND feature flags: original power_state format, platform-coordinated
# mode only (no OS-initiated mode), DEN0022D ch.5 "PSCI_FEATURES".
CPU_SUSPEND_FEATURES = 0


class PsciService:
    def __init__(self, platform: PsciPlatform, machine: PowerStateMachine, trace: TraceBus,
                 version: tuple[int, int]):
        if version not in c.SUPPORTED_VERSIONS:
            raise ValueError(f"PSCI version {version[0]}.{version[1]} is not one of "
                             + ", ".join(f"{a}.{b}" for a, b in c.SUPPORTED_VERSIONS))
        self.version = version
        self._platform = platform
        self._machine = machine
        self._trace = trace
        self._table = {f.fid: f for f in self._functions() if f.since <= version}

    def lookup(self, fid: int) -> Optional[PsciFunction]:
        return self._table.get(fid)

    def call(self, cpu: int, fid: int, args: Sequence[int]) -> Outcome:
        """Run PSCI function `fid` for `cpu`; unknown IDs answer NOT_SUPPORTED."""
        function = self._table.get(fid)
        if function is None:
            self._trace.emit("psci.call", cpu, function=f"unknown({fid:#x})", fid=fid,
                             args=(), result=int(c.PsciReturn.NOT_SUPPORTED))
            return c.PsciReturn.NOT_SUPPORTED
        used = tuple(args[:function.argc])
        result: Outcome = None
        # The entry gives the call a duration (psci.call comes on return) and
        # places it before the power changes it causes.
        self._trace.emit("psci.enter", cpu, function=function.name)
        try:
            result = function.handler(cpu, used)
        finally:
            # Emitted even when a no-return platform call unwinds the stack,
            # so the trace still shows what the guest asked for.
            extra = {}
            if function.name.startswith("CPU_ON") and result == c.PsciReturn.SUCCESS:
                extra["target"] = cpu_index(self._platform, used[0])   # for CPU_ON's flow
            self._trace.emit("psci.call", cpu, function=function.name, fid=fid, args=used,
                             result=None if result is None else int(result), **extra)
        return result

    def _functions(self) -> list[PsciFunction]:
        p, m = self._platform, self._machine

        def fn(fid: int, name: str, argc: int, handler, since=V0_2, **kw) -> PsciFunction:
            return PsciFunction(fid, name, argc, handler, since, **kw)

        version_word = c.version_word(*self.version)
        on = lambda cpu, a: cpu_on(p, m, cpu, a[0], a[1], a[2])
        suspend = lambda cpu, a: cpu_suspend(p, m, cpu, a[0] & MASK32, a[1], a[2])
        info = lambda cpu, a: affinity_info(p, m, a[0], a[1] & MASK32)
        sys_suspend = lambda cpu, a: system_suspend(p, m, cpu, a[0], a[1])
        reset2 = lambda cpu, a: system_reset2(p, a[0] & MASK32, a[1])
        return [
            fn(c.PSCI_VERSION, "PSCI_VERSION", 0, lambda cpu, a: version_word),
            fn(c.CPU_SUSPEND_32, "CPU_SUSPEND", 3, suspend, feature_flags=CPU_SUSPEND_FEATURES),
            fn(c.CPU_SUSPEND_64, "CPU_SUSPEND", 3, suspend, feature_flags=CPU_SUSPEND_FEATURES),
            fn(c.CPU_OFF, "CPU_OFF", 0, lambda cpu, a: cpu_off(p, m, cpu)),
            fn(c.CPU_ON_32, "CPU_ON", 3, on),
            fn(c.CPU_ON_64, "CPU_ON", 3, on),
            fn(c.AFFINITY_INFO_32, "AFFINITY_INFO", 2, info),
            fn(c.AFFINITY_INFO_64, "AFFINITY_INFO", 2, info),
            fn(c.MIGRATE_32, "MIGRATE", 1, lambda cpu, a: migrate(a[0]), advertised=False),
            fn(c.MIGRATE_64, "MIGRATE", 1, lambda cpu, a: migrate(a[0]), advertised=False),
            fn(c.MIGRATE_INFO_TYPE, "MIGRATE_INFO_TYPE", 0, lambda cpu, a: migrate_info_type()),
            fn(c.MIGRATE_INFO_UP_CPU_32, "MIGRATE_INFO_UP_CPU", 0,
               lambda cpu, a: migrate_info_up_cpu(), advertised=False),
            fn(c.MIGRATE_INFO_UP_CPU_64, "MIGRATE_INFO_UP_CPU", 0,
               lambda cpu, a: migrate_info_up_cpu(), advertised=False),
            fn(c.SYSTEM_OFF, "SYSTEM_OFF", 0, lambda cpu, a: system_off(p)),
            fn(c.SYSTEM_RESET, "SYSTEM_RESET", 0, lambda cpu, a: system_reset(p)),
            fn(c.PSCI_FEATURES, "PSCI_FEATURES", 1,
               lambda cpu, a: psci_features(a[0], self.lookup), since=V1_0),
            fn(c.SYSTEM_SUSPEND_32, "SYSTEM_SUSPEND", 2, sys_suspend, since=V1_0),
            fn(c.SYSTEM_SUSPEND_64, "SYSTEM_SUSPEND", 2, sys_suspend, since=V1_0),
            fn(c.SYSTEM_RESET2_32, "SYSTEM_RESET2", 2, reset2, since=V1_1),
            fn(c.SYSTEM_RESET2_64, "SYSTEM_RESET2", 2, reset2, since=V1_1),
        ]
