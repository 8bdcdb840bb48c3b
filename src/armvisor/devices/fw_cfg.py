"""QEMU's firmware configuration device, MMIO flavour (docs/specs/fw_cfg.rst, hw/nvram/fw_cfg.c).

On virt it sits at 0x09020000 with a 64-bit data register at +0, a 16-bit
selector at +8 and the 64-bit DMA address register at +16, all big-endian
(QEMU's fw_cfg_init_mem_wide). The guest selects an item by key and reads its
bytes in order from the data register, or has the device copy them into RAM
through a FWCfgDmaAccess descriptor.

Items here are the ones every QEMU machine has: the signature "QEMU", the
interface ID (traditional + DMA, as virt), a zero UUID, the CPU count and the
file directory. The board adds numbered items (`add_item`: a kernel handed to
firmware) and files (`add_file`); QEMU virt itself has a few files (bootorder,
ACPI and SMBIOS tables, ...) that this board does not: EDK2 builds its tables
from the DTB when they are missing.

Every selection is a `fw_cfg.select` trace event naming the item (a file by
its name), so a trace shows what the firmware asked for and whether it was
there.

DMA reaches guest RAM only through `memory` (contains/read/write, like the
board's Ram): an address outside it sets the DMA error bit, never raises.
"""

from __future__ import annotations

import struct
from typing import Optional, Protocol

# Register offsets of the MMIO interface (fw_cfg.rst "Memory-mapped interface").
DATA = 0x00
DATA_WIDTH = 8
SELECTOR = 0x08
DMA_ADDRESS = 0x10
DMA_ADDRESS_LOW = 0x14
REGISTER_BLOCK_SIZE = 0x18

# Selector keys (fw_cfg.rst "Selector Key", include/standard-headers/linux/qemu_fw_cfg.h).
FW_CFG_SIGNATURE = 0x0000
FW_CFG_ID = 0x0001
FW_CFG_UUID = 0x0002
FW_CFG_NB_CPUS = 0x0005
FW_CFG_KERNEL_SIZE = 0x0008
FW_CFG_INITRD_SIZE = 0x000B
FW_CFG_BOOT_MENU = 0x000E
FW_CFG_KERNEL_DATA = 0x0011
FW_CFG_INITRD_DATA = 0x0012
FW_CFG_CMDLINE_SIZE = 0x0014
FW_CFG_CMDLINE_DATA = 0x0015
FW_CFG_SETUP_SIZE = 0x0017
FW_CFG_FILE_DIR = 0x0019
FW_CFG_FILE_FIRST = 0x0020
FW_CFG_ENTRY_MASK = 0x3FFF          # bit 15 arch-local, bit 14 write channel
FW_CFG_ARCH_LOCAL = 0x8000
FW_CFG_MAX_ENTRY = 0x4000           # keys at or above this select nothing

# The names QEMU's fw_cfg trace gives these keys (hw/nvram/fw_cfg.c key_name; QEMU
# spells 0x0B "initdr_size").
KEY_NAMES = {
    FW_CFG_SIGNATURE: "signature", FW_CFG_ID: "id", FW_CFG_UUID: "uuid",
    FW_CFG_NB_CPUS: "nb_cpus", FW_CFG_KERNEL_SIZE: "kernel_size",
    FW_CFG_INITRD_SIZE: "initrd_size", FW_CFG_BOOT_MENU: "boot_menu",
    FW_CFG_KERNEL_DATA: "kernel_data", FW_CFG_INITRD_DATA: "initrd_data",
    FW_CFG_CMDLINE_SIZE: "cmdline_size", FW_CFG_CMDLINE_DATA: "cmdline_data",
    FW_CFG_SETUP_SIZE: "setup_size", FW_CFG_FILE_DIR: "file_dir",
}

SIGNATURE = b"QEMU"
DMA_SIGNATURE = b"QEMU CFG"         # what reading the DMA address register returns
FW_CFG_VERSION = 0x01               # ID bit 0: traditional interface
FW_CFG_VERSION_DMA = 0x02           # ID bit 1: DMA interface
FILE_NAME_SIZE = 56                 # FWCfgFile.name

