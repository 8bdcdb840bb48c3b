"""What the PSCI firmware needs from the machine (TF-A's plat_psci_ops, reduced).

The firmware never touches cores or memory itself: it decides, the platform acts.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PsciPlatform(Protocol):
    cpu_count: int

    def mpidr_of(self, cpu: int) -> int:
        """Affinity fields only (Aff3..Aff0), without the RES1 bit 31."""
        ...

    def cpu_of_mpidr(self, mpidr: int) -> int | None:
        """CPU index for an MPIDR, None when no core has it.

        Bits that are not affinity ([63:40], [31:24]) are ignored, as TF-A's
        plat_core_pos_by_mpidr masks with MPIDR_AFFINITY_MASK.
        """
        ...

    def entry_point_valid(self, entry: int) -> bool:
        """True when `entry` lies in non-secure RAM (TF-A validate_ns_entrypoint)."""
        ...

    def power_on(self, cpu: int, entry: int, context_id: int) -> bool:
        """Start `cpu` at `entry` in EL1h, MMU off, DAIF masked, x0 = context_id.

        False means the power controller failed; the firmware then reports
        INTERNAL_FAILURE and leaves the core OFF.
        """
        ...

    def power_off(self, cpu: int) -> None:
        """The calling core stops running (CPU_OFF)."""
        ...

    def suspend_standby(self, cpu: int) -> None:
        """Park the caller until a wake-up event; CPU_SUSPEND then returns 0 in place.

        It may return at once (the machine holds the core as if in WFI); the
        firmware keeps the core in STANDBY until `Firmware.wake` (or the core's
        next SMC) tells it the core runs again.
        """
        ...

    def suspend_powerdown(self, cpu: int, entry: int, context_id: int) -> None:
        """Power the caller down; a wake-up restarts it at `entry` with x0 = context_id."""
        ...

    def system_off(self) -> None:
        ...

    def system_reset(self) -> None:
        ...
