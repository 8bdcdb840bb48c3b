"""PSCI numbers: function IDs, return codes, power_state fields (Arm DEN0022D).

Section references are to DEN0022D (PSCI 1.1); "ch.5" is "PSCI functions".
"""

from __future__ import annotations

from enum import IntEnum

# Function IDs, DEN0022D ch.5 "Function IDs" table. SMC32 = 0x84..., SMC64 = 0xC4...
PSCI_VERSION = 0x8400_0000
CPU_SUSPEND_32 = 0x8400_0001
CPU_SUSPEND_64 = 0xC400_0001
CPU_OFF = 0x8400_0002
CPU_ON_32 = 0x8400_0003
CPU_ON_64 = 0xC400_0003
AFFINITY_INFO_32 = 0x8400_0004
AFFINITY_INFO_64 = 0xC400_0004
MIGRATE_32 = 0x8400_0005
MIGRATE_64 = 0xC400_0005
MIGRATE_INFO_TYPE = 0x8400_0006
MIGRATE_INFO_UP_CPU_32 = 0x8400_0007
MIGRATE_INFO_UP_CPU_64 = 0xC400_0007
SYSTEM_OFF = 0x8400_0008
SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
CPU_FREEZE = 0x8400_000B
CPU_DEFAULT_SUSPEND_32 = 0x8400_000C
CPU_DEFAULT_SUSPEND_64 = 0xC400_000C
NODE_HW_STATE_32 = 0x8400_000D
NODE_HW_STATE_64 = 0xC400_000D
SYSTEM_SUSPEND_32 = 0x8400_000E
SYSTEM_SUSPEND_64 = 0xC400_000E
PSCI_SET_SUSPEND_MODE = 0x8400_000F
PSCI_STAT_RESIDENCY_32 = 0x8400_0010
PSCI_STAT_RESIDENCY_64 = 0xC400_0010
PSCI_STAT_COUNT_32 = 0x8400_0011
PSCI_STAT_COUNT_64 = 0xC400_0011
SYSTEM_RESET2_32 = 0x8400_0012
SYSTEM_RESET2_64 = 0xC400_0012
MEM_PROTECT = 0x8400_0013
MEM_PROTECT_CHECK_RANGE_32 = 0x8400_0014
MEM_PROTECT_CHECK_RANGE_64 = 0xC400_0014

# PSCI owns function numbers 0x00-0x1F of the standard secure service
# (SMCCC DEN0028 "Standard Secure Service Calls" range table).
PSCI_FUNCTION_NUMBER_MAX = 0x1F


class PsciReturn(IntEnum):
    """Return codes, DEN0022D ch.5 "Return error codes"."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    ALREADY_ON = -4
    ON_PENDING = -5
    INTERNAL_FAILURE = -6
    NOT_PRESENT = -7
    DISABLED = -8
    INVALID_ADDRESS = -9


class AffinityInfo(IntEnum):
    """AFFINITY_INFO results, DEN0022D ch.5 "AFFINITY_INFO"."""

    ON = 0
    OFF = 1
    ON_PENDING = 2


class MigrateInfoType(IntEnum):
    """MIGRATE_INFO_TYPE results, DEN0022D ch.5 "MIGRATE_INFO_TYPE"."""

    UP_MIGRATE_CAPABLE = 0
    UP_NOT_MIGRATE_CAPABLE = 1
    NOT_PRESENT_OR_MP = 2       # no Trusted OS, or one that needs no migration


# CPU_SUSPEND power_state, original format (DEN0022D ch.5 "CPU_SUSPEND",
# power_state parameter table; the format PSCI 0.2 defined).
POWER_STATE_ID_MASK = 0x0000_FFFF          # StateID [15:0], platform-defined
POWER_STATE_TYPE_SHIFT = 16                # StateType [16]: 0 standby, 1 power-down
POWER_STATE_TYPE_STANDBY = 0
POWER_STATE_TYPE_POWERDOWN = 1
POWER_STATE_LEVEL_SHIFT = 24               # PowerLevel [25:24]
POWER_STATE_LEVEL_MASK = 0x3
POWER_STATE_RESERVED_MASK = 0xFCFE_0000    # [31:26] and [23:17] must be zero

# PSCI_FEATURES flags for CPU_SUSPEND, DEN0022D ch.5 "PSCI_FEATURES".
FEATURE_CPU_SUSPEND_OSI_MODE = 1 << 0       # OS-initiated mode supported
FEATURE_CPU_SUSPEND_EXTENDED_STATEID = 1 << 1  # extended power_state format

# SYSTEM_RESET2 reset_type, DEN0022D ch.5 "SYSTEM_RESET2".
RESET2_VENDOR_BIT = 1 << 31
RESET2_SYSTEM_WARM_RESET = 0

# Power levels of the modelled topology: core, cluster (QEMU virt's Aff1
# group of up to 16 cores), system.
CPU_POWER_LEVEL = 0
CLUSTER_POWER_LEVEL = 1
SYSTEM_POWER_LEVEL = 2
MAX_POWER_LEVEL = SYSTEM_POWER_LEVEL

# The PSCI versions this firmware can present (VERSION returns major<<16 | minor,
# DEN0022D ch.5 "PSCI_VERSION").
SUPPORTED_VERSIONS = ((0, 2), (1, 0), (1, 1))


def version_word(major: int, minor: int) -> int:
    return (major << 16) | minor
