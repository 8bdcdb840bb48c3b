"""Exception entry to EL1 (Arm ARM D1.10): vector offsets and the new PSTATE."""

from armvisor.cpu import sysregs as sr
from armvisor.cpu.entry import entry_pstate, vector_offset

EL0T = sr.PSTATE_MODE_EL0T
EL1T = sr.PSTATE_MODE_EL1T
EL1H = sr.PSTATE_MODE_EL1H


def test_vector_offsets_by_source_el_and_stack():
    assert vector_offset(EL0T) == 0x400                 # lower EL, AArch64
    assert vector_offset(EL1T) == 0x000                 # current EL with SP_EL0
    assert vector_offset(EL1H) == 0x200                 # current EL with SP_ELx
    assert vector_offset(EL1H | sr.PSTATE_DAIF) == 0x200


def test_entry_masks_daif_selects_el1h_and_clears_flags():
    old = EL0T | (0xF << 28) | sr.PSTATE_SS | sr.PSTATE_IL | sr.PSTATE_BTYPE_MASK
    new = entry_pstate(old, sctlr=sr.SCTLR_SPAN, pan_implemented=True)
    assert new == sr.PSTATE_DAIF | EL1H


def test_pan_is_set_on_entry_unless_span_says_keep_it():
    assert entry_pstate(EL0T, sctlr=0, pan_implemented=True) & sr.PSTATE_PAN
    assert not entry_pstate(EL0T, sctlr=sr.SCTLR_SPAN, pan_implemented=True) & sr.PSTATE_PAN
    # SPAN=1 leaves PAN as it was: an EL1 exception taken with PAN set keeps it.
    assert entry_pstate(EL1H | sr.PSTATE_PAN, sctlr=sr.SCTLR_SPAN, pan_implemented=True) \
        & sr.PSTATE_PAN
    # A CPU without FEAT_PAN (the cortex-a57 model) never sets it.
    assert not entry_pstate(EL0T, sctlr=0, pan_implemented=False) & sr.PSTATE_PAN


def test_ssbs_follows_sctlr_dssbs():
    assert entry_pstate(EL0T, sctlr=sr.SCTLR_SPAN | sr.SCTLR_DSSBS,
                        pan_implemented=False) & sr.PSTATE_SSBS
    assert not entry_pstate(EL0T, sctlr=sr.SCTLR_SPAN, pan_implemented=False) & sr.PSTATE_SSBS
