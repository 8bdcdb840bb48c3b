"""CFI parallel NOR flash with the Intel/Sharp command set, as QEMU's pflash_cfi01 on virt.

QEMU's virt board (hw/arm/virt.c virt_flash_create1) builds each of its two
64 MiB banks from two 16-bit chips side by side: bank width 4 bytes, device
width 2, 256 KiB sectors across the bank, IDs 0x89 (Intel) / 0x18. U-Boot's
cfi_flash driver and EDK2 probe it through the Common Flash Interface
(JEDEC JESD68.01) and drive it with the Intel command set (Intel
"Common Flash Interface and Command Sets", AP-646, command codes below).

The model follows what QEMU 7.2 as Debian ships it does, quirks included, so a
guest prints the same on both (for example U-Boot's `saveenv` reports a buffer
write timeout on both: the write buffer is anchored where the count is written,
and U-Boot writes the count at the sector base every time):

- Read-array mode ("ROMD" in QEMU): reads return the contents. Any write in
  that mode leaves it; 0xFF / 0xF0 / 0x00, 0x50 and aborted sequences return to it.
- A block erase takes effect on the 0x20 write, before the 0xD0 confirm.
- Block lock/unlock (0x60 + 0x01/0xD0) is accepted and does nothing: every
  block reads as unlocked.
- A 64-bit access is two 32-bit accesses, the lower address first: QEMU's
  memory core splits it so (access_with_adjusted_size; the device has no
  .impl sizes, so 4 bytes at most). EDK2 stores 64-bit globals into flash0
  this way: the low word is an unknown command and the high word (0x00)
  returns the bank to read-array mode, so nothing changes (checked on QEMU 7.2).

`contents` is an mmap (anonymous, or of a -drive if=pflash file) the board
can map into the cores as RAM (read + execute only) while `mode_is_read_array`
is true; writes always come here. `on_mode_change(read_array)` fires whenever that mode changes.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Callable, Optional

from armvisor.errors import ArmvisorError
from armvisor.pages import restore_pages, save_pages

# Intel command codes (AP-646 table 3; QEMU pflash_cfi01.c pflash_write).
CMD_READ_ARRAY_QEMU = 0x00        # QEMU's internal "read array" state; accepted as a command too
CMD_PROGRAM_ALT = 0x10
CMD_BLOCK_ERASE = 0x20
CMD_PROGRAM = 0x40
CMD_CLEAR_STATUS = 0x50
CMD_LOCK_SETUP = 0x60
CMD_READ_STATUS = 0x70
CMD_READ_ID = 0x90
CMD_CFI_QUERY = 0x98
CMD_CONFIRM = 0xD0
CMD_BUFFERED_WRITE = 0xE8
CMD_AMD_RESET = 0xF0               # the AMD reset U-Boot sends while probing
CMD_READ_ARRAY = 0xFF
LOCK_SET = 0x01                    # second cycle of 0x60: lock block

# Status register bits (AP-646 table 5).
SR_READY = 0x80                    # SR.7 write state machine ready
SR_ERASE_ERROR = 0x20              # SR.5
SR_PROGRAM_ERROR = 0x10            # SR.4

# Read-ID addresses, in device words: manufacturer, device, block lock status.
ID_MANUFACTURER = 0
ID_DEVICE = 1

# virt.c virt_flash_create1: two x16 chips per bank, Intel manufacturer code, device 0x18.
VIRT_BANK_WIDTH = 4
VIRT_DEVICE_WIDTH = 2
VIRT_ID0 = 0x89
VIRT_ID1 = 0x18

CFI_TABLE_SIZE = 0x52             # QEMU's cfi_table[]; reads beyond return 0
# Log2 of the per-device write buffer (CFI offset 0x2A) QEMU reports for wide banks.
WRITE_BUFFER_LOG2 = 0x0B


def cfi_query_table(bank_size: int, sector_size: int, bank_width: int,
                    device_width: int) -> bytes:
    """The CFI query structure of one chip (JESD68.01 tables 1-4, values from QEMU)."""
    devices = bank_width // device_width
    blocks = bank_size // sector_size               # per chip: every sector spans all chips
    sector_per_device = sector_size // devices
    device_size = sector_per_device * blocks
    t = bytearray(CFI_TABLE_SIZE)
    t[0x10:0x13] = b"QRY"
    t[0x13] = 0x01                 # primary command set: Intel/Sharp extended
    t[0x15] = 0x31                 # primary extended table at 0x31
    t[0x1B] = 0x45                 # Vcc min 4.5 V
    t[0x1C] = 0x55                 # Vcc max 5.5 V
    t[0x1F] = 0x07                 # typical word write 2^7 us
    t[0x20] = 0x07                 # typical buffer write 2^7 us
    t[0x21] = 0x0A                 # typical block erase 2^10 ms
    t[0x23] = 0x04                 # max timeouts: 2^4 x typical
    t[0x24] = 0x04
    t[0x25] = 0x04
    t[0x27] = device_size.bit_length() - 1
    t[0x28] = 0x02                 # interface: x8/x16
    t[0x2A] = 0x08 if bank_width == 1 else WRITE_BUFFER_LOG2
    t[0x2C] = 0x01                 # one erase block region, uniform
    t[0x2D] = (blocks - 1) & 0xFF
    t[0x2E] = ((blocks - 1) >> 8) & 0xFF
    t[0x2F] = (sector_per_device >> 8) & 0xFF
    t[0x30] = (sector_per_device >> 16) & 0xFF
    t[0x31:0x36] = b"PRI10"        # Intel primary extended query, version 1.0
    t[0x3F] = 0x01                 # one protection register field
    return bytes(t)


# The banks of QEMU's virt board (hw/arm/virt.c VIRT_FLASH_SECTOR_SIZE and
# the 64 MiB flash0/flash1 windows); the board passes its own.
VIRT_BANK_SIZE = 0x0400_0000
VIRT_SECTOR_SIZE = 0x0004_0000


class CfiFlash:
    """One flash bank. `read`/`write` are the MMIO handlers for offsets within it."""

    def __init__(self, name: str = "flash0", size: int = VIRT_BANK_SIZE,
                 sector_size: int = VIRT_SECTOR_SIZE,
                 bank_width: int = VIRT_BANK_WIDTH, device_width: int = VIRT_DEVICE_WIDTH,
                 ids: tuple[int, int] = (VIRT_ID0, VIRT_ID1), read_only: bool = False,
                 trace=None, on_mode_change: Optional[Callable[[bool], None]] = None,
                 contents: Optional[mmap.mmap] = None):
        if size <= 0 or sector_size <= 0 or size % sector_size:
            raise ArmvisorError(f"flash size {size:#x} is not a multiple of its sector "
                                f"size {sector_size:#x}")
        if bank_width not in (1, 2, 4) or device_width not in (1, 2, 4) or \
                bank_width % device_width:
            raise ArmvisorError(f"bad flash geometry: bank width {bank_width}, "
                                f"device width {device_width}")
        self.name = name
        self.size = size
        self.sector_size = sector_size
        self.bank_width = bank_width
        self.device_width = device_width
        self.ids = ids
        self.read_only = read_only
        self.on_mode_change = on_mode_change
        self._trace = trace
        self.cfi_table = cfi_query_table(size, sector_size, bank_width, device_width)
        devices = bank_width // device_width
        self.write_buffer_size = (1 << self.cfi_table[0x2A]) * devices
        if contents is not None and len(contents) != size:
            raise ArmvisorError(f"{name}: {len(contents):#x} bytes of contents for a "
                                f"{size:#x}-byte bank")
        # QEMU's storage without a -drive is zero-filled RAM; an anonymous
        # mapping reads as zero and costs nothing until touched. With a
        # drive, the caller maps its file (machine/flash_files.py).
        self.contents = contents if contents is not None else \
            mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.pointer = ctypes.addressof(ctypes.c_char.from_buffer(self.contents))
        self._read_array = True
        self.cmd = CMD_READ_ARRAY_QEMU
        self.wcycle = 0
        self.status = SR_READY
        self.counter = 0
        self._buffer: Optional[bytearray] = None
        self._buffer_offset = 0

    # ------------------------------------------------------------------ state
    @property
    def mode_is_read_array(self) -> bool:
        """True while reads return the contents (the board may map them as RAM)."""
        return self._read_array

    def reset(self) -> None:
        """Power-on / system reset (QEMU pflash_cfi01_system_reset)."""
        self.cmd = CMD_READ_ARRAY_QEMU
        self.wcycle = 0
        self.status = SR_READY
        self._buffer = None
        before = self._read_array
        self._read_array = True
        self._report_mode(before)

    def save_state(self) -> dict:
        """The command state machine and the bank's programmed pages (the rest is erased)."""
        return {
            "size": self.size,
            "read_array": self._read_array,
            "cmd": self.cmd,
            "wcycle": self.wcycle,
            "status": self.status,
            "counter": self.counter,
            "buffer": None if self._buffer is None else bytes(self._buffer),
            "buffer_offset": self._buffer_offset,
            "contents": save_pages(self.contents),        # a bank starts all zero
        }

    def restore_state(self, state: dict) -> None:
        """Without on_mode_change: whoever maps the bank asks mode_is_read_array afterwards."""
        if state["size"] != self.size:
            raise ValueError(f"the snapshot's {self.name} holds {state['size']:#x} "
                             f"bytes, this bank {self.size:#x}")
        # In place: the cores may have `pointer` mapped as memory.
        restore_pages(self.contents, state["contents"])
        self._read_array = bool(state["read_array"])
        self.cmd = state["cmd"]
        self.wcycle = state["wcycle"]
        self.status = state["status"]
        self.counter = state["counter"]
        buffer = state["buffer"]
        self._buffer = None if buffer is None else bytearray(buffer)
        self._buffer_offset = state["buffer_offset"]

    def flush(self) -> None:
        """Push the guest's writes to a file-backed bank's file (they are there already for
        anyone reading it; this makes them durable)."""
        self.contents.flush()

    def load(self, offset: int, data: bytes) -> None:
        """Host-side write (a firmware image); raises ArmvisorError if it does not fit."""
        if offset < 0 or offset + len(data) > self.size:
            raise ArmvisorError(f"{len(data)} bytes at flash offset {offset:#x} do not fit "
                                f"in {self.name} ({self.size:#x} bytes)")
        self.contents[offset:offset + len(data)] = bytes(data)

    def _report_mode(self, before: bool) -> None:
        # Only the mode after a whole access counts: a 0xFF written while
        # reading the array leaves and re-enters it in QEMU, a non-event here.
        if self._read_array != before:
            self._emit("flash.mode", read_array=self._read_array)
            if self.on_mode_change is not None:
                self.on_mode_change(self._read_array)

    def _emit(self, kind: str, **fields) -> None:
        if self._trace is not None:
            self._trace.emit(kind, None, device=self.name, **fields)

    def _bad_access(self, op: str, offset: int, size: int) -> None:
        self._emit("device.bad_access", op=op, offset=offset, size=size)

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        if size == 8:
            return self.read(offset, 4) | (self.read(offset + 4, 4) << 32)
        if size not in (1, 2, 4) or not 0 <= offset <= self.size - size:
            self._bad_access("read", offset, size)
            return 0
        return self._read(offset, size) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 8 and 0 <= offset <= self.size - size:
            self.write(offset, 4, value & 0xFFFF_FFFF)
            self.write(offset + 4, 4, (value >> 32) & 0xFFFF_FFFF)
            return
        if size not in (1, 2, 4) or not 0 <= offset <= self.size - size:
            self._bad_access("write", offset, size)
            return
        before = self._read_array
        self._write(offset, size, value & ((1 << (8 * size)) - 1))
        self._report_mode(before)

    # ----------------------------------------------------------------- reading
    def _read(self, offset: int, size: int) -> int:
        cmd = self.cmd
        if cmd in (CMD_PROGRAM_ALT, CMD_BLOCK_ERASE, CMD_PROGRAM, CMD_CLEAR_STATUS,
                   CMD_LOCK_SETUP, CMD_READ_STATUS, CMD_BUFFERED_WRITE):
            return self._replicate_status(size)
        if cmd == CMD_READ_ID:
            return self._per_bank(offset, size, self._id_query)
        if cmd == CMD_CFI_QUERY:
            return self._per_bank(offset, size, self._cfi_query)
        return int.from_bytes(self.contents[offset:offset + size], "little")

    def _replicate_status(self, size: int) -> int:
        # Every chip answers with its own status byte in its lane.
        value = self.status
        shift = 8 * self.device_width
        while shift + 8 * self.device_width <= 8 * size:
            value |= self.status << shift
            shift += 8 * self.device_width
        return value

    def _per_bank(self, offset: int, size: int, query: Callable[[int], int]) -> int:
        # A read wider than the bank combines the answers for consecutive bank words.
        value = 0
        for lane in range(0, max(size, self.bank_width), self.bank_width):
            value |= query(offset + lane) << (8 * lane)
        return value

    def _device_word(self, offset: int) -> int:
        # Query addresses count device words on a bus that is bank_width bytes wide.
        return offset >> (self.bank_width.bit_length() - 1)

    def _replicate(self, answer: int) -> int:
        value = answer
        for lane in range(self.device_width, self.bank_width, self.device_width):
            value |= answer << (8 * lane)
        return value

    def _cfi_query(self, offset: int) -> int:
        index = self._device_word(offset)
        answer = self.cfi_table[index] if index < len(self.cfi_table) else 0
        return self._replicate(answer)

    def _id_query(self, offset: int) -> int:
        index = self._device_word(offset) & 0xFF
        if index == ID_MANUFACTURER:
            return self._replicate(self.ids[0])
        if index == ID_DEVICE:
            return self._replicate(self.ids[1])
        return 0                       # block lock status and the rest: unlocked, 0

    # ----------------------------------------------------------------- writing
    def _write(self, offset: int, size: int, value: int) -> None:
        cmd = value & 0xFF
        if self.wcycle == 0:
            self._read_array = False
            self._first_cycle(offset, cmd)
        elif self.wcycle == 1:
            self._second_cycle(offset, size, value, cmd)
        elif self.wcycle == 2:
            self._buffer_data(offset, size, value)
        else:
            self._buffer_confirm(cmd)

    def _first_cycle(self, offset: int, cmd: int) -> None:
        if cmd in (CMD_READ_ARRAY_QEMU, CMD_READ_ARRAY, CMD_AMD_RESET):
            self._to_read_array()
            return
        if cmd == CMD_CLEAR_STATUS:
            self.status = 0
            self._to_read_array()
            return
        if cmd in (CMD_READ_STATUS, CMD_READ_ID):
            self.cmd = cmd             # one-cycle commands: the next write is a new command
            return
        if cmd == CMD_BLOCK_ERASE:
            self._erase(offset)
        elif cmd == CMD_BUFFERED_WRITE:
            self.status |= SR_READY
        elif cmd not in (CMD_PROGRAM, CMD_PROGRAM_ALT, CMD_LOCK_SETUP, CMD_CFI_QUERY):
            self._unknown(offset, cmd)
            return
        self.cmd = cmd
        self.wcycle = 1

    def _erase(self, offset: int) -> None:
        start = offset & ~(self.sector_size - 1)
        if self.read_only:
            self.status |= SR_ERASE_ERROR
        else:
            self.contents[start:start + self.sector_size] = b"\xff" * self.sector_size
            self._emit("flash.erase", offset=start, size=self.sector_size)
        self.status |= SR_READY

    def _second_cycle(self, offset: int, size: int, value: int, cmd: int) -> None:
        if self.cmd in (CMD_PROGRAM, CMD_PROGRAM_ALT):
            if self.read_only:
                self.status |= SR_PROGRAM_ERROR
            else:
                self._store(offset, size, value)
                self._emit("flash.program", offset=offset, size=size)
            self.status |= SR_READY
            self.wcycle = 0
        elif self.cmd == CMD_BLOCK_ERASE:
            if cmd == CMD_CONFIRM:
                self.wcycle = 0
                self.status |= SR_READY
            elif cmd == CMD_READ_ARRAY:
                self._to_read_array()
            else:
                self._unknown(offset, cmd)
        elif self.cmd == CMD_BUFFERED_WRITE:
            # Word count minus one, one copy per chip: keep one chip's.
            self.counter = value & ((1 << (8 * self.device_width)) - 1)
            self.wcycle = 2
            # Debian's QEMU 7.2 anchors the write buffer at the address of
            # the count write, aligned down to the buffer size.
            self._buffer_offset = offset & ~(self.write_buffer_size - 1)
            end = self._buffer_offset + self.write_buffer_size
            self._buffer = bytearray(self.contents[self._buffer_offset:end])
        elif self.cmd == CMD_LOCK_SETUP:
            if cmd in (CMD_CONFIRM, LOCK_SET):
                self.wcycle = 0
                self.status |= SR_READY
            else:
                self._to_read_array()
        else:                          # CFI query: only 0xFF leaves it (QEMU)
            if cmd == CMD_READ_ARRAY:
                self._to_read_array()

    def _buffer_data(self, offset: int, size: int, value: int) -> None:
        buffer = self._buffer
        if self.read_only or buffer is None:
            self.status |= SR_PROGRAM_ERROR
        elif not self._buffer_offset <= offset <= self._buffer_offset + len(buffer) - size:
            self.status |= SR_PROGRAM_ERROR
        else:
            start = offset - self._buffer_offset
            buffer[start:start + size] = value.to_bytes(size, "little")
        self.status |= SR_READY
        if self.counter == 0:
            self.wcycle = 3
        else:
            self.counter -= 1

    def _buffer_confirm(self, cmd: int) -> None:
        buffer, self._buffer = self._buffer, None
        if cmd == CMD_CONFIRM and not self.status & SR_PROGRAM_ERROR and buffer is not None:
            start = self._buffer_offset
            self.contents[start:start + len(buffer)] = bytes(buffer)
            self._emit("flash.buffer_write", offset=start, size=len(buffer))
            self.wcycle = 0
            self.status |= SR_READY
        else:
            self._emit("flash.buffer_abort", offset=self._buffer_offset)
            self._to_read_array()

    def _store(self, offset: int, size: int, value: int) -> None:
        self.contents[offset:offset + size] = value.to_bytes(size, "little")

    def _unknown(self, offset: int, cmd: int) -> None:
        self._emit("flash.bad_command", offset=offset, command=cmd, cycle=self.wcycle,
                   state=self.cmd)
        self._to_read_array()

    def _to_read_array(self) -> None:
        self.wcycle = 0
        self.cmd = CMD_READ_ARRAY_QEMU
        self._buffer = None
        self._read_array = True
