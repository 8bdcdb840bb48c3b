"""Accesses to nothing (cpu/outside.py and the Core's unmapped-memory hooks)."""

from __future__ import annotations

import ctypes
import mmap

import pytest
from unicorn import UC_ERR_FETCH_PROT, UC_ERR_WRITE_PROT, UC_PROT_READ
from unicorn import arm64_const as A

from armvisor.cpu import syndrome as syn
from armvisor.cpu import sysregs as sr
from armvisor.cpu.core import Core, Stop
from armvisor.cpu.models import CPU_MODELS
from armvisor.cpu.mmu import Access
from armvisor.cpu.outside import OutsideAccess, deliver_abort, fault_address, hook_ranges
from armvisor.trace import TraceBus
from tests.unit.cpu.asm_helper import assemble, assemble_one

RAM = 0x4000_0000
RAM_SIZE = 16 << 20
CODE = RAM + 0x1000
VBAR = RAM + 0x8000
HOLE = 0x0A10_0000


# -- hook ranges ---------------------------------------------------------------------

def test_hooks_cover_below_and_above_ram_up_to_the_pa_size_but_never_ram():
    assert hook_ranges(RAM, RAM_SIZE, 44) == [(0, RAM - 1), (RAM + RAM_SIZE, (1 << 44) - 1)]
    assert hook_ranges(0, RAM_SIZE, 40) == [(RAM_SIZE, (1 << 40) - 1)]
    assert hook_ranges(RAM, (1 << 32) - RAM, 32) == [(0, RAM - 1)]


# -- FAR -------------------------------------------------------------------------------

def _regs(values):
    return lambda n: values.get(n, 0)


def test_far_is_the_pa_with_the_mmu_off():
    out = OutsideAccess(Access.READ, HOLE + 8, 8, CODE)
    assert fault_address(out, False, assemble_one("ldr x1, [x0, #8]"), _regs({0: HOLE}),
                         lambda va, prot: None) == HOLE + 8


def test_far_is_the_va_whose_page_maps_to_the_pa():
    va = 0x4020_3ff8                    # a pair across a page: only the second page is a hole
    pages = {0x4020_3000: 0x4030_0000, 0x4020_4000: HOLE}
    translate = lambda v, prot: pages[v & ~0xFFF] + (v & 0xFFF) if v & ~0xFFF in pages else None
    out = OutsideAccess(Access.WRITE, HOLE, 8, CODE)
    insn = assemble_one("stp x1, x2, [x0]")
    assert fault_address(out, True, insn, _regs({0: va}), translate) == 0x4020_4000
    out = OutsideAccess(Access.READ, HOLE + 0xff8, 8, CODE)
    pages[0x4020_3000] = HOLE
    assert fault_address(out, True, insn, _regs({0: va}), translate) == va


def test_far_falls_back_to_the_decoded_address_then_the_pa():
    out = OutsideAccess(Access.READ, HOLE, 8, CODE)
    nothing = lambda va, prot: None
    assert fault_address(out, True, assemble_one("ldr x1, [x0]"), _regs({0: 0x1234}),
                         nothing) == 0x1234
    assert fault_address(out, True, assemble_one("add x1, x1, #1"), _regs({}), nothing) == HOLE
    assert fault_address(out, True, None, _regs({}), nothing) == HOLE


# -- the exception delivered -------------------------------------------------------------

class FakeCore:
    """The parts of a core that deliver_abort and exception entry use."""

    def __init__(self, el: int, insn: int, regs: dict):
        self.index, self.model, self.trace = 0, CPU_MODELS["cortex-a57"], None
        self.last_vector, self.vector_faults, self.first_fault = None, 0, None
        self.el, self._insn, self._regs = el, insn, regs
        self.entry = None
        self.pstate = sr.PSTATE_MODE_EL1H if el == 1 else 0

    def exception_state(self):
        return [self.pstate, 0x1000, 0x2000, VBAR]

    def read_sysreg(self, reg):
        return 0

    def write_sysreg(self, reg, value):
        pass

    def write_exception_entry(self, **entry):
        self.entry = entry

    def read_insn(self, va):
        return self._insn

    def read_x(self, n):
        return self._regs.get(n, 0)


@pytest.mark.parametrize("el, access, ec, wnr", [
    (1, Access.READ, syn.EC_DABT_CUR, False), (1, Access.WRITE, syn.EC_DABT_CUR, True),
    (0, Access.READ, syn.EC_DABT_LOWER, False), (0, Access.WRITE, syn.EC_DABT_LOWER, True)])
def test_data_abort_syndrome(el, access, ec, wnr):
    core = FakeCore(el, assemble_one("str x1, [x0, #16]"), {0: HOLE})
    far = deliver_abort(core, OutsideAccess(access, HOLE + 16, 8, CODE), False, None)
    esr = core.entry["esr"]
    assert far == HOLE + 16 and core.entry["far"] == HOLE + 16 and core.entry["elr"] == CODE
    assert esr >> syn.ESR_EC_SHIFT == ec and esr & syn.ESR_IL
    assert esr & syn.ISS_FSC_MASK == syn.FSC_SYNC_EXTERNAL == 0x10
    assert bool(esr & syn.ISS_DA_WNR) == wnr
    assert not esr & (syn.ISS_DA_EA | syn.ISS_DA_FNV | syn.ISS_DA_ISV)
    assert core.entry["pc"] == VBAR + (0x200 if el == 1 else 0x400)


