"""--cpu cortex-a57 hides what an A57 lacks; --cpu max traps SVE access with EC 0x19.

Measured: Unicorn 2.1.4 does not trap FP/SIMD instructions when
CPACR_EL1.FPEN = 0, so the EC 0x07 path cannot be reached from a guest (it is
unit-tested in test_syndrome.py instead).
"""

from __future__ import annotations

from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from armvisor.devtools.cross import PRINT_HEX
from tests.machine.tinyguest import build

VECTORS = """
    .balign 2048
vectors:
    .skip 0x200
    mrs x0, esr_el1          // print the ESR, skip the instruction
    mov x28, x30
    bl print_hex
    mov x30, x28
    mrs x1, elr_el1
    add x1, x1, #4
    msr elr_el1, x1
    eret
"""


def run(tmp_path, body, cpu):
    elf = build(tmp_path, body + PRINT_HEX + VECTORS, f"model_{cpu}")
    out = bytearray()
    status = BareBoard(MachineConfig(kernel=str(elf), cpu=cpu), console=out.extend).run(timeout=20)
    assert status == 0
    return out.decode().split()


ID_READS = """
    mrs x0, midr_el1
    bl print_hex
    mrs x0, id_aa64pfr0_el1
    bl print_hex
    mrs x0, id_aa64isar1_el1
    bl print_hex
    system_off
"""


def test_cortex_a57_answers_id_registers_as_an_a57(tmp_path):
    midr, pfr0, isar1 = (int(v, 16) for v in run(tmp_path, ID_READS, "cortex-a57"))
    assert midr == 0x411F_D070
    assert pfr0 == 0x0100_0011                 # AArch64 EL0/EL1, FP, AdvSIMD, GICv3 sysregs
    assert isar1 == 0                          # no PAuth, no LRCPC...


def test_max_shows_unicorns_features(tmp_path):
    midr, pfr0, isar1 = (int(v, 16) for v in run(tmp_path, ID_READS, "max"))
    assert midr != 0x411F_D070
    assert (pfr0 >> 32) & 0xF == 1             # SVE implemented
    assert isar1 != 0


SVE_TRAP = """
    adr x0, vectors
    msr vbar_el1, x0
    mov x0, #(3 << 20)       // FPEN = 3, ZEN = 0: SVE traps at EL1
    msr cpacr_el1, x0
    isb
    .arch_extension sve
    cntb x1                  // -> EC 0x19
    mov x0, #(3 << 20) | (3 << 16)
    msr cpacr_el1, x0
    isb
    cntb x1                  // allowed now: no exception
    system_off
"""


def test_max_traps_sve_with_ec_0x19_until_cpacr_allows_it(tmp_path):
    esrs = [int(v, 16) for v in run(tmp_path, SVE_TRAP, "max")]
    assert esrs == [(0x19 << 26) | (1 << 25)]
