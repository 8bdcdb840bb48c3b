"""plain_store_writes: the writes of a store the board carries out itself (a store into
the flash bank the CPU runs from), against instructions assembled by aarch64-linux-gnu-as."""

from __future__ import annotations

import pytest

from armvisor.cpu.store_emulation import plain_store_writes
try:
    from asm_helper import assemble
except ImportError:  # tests/unit as a package
    from .asm_helper import assemble

PC = 0x1C444
SP = 0x4780_0000


class FakeCore:
    """What plain_store_writes reads of a core: PC, the instruction there, registers."""

    def __init__(self, insn: int, **regs: int):
        self.pc = PC
        self._insn = insn
        self._regs = {n: 0x1111_0000 + n for n in range(31)}
        self._regs[31] = SP
        for name, value in regs.items():
            self._regs[int(name[1:])] = value

    def read_insn(self, va):
        return self._insn if va == PC else None

    def read_x(self, n):
        return self._regs[n]


def writes(line: str, **regs: int):
    (insn,) = assemble((line,))
    return plain_store_writes(FakeCore(insn, **regs))


def test_edk2_global_store_in_flash0():
    # The store EDK2's PEI core makes into flash0 (QEMU_EFI.fd offset 0x1c444).
    assert writes("str x1, [x0, #2848]", x0=0x1C000, x1=0x17384) == [(0x1CB20, 8, 0x17384)]


@pytest.mark.parametrize("line, expected", [
    ("strb w1, [x0, #3]", [(0x1003, 1, 0x01)]),
    ("strh w1, [x0]", [(0x1000, 2, 0x0201)]),
    ("str w1, [x0, x2]", [(0x1010, 4, 0x0403_0201)]),
    ("stur x1, [x0, #-8]", [(0x0FF8, 8, 0x0807_0605_0403_0201)]),
    ("str xzr, [x0]", [(0x1000, 8, 0)]),
    ("stp w1, w2, [x0, #8]", [(0x1008, 4, 0x0403_0201), (0x100C, 4, 0x10)]),
    ("stp x1, xzr, [x0]", [(0x1000, 8, 0x0807_0605_0403_0201), (0x1008, 8, 0)]),
    ("str x1, [sp, #16]", [(SP + 16, 8, 0x0807_0605_0403_0201)]),
])
def test_plain_stores(line, expected):
    assert writes(line, x0=0x1000, x1=0x0807_0605_0403_0201, x2=0x10) == expected


@pytest.mark.parametrize("line", [
    "str x1, [x0], #8",              # writeback: the base register changes too
    "str x1, [x0, #8]!",
    "stp x1, x2, [x0, #-16]!",
    "stxr w3, x1, [x0]",             # exclusive: a status register to write
    "stadd x1, [x0]",                # atomic
    "str q1, [x0]",                  # SIMD&FP register
    "ldr x1, [x0]",                  # not a store
    "dc civac, x0",
    "add x0, x0, #1",
])
def test_other_instructions_are_left_to_the_caller(line):
    assert writes(line, x0=0x1000) is None


def test_unreadable_instruction():
    core = FakeCore(0)
    core.pc = 0x2000
    assert plain_store_writes(core) is None
