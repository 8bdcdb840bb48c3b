"""ESR_ELx builders, checked against values Linux and KVM print for real hardware exceptions."""

from __future__ import annotations

import pytest

from armvisor.cpu import syndrome as S
try:
    from asm_helper import assemble, have_assembler
except ImportError:  # tests/unit as a package
    from .asm_helper import assemble, have_assembler


@pytest.mark.parametrize("esr,want", [
    (S.esr_unknown(), 0x0200_0000),
    (S.esr_svc(0), 0x5600_0000),
    (S.esr_svc(0x1234), 0x5600_1234),
    (S.esr_hvc(0), 0x5A00_0000),
    (S.esr_smc(0), 0x5E00_0000),
    (S.esr_smc(0x1_0005), 0x5E00_0005),            # imm16 only
    (S.esr_brk(0x800), 0xF200_0800),               # Linux BUG()
    (S.esr_fp_access_trap(), 0x1FE0_0000),
    (S.esr_sve_access_trap(), 0x6600_0000),
    (S.esr_wfx(False), 0x07E0_0000),
    (S.esr_wfx(True), 0x07E0_0001),
    (S.esr_illegal_state(), 0x3A00_0000),
    (S.esr_pc_alignment(), 0x8A00_0000),
    (S.esr_sp_alignment(), 0x9A00_0000),
    (S.esr_bti(2), 0x3600_0002),
    # Data aborts: the values in "Unable to handle kernel ... ESR = 0x..." reports.
    (S.esr_data_abort(True, S.fsc_translation(0), wnr=False), 0x9600_0004),
    (S.esr_data_abort(True, S.fsc_translation(1), wnr=True), 0x9600_0045),
    (S.esr_data_abort(True, S.fsc_permission(3), wnr=True), 0x9600_004F),
    (S.esr_data_abort(False, S.fsc_translation(3), wnr=True), 0x9200_0047),
    (S.esr_data_abort(False, S.fsc_access_flag(3), wnr=False), 0x9200_000B),
    (S.esr_data_abort(True, S.FSC_ALIGNMENT, wnr=False), 0x9600_0021),
    (S.esr_data_abort(False, S.fsc_permission(3), wnr=False, cm=True), 0x9200_014F),
    (S.esr_data_abort(False, S.fsc_translation(3), wnr=False, s1ptw=True), 0x9200_0087),
    (S.esr_data_abort(False, S.FSC_SYNC_EXTERNAL, wnr=False, fnv=True, ea=True), 0x9200_0610),
    (S.esr_data_abort(False, S.fsc_translation(3), wnr=False, isv_info=(2, False, 3, False, False)),
     0x9383_0007),
    (S.esr_data_abort(False, S.fsc_translation(3), wnr=True,
                      isv_info=S.IssInfo(sas=3, sse=True, srt=31, sf=True, ar=True)), 0x93FF_C047),
    (S.esr_instruction_abort(True, S.fsc_permission(3)), 0x8600_000F),
    (S.esr_instruction_abort(False, S.fsc_translation(3)), 0x8200_0007),
    (S.esr_instruction_abort(False, S.fsc_external_walk(1), s1ptw=False), 0x8200_0015),
    (S.esr_sysreg_trap(3, 0, 0, 0, 0, 0, True), 0x6230_0001),               # mrs x0, midr_el1
    (S.esr_sysreg_trap(3, 3, 0, 0, 1, 1, True), 0x6232_C021),               # mrs x1, ctr_el0
    (S.esr_sysreg_trap(1, 3, 7, 4, 1, 2, False), 0x6212_DC48),              # dc zva, x2
    (S.esr_pac_fail(instruction_key=True, key_b=False), 0x7200_0000),
    (S.esr_pac_fail(instruction_key=False, key_b=True), 0x7200_0003),
])
def test_known_values(esr: int, want: int) -> None:
    assert esr == want, f"{esr:#x} != {want:#x}"


