"""A PCIe host bridge with an ECAM window, as QEMU's gpex on virt (hw/pci-host/gpex.c).

The Enhanced Configuration Access Mechanism (PCI Express Base spec 6.0,
section 7.2.2) gives every function 4 KiB of configuration space at
bus << 20 | device << 15 | function << 12. On QEMU's virt board with no PCI
cards only the host bridge itself answers, at 00:00.0: Red Hat's
"QEMU PCIe host bridge" 1b36:0008, class 06/00/00 (host bridge), a
conventional type 0 header with no BARs, no capabilities and no interrupt pin.
Reads of any absent function return all ones, which is how software
enumerating the bus learns that nothing is there (PCI Local Bus spec 3.0
section 6.1: Vendor ID 0xFFFF).

Register writability follows QEMU's PCIDevice defaults (hw/pci/pci.c
pci_init_wmask / pci_init_w1cmask): Command bits I/O, memory, bus master,
SERR# and INTx disable; Cache Line Size, Interrupt Line and the whole
device-specific area 0x40-0xFF are read/write; Status error bits are
write-1-to-clear; everything else, the BARs included, is read-only (reads 0).
A conventional function has 256 bytes of configuration space: the extended
part (0x100-0xFFF) reads all ones, as in QEMU.
"""

from __future__ import annotations

import struct

# Type 0 configuration header (PCI Local Bus spec 3.0 section 6.1, figure 6-1).
PCI_VENDOR_ID = 0x00
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_STATUS = 0x06
PCI_REVISION_ID = 0x08
PCI_CLASS_PROG = 0x09
PCI_CLASS_DEVICE = 0x0A
PCI_CACHE_LINE_SIZE = 0x0C
PCI_HEADER_TYPE = 0x0E
PCI_BASE_ADDRESS_0 = 0x10
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D
PCI_CONFIG_HEADER_SIZE = 0x40
PCI_CONFIG_SPACE_SIZE = 0x100     # conventional function
PCIE_CONFIG_SPACE_SIZE = 0x1000   # per function in the ECAM

# Command register bits (section 6.2.2).
PCI_COMMAND_IO = 0x0001
PCI_COMMAND_MEMORY = 0x0002
PCI_COMMAND_MASTER = 0x0004
PCI_COMMAND_SERR = 0x0100
PCI_COMMAND_INTX_DISABLE = 0x0400
COMMAND_WRITABLE = (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                    PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)

# Status register error bits, write-1-to-clear (section 6.2.3).
PCI_STATUS_PARITY = 0x0100
PCI_STATUS_SIG_TARGET_ABORT = 0x0800
PCI_STATUS_REC_TARGET_ABORT = 0x1000
PCI_STATUS_REC_MASTER_ABORT = 0x2000
PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000
PCI_STATUS_DETECTED_PARITY = 0x8000
STATUS_W1C = (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
              PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |
              PCI_STATUS_DETECTED_PARITY)

# QEMU's identities (include/hw/pci/pci.h, gpex.c gpex_root_class_init, and the
# default subsystem IDs pci.c gives every device that sets none).
PCI_VENDOR_ID_REDHAT = 0x1B36
PCI_DEVICE_ID_REDHAT_PCIE_HOST = 0x0008
PCI_CLASS_BRIDGE_HOST = 0x0600
PCI_SUBVENDOR_ID_REDHAT_QUMRANET = 0x1AF4
PCI_SUBDEVICE_ID_QEMU = 0x1100

# ECAM address fields (PCIe Base 6.0 table 7-1).
ECAM_BUS_SHIFT = 20
ECAM_DEVICE_SHIFT = 15
ECAM_FUNCTION_SHIFT = 12


