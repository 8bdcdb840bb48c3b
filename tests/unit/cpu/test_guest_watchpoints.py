"""What a guest's DBGWVR/DBGWCR pair watches (Arm ARM D2.9.3, D19.3; QEMU's
hw_watchpoint_update as the yardstick)."""

from armvisor.cpu.guest_watchpoints import Watch, decode, is_watchpoint_register, wvr_value
from armvisor.cpu.sysregs import SysReg

E, PAC_EL1, PAC_BOTH, LOAD, STORE, BOTH = 1, 1 << 1, 3 << 1, 1 << 3, 2 << 3, 3 << 3


def bas(mask: int) -> int:
    return mask << 5


def test_bas_selects_contiguous_bytes_of_the_doubleword():
    assert decode(0x1000, bas(0xFF) | STORE | PAC_EL1 | E) == Watch(0x1000, 8, False, True, 1)
    assert decode(0x1000, bas(0b0110_0000) | LOAD | PAC_BOTH | E) == Watch(0x1005, 2, True, False, 3)


def test_a_word_aligned_address_ignores_the_upper_bas_bits():
    assert decode(0x1004, bas(0xF0) | BOTH | PAC_EL1 | E) is None
    assert decode(0x1004, bas(0xFF) | BOTH | PAC_EL1 | E) == Watch(0x1004, 4, True, True, 1)


def test_mask_watches_an_aligned_power_of_two_range():
    assert decode(0x12345, (12 << 24) | STORE | PAC_EL1 | E) == Watch(0x12000, 4096, False, True, 1)


def test_disabled_reserved_and_empty_watchpoints_watch_nothing():
    assert decode(0x1000, bas(0xFF) | STORE | PAC_EL1) is None           # E clear
    assert decode(0x1000, bas(0xFF) | PAC_EL1 | E) is None                # LSC 0
    assert decode(0x1000, bas(0xFF) | STORE | E) is None                  # PAC 0
    assert decode(0x1000, (1 << 24) | STORE | PAC_EL1 | E) is None        # MASK 1 reserved
    assert decode(0x1000, STORE | PAC_EL1 | E) is None                    # BAS 0


def test_the_address_register_sign_extends_bit_48_and_drops_bits_1_0():
    assert wvr_value(0x0001_0000_0000_1003) == 0xFFFF_0000_0000_1000
    assert wvr_value(0xFFFF_0000_0000_1007) == 0xFFFF_0000_0000_1004
    assert wvr_value(0x7FFE_0000_0000_1000) == 0x0000_0000_0000_1000


def test_privilege_control():
    watch = decode(0x1000, bas(0xFF) | STORE | (2 << 1) | E)
    assert watch.matches_el(0) and not watch.matches_el(1)
    assert decode(0x1000, bas(0xFF) | STORE | PAC_BOTH | E).matches_el(1)


def test_which_registers_are_watchpoint_registers():
    assert is_watchpoint_register(SysReg(2, 0, 0, 3, 6))       # DBGWVR3_EL1
    assert is_watchpoint_register(SysReg(2, 0, 0, 0, 7))       # DBGWCR0_EL1
    assert not is_watchpoint_register(SysReg(2, 0, 0, 0, 4))   # DBGBVR0_EL1
    assert not is_watchpoint_register(SysReg(2, 0, 0, 2, 2))   # MDSCR_EL1
