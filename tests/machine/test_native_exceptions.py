"""The guest's exceptions taken natively by QEMU's entry (native_exceptions.py), and the
Python entry they fall back to: same results, exact counts, traces, loop reports."""

from __future__ import annotations

import pytest

from armvisor.cpu import native_exceptions as nx
from armvisor.cpu.models import ID_AA64MMFR0_EL1
from armvisor.cpu.syndrome import EC_BRK64, EC_SVC64, ESR_EC_SHIFT, esr_svc, esr_sysreg_trap
from armvisor.errors import GuestError
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from tests.machine.test_core import INSTALL_VECTORS, VECTORS
from tests.machine.tinyguest import build


@pytest.fixture(params=["native", "python"])
def delivery(request, monkeypatch):
    """Each test twice: exceptions taken natively, and with the self-test failed (a wrong
    offset), so everything goes through the Python entry."""
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    nx.native_delivery.cache_clear()
    if request.param == "python":
        failed = nx.self_test(exception_offset=nx.ARMCPU_EXCEPTION_OFFSET + 8)
        assert not failed.enabled
        monkeypatch.setattr(nx, "self_test", lambda: failed)
    yield request.param
    nx.native_delivery.cache_clear()


def machine_for(elf, **kw) -> tuple:
    out = bytearray()
    machine = BareBoard(MachineConfig(kernel=str(elf), **kw), console=out.extend)
    return machine, out


# SVC (returns to the next instruction) and BRK (the handler skips it), then power off.
SVC_AND_BRK = INSTALL_VECTORS + """
    svc #0x12
    mov x10, x5
    brk #0x34
    mov x11, x5
    system_off
""" + VECTORS
# The instructions that run, in order, for count_exactly: the prelude's
# `ldr x20`, INSTALL_VECTORS (3), SVC and its handler (8: four MRS, LSR, CMP,
# B.EQ taken, ERET), MOV, BRK and its handler (10: the SVC path's 7 up to
# B.EQ, ADD, MSR, ERET), MOV, system_off (LDR, SMC).
SVC_AND_BRK_INSTRUCTIONS = 1 + 3 + (1 + 8) + 1 + (1 + 10) + 1 + 2


def test_exceptions_reach_the_guest_either_way(tmp_path, delivery, capsys):
    machine, out = machine_for(build(tmp_path, SVC_AND_BRK))
    assert machine.run(timeout=30) == 0
    core = machine.lanes[0].core
    assert core.read_x(10) == esr_svc(0x12)
    assert core.read_x(11) >> ESR_EC_SHIFT == EC_BRK64
    counts = core.exit_counts()
    err = capsys.readouterr().err
    if delivery == "native":
        assert core.native_exceptions and core.exceptions_taken_natively == 2
        assert counts["exception SVC64 (C)"] == counts["exception BRK64 (C)"] == 1
        assert "svc" not in counts and err == ""
    else:
        assert not core.native_exceptions and core.exceptions_taken_natively == 0
        assert counts["svc"] == counts["brk"] == 1
        assert err.startswith("armvisor: native exception delivery is off (the pending "
                              "exception at CPU+")
        assert len(err.splitlines()) == 1


def test_an_exception_counts_once_when_counting_exactly(tmp_path, delivery):
    machine, _ = machine_for(build(tmp_path, SVC_AND_BRK))
    core = machine.lanes[0].core
    core.count_exactly()
    assert machine.run(timeout=30) == 0
    assert core.retired == SVC_AND_BRK_INSTRUCTIONS


LOOPS = 1000          # more than the C hook's ring of records (EXCEPTION_RING)
# LOOPS SVCs, then a BRK, each taken and returned from by VECTORS.
SVC_LOOP_THEN_BRK = INSTALL_VECTORS + f"""
    ldr x1, ={LOOPS}
1:  svc #0x7
    subs x1, x1, #1
    b.ne 1b
    brk #0x9
    system_off
""" + VECTORS


def test_every_exception_is_traced_in_order(tmp_path, delivery):
    machine, _ = machine_for(build(tmp_path, SVC_LOOP_THEN_BRK))
    events = []
    machine.trace.subscribe(lambda e: events.append(e) if e.kind.startswith("exception") else None)
    assert machine.run(timeout=30) == 0
    kinds = [(e.kind, e.fields["ec"], e.fields["far"]) for e in events]
    assert kinds == [("exception", EC_SVC64, None)] * LOOPS + [("exception", EC_BRK64, None)]
    assert {e.fields["esr"] for e in events[:LOOPS]} == {esr_svc(0x7)}
    assert events[-1].fields["elr"] == events[0].fields["elr"] + 8     # BRK; SVC: the next one


def test_unwatched_the_recent_events_are_the_same(tmp_path, delivery):
    """With no subscriber only the bus's `recent` ring is ever read: it ends the same."""
    elf = build(tmp_path, SVC_LOOP_THEN_BRK)
    recent = []
    for watched in (True, False):
        machine, _ = machine_for(elf)
        if watched:
            machine.trace.subscribe(lambda e: None)
        assert machine.trace.watched == watched
        assert machine.run(timeout=30) == 0
        recent.append([(e.kind, e.cpu, e.fields) for e in machine.trace.recent])
    assert recent[0] == recent[1]
    exceptions = [fields for kind, _, fields in recent[1] if kind == "exception"]
    assert exceptions and exceptions[-1]["ec"] == EC_BRK64