class PciFunction:
    """One conventional PCI function's 256-byte configuration space with write masks."""

    def __init__(self, vendor: int, device: int, class_code: int, revision: int = 0,
                 subsystem_vendor: int = PCI_SUBVENDOR_ID_REDHAT_QUMRANET,
                 subsystem: int = PCI_SUBDEVICE_ID_QEMU, name: str = "pci"):
        self.name = name
        self._identity = (vendor, device, class_code, revision, subsystem_vendor, subsystem)
        self.wmask = bytearray(PCI_CONFIG_SPACE_SIZE)
        self.w1cmask = bytearray(PCI_CONFIG_SPACE_SIZE)
        struct.pack_into("<H", self.wmask, PCI_COMMAND, COMMAND_WRITABLE)
        self.wmask[PCI_CACHE_LINE_SIZE] = 0xFF
        self.wmask[PCI_INTERRUPT_LINE] = 0xFF
        self.wmask[PCI_CONFIG_HEADER_SIZE:] = b"\xff" * (PCI_CONFIG_SPACE_SIZE -
                                                        PCI_CONFIG_HEADER_SIZE)
        struct.pack_into("<H", self.w1cmask, PCI_STATUS, STATUS_W1C)
        self.reset()

    def reset(self) -> None:
        vendor, device, class_code, revision, subsystem_vendor, subsystem = self._identity
        self.config = bytearray(PCI_CONFIG_SPACE_SIZE)
        struct.pack_into("<HH", self.config, PCI_VENDOR_ID, vendor, device)
        self.config[PCI_REVISION_ID] = revision
        struct.pack_into("<H", self.config, PCI_CLASS_DEVICE, class_code)
        struct.pack_into("<HH", self.config, PCI_SUBSYSTEM_VENDOR_ID, subsystem_vendor,
                         subsystem)

    def read(self, offset: int, size: int) -> int:
        if offset >= PCI_CONFIG_SPACE_SIZE:
            return (1 << (8 * size)) - 1
        data = bytes(self.config[offset:offset + size])
        data += b"\xff" * (size - len(data))            # past the end: all ones
        return int.from_bytes(data, "little")

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            addr = offset + i
            if addr >= PCI_CONFIG_SPACE_SIZE:
                break
            byte = (value >> (8 * i)) & 0xFF
            wmask, w1c = self.wmask[addr], self.w1cmask[addr]
            current = (self.config[addr] & ~wmask) | (byte & wmask)
            self.config[addr] = current & ~(byte & w1c) & 0xFF


def host_bridge() -> PciFunction:
    """QEMU's gpex-root: what 00:00.0 shows on virt."""
    return PciFunction(PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_PCIE_HOST,
                       PCI_CLASS_BRIDGE_HOST, name="gpex-root")


class PcieHost:
    """The ECAM window: `read`/`write` are MMIO handlers for offsets within it."""

    def __init__(self, size: int, trace=None, name: str = "pcie"):
        self.size = size
        self.name = name
        self._trace = trace
        # (bus, device, function) -> function; only the host bridge today.
        self.functions: dict[tuple[int, int, int], PciFunction] = {(0, 0, 0): host_bridge()}

    def save_state(self) -> dict:
        """Each function's configuration space, by its bus:device.function."""
        return {"functions": {f"{bus:02x}:{device:02x}.{function}": bytes(f.config)
                              for (bus, device, function), f in self.functions.items()}}

    def restore_state(self, state: dict) -> None:
        saved = state["functions"]
        mine = {f"{bus:02x}:{device:02x}.{function}": f
                for (bus, device, function), f in self.functions.items()}
        if sorted(saved) != sorted(mine):
            raise ValueError(f"the snapshot's PCI functions {sorted(saved)} are not this "
                             f"host's {sorted(mine)}")
        for name, function in mine.items():
            if len(saved[name]) != PCI_CONFIG_SPACE_SIZE:
                raise ValueError(f"the snapshot's configuration space of {name} is "
                                 f"{len(saved[name])} bytes, not {PCI_CONFIG_SPACE_SIZE}")
            function.config = bytearray(saved[name])

    @property
    def bus_count(self) -> int:
        return self.size >> ECAM_BUS_SHIFT

    def reset(self) -> None:
        for function in self.functions.values():
            function.reset()

    @staticmethod
    def decode(offset: int) -> tuple[tuple[int, int, int], int]:
        bdf = (offset >> ECAM_BUS_SHIFT, (offset >> ECAM_DEVICE_SHIFT) & 0x1F,
               (offset >> ECAM_FUNCTION_SHIFT) & 0x7)
        return bdf, offset & (PCIE_CONFIG_SPACE_SIZE - 1)

    def read(self, offset: int, size: int) -> int:
        if size == 8:
            return self.read(offset, 4) | (self.read(offset + 4, 4) << 32)
        if size not in (1, 2, 4) or not 0 <= offset <= self.size - size:
            self._bad_access("read", offset, size)
            return 0
        bdf, reg = self.decode(offset)
        function = self.functions.get(bdf)
        if function is None:
            return (1 << (8 * size)) - 1                 # nothing there: all ones
        return function.read(reg, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 8:
            self.write(offset, 4, value & 0xFFFF_FFFF)
            self.write(offset + 4, 4, value >> 32)
            return
        if size not in (1, 2, 4) or not 0 <= offset <= self.size - size:
            self._bad_access("write", offset, size)
            return
        bdf, reg = self.decode(offset)
        function = self.functions.get(bdf)
        if function is not None:
            function.write(reg, size, value & ((1 << (8 * size)) - 1))

    def _bad_access(self, op: str, offset: int, size: int) -> None:
        if self._trace is not None:
            self._trace.emit("device.bad_access", None, device=self.name, op=op,
                             offset=offset, size=size)
