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
