"""An SMC trapped to EL2 by HCR_EL2.TSC (a VM's): served once, execution resumes after it."""

from __future__ import annotations

import ctypes
import mmap

from armvisor.cpu import sysregs as sr
from armvisor.cpu.core import Core, Stop
from armvisor.cpu.models import CPU_MODELS
from tests.unit.cpu.asm_helper import assemble

RAM = 0x4000_0000
CODE = RAM + 0x1000


class Host:
    def __init__(self):
        self.calls = []

    def smc(self, core, imm):
        self.calls.append((imm, core.pc))
        if imm == 9:
            core.stop(Stop.POWER)          # as CPU_OFF does: the stop must hold

    def hvc(self, core, imm):
        return False

    def sysreg_handler(self, reg):
        return lambda core, el, is_write, value: None


def test_trapped_smcs_are_served_once_each_and_resume_after_the_smc():
    ram = mmap.mmap(-1, 1 << 20)
    words = assemble(("add x1, x1, #1", "smc #5", "b 1f", "smc #6", "1: smc #7",
                      "add x1, x1, #1", "smc #9", "add x1, x1, #1", "b ."))
    for i, word in enumerate(words):
        ram[0x1000 + 4 * i:0x1000 + 4 * i + 4] = word.to_bytes(4, "little")
    host = Host()
    core = Core(0, 0, CPU_MODELS["cortex-a57"],
                (RAM, 1 << 20, ctypes.addressof(ctypes.c_char.from_buffer(ram))), [], host,
                extra_hcr=sr.HCR_TSC)
    core.reset(CODE)
    assert core.run(1000) is Stop.POWER and core.error is None
    # The host sees PC after the SMC, as for an untrapped SMC; #6 never runs.
    assert host.calls == [(5, CODE + 8), (7, CODE + 20), (9, CODE + 28)]
    assert core.read_x(1) == 2
    assert core.run(1000) is Stop.BUDGET and core.read_x(1) == 3
    assert len(host.calls) == 3
