"""HVC on the bare board answers SMCCC as QEMU's `-M virt` (no EL2) does.

QEMU without virtualization=on has no EL2, names HVC as the PSCI conduit and
answers every HVC: PSCI, and NOT_SUPPORTED (-1) for anything else, such as
kvm-unit-tests micro-bench's `hvc #0` with w0 = 0x4b000000. With the SMC
conduit an HVC is UNDEFINED (tests/machine/test_core.py).
"""

from __future__ import annotations

import subprocess

import pytest

from armvisor.devtools import qemu
from armvisor.devtools.cross import PRINT_HEX
from tests.machine.test_cli import armvisor
from tests.machine.tinyguest import build

MODES = {"bare": ["--psci-conduit", "hvc"], "hyp": ["--hyp"]}
NOT_SUPPORTED = "ffffffffffffffff"      # SMCCC (DEN0028) SMC_UNK / PSCI NOT_SUPPORTED, as X0
CALLS = """
    ldr x0, =0x4b000000       // micro-bench's call: not a fast call, owned by nobody here
    hvc #0
    bl print_hex
    ldr x0, =0xc2000001       // an unimplemented SiP service fast call
    hvc #0
    bl print_hex
    ldr x0, =0x8400000a       // PSCI_FEATURES(PSCI_VERSION): implemented
    ldr x1, =0x84000000
    hvc #0
    bl print_hex
    ldr x0, =0x84000008       // SYSTEM_OFF
    hvc #0
""" + PRINT_HEX
EXPECTED = f"{NOT_SUPPORTED}\n{NOT_SUPPORTED}\n{0:016x}\n"


@pytest.mark.parametrize("mode", list(MODES))
def test_unknown_functions_over_hvc_are_not_supported(tmp_path, mode):
    guest = build(tmp_path, CALLS, "hvc_calls")
    proc = armvisor("run", "--kernel", guest, *MODES[mode], "--timeout", "30")
    assert (proc.returncode, proc.stdout) == (0, EXPECTED), proc.stderr


def test_qemu_answers_the_same(tmp_path):
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed: nothing to compare with")
    guest = build(tmp_path, CALLS, "hvc_calls")
    proc = subprocess.run(qemu.virt_command(kernel=guest), capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout) == (0, EXPECTED), proc.stderr
