"""MIGRATE, MIGRATE_INFO_TYPE, MIGRATE_INFO_UP_CPU (DEN0022D ch.5, same-named sections).

No Trusted OS is modelled. MIGRATE_INFO_TYPE therefore says 2 ("not present
or does not need migration"); the spec leaves MIGRATE_INFO_UP_CPU undefined
in that case and TF-A without a Secure Payload Dispatcher does not implement
it, nor MIGRATE, so both answer NOT_SUPPORTED and PSCI_FEATURES agrees.
"""

from __future__ import annotations

from armvisor.firmware.psci.constants import MigrateInfoType, PsciReturn


def migrate(target_cpu: int) -> int:
    del target_cpu
    return PsciReturn.NOT_SUPPORTED


def migrate_info_type() -> int:
    return MigrateInfoType.NOT_PRESENT_OR_MP


def migrate_info_up_cpu() -> int:
    return PsciReturn.NOT_SUPPORTED
