"""The CPU's own interrupt inputs (IRQ, FIQ, vIRQ, vFIQ), for a guest that owns EL2.

Without --virtualization the board signals interrupts through HCR_EL2.VI/VF,
which it owns (core.py set_irq_lines). When the guest runs its own EL2 code
it owns HCR_EL2, so the GIC drives the inputs QEMU's GICv3 drives on
`qemu-system-aarch64 -M virt,virtualization=on`: the physical IRQ/FIQ lines,
which QEMU routes itself to EL1, EL2 or EL3 as HCR_EL2.IMO/FMO and SCR_EL3
say, and the GIC's virtual IRQ/FIQ lines, which QEMU ORs with HCR_EL2.VI/VF
(arm_cpu_update_virq in qemu/target/arm/cpu.c). That is QEMU's
arm_cpu_set_irq, which Unicorn does not export; it is rebuilt here from what
it does (UNICORN-FACTS.md, "Running code at EL2 and EL3"):

- a line's level lives in CPUARMState.irq_line_state (a CPU_INTERRUPT_* bit);
- a physical line is raised with the exported `cpu_interrupt_handler`
  (a pointer to cpu_interrupt) and lowered with `cpu_reset_interrupt`;
- a virtual line is recomputed by the exported `arm_cpu_update_virq_aarch64`
  / `arm_cpu_update_vfiq_aarch64`.

The offsets of CPUState.interrupt_request and irq_line_state are QEMU's
private layout; they are read back from the machine code of
arm_cpu_update_virq_aarch64 (which tests both) and checked, so another build
refuses --virtualization in one line instead of corrupting memory.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Optional

# qemu/target/arm/cpu.h / include/hw/core/cpu.h
CPU_INTERRUPT_HARD = 0x0002
CPU_INTERRUPT_FIQ = 0x0010
CPU_INTERRUPT_VIRQ = 0x0040
CPU_INTERRUPT_VFIQ = 0x0200

# What this Unicorn 2.1.4 wheel's arm_cpu_update_virq_aarch64 starts with:
#   mov 0x1c(%rdi),%eax          8b 47 1c           (cs->interrupt_request)
#   and $0x40,%eax               83 e0 40
#   testb $0x80,0xa708(%rdi)     f6 87 08 a7 00 00 80   (HCR_EL2.VI)
#   jne ...                      75 xx
#   testb $0x40,0xaf48(%rdi)     f6 87 48 af 00 00 40   (env.irq_line_state & VIRQ)
_VIRQ_PROLOGUE = bytes.fromhex("8b471c" "83e040" "f687")
_IRQ_LINE_TEST = bytes.fromhex("f687")

INTERRUPT_REQUEST_OFFSET = 0x1C
IRQ_LINE_STATE_OFFSET = 0xAF48

_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)
_UPDATE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class LinesUnavailable(Exception):
    pass


class _Entry:
    """The library's entry points and the checked offsets (one per process)."""

    def __init__(self, lib_path: str):
        lib = ctypes.CDLL(lib_path)
        try:
            handler_ptr = ctypes.c_void_p.in_dll(lib, "cpu_interrupt_handler").value
            reset = lib.cpu_reset_interrupt
            update_virq = ctypes.cast(lib.arm_cpu_update_virq_aarch64, ctypes.c_void_p).value
            update_vfiq = ctypes.cast(lib.arm_cpu_update_vfiq_aarch64, ctypes.c_void_p).value
        except (AttributeError, ValueError) as exc:
            raise LinesUnavailable(f"{lib_path} does not export what the CPU's interrupt "
                                   f"inputs need ({exc})") from None
        if not handler_ptr:
            raise LinesUnavailable("cpu_interrupt_handler is not set")
        code = ctypes.string_at(update_virq, 32)
        if not code.startswith(_VIRQ_PROLOGUE):
            raise LinesUnavailable("arm_cpu_update_virq_aarch64 is not the code this "
                                   "layout was read from (another Unicorn build)")
        # The second `testb $0x40, disp32(%rdi)` names irq_line_state.
        second = code.find(_IRQ_LINE_TEST, len(_VIRQ_PROLOGUE))
        if second < 0 or code[second + 6] != CPU_INTERRUPT_VIRQ:
            raise LinesUnavailable("cannot find irq_line_state in arm_cpu_update_virq_aarch64")
        offset = int.from_bytes(code[second + 2:second + 6], "little")
        if offset != IRQ_LINE_STATE_OFFSET:
            raise LinesUnavailable(f"irq_line_state at {offset:#x}, expected "
                                   f"{IRQ_LINE_STATE_OFFSET:#x}")
        self.raise_line = _HANDLER(handler_ptr)
        reset.argtypes, reset.restype = [ctypes.c_void_p, ctypes.c_int], None
        self.lower_line = reset
        self.update_virq = _UPDATE(update_virq)
        self.update_vfiq = _UPDATE(update_vfiq)


@lru_cache(maxsize=1)
def _entry(lib_path: str) -> _Entry:
    return _Entry(lib_path)


def check_available(lib_path: str) -> Optional[str]:
    """None when the inputs can be driven with this library; why not otherwise."""
    try:
        _entry(lib_path)
    except LinesUnavailable as exc:
        return str(exc)
    return None


class CpuLines:
    """One core's four interrupt inputs, as levels (set only at safe points, between slices;
    lowering is also safe inside a hook)."""

    def __init__(self, lib_path: str, cpu_pointer: int):
        if not cpu_pointer:
            raise LinesUnavailable("the instance has no CPU yet")
        self._entry = _entry(lib_path)
        self.cpu = cpu_pointer
        self._state = ctypes.c_uint32.from_address(cpu_pointer + IRQ_LINE_STATE_OFFSET)
        self._request = ctypes.c_uint32.from_address(cpu_pointer + INTERRUPT_REQUEST_OFFSET)
        self.levels = {CPU_INTERRUPT_HARD: False, CPU_INTERRUPT_FIQ: False,
                       CPU_INTERRUPT_VIRQ: False, CPU_INTERRUPT_VFIQ: False}

    def set(self, line: int, level: bool) -> None:
        if self.levels[line] == level:
            return
        self.levels[line] = level
        if level:
            self._state.value |= line
        else:
            self._state.value &= ~line & 0xFFFF_FFFF
        entry = self._entry
        if line == CPU_INTERRUPT_VIRQ:
            entry.update_virq(self.cpu)
        elif line == CPU_INTERRUPT_VFIQ:
            entry.update_vfiq(self.cpu)
        elif level:
            entry.raise_line(self.cpu, line)
        else:
            entry.lower_line(self.cpu, line)

    def pending_request(self) -> int:
        """CPUState.interrupt_request (for tests)."""
        return self._request.value

    def refresh(self) -> None:
        """After the CPU context was restored (a snapshot): drive the inputs as remembered."""
        for line, level in self.levels.items():
            self.levels[line] = not level
            self.set(line, level)
