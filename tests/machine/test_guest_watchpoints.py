"""The guest's own watchpoints (DBGWVR/DBGWCR, cpu/guest_watchpoints.py) on a tiny guest.

Each case arms watchpoint 0 on `wdata`, makes one access and prints how many
Watchpoint exceptions the EL1 handler took, the last ESR and FAR minus
`wdata`, and the doubleword at `wdata` afterwards. The handler returns to the
access with SPSR.D set (as kvm-unit-tests' does), so the access then
completes without a second exception."""

from __future__ import annotations

from armvisor.cpu import syndrome as syn
from armvisor.devtools.cross import PRINT_HEX
from tests.machine.test_core import run_machine
from tests.machine.tinyguest import build

E, PAC_EL1, LOAD, STORE = 1, 1 << 1, 1 << 3, 2 << 3
BAS_ALL = 0xFF << 5
KDE_MDE = (1 << 13) | (1 << 15)

HANDLER = """
    .balign 2048
vectors:
    .skip 0x200
    mrs x5, esr_el1
    mrs x7, far_el1
    add x15, x15, #1
    mrs x8, spsr_el1
    orr x8, x8, #(1 << 9)        // D: the access runs again without a debug exception
    msr spsr_el1, x8
    eret
    .balign 16
wdata:
    .quad 0x1111, 0x2222
"""


def program(wcr: int, access: str, before: str = "", mdscr: int = KDE_MDE) -> str:
    return f"""
    adr x0, vectors
    msr vbar_el1, x0
    msr oslar_el1, xzr           // the OS lock is set at reset (D2.5)
    mov x15, #0
    mov x5, #0
    mov x7, #0
    adr x1, wdata
    msr dbgwvr0_el1, x1
    ldr x2, ={wcr:#x}
    msr dbgwcr0_el1, x2
    ldr x2, ={mdscr:#x}
    msr mdscr_el1, x2
    msr daifclr, #8
    isb
    {before}
    ldr x3, =0x55
    {access}
    mov x0, x15
    bl print_hex
    mov x0, x5
    bl print_hex
    adr x1, wdata
    sub x0, x7, x1
    cbz x7, 1f
    b 2f
1:  mov x0, #0
2:  bl print_hex
    adr x1, wdata
    ldr x0, [x1]
    bl print_hex
    system_off
""" + PRINT_HEX + HANDLER


def run(tmp_path, *args, **kw):
    elf = build(tmp_path, program(*args, **kw), "watch")
    status, out, _ = run_machine(elf)
    assert status == 0, out
    return [int(line, 16) for line in out.split()]


def test_a_store_watchpoint_fires_before_the_store_with_its_address(tmp_path):
    count, esr, far, data = run(tmp_path, BAS_ALL | STORE | PAC_EL1 | E, "str w3, [x1, #4]")
    assert count == 1
    assert esr == syn.esr_watchpoint(same_el=True, is_write=True)
    assert far == 4
    assert data == 0x55_0000_1111            # the store completed after the handler


def test_a_load_watchpoint_ignores_stores_and_fires_on_loads(tmp_path):
    count, esr, far, data = run(tmp_path, BAS_ALL | LOAD | PAC_EL1 | E,
                                "str w3, [x1]\n    ldr x4, [x1]")
    assert (count, esr, far, data) == (1, syn.esr_watchpoint(same_el=True, is_write=False),
                                        0, 0x55)


def test_bytes_outside_bas_are_not_watched(tmp_path):
    # BAS = bytes 0-1 only: a store to byte 4 is not watched, one to byte 1 is.
    wcr = (0x3 << 5) | STORE | PAC_EL1 | E
    assert run(tmp_path, wcr, "str w3, [x1, #4]")[0] == 0
    count, _, far, _ = run(tmp_path, wcr, "strb w3, [x1, #1]")
    assert (count, far) == (1, 1)


def test_masked_debug_exceptions_do_not_fire(tmp_path):
    wcr = BAS_ALL | STORE | PAC_EL1 | E
    assert run(tmp_path, wcr, "str w3, [x1]", before="msr daifset, #8")[0] == 0      # PSTATE.D
    assert run(tmp_path, wcr, "str w3, [x1]", mdscr=1 << 13)[0] == 0                # MDE clear
    assert run(tmp_path, wcr, "str w3, [x1]", mdscr=1 << 15)[0] == 0                # KDE clear
    locked = "mov x9, #1\n    msr oslar_el1, x9\n    isb"
    assert run(tmp_path, wcr, "str w3, [x1]", before=locked)[0] == 0               # OS lock
    assert run(tmp_path, BAS_ALL | STORE | (2 << 1) | E, "str w3, [x1]")[0] == 0    # EL0 only
    count, _, _, data = run(tmp_path, wcr & ~E, "str w3, [x1]")                    # disabled
    assert (count, data) == (0, 0x55)
