"""SMCCC function-ID decoding and dispatch (DEN0028)."""

from __future__ import annotations

import pytest

from armvisor.firmware import Firmware, FunctionId
from armvisor.firmware import smccc as s
from armvisor.trace import TraceBus



class FakePlatform:
    """Four cores, nothing to start: SMCCC routing never reaches the hardware here."""

    cpu_count = 4

    def mpidr_of(self, cpu: int) -> int:
        return cpu

    def cpu_of_mpidr(self, mpidr: int) -> int | None:
        aff = mpidr & 0xFF_00FF_FFFF
        return aff if aff < self.cpu_count else None

    def entry_point_valid(self, entry: int) -> bool:
        return 0x4000_0000 <= entry < 0x8000_0000

    def power_on(self, cpu: int, entry: int, context_id: int) -> bool:
        return True

    def power_off(self, cpu: int) -> None:
        pass

    def suspend_standby(self, cpu: int) -> None:
        pass

    def suspend_powerdown(self, cpu: int, entry: int, context_id: int) -> None:
        pass

    def system_off(self) -> None:
        pass

    def system_reset(self) -> None:
        pass


NOT_SUPPORTED = (1 << 64) - 1


@pytest.fixture
def trace() -> TraceBus:
    return TraceBus(ring_size=256)


@pytest.fixture
def fw(trace) -> Firmware:
    f = Firmware(FakePlatform(), trace)
    f.cold_boot(0)
    return f


def test_decode_fields():
    f = FunctionId.decode(0xC400_0003)
    assert (f.fast, f.smc64, f.owner, f.reserved, f.number) == (True, True, 4, 0, 3)
    f = FunctionId.decode(0x8000_8000)
    assert (f.fast, f.smc64, f.owner, f.number) == (True, False, 0, 0x8000)
    f = FunctionId.decode(0x3F12_0042)
    assert (f.fast, f.smc64, f.owner, f.reserved, f.number) == (False, False, 0x3F, 0x12, 0x42)


def test_decode_uses_w0_only():
    assert FunctionId.decode((0xDEAD << 32) | 0x8400_0000).raw == 0x8400_0000


@pytest.mark.parametrize("fid,psci,arch", [
    (0x8400_0000, True, False),
    (0xC400_0003, True, False),
    (0x8400_001F, True, False),
    (0x8400_0020, False, False),      # past the PSCI range of the standard service
    (0x0400_0000, False, False),      # yielding call
    (0x8401_0000, False, False),      # reserved bits [23:16] set
    (0x8000_0000, False, True),
    (0xC000_0000, False, False),      # arch calls are SMC32 only
    (0x8200_0000, False, False),      # SiP
])
def test_routing_predicates(fid, psci, arch):
    f = FunctionId.decode(fid)
    assert (f.is_psci, f.is_arch) == (psci, arch)


def test_smccc_version(fw):
    assert fw.smc(0, [s.SMCCC_VERSION, 5, 6, 7]) == [0x10001, 5, 6, 7]


@pytest.mark.parametrize("queried,expected", [
    (s.SMCCC_VERSION, 0),
    (s.SMCCC_ARCH_FEATURES, 0),
    (s.SMCCC_ARCH_WORKAROUND_1, 1),
    (s.SMCCC_ARCH_WORKAROUND_2, (1 << 64) - 2),
    (s.SMCCC_ARCH_WORKAROUND_3, 1),
    (s.SMCCC_ARCH_SOC_ID, NOT_SUPPORTED),
    (0x8000_0004, NOT_SUPPORTED),     # WORKAROUND_4
    (0x8400_0000, NOT_SUPPORTED),     # PSCI IDs are not arch calls
])
def test_arch_features(fw, queried, expected):
    assert fw.smc(0, [s.SMCCC_ARCH_FEATURES, queried])[0] == expected


def test_arch_features_argument_truncated(fw):
    assert fw.smc(0, [s.SMCCC_ARCH_FEATURES, (1 << 40) | s.SMCCC_ARCH_WORKAROUND_1])[0] == 1


@pytest.mark.parametrize("wa", [s.SMCCC_ARCH_WORKAROUND_1, s.SMCCC_ARCH_WORKAROUND_3])
def test_workaround_calls_are_register_preserving_no_ops(fw, wa):
    assert fw.smc(0, [wa, 11, 22, 33, 44]) == [wa, 11, 22, 33]


@pytest.mark.parametrize("fid", [
    0x8000_0002,        # SOC_ID (optional, not implemented)
    0x8000_FFFF,
    0xC000_0000,
    0x8100_0000,        # CPU service
    0x8200_0001,        # SiP
    0x8300_0000,        # OEM
    0x8400_FF00,        # standard service call count (optional)
    0x8500_0000,        # standard hypervisor
    0x8600_0000,        # vendor hypervisor
    0xB200_0000,        # trusted OS
    0x0000_0000,        # yielding call
    0x8401_0000,        # reserved bits set
    0xC400_0000,        # PSCI_VERSION has no SMC64 form
    0x8400_0015,        # unallocated PSCI number
])
def test_unknown_ids_return_minus_one(fw, fid):
    assert fw.smc(0, [fid, 1, 2, 3]) == [NOT_SUPPORTED, 1, 2, 3]


def test_short_register_list_is_padded(fw):
    assert fw.smc(0, [s.SMCCC_VERSION]) == [0x10001, 0, 0, 0]


def test_unknown_call_traced(fw, trace):
    fw.smc(0, [0x8200_0001])
    ev = trace.recent[-1]
    assert ev.kind == "smccc.call" and ev.fields["fid"] == 0x8200_0001
    assert ev.fields["result"] == -1 and ev.fields["owner"] == 2


def test_arch_call_traced(fw, trace):
    fw.smc(0, [s.SMCCC_ARCH_FEATURES, s.SMCCC_ARCH_WORKAROUND_2])
    ev = trace.recent[-1]
    assert (ev.kind, ev.fields["function"], ev.fields["result"]) == (
        "smccc.call", "SMCCC_ARCH_FEATURES", -2)


def test_fake_platform_satisfies_protocol():
    from armvisor.firmware import PsciPlatform
    assert isinstance(FakePlatform(), PsciPlatform)


def test_to_register():
    assert s.to_register(-9) == 0xFFFF_FFFF_FFFF_FFF7
    assert s.to_register(0x10001) == 0x10001


@pytest.mark.parametrize("x0, name", [
    (0x8400_0000, "PSCI_VERSION"), (0xC400_0003, "CPU_ON"), (0x8400_0003, "CPU_ON"),
    (0xFFFF_FFFF_8400_0008, "SYSTEM_OFF"),                   # only W0 is the ID
    (0x8000_0000, "SMCCC_VERSION"), (0x8000_8000, "SMCCC_ARCH_WORKAROUND_1"),
    (0xC200_0001, "SiP 0xc2000001"), (0x8600_0010, "vendor hyp 0x86000010"),
    (0xB200_0001, "trusted OS 0xb2000001"), (0xB000_0002, "trusted app 0xb0000002"),
    (0x8400_00FF, "standard secure 0x840000ff"), (0x0000_0000, "yielding 0x00000000"),
])
def test_describe_call_names_calls_for_the_trace(x0, name):
    from armvisor.firmware.smccc import describe_call
    assert describe_call(x0) == name
