"""The CPU's own interrupt inputs (cpu/irq_lines.py) on a real Unicorn instance."""

from __future__ import annotations

import ctypes

import pytest
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as A

from armvisor.cpu import irq_lines as il
from armvisor.cpu.native import native
from armvisor.cpu.native_exceptions import UC_STRUCT_CPU_OFFSET


@pytest.fixture
def lines():
    lib = native()
    reason = il.check_available(lib.library_path)
    if reason is not None:
        pytest.skip(reason)
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    uc.reg_write(A.UC_ARM64_REG_X0, 0)          # the CPU exists once the instance is used
    cpu = ctypes.c_uint64.from_address(uc._uch.value + UC_STRUCT_CPU_OFFSET).value
    assert cpu
    yield il.CpuLines(lib.library_path, cpu)
    del uc


def test_physical_lines_raise_and_lower_the_request(lines):
    assert not lines.pending_request() & il.CPU_INTERRUPT_HARD
    lines.set(il.CPU_INTERRUPT_HARD, True)
    assert lines.pending_request() & il.CPU_INTERRUPT_HARD
    lines.set(il.CPU_INTERRUPT_FIQ, True)
    assert lines.pending_request() & il.CPU_INTERRUPT_FIQ
    lines.set(il.CPU_INTERRUPT_HARD, False)
    lines.set(il.CPU_INTERRUPT_FIQ, False)
    assert not lines.pending_request() & (il.CPU_INTERRUPT_HARD | il.CPU_INTERRUPT_FIQ)


def test_virtual_lines_go_through_qemus_update(lines):
    lines.set(il.CPU_INTERRUPT_VIRQ, True)
    assert lines.pending_request() & il.CPU_INTERRUPT_VIRQ
    assert lines._state.value & il.CPU_INTERRUPT_VIRQ           # irq_line_state
    lines.set(il.CPU_INTERRUPT_VIRQ, False)
    assert not lines.pending_request() & il.CPU_INTERRUPT_VIRQ
    lines.set(il.CPU_INTERRUPT_VFIQ, True)
    assert lines.pending_request() & il.CPU_INTERRUPT_VFIQ


def test_another_build_is_refused(monkeypatch):
    monkeypatch.setattr(il, "_VIRQ_PROLOGUE", b"\x90\x90\x90")
    il._entry.cache_clear()
    try:
        assert "another Unicorn build" in il.check_available(native().library_path)
    finally:
        il._entry.cache_clear()
