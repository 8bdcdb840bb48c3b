import struct

import pytest

from armvisor.devices.fw_cfg import FwCfg
from armvisor.trace import TraceBus

BASE = 0x4000_0000


class Memory:
    def __init__(self, base=BASE, size=0x10000):
        self.base, self.data = base, bytearray(size)

    def contains(self, address, size=1):
        return self.base <= address and address + size <= self.base + len(self.data)

    def read(self, address, size):
        return bytes(self.data[address - self.base:address - self.base + size])

    def write(self, address, data):
        assert self.contains(address, len(data))
        self.data[address - self.base:address - self.base + len(data)] = data


def select(dev, key):
    dev.write(8, 2, int.from_bytes(key.to_bytes(2, "big"), "little"))   # big-endian register


def test_signature_and_id_like_qemu_virt():
    dev = FwCfg(Memory(), cpu_count=2)
    select(dev, 0)
    assert dev.read(0, 4) == 0x554D4551                      # "QEMU" in memory order
    select(dev, 0)
    assert bytes(dev.read(0, 1) for _ in range(5)) == b"QEMU\0"
    select(dev, 1)
    assert dev.read(0, 4) == 3                                # traditional + DMA, as virt
    assert FwCfg(None).items[1] == b"\x01\0\0\0"             # no memory: no DMA bit
    select(dev, 5)
    assert dev.read(0, 2) == 2
    select(dev, 0)
    assert dev.read(0, 8) == int.from_bytes(b"QEMU\0\0\0\0", "little")
    select(dev, 0x1234)                                       # nothing there: zeros
    assert dev.read(0, 4) == 0
    assert dev.read(0x10, 8) == int.from_bytes(b"QEMU CFG", "little")


def test_file_directory_empty_and_with_files():
    dev = FwCfg(Memory())
    select(dev, 0x19)
    assert dev.read(0, 4) == 0
    key_b = dev.add_file("etc/b", b"bbbb")
    key_a = dev.add_file("etc/a", b"xy")
    select(dev, 0x19)
    raw = bytes(dev.read(0, 1) for _ in range(4 + 2 * 64))
    assert struct.unpack_from(">I", raw)[0] == 2
    size, key, _ = struct.unpack_from(">IHH", raw, 4)
    assert (size, key, raw[12:17]) == (2, key_a, b"etc/a")
    assert struct.unpack_from(">IHH", raw, 68)[:2] == (4, key_b)
    select(dev, key_b)
    assert dev.read(0, 4) == int.from_bytes(b"bbbb", "little")


def dma(dev, memory, control, length, address, at=BASE + 0x100):
    memory.write(at, struct.pack(">IIQ", control, length, address))
    dev.write(0x10, 4, int.from_bytes((at >> 32).to_bytes(4, "big"), "little"))
    dev.write(0x14, 4, int.from_bytes((at & 0xFFFFFFFF).to_bytes(4, "big"), "little"))
    return struct.unpack(">I", memory.read(at, 4))[0]


def test_dma_read_select_skip_and_padding():
    memory = Memory()
    dev = FwCfg(memory)
    assert dma(dev, memory, (0 << 16) | 0x08 | 0x02, 6, BASE + 0x200) == 0
    assert memory.read(BASE + 0x200, 6) == b"QEMU\0\0"
    dev.add_file("f", bytes(range(10)))
    assert dma(dev, memory, (0x20 << 16) | 0x08 | 0x04, 3, 0) == 0     # skip 3
    assert dma(dev, memory, 0x02, 4, BASE + 0x300) == 0
    assert memory.read(BASE + 0x300, 4) == bytes([3, 4, 5, 6])
    # 64-bit write of the address register starts a transfer too.
    memory.write(BASE + 0x400, struct.pack(">IIQ", (1 << 16) | 0x0A, 4, BASE + 0x500))
    dev.write(0x10, 8, int.from_bytes((BASE + 0x400).to_bytes(8, "big"), "little"))
    assert memory.read(BASE + 0x500, 4) == b"\x03\0\0\0"


def test_dma_bad_addresses_set_the_error_bit():
    memory = Memory()
    events = []
    bus = TraceBus()
    bus.subscribe(events.append)
    dev = FwCfg(memory, trace=bus)
    assert dma(dev, memory, 0x08 | 0x02, 4, 0x1000) == 1          # destination outside RAM
    assert dma(dev, memory, 0x08 | 0x10, 4, BASE + 0x200) == 1    # writes are refused
    dev.write(0x10, 8, 0x1000_0000_0000_0000)                      # descriptor outside RAM
    assert any(e.kind == "fw_cfg.dma_error" for e in events)
    dev.write(0x3, 1, 0)
    assert dev.read(0x9, 1) == 0 and dev.read(0x30, 4) == 0


def test_without_dma_the_register_is_dead():
    dev = FwCfg(None)
    assert dev.read(0x10, 8) == 0
    dev.write(0x10, 8, 0x1234)
    assert dev.dma_address == 0


def test_numbered_items_for_a_kernel_and_select_events():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    dev = FwCfg(Memory(), trace=bus)
    dev.add_item(0x08, struct.pack("<I", 3))                 # FW_CFG_KERNEL_SIZE
    dev.add_item(0x11, b"abc")                               # FW_CFG_KERNEL_DATA
    dev.add_file("etc/example", b"xy")
    select(dev, 0x08)
    assert dev.read(0, 4) == 3
    select(dev, 0x11)
    assert bytes(dev.read(0, 1) for _ in range(4)) == b"abc\0"
    select(dev, 0x14)                                        # no command line: zeros
    assert dev.read(0, 4) == 0
    select(dev, 0x20)
    seen = [(e.fields["item"], e.fields["present"], e.fields["size"])
            for e in events if e.kind == "fw_cfg.select"]
    assert seen == [("kernel_size", True, 4), ("kernel_data", True, 3),
                    ("cmdline_size", False, 0), ("etc/example", True, 2)]
    for key in (0x19, 0x20, 0x4000):
        with pytest.raises(ValueError):
            dev.add_item(key, b"")


def test_64bit_data_read_in_two_halves():
    # Unicorn (like QEMU's memory core for this device) splits a 64-bit load of the
    # data register into 32-bit reads at +0 and +4: together, the next 8 bytes.
    dev = FwCfg(Memory())
    dev.add_item(0x11, bytes(range(8)) * 2)
    select(dev, 0x11)
    low, high = dev.read(0, 4), dev.read(4, 4)
    assert (high << 32) | low == 0x0706050403020100
    assert dev.read(0, 8) == 0x0706050403020100
    assert dev.read(6, 4) == 0                    # past the data register: not data
