import pytest

from armvisor.devices.pflash import CfiFlash, cfi_query_table
from armvisor.errors import ArmvisorError
from armvisor.trace import TraceBus

SECTOR = 256 * 1024

# The first 100 flash0 accesses of Debian's U-Boot 2023.01 (qemu_arm64) under
# QEMU 7.2 (`-d trace:pflash_io_*`): its cfi_flash probe at every port and chip
# width, the CFI table walk, the JEDEC IDs and the per-sector lock status.
# (op, offset, size, value); read values are what QEMU returned.
UBOOT_PROBE = [
    ("w", 0x0, 1, 0xf0), ("w", 0x0, 1, 0xff), ("w", 0x55, 1, 0x98), ("r", 0x10, 1, 0x0), ("w",
    0x555, 1, 0x98), ("r", 0x10, 1, 0x0), ("w", 0x0, 1, 0xf0), ("w", 0x0, 1, 0xff), ("w", 0xaa,
    1, 0x98), ("r", 0x20, 1, 0x0), ("w", 0xaaa, 1, 0x98), ("r", 0x20, 1, 0x0), ("w", 0x0, 2,
    0xf0f0), ("w", 0x0, 2, 0xffff), ("w", 0xaa, 2, 0x9898), ("r", 0x20, 2, 0x0), ("w", 0xaaa, 2,
    0x9898), ("r", 0x20, 2, 0x0), ("w", 0x0, 2, 0xf0f0), ("w", 0x0, 2, 0xffff), ("w", 0x154, 2,
    0x9898), ("r", 0x40, 2, 0x51), ("w", 0x1554, 2, 0x9898), ("r", 0x40, 2, 0x51), ("w", 0x0, 2,
    0xf0), ("w", 0x0, 2, 0xff), ("w", 0xaa, 2, 0x98), ("r", 0x20, 2, 0x0), ("w", 0xaaa, 2,
    0x98), ("r", 0x20, 2, 0x0), ("w", 0x0, 2, 0xf0), ("w", 0x0, 2, 0xff), ("w", 0x154, 2, 0x98),
    ("r", 0x40, 2, 0x51), ("r", 0x44, 2, 0x52), ("r", 0x48, 2, 0x59), ("r", 0x40, 1, 0x51),
    ("r", 0x44, 1, 0x52), ("r", 0x48, 1, 0x59), ("r", 0x4c, 1, 0x1), ("r", 0x50, 1, 0x0), ("r",
    0x54, 1, 0x31), ("r", 0x58, 1, 0x0), ("r", 0x5c, 1, 0x0), ("r", 0x60, 1, 0x0), ("r", 0x64,
    1, 0x0), ("r", 0x68, 1, 0x0), ("r", 0x6c, 1, 0x45), ("r", 0x70, 1, 0x55), ("r", 0x74, 1,
    0x0), ("r", 0x78, 1, 0x0), ("r", 0x7c, 1, 0x7), ("r", 0x80, 1, 0x7), ("r", 0x84, 1, 0xa),
    ("r", 0x88, 1, 0x0), ("r", 0x8c, 1, 0x4), ("r", 0x90, 1, 0x4), ("r", 0x94, 1, 0x4), ("r",
    0x98, 1, 0x0), ("r", 0x9c, 1, 0x19), ("r", 0xa0, 1, 0x2), ("r", 0xa4, 1, 0x0), ("r", 0xa8,
    1, 0xb), ("r", 0xac, 1, 0x0), ("r", 0xb0, 1, 0x1), ("r", 0xb4, 1, 0xff), ("r", 0xb8, 1,
    0x0), ("r", 0xbc, 1, 0x0), ("r", 0xc0, 1, 0x2), ("r", 0xc4, 1, 0x50), ("r", 0xc8, 1, 0x52),
    ("r", 0xcc, 1, 0x49), ("r", 0xd0, 1, 0x31), ("r", 0xd4, 1, 0x30), ("r", 0xd8, 1, 0x0), ("r",
    0xdc, 1, 0x0), ("r", 0xe0, 1, 0x0), ("r", 0xe4, 1, 0x0), ("r", 0xe8, 1, 0x0), ("r", 0xec, 1,
    0x0), ("r", 0xf0, 1, 0x0), ("r", 0xd0, 1, 0x31), ("r", 0xd4, 1, 0x30), ("w", 0x0, 2, 0xff),
    ("w", 0x0, 2, 0x90), ("r", 0x0, 1, 0x89), ("r", 0x4, 2, 0x18), ("w", 0x0, 2, 0xff), ("w",
    0x154, 2, 0x98), ("w", 0x0, 2, 0x90), ("r", 0x8, 2, 0x0), ("w", 0x0, 2, 0xff), ("w",
    0x20000, 2, 0x90), ("r", 0x20008, 2, 0x0), ("w", 0x20000, 2, 0xff), ("w", 0x40000, 2, 0x90),
    ("r", 0x40008, 2, 0x0), ("w", 0x40000, 2, 0xff), ("w", 0x60000, 2, 0x90), ("r", 0x60008, 2,
    0x0)
]