@pytest.mark.parametrize("el, ec", [(1, syn.EC_IABT_CUR), (0, syn.EC_IABT_LOWER)])
def test_instruction_abort_syndrome(el, ec):
    core = FakeCore(el, None, {})
    assert deliver_abort(core, OutsideAccess(Access.EXEC, HOLE, 4, HOLE + 0x40), True, None) \
        == HOLE + 0x40
    esr = core.entry["esr"]
    assert esr == (ec << syn.ESR_EC_SHIFT) | syn.ESR_IL | syn.FSC_SYNC_EXTERNAL
    assert core.entry["elr"] == core.entry["far"] == HOLE + 0x40


# -- a real core (Unicorn), no board ----------------------------------------------------

class Host:
    def smc(self, core, imm):
        core.stop(Stop.MACHINE)

    def hvc(self, core, imm):
        return False

    def sysreg_handler(self, reg):
        return lambda core, el, is_write, value: None


class Region:
    name = "dev"

    def __init__(self, base, size):
        self.base, self.size = base, size

    def read(self, offset, size, cpu):
        return 0

    def write(self, offset, size, value, cpu):
        pass


@pytest.fixture
def ram():
    buf = mmap.mmap(-1, RAM_SIZE)
    yield buf
    del buf


def make_core(ram, code, vectors=("add x20, x20, #1", "mrs x21, elr_el1", "add x21, x21, #4",
                                  "msr elr_el1, x21", "eret"), mmio=(), trace=None):
    """A core whose EL1 vector (current EL, SP_ELx) counts in x20 and skips the instruction."""
    for address, lines in ((CODE, code), (VBAR + 0x200, vectors)):
        for i, word in enumerate(assemble(tuple(lines))):
            offset = address - RAM + 4 * i
            ram[offset:offset + 4] = word.to_bytes(4, "little")
    pointer = ctypes.addressof(ctypes.c_char.from_buffer(ram))
    core = Core(0, 0, CPU_MODELS["cortex-a57"], (RAM, RAM_SIZE, pointer), list(mmio), Host(),
                trace=trace)
    core.reset(CODE)
    core.write_reg(A.UC_ARM64_REG_VBAR_EL1, VBAR)
    return core


def test_a_load_from_nothing_is_an_abort_and_the_slice_goes_on(ram):
    trace = TraceBus()
    events = []
    trace.subscribe(events.append)
    core = make_core(ram, ["movz x0, #0x0a10, lsl #16", "add x1, x1, #1", "ldr x2, [x0, #8]",
                           "add x1, x1, #1", "smc #0"], trace=trace)
    assert core.run(1000) is Stop.MACHINE          # reached the SMC after the handler
    assert core.error is None and core.read_x(20) == 1 and core.read_x(1) == 2
    assert core.exit_counts()["abort:outside"] == 1
    outside = [e for e in events if e.kind == "abort.outside"]
    assert [(e.fields["access"], e.fields["pa"], e.fields["far"], e.fields["elr"])
            for e in outside] == [("read", HOLE + 8, HOLE + 8, CODE + 8)]
    exc = [e for e in events if e.kind == "exception"]
    assert exc[0].fields["esr"] == 0x9600_0010 and exc[0].fields["far"] == HOLE + 8


def test_a_store_to_read_only_memory_is_still_a_fault_for_the_board(ram):
    flash = mmap.mmap(-1, 0x4_0000)
    core = make_core(ram, ["movz x0, #0x0400, lsl #16", "add x1, x1, #1", "str x1, [x0, #0x10]",
                           "smc #0"])
    core.map_memory(0x0400_0000, 0x4_0000, ctypes.addressof(ctypes.c_char.from_buffer(flash)),
                    UC_PROT_READ)
    assert core.run(1000) is Stop.FAULT
    assert core.error.errno == UC_ERR_WRITE_PROT
    assert core.write_protect_fault() == 0x0400_0010 and core.read_x(20) == 0


def test_a_fetch_from_a_device_is_still_a_fault_and_from_an_unmapped_one_an_abort(ram):
    core = make_core(ram, ["movz x0, #0x0a10, lsl #16", "blr x0", "smc #0"],
                     vectors=("add x20, x20, #1", "msr elr_el1, x30", "eret"),
                     mmio=[Region(HOLE, 0x1000)])
    assert core.is_mapped(HOLE)
    assert core.run(1000) is Stop.FAULT and core.error.errno == UC_ERR_FETCH_PROT
    core.unmap(HOLE, 0x1000)
    assert not core.is_mapped(HOLE)
    core.error = None
    core.reset(CODE)
    core.write_reg(A.UC_ARM64_REG_VBAR_EL1, VBAR)
    assert core.run(1000) is Stop.MACHINE and core.error is None
    assert core.read_x(20) == 1 and core.exit_counts()["abort:outside"] == 1
