"""The start-up self-test of native exception delivery (armvisor/cpu/native_exceptions.py)."""

from __future__ import annotations

import ctypes
import subprocess

import pytest

from armvisor.cpu import core
from armvisor.cpu import native_exceptions as nx
from armvisor.cpu.native import ArmvException
from armvisor.devtools.cross import AS, have_cross_tools


@pytest.fixture
def fresh_answer():
    """native_delivery() answers once per process: forget it around a test."""
    nx.native_delivery.cache_clear()
    yield
    nx.native_delivery.cache_clear()


def test_the_self_test_passes_on_this_unicorn(monkeypatch):
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    delivery = nx.self_test()
    assert delivery.enabled, delivery.reason
    assert delivery.deliver and delivery.reason == ""


def test_a_wrong_exception_offset_turns_it_off_before_anything_is_called(monkeypatch):
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    delivery = nx.self_test(exception_offset=nx.ARMCPU_EXCEPTION_OFFSET + 8)
    assert not delivery.enabled and delivery.deliver is None
    assert delivery.reason.startswith(
        f"the pending exception at CPU+{nx.ARMCPU_EXCEPTION_OFFSET + 8:#x} reads ")


@pytest.mark.parametrize("offset", [nx.UC_STRUCT_CPU_OFFSET + 8, 0])
def test_a_wrong_cpu_offset_turns_it_off(monkeypatch, offset):
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    delivery = nx.self_test(uc_cpu_offset=offset)
    assert not delivery.enabled
    assert delivery.reason.startswith(f"uc_struct+{offset:#x} does not point at a CPU")


def test_a_missing_symbol_turns_it_off(monkeypatch):
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    lib = nx.native()
    monkeypatch.setattr(lib, "do_interrupt_address", None)
    delivery = nx.self_test(lib)
    assert not delivery.enabled and nx.DO_INTERRUPT_SYMBOL in delivery.reason


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv(nx.ENV_SWITCH, "0")
    delivery = nx.self_test()
    assert (delivery.enabled, delivery.reason) == (False, f"{nx.ENV_SWITCH}=0")


def test_off_is_said_once_on_stderr(monkeypatch, capsys, fresh_answer):
    monkeypatch.setattr(nx, "self_test", lambda: nx.NativeDelivery(False, "a reason"))
    assert not nx.native_delivery().enabled
    assert not nx.native_delivery().enabled
    err = capsys.readouterr().err
    assert err.splitlines() == ["armvisor: native exception delivery is off (a reason); the "
                                "guest's exceptions go through Python, more slowly"]


def test_on_is_silent(monkeypatch, capsys, fresh_answer):
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    assert nx.native_delivery().enabled
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not have_cross_tools(), reason="needs Debian's binutils-aarch64-linux-gnu")
def test_the_scratch_program_is_what_the_assembler_makes(tmp_path):
    source = """
    svc #0x5a5a
    hvc #0x200
    brk #0x77
    udf #0x1234
    ldr x0, [x1]
    b .
"""
    words = [nx.insn_svc(0x5A5A), nx.insn_hvc(0x200), nx.insn_brk(0x77), nx.insn_udf(0x1234),
             nx.INSN_LDR_X0_X1, nx.INSN_B_SELF]
    (tmp_path / "p.S").write_text(source)
    subprocess.run([AS, "-o", str(tmp_path / "p.o"), str(tmp_path / "p.S")], check=True)
    dump = subprocess.run(["aarch64-linux-gnu-objcopy", "-O", "binary", "-j", ".text",
                           str(tmp_path / "p.o"), str(tmp_path / "p.bin")], check=True)
    assert dump.returncode == 0
    data = (tmp_path / "p.bin").read_bytes()
    assert [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)] == words


def test_the_ring_records_are_read_with_the_c_layout():
    assert core._EXCEPTION_RECORD.size == ctypes.sizeof(ArmvException)
