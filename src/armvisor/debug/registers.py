"""The AArch64 registers as GDB numbers them, and the target description that says so.

The layout is GDB's own features/aarch64-core.xml and aarch64-fpu.xml
(GDB manual, "AArch64 Features"): x0-x30, sp, pc, cpsr (32 bits), then
v0-v31 (128 bits), fpsr and fpcr. gdb-multiarch learns it from
`qXfer:features:read:target.xml` (GDB manual, "Target Descriptions").
Values travel little-endian in hex (GDB manual, "Packets": `g`, `p`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from unicorn import arm64_const as A

from armvisor.cpu import sysregs as sr


@dataclass(frozen=True)
class Register:
    name: str
    bits: int
    uc_id: int
    xml_type: str = "int"


REGISTERS: List[Register] = (
    [Register(f"x{n}", 64, (A.UC_ARM64_REG_X0 + n) if n < 29 else
              (A.UC_ARM64_REG_X29 + n - 29)) for n in range(31)]
    + [Register("sp", 64, A.UC_ARM64_REG_SP, "data_ptr"),
       Register("pc", 64, A.UC_ARM64_REG_PC, "code_ptr"),
       Register("cpsr", 32, A.UC_ARM64_REG_PSTATE)]
    + [Register(f"v{n}", 128, A.UC_ARM64_REG_V0 + n, "aarch64v") for n in range(32)]
    + [Register("fpsr", 32, A.UC_ARM64_REG_FPSR), Register("fpcr", 32, A.UC_ARM64_REG_FPCR)])
PC = 32
CPSR = 33
FIRST_FP = 34

_FPU_TYPES = """\
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v2u" type="uint64" count="2"/>
  <vector id="v2i" type="int64" count="2"/>
  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v4u" type="uint32" count="4"/>
  <vector id="v4i" type="int32" count="4"/>
  <vector id="v8f" type="ieee_half" count="8"/>
  <vector id="v8u" type="uint16" count="8"/>
  <vector id="v8i" type="int16" count="8"/>
  <vector id="v16u" type="uint8" count="16"/>
  <vector id="v16i" type="int8" count="16"/>
  <vector id="v1u" type="uint128" count="1"/>
  <vector id="v1i" type="int128" count="1"/>
  <union id="vnd"><field name="f" type="v2d"/><field name="u" type="v2u"/><field name="s" type="v2i"/></union>
  <union id="vns"><field name="f" type="v4f"/><field name="u" type="v4u"/><field name="s" type="v4i"/></union>
  <union id="vnh"><field name="f" type="v8f"/><field name="u" type="v8u"/><field name="s" type="v8i"/></union>
  <union id="vnb"><field name="u" type="v16u"/><field name="s" type="v16i"/></union>
  <union id="vnq"><field name="u" type="v1u"/><field name="s" type="v1i"/></union>
  <union id="aarch64v"><field name="d" type="vnd"/><field name="s" type="vns"/><field name="h" type="vnh"/><field name="b" type="vnb"/><field name="q" type="vnq"/></union>
"""


def _reg_xml(number: int, reg: Register) -> str:
    return f'  <reg name="{reg.name}" bitsize="{reg.bits}" type="{reg.xml_type}" regnum="{number}"/>\n'


def target_xml() -> str:
    core = "".join(_reg_xml(n, r) for n, r in enumerate(REGISTERS[:FIRST_FP]))
    fpu = "".join(_reg_xml(n, r) for n, r in enumerate(REGISTERS) if n >= FIRST_FP)
    return ('<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n'
            '<target version="1.0">\n<architecture>aarch64</architecture>\n'
            '<feature name="org.gnu.gdb.aarch64.core">\n' + core + '</feature>\n'
            '<feature name="org.gnu.gdb.aarch64.fpu">\n' + _FPU_TYPES + fpu + '</feature>\n'
            '</target>\n')


def encode(value: int, bits: int) -> str:
    return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()


def decode(text: str, bits: int) -> int:
    data = bytes.fromhex(text)
    if len(data) != bits // 8:
        raise ValueError(f"{len(data)} bytes for a {bits}-bit register")
    return int.from_bytes(data, "little")


class RegisterFile:
    """One CPU's registers through the API (`armvisor.api.Cpu`) and its Unicorn instance."""

    def __init__(self, cpu):
        self.cpu = cpu

    def read(self, number: int) -> int:
        reg = REGISTERS[number]
        if number == PC:
            return self.cpu.regs.pc        # where the CPU resumes (a stop may have moved it)
        if reg.bits == 128:
            return self.cpu.core.uc.reg_read(reg.uc_id)
        return self.cpu.core.read_reg(reg.uc_id) & ((1 << reg.bits) - 1)

    def write(self, number: int, value: int) -> None:
        reg = REGISTERS[number]
        core = self.cpu.core
        if number == PC:
            self.cpu.regs.pc = value
        elif number == CPSR:
            if value != self.read(CPSR):
                core.write_reg(reg.uc_id, value)
                # A PSTATE write alone leaves QEMU's cached EL flags stale; any
                # system register write rebuilds them (UNICORN-FACTS.md).
                core.write_sysreg(sr.SCTLR_EL1, core.read_sysreg(sr.SCTLR_EL1))
        elif reg.bits == 128:
            core.uc.reg_write(reg.uc_id, value)
        else:
            core.write_reg(reg.uc_id, value)

    def read_all(self) -> str:
        return "".join(encode(self.read(n), r.bits) for n, r in enumerate(REGISTERS))

    def write_all(self, text: str) -> None:
        """A `G` packet: every register in order; a short packet sets the first ones."""
        offset = 0
        for number, reg in enumerate(REGISTERS):
            width = reg.bits // 4
            if offset + width > len(text):
                break
            self.write(number, decode(text[offset:offset + width], reg.bits))
            offset += width