def test_fault_status_codes() -> None:
    assert [S.fsc_translation(n) for n in range(4)] == [0x04, 0x05, 0x06, 0x07]
    assert [S.fsc_access_flag(n) for n in range(4)] == [0x08, 0x09, 0x0A, 0x0B]
    assert [S.fsc_permission(n) for n in range(4)] == [0x0C, 0x0D, 0x0E, 0x0F]
    assert [S.fsc_address_size(n) for n in range(4)] == [0x00, 0x01, 0x02, 0x03]
    assert [S.fsc_external_walk(n) for n in range(4)] == [0x14, 0x15, 0x16, 0x17]
    assert S.fsc_translation(-1) == 0x2B and S.fsc_external_walk(-1) == 0x13
    with pytest.raises(ValueError):
        S.fsc_translation(4)
    assert S.fsc_name(0x06) == "translation fault, level 2"
    assert S.fsc_name(0x21) == "alignment fault"


def test_isv_sas_range_checked() -> None:
    with pytest.raises(ValueError):
        S.esr_data_abort(True, 4, wnr=False, isv_info=(4, False, 0, True, False))


def test_decode_esr_roundtrip() -> None:
    d = S.decode_esr(S.esr_data_abort(False, S.fsc_permission(2), wnr=True, cm=True))
    assert d["ec_name"] == "DABT_LOWER" and d["fsc"] == 0x0E and d["wnr"] and d["cm"] and not d["isv"]
    assert d["fsc_name"] == "permission fault, level 2"
    d = S.decode_esr(S.esr_data_abort(True, 7, wnr=False, isv_info=(1, True, 9, False, True)))
    assert (d["sas"], d["sse"], d["srt"], d["sf"], d["ar"]) == (1, True, 9, False, True)
    d = S.decode_esr(S.esr_sysreg_trap(3, 3, 14, 0, 2, 7, False))
    assert (d["op0"], d["op1"], d["crn"], d["crm"], d["op2"], d["rt"], d["is_read"]) == (3, 3, 14, 0, 2, 7, False)
    d = S.decode_esr(S.esr_hvc(0x42))
    assert d["ec"] == S.EC_HVC64 and d["imm16"] == 0x42 and d["il"]
    assert S.decode_esr(S.esr_instruction_abort(True, 5))["ec_name"] == "IABT_CUR"


SYSREG_CASES = [
    ("mrs x0, midr_el1", (3, 0, 0, 0, 0, 0, True)),
    ("mrs x1, ctr_el0", (3, 3, 0, 0, 1, 1, True)),
    ("msr cntv_ctl_el0, x5", (3, 3, 14, 3, 1, 5, False)),
    ("mrs x30, cntvct_el0", (3, 3, 14, 0, 2, 30, True)),
    ("msr s3_0_c12_c12_5, x2", (3, 0, 12, 12, 5, 2, False)),          # ICC_SRE_EL1
    ("mrs x3, s3_0_c12_c12_0", (3, 0, 12, 12, 0, 3, True)),           # ICC_IAR1_EL1
    ("msr mdscr_el1, x4", (2, 0, 0, 2, 2, 4, False)),
    ("dc zva, x2", (1, 3, 7, 4, 1, 2, False)),
    ("tlbi vmalle1is", (1, 0, 8, 3, 0, 31, False)),
    ("sysl x7, #0, c11, c0, #0", (1, 0, 11, 0, 0, 7, True)),
    ("msr pan, #1", (0, 0, 4, 1, 4, 31, False)),
]


@pytest.mark.parametrize("asm,fields", SYSREG_CASES, ids=[c[0] for c in SYSREG_CASES])
def test_sysreg_trap_for_insn(asm: str, fields: tuple) -> None:
    if not have_assembler():
        pytest.skip("aarch64-linux-gnu-as is not installed")
    (word,) = assemble((asm,))
    assert S.esr_sysreg_trap_for_insn(word) == S.esr_sysreg_trap(*fields)


@pytest.mark.parametrize("asm", ["nop", "isb", "dsb sy", "clrex", "wfi", "svc #0", "ldr x0, [x1]"])
def test_sysreg_trap_for_insn_rejects(asm: str) -> None:
    if not have_assembler():
        pytest.skip("aarch64-linux-gnu-as is not installed")
    (word,) = assemble((asm,))
    assert S.esr_sysreg_trap_for_insn(word) is None