def flash(**kw) -> CfiFlash:
    return CfiFlash(**kw)


def test_uboot_probe_sequence_reads_what_qemu_returned():
    f = flash()
    for op, offset, size, value in UBOOT_PROBE:
        if op == "w":
            f.write(offset, size, value)
        else:
            assert f.read(offset, size) == value, (hex(offset), size)
    assert not f.mode_is_read_array and f.cmd == 0x90       # the excerpt ends in Read ID


def test_cfi_table_matches_qemu_virt_geometry():
    t = cfi_query_table(64 << 20, SECTOR, 4, 2)
    assert t[0x10:0x13] == b"QRY" and t[0x13] == 1
    assert t[0x27] == 25                       # each x16 chip holds 32 MiB
    assert (t[0x2D], t[0x2E], t[0x2F], t[0x30]) == (0xFF, 0, 0, 2)   # 256 x 128 KiB
    assert t[0x2A] == 0x0B and t[0x31:0x36] == b"PRI10"
    assert flash().write_buffer_size == 4096


def test_reads_return_contents_in_read_array_mode():
    f = flash()
    assert f.read(0x100, 4) == 0                      # no -drive: zero-filled, as QEMU
    f.load(0x100, b"\x11\x22\x33\x44\x55\x66\x77\x88")
    assert f.read(0x100, 4) == 0x44332211
    assert f.read(0x101, 1) == 0x22
    assert f.read(0x100, 8) == 0x8877665544332211
    with pytest.raises(ArmvisorError):
        f.load(f.size - 2, b"abc")


def test_query_id_and_status_replicate_per_chip():
    f = flash()
    f.write(0x154, 4, 0x00980098)
    assert f.read(0x40, 4) == 0x00510051              # 'Q' from both chips
    assert f.read(0x40 * 0x100, 4) == 0               # beyond the table
    f.write(0, 4, 0x00FF00FF)
    f.write(0, 4, 0x00900090)
    assert f.read(0, 4) == 0x00890089
    assert f.read(4, 4) == 0x00180018
    assert f.read(0x40008, 2) == 0                    # block 1 lock status: unlocked
    assert f.read(0x400, 4) == 0x00890089             # word index masked to 8 bits
    f.write(0, 2, 0x70)
    assert f.read(0, 4) == 0x00800080 and f.read(0, 2) == 0x80
    f.write(0, 2, 0x50)                               # clear status, back to read array
    assert f.mode_is_read_array and f.status == 0


def test_mode_change_callback_and_trace():
    changes = []
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    f = flash(on_mode_change=changes.append, trace=bus)
    f.write(0, 2, 0xFF)                               # already reading the array: no change
    assert changes == []
    f.write(0, 2, 0x90)
    assert changes == [False] and not f.mode_is_read_array
    f.write(0, 2, 0x70)                               # command to command: still no array
    assert changes == [False]
    f.write(0, 2, 0xF0)
    assert changes == [False, True]
    f.write(0, 2, 0x98)
    f.write(0, 2, 0xF0)                               # QEMU leaves query mode only on 0xFF
    assert not f.mode_is_read_array
    f.write(0, 2, 0xFF)
    assert f.mode_is_read_array and changes == [False, True, False, True]
    f.write(0, 2, 0x90)
    f.reset()
    assert f.mode_is_read_array and changes[-1] is True
    modes = [e.fields["read_array"] for e in events if e.kind == "flash.mode"]
    assert modes == changes


def test_word_program_then_status_until_read_array():
    f = flash()
    f.write(0x1000, 2, 0x40)
    f.write(0x1000, 4, 0xCAFEBABE)
    assert bytes(f.contents[0x1000:0x1004]) == bytes.fromhex("bebafeca")
    assert f.read(0x1000, 2) == 0x80                  # status until told otherwise
    f.write(0, 2, 0xFF)
    assert f.read(0x1000, 4) == 0xCAFEBABE


def test_block_erase_fills_the_256k_sector():
    f = flash()
    f.load(SECTOR - 4, b"\x01" * 8)
    f.write(SECTOR + 0x20000, 2, 0x20)                # any address inside the sector
    f.write(SECTOR + 0x20000, 2, 0xD0)
    assert f.read(0, 2) == 0x80
    f.write(0, 2, 0xFF)
    assert f.read(SECTOR - 4, 4) == 0x01010101       # previous sector untouched
    assert f.read(SECTOR, 4) == 0xFFFFFFFF and f.read(2 * SECTOR - 4, 4) == 0xFFFFFFFF
    assert f.read(2 * SECTOR, 4) == 0


def test_erase_with_bad_confirm_goes_back_to_read_array():
    f = flash()
    f.write(0, 2, 0x20)
    f.write(0, 2, 0x12)
    assert f.mode_is_read_array