def test_the_svc_loop_runs_the_same_instructions_either_way(tmp_path, monkeypatch):
    """A full ring stops the slice only to read it, and the slice goes on: the
    instructions charged (which the budget, the schedule and the deterministic
    clock follow) are those of the Python entry."""
    elf = build(tmp_path, INSTALL_VECTORS + f"""
    ldr x1, ={LOOPS}
1:  svc #0x7
    subs x1, x1, #1
    b.ne 1b
    system_off
""" + VECTORS)
    monkeypatch.delenv(nx.ENV_SWITCH, raising=False)
    executed = {}
    for mode in ("native", "python"):
        nx.native_delivery.cache_clear()
        if mode == "python":
            monkeypatch.setenv(nx.ENV_SWITCH, "0")
        machine, _ = machine_for(elf)
        assert machine.lanes[0].core.native_exceptions == (mode == "native")
        assert machine.run(timeout=30) == 0
        executed[mode] = machine.lanes[0].core.executed
    nx.native_delivery.cache_clear()
    assert executed["native"] == executed["python"]


# SCTLR_EL1.SPAN = 0 asks for PSTATE.PAN on entry to EL1 where FEAT_PAN exists
# (Arm ARM D1.10.1); the handler reads PAN (S3_0_C4_C2_3) and prints it.
PAN_ON_ENTRY = INSTALL_VECTORS + """
    mrs x0, sctlr_el1
    bic x0, x0, #(1 << 23)
    msr sctlr_el1, x0
    isb
    svc #0
    add w1, w1, #'0'
    putc w1
    system_off
    .balign 2048
vectors:
    .skip 0x200
    mrs x1, s3_0_c4_c2_3
    lsr x1, x1, #22
    msr s3_0_c4_c2_3, xzr
    eret
"""


@pytest.mark.parametrize("cpu, pan", [("cortex-a57", "0"), ("max", "1")])
def test_pan_is_set_on_entry_only_where_the_model_has_it(tmp_path, delivery, cpu, pan):
    machine, out = machine_for(build(tmp_path, PAN_ON_ENTRY), cpu=cpu)
    assert machine.run(timeout=30) == 0
    assert out.decode() == pan


def test_a_vector_faulting_on_itself_is_an_exception_loop_naming_the_first(tmp_path, delivery):
    """VBAR_EL1 on zeros (UDF): the UDF in the code sends the core to the vector, whose
    first instruction faults again and again."""
    elf = build(tmp_path, """
    adr x0, zeros
    msr vbar_el1, x0
    isb
    adr x1, here
here: udf #1
    .balign 2048
zeros: .skip 0x800
""")
    machine, _ = machine_for(elf)
    with pytest.raises(GuestError) as info:
        machine.run(timeout=30)
    core = machine.lanes[0].core
    here = core.read_x(1)
    vector = core.exception_state()[3] + 0x200         # VBAR_EL1 + current EL with SP_ELx
    assert str(info.value).startswith(
        f"cpu0: exception loop: the EL1 vector at {vector:#x} takes an exception on its first "
        f"instruction (is VBAR_EL1 set?); the first exception: EC 0x00 (ESR 0x2000000) "
        f"ELR {here:#x}")
    assert core.first_fault == (0x2000000, here, None)
    assert core.pc == vector


def test_what_is_aimed_at_el2_and_el3_still_comes_to_python(tmp_path, delivery):
    """An ID register under HCR_EL2.TID3 (cortex-a57), HVC (the PSCI conduit here) and
    the SMC of system_off are EL2's and EL3's: the Python models answer them."""
    machine, out = machine_for(build(tmp_path, """
    mrs x10, id_aa64mmfr0_el1
    ldr x0, =0x84000000       // PSCI_VERSION
    hvc #0
    mov x11, x0
    system_off
"""), psci_conduit="hvc")
    assert machine.run(timeout=30) == 0
    core = machine.lanes[0].core
    assert core.read_x(10) == machine.model.id_register(ID_AA64MMFR0_EL1)
    assert core.read_x(11) >> 16 == 1                      # PSCI 1.x
    counts = core.exit_counts()
    assert counts["idreg"] == counts["hvc"] == counts["smc"] == 1
    assert core.exceptions_taken_natively == 0


# EL0 operations EL1 has not allowed (SCTLR_EL1.DZE, UCT and CNTKCTL_EL1.EL0VCTEN
# are 0 at reset): trapped to EL1 with EC 0x18, the ISS naming the instruction.
EL0_TRAPS = INSTALL_VECTORS + """
    adr x0, el0
    msr elr_el1, x0
    msr spsr_el1, xzr
    mov x20, #0
    isb
    eret
el0:
    dc zva, x2
    mrs x1, ctr_el0
    mrs x3, cntvct_el0
    svc #0
    .balign 2048
vectors:
    .skip 0x400
    mrs x5, esr_el1
    lsr x9, x5, #26
    cmp x9, #0x15
    b.eq 1f
    str x5, [x21, x20, lsl #3]
    add x20, x20, #1
    mrs x9, elr_el1
    add x9, x9, #4
    msr elr_el1, x9
    eret
1:  ldr x0, =0x84000008
    smc #0
"""


def test_el0_traps_name_the_instruction(tmp_path, delivery):
    machine, _ = machine_for(build(tmp_path, "    ldr x21, =0x48000000\n" + EL0_TRAPS))
    assert machine.run(timeout=30) == 0
    esrs = [int.from_bytes(machine.lanes[0].core.read_phys(0x4800_0000 + 8 * i, 8), "little")
            for i in range(3)]
    assert esrs == [esr_sysreg_trap(1, 3, 7, 4, 1, rt=2, is_read=False),     # DC ZVA, X2
                    esr_sysreg_trap(3, 3, 0, 0, 1, rt=1, is_read=True),      # CTR_EL0
                    esr_sysreg_trap(3, 3, 14, 0, 2, rt=3, is_read=True)]     # CNTVCT_EL0