# FWCfgDmaAccess.control bits (fw_cfg.rst "DMA interface").
DMA_CTL_ERROR = 0x01
DMA_CTL_READ = 0x02
DMA_CTL_SKIP = 0x04
DMA_CTL_SELECT = 0x08
DMA_CTL_WRITE = 0x10
DMA_ACCESS_SIZE = 16                # be32 control, be32 length, be64 address


class GuestMemory(Protocol):
    def contains(self, address: int, size: int = 1) -> bool: ...
    def read(self, address: int, size: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


class FwCfg:
    """The fw_cfg register block; `read`/`write` are its MMIO handlers."""

    def __init__(self, memory: Optional[GuestMemory] = None, cpu_count: int = 1,
                 dma: bool = True, trace=None, name: str = "fw_cfg"):
        self.memory = memory
        self.dma_enabled = dma and memory is not None
        self.name = name
        self._trace = trace
        ident = FW_CFG_VERSION | (FW_CFG_VERSION_DMA if self.dma_enabled else 0)
        # Numeric items are little-endian (QEMU fw_cfg_add_i16/i32).
        self.items: dict[int, bytes] = {
            FW_CFG_SIGNATURE: SIGNATURE,
            FW_CFG_ID: struct.pack("<I", ident),
            FW_CFG_UUID: bytes(16),
            FW_CFG_NB_CPUS: struct.pack("<H", cpu_count),
        }
        self.files: list[tuple[str, int]] = []           # (name, key) in directory order
        self._update_directory()
        self.reset()

    def reset(self) -> None:
        self.selected: Optional[int] = None
        self.offset = 0
        self.dma_address = 0

    def save_state(self) -> dict:
        """The guest's position: the items themselves are the board's configuration.

        `dma_address` may hold the high half of an address whose low half
        (the write that starts the transfer) has not come yet.
        """
        return {"selected": self.selected, "offset": self.offset,
                "dma_address": self.dma_address}

    def restore_state(self, state: dict) -> None:
        self.selected = state["selected"]
        self.offset = state["offset"]
        self.dma_address = state["dma_address"]

    def add_item(self, key: int, data: bytes) -> None:
        """Set a numbered item (below the file keys), e.g. FW_CFG_KERNEL_SIZE."""
        if not 0 <= key < FW_CFG_FILE_FIRST or key == FW_CFG_FILE_DIR:
            raise ValueError(f"fw_cfg key {key:#x} is not a numbered item")
        self.items[key] = bytes(data)

    def add_file(self, name: str, data: bytes) -> int:
        """Publish a named blob; returns its key. The directory stays sorted by name, as QEMU's."""
        encoded = name.encode()
        if not encoded or len(encoded) >= FILE_NAME_SIZE:
            raise ValueError(f"fw_cfg file name {name!r} must be 1..{FILE_NAME_SIZE - 1} bytes")
        key = FW_CFG_FILE_FIRST + len(self.files)
        self.items[key] = bytes(data)
        self.files.append((name, key))
        self.files.sort()
        self._update_directory()
        return key

    def _update_directory(self) -> None:
        # FWCfgFiles: be32 count, then FWCfgFile {be32 size, be16 select, be16 reserved, name[56]}.
        blob = struct.pack(">I", len(self.files))
        for name, key in self.files:
            blob += struct.pack(">IHH", len(self.items[key]), key, 0)
            blob += name.encode().ljust(FILE_NAME_SIZE, b"\0")
        self.items[FW_CFG_FILE_DIR] = blob

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        # A 64-bit load of the data register arrives as two 32-bit reads, at
        # +0 and +4: Unicorn splits it, as QEMU's memory core does for this
        # device (no .impl sizes), and QEMU's data read ignores the offset, so
        # the second half is the item's next 4 bytes.
        if DATA <= offset and offset + size <= DATA + DATA_WIDTH and size in (1, 2, 4, 8):
            return int.from_bytes(self._next_bytes(size), "little")
        if offset == SELECTOR and size == 2:
            return 0
        if DMA_ADDRESS <= offset and offset + size <= REGISTER_BLOCK_SIZE and \
                size in (1, 2, 4, 8) and self.dma_enabled:
            start = offset - DMA_ADDRESS
            return int.from_bytes(DMA_SIGNATURE[start:start + size], "little")
        self._bad_access("read", offset, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == SELECTOR and size == 2:
            self.select(int.from_bytes(value.to_bytes(2, "little"), "big"))
        elif offset == DATA and size in (1, 2, 4, 8):
            pass                                         # QEMU ignores data writes
        elif self.dma_enabled and offset == DMA_ADDRESS and size == 4:
            high = int.from_bytes(value.to_bytes(4, "little"), "big")
            self.dma_address = high << 32
        elif self.dma_enabled and offset == DMA_ADDRESS_LOW and size == 4:
            self.dma_address |= int.from_bytes(value.to_bytes(4, "little"), "big")
            self._dma_transfer()
        elif self.dma_enabled and offset == DMA_ADDRESS and size == 8:
            self.dma_address = int.from_bytes(value.to_bytes(8, "little"), "big")
            self._dma_transfer()
        else:
            self._bad_access("write", offset, size)

    # ------------------------------------------------------------------- items
    def select(self, key: int) -> None:
        self.offset = 0
        self.selected = key if (key & FW_CFG_ENTRY_MASK) < FW_CFG_MAX_ENTRY else None
        present = self.selected is not None and not key & FW_CFG_ARCH_LOCAL and \
            (key & FW_CFG_ENTRY_MASK) in self.items
        self._emit("fw_cfg.select", key=key, item=self.name_of(key), present=present,
                   size=len(self._item()))

    def name_of(self, key: int) -> str:
        """What a key selects, in words: a file's name, an item's name, or "unknown"."""
        entry = key & FW_CFG_ENTRY_MASK
        if key & FW_CFG_ARCH_LOCAL:
            return "unknown"
        for name, file_key in self.files:
            if file_key == entry:
                return name
        return KEY_NAMES.get(entry, "unknown")

    def _item(self) -> bytes:
        # No architecture-local items on Arm; keys naming nothing read as zeros.
        if self.selected is None or self.selected & FW_CFG_ARCH_LOCAL:
            return b""
        return self.items.get(self.selected & FW_CFG_ENTRY_MASK, b"")

    def _next_bytes(self, size: int) -> bytes:
        # The item's next bytes in memory order, zero-padded past its end.
        item = self._item()
        chunk = item[self.offset:self.offset + size]
        if self.offset < len(item):
            self.offset += len(chunk)
        return chunk + bytes(size - len(chunk))

    # --------------------------------------------------------------------- DMA
    def _dma_transfer(self) -> None:
        descriptor = self.dma_address
        self.dma_address = 0
        memory = self.memory
        if not memory.contains(descriptor, DMA_ACCESS_SIZE):
            self._emit("fw_cfg.dma_error", address=descriptor, reason="descriptor")
            self._store_control(descriptor, DMA_CTL_ERROR)
            return
        control, length, address = struct.unpack(">IIQ", memory.read(descriptor,
                                                                      DMA_ACCESS_SIZE))
        if control & DMA_CTL_SELECT:
            self.select(control >> 16)
        reading = bool(control & DMA_CTL_READ)
        writing = not reading and bool(control & DMA_CTL_WRITE)
        if not (control & (DMA_CTL_READ | DMA_CTL_WRITE | DMA_CTL_SKIP)):
            length = 0
        status = 0
        item = self._item()
        while length > 0 and not status & DMA_CTL_ERROR:
            if self.offset >= len(item):
                count = length
                data = bytes(count)
            else:
                count = min(length, len(item) - self.offset)
                data = item[self.offset:self.offset + count]
                self.offset += count
            if writing:
                status |= DMA_CTL_ERROR                  # no item here is writable
            elif reading:
                if memory.contains(address, count):
                    memory.write(address, data)
                else:
                    status |= DMA_CTL_ERROR
            address += count
            length -= count
        if status & DMA_CTL_ERROR:
            self._emit("fw_cfg.dma_error", address=descriptor, reason="transfer")
        self._store_control(descriptor, status)

    def _store_control(self, descriptor: int, control: int) -> None:
        if self.memory.contains(descriptor, 4):
            self.memory.write(descriptor, struct.pack(">I", control))

    def _emit(self, kind: str, **fields) -> None:
        if self._trace is not None:
            self._trace.emit(kind, None, device=self.name, **fields)

    def _bad_access(self, op: str, offset: int, size: int) -> None:
        self._emit("device.bad_access", op=op, offset=offset, size=size)