def test_buffered_write_commits_on_confirm_only():
    f = flash()
    f.write(0x2000, 2, 0xE8)
    assert f.read(0x2000, 2) == 0x80
    f.write(0x2000, 2, 0x0001)                        # two words
    f.write(0x2000, 2, 0x1234)
    assert f.read(0x2000, 2) == 0x80                  # nothing written yet
    f.write(0x2002, 2, 0x5678)
    f.write(0x2000, 2, 0xD0)
    f.write(0, 2, 0xFF)
    assert f.read(0x2000, 4) == 0x56781234
    # Aborted: the buffer is dropped.
    f.write(0x3000, 2, 0xE8)
    f.write(0x3000, 2, 0)
    f.write(0x3000, 2, 0xAAAA)
    f.write(0x3000, 2, 0xFF)
    assert f.mode_is_read_array and f.read(0x3000, 2) == 0


def test_buffered_write_outside_the_anchored_buffer_fails_like_qemu():
    # U-Boot writes the count at the sector base; data 4 KiB further on lies
    # outside QEMU's buffer, so the program error bit is set and the confirm aborts.
    f = flash()
    f.write(0, 2, 0xE8)
    f.write(0, 2, 0)
    f.write(0x1000, 2, 0x4242)
    assert f.status & 0x10
    f.write(0, 2, 0xD0)
    assert f.mode_is_read_array and f.read(0x1000, 2) == 0
    assert f.read(0, 2) == 0


def test_lock_commands_are_accepted():
    f = flash()
    for second in (0x01, 0xD0):
        f.write(0, 2, 0x60)
        f.write(0, 2, second)
        assert f.read(0, 2) == 0x80
    f.write(0, 2, 0xFF)
    assert f.mode_is_read_array


def test_read_only_flash_reports_errors_and_keeps_contents():
    f = flash(read_only=True)
    f.load(0, b"\x55" * 4)
    f.write(0, 2, 0x20)
    assert f.status & 0x20
    f.write(0, 2, 0x50)
    f.write(0, 2, 0x40)
    f.write(0, 2, 0x1111)
    assert f.status & 0x10
    f.write(0, 2, 0xFF)
    assert f.read(0, 4) == 0x55555555


def test_bad_guest_input_never_raises():
    f = flash()
    f.write(0, 2, 0x33)                               # unknown command
    assert f.mode_is_read_array
    assert f.read(f.size, 4) == 0
    assert f.read(f.size - 2, 4) == 0
    f.write(-4, 4, 0x90)
    f.write(0, 8, 0x90)
    f.write(0, 3, 0x90)
    assert f.mode_is_read_array


def test_bad_geometry_rejected():
    with pytest.raises(ArmvisorError):
        CfiFlash(size=1000, sector_size=SECTOR)
    with pytest.raises(ArmvisorError):
        CfiFlash(bank_width=4, device_width=3)


def test_64bit_write_is_two_32bit_writes_low_word_first_like_qemu():
    """QEMU's memory core splits it (the device takes 4 bytes at most), lower address first.

    EDK2's PEI modules store 64-bit globals into flash0 while running from it:
    under QEMU 7.2 (checked with gdb) `str x1, [x0, #2848]` with x1 = 0x17384
    leaves flash0 unchanged and readable, because the low word is an unknown
    command (0x84) and the high word, 0x00, is read-array.
    """
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    f = flash(trace=bus)
    f.load(0x1CB20, (0x1C650).to_bytes(8, "little"))
    f.write(0x1CB20, 8, 0x17384)
    assert f.mode_is_read_array and f.read(0x1CB20, 8) == 0x1C650
    assert [(e.fields["offset"], e.fields["command"]) for e in events
            if e.kind == "flash.bad_command"] == [(0x1CB20, 0x84)]
    # A low word that is a command: program, with the high word as the data at +4.
    f.write(0x1000, 8, (0xCAFEBABE << 32) | 0x40)
    assert bytes(f.contents[0x1000:0x1008]) == bytes(4) + bytes.fromhex("bebafeca")
    assert not f.mode_is_read_array                   # status, as after any program
    f.write(0, 8, (0x00FF00FF << 32) | 0x00900090)    # read ID, then read array
    assert f.mode_is_read_array


def test_contents_can_be_the_callers_mapping():
    import mmap
    backing = mmap.mmap(-1, 2 * SECTOR)
    backing[0:4] = b"EDK2"
    f = CfiFlash(size=2 * SECTOR, contents=backing)
    assert f.read(0, 4) == int.from_bytes(b"EDK2", "little")
    f.write(SECTOR, 2, 0x20)                          # erase: the caller's pages change
    assert backing[SECTOR:SECTOR + 4] == b"\xff" * 4
    with pytest.raises(ArmvisorError, match="contents"):
        CfiFlash(size=4 * SECTOR, contents=backing)
