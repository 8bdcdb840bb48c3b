"""armvisor's patches to Unicorn (patches/unicorn): CI runs on the patched build, and
what each patch must keep true holds."""

from __future__ import annotations

import os

import pytest

from armvisor.cpu.native import native
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from tests.machine.tinyguest import build


def test_ci_runs_on_the_patched_unicorn():
    if os.environ.get("CI", "").lower() not in ("true", "1", "yes") and native().patches is None:
        pytest.skip("a stock Unicorn (run scripts/setup to build the patched one)")
    assert native().patches is not None and native().patches.startswith("armvisor-unicorn")


def test_a_store_to_write_protected_flash_is_not_lost(tmp_path):
    """The store faults (flash0 is mapped read-only while in read-array mode), the board
    makes the bank MMIO and the store runs again; the instructions after it in the same
    block must not run first (0003: leave the block at once on a store that cannot be
    done, which matters when exit checks are off, 0001)."""
    elf = build(tmp_path, """
    mov x5, #0
    ldr x1, =0x154
    mov w2, #0x98
    strh w2, [x1]          // CFI query command to flash0 (x16 devices, 32-bit bank)
    add x5, x5, #1         // same block: must run exactly once, after the store
    ldr x4, =0x40
    ldrh w3, [x4]          // 'Q' of "QRY" in query mode
    putc w3
    add w5, w5, #'0'
    putc w5
    system_off
""", "flash_query")
    out = bytearray()
    machine = BareBoard(MachineConfig(kernel=str(elf)), console=out.extend)
    assert machine.run(timeout=20) == 0
    assert bytes(out) == b"Q1"


# str x3, [x2]; add x3, x3, #1; cmp x3, x4; b.ne <str>; nop
STORE_LOOP = bytes.fromhex("430000f9" "63040091" "7f0004eb" "a1ffff54" "1f2003d5")
CODE, DATA, WATCHED = 0x10000, 0x20000, 0x21008


def _store_loop(iterations: int):
    """A bare Unicorn as armvisor's cores set it up (4 KiB pages, exit checks off)
    with the store loop ready at CODE: it stores 0, 1, ... to WATCHED."""
    from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
    from unicorn import arm64_const as A

    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    uc.ctl_set_page_size(4096)
    if native().uc_armvisor_set_exit_checks is not None:
        native().uc_armvisor_set_exit_checks(uc._uch, False)
    uc.mem_map(CODE, 0x1000)
    uc.mem_map(DATA, 0x2000)
    uc.mem_write(CODE, STORE_LOOP)
    uc.mem_write(WATCHED, (0xAA).to_bytes(8, "little"))
    uc.reg_write(A.UC_ARM64_REG_X2, WATCHED)
    uc.reg_write(A.UC_ARM64_REG_X3, 0)
    uc.reg_write(A.UC_ARM64_REG_X4, iterations)
    return uc


def require_patch(feature: str, patch: str) -> None:
    """Skip unless the loaded Unicorn says it has `feature` (uc_armvisor_patches), from
    patches/unicorn/`patch`; in CI, which must run on the patched build, fail."""
    if native().patches is None or feature not in native().patches.split():
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI runs on a Unicorn without patches/unicorn/{patch}: {native().patches}")
        pytest.skip(f"needs patches/unicorn/{patch} (run scripts/setup)")


def _patched():
    require_patch("hooked-pages", "0005")


def test_a_memory_hook_added_after_the_code_ran_sees_its_stores():
    """0005: stock Unicorn chose the fast or slow path for loads and stores when it
    translated a block, so a hook added later missed every access of the blocks
    already translated; now the hooked page's TLB entries take the slow path and
    adding a hook refills the TLB."""
    _patched()
    from unicorn import UC_HOOK_MEM_WRITE
    from unicorn import arm64_const as A

    uc = _store_loop(5)
    uc.emu_start(CODE, CODE + len(STORE_LOOP))          # translated, TLB filled
    seen = []
    uc.hook_add(UC_HOOK_MEM_WRITE, lambda _uc, _a, address, _s, value, _u:
                seen.append((address, value)), None, WATCHED, WATCHED + 7)
    uc.reg_write(A.UC_ARM64_REG_X3, 0)
    uc.emu_start(CODE, CODE + len(STORE_LOOP))
    assert seen == [(WATCHED, n) for n in range(5)]


def test_a_memory_hook_that_stops_emulation_stops_before_the_store():
    """0005: with exit checks off (0001) the stop requested by a UC_HOOK_MEM_WRITE
    callback takes effect at once, before the store and with PC on it (stock:
    at the next exit check, after the store)."""
    _patched()
    from unicorn import UC_HOOK_MEM_WRITE
    from unicorn import arm64_const as A

    uc = _store_loop(5)
    calls = []

    def stop(uc, _access, address, _size, value, _user):
        calls.append(value)
        if value == 3:
            uc.emu_stop()

    uc.hook_add(UC_HOOK_MEM_WRITE, stop, None, WATCHED, WATCHED + 7)
    uc.emu_start(CODE, CODE + len(STORE_LOOP))
    assert calls == [0, 1, 2, 3]
    assert uc.reg_read(A.UC_ARM64_REG_PC) == CODE
    assert int.from_bytes(uc.mem_read(WATCHED, 8), "little") == 2
