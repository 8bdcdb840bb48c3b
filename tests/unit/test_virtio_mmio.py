from armvisor.devices.virtio import VirtioMmio, VirtioMmioBank, VirtQueue
from armvisor.devices.virtio import mmio as regs
from armvisor.trace import TraceBus


def test_empty_slot_reads_like_qemu_virt():
    slot = VirtioMmio()
    assert slot.read(regs.MAGIC_VALUE, 4) == 0x74726976
    assert slot.read(regs.VERSION, 4) == 1                    # QEMU virt: force-legacy
    assert slot.read(regs.DEVICE_ID, 4) == 0
    assert slot.read(regs.VENDOR_ID, 4) == 0x554D4551
    assert slot.read(regs.MAGIC_VALUE, 1) == 0x76
    for offset in range(0x10, 0x200, 4):
        assert slot.read(offset, 4) == 0, hex(offset)
    for offset in range(0, 0x200, 4):
        slot.write(offset, 4, 0xFFFFFFFF)
    assert slot.read(regs.STATUS, 4) == 0 and slot.read(regs.MAGIC_VALUE, 4) == 0x74726976
    assert VirtioMmio(legacy=False).read(regs.VERSION, 4) == 2


def test_bank_routes_offsets_to_slots():
    bank = VirtioMmioBank.empty(32)
    assert bank.size == 0x4000
    assert bank.read(31 * 0x200, 4) == 0x74726976
    assert bank.read(31 * 0x200 + 0xC, 4) == 0x554D4551
    assert bank.read(0x4000, 4) == 0
    bank.write(0x4000, 4, 1)                                   # outside: ignored


class FakeBlk:
    device_id = 2

    def __init__(self):
        self.config = bytearray(range(16))
        self.notified = []
        self.ok = None
        self.resets = 0

    def device_features(self):
        return (1 << 32) | 0b101                               # VERSION_1 + two device bits

    def queue_size_max(self, index):
        return 256 if index == 0 else 0

    def config_read(self, offset, size):
        return int.from_bytes(self.config[offset:offset + size], "little")

    def config_write(self, offset, size, value):
        self.config[offset:offset + size] = value.to_bytes(size, "little")

    def queue_notify(self, index, queue):
        self.notified.append((index, queue.desc, queue.driver, queue.device, queue.num))

    def driver_ok(self, features):
        self.ok = features

    def reset(self):
        self.resets += 1


def test_modern_register_plumbing_with_a_backend():
    blk = FakeBlk()
    lines = []
    slot = VirtioMmio(blk, legacy=False, on_irq_change=lines.append, trace=TraceBus())
    assert slot.read(regs.DEVICE_ID, 4) == 2
    assert slot.read(regs.DEVICE_FEATURES, 4) == 0b101
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 1)
    assert slot.read(regs.DEVICE_FEATURES, 4) == 1
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 1)
    slot.write(regs.DRIVER_FEATURES, 4, 1)
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 0)
    slot.write(regs.DRIVER_FEATURES, 4, 0b100)
    assert slot.driver_features == (1 << 32) | 0b100
    assert slot.read(regs.QUEUE_NUM_MAX, 4) == 256
    slot.write(regs.QUEUE_SEL, 4, 1)
    assert slot.read(regs.QUEUE_NUM_MAX, 4) == 0
    slot.write(regs.QUEUE_SEL, 4, 0)
    slot.write(regs.QUEUE_NUM, 4, 128)
    slot.write(regs.QUEUE_DESC_LOW, 4, 0x4000_1000)
    slot.write(regs.QUEUE_DESC_HIGH, 4, 0x1)
    slot.write(regs.QUEUE_DRIVER_LOW, 4, 0x4000_2000)
    slot.write(regs.QUEUE_DEVICE_LOW, 4, 0x4000_3000)
    slot.write(regs.QUEUE_READY, 4, 1)
    assert slot.read(regs.QUEUE_READY, 4) == 1
    slot.write(regs.STATUS, 4, 0xF)
    assert blk.ok == (1 << 32) | 0b100 and slot.read(regs.STATUS, 4) == 0xF
    slot.write(regs.QUEUE_NOTIFY, 4, 0)
    assert blk.notified == [(0, 0x1_4000_1000, 0x4000_2000, 0x4000_3000, 128)]
    slot.raise_interrupt(regs.INT_VRING)
    assert slot.read(regs.INTERRUPT_STATUS, 4) == 1 and lines == [True]
    slot.write(regs.INTERRUPT_ACK, 4, 1)
    assert lines == [True, False]
    slot.raise_interrupt(regs.INT_CONFIG)
    assert slot.read(regs.CONFIG_GENERATION, 4) == 1
    assert slot.read(regs.CONFIG + 4, 2) == 0x0504
    slot.write(regs.CONFIG + 4, 1, 0xAA)
    assert blk.config[4] == 0xAA
    assert slot.read(regs.SHM_LEN_LOW, 4) == 0xFFFFFFFF
    # Registers are 32-bit only; other sizes read 0 and write nothing.
    assert slot.read(regs.DEVICE_ID, 2) == 0
    slot.write(regs.STATUS, 2, 0)
    assert slot.status == 0xF
    slot.write(regs.STATUS, 4, 0)                              # reset
    assert slot.status == 0 and blk.resets == 2 and slot.queues == []


def test_legacy_queue_pfn_layout():
    blk = FakeBlk()
    slot = VirtioMmio(blk)
    slot.write(regs.GUEST_PAGE_SIZE, 4, 4096)
    slot.write(regs.QUEUE_SEL, 4, 0)
    slot.write(regs.QUEUE_NUM, 4, 16)
    slot.write(regs.QUEUE_ALIGN, 4, 4096)
    slot.write(regs.QUEUE_PFN, 4, 0x40100)
    q: VirtQueue = slot.queue(0)
    assert (q.desc, q.driver, q.device) == (0x4010_0000, 0x4010_0100, 0x4010_1000)
    assert slot.read(regs.QUEUE_PFN, 4) == 0x40100
    assert slot.read(regs.QUEUE_READY, 4) == 0                # modern register in legacy mode
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 1)
    assert slot.read(regs.DEVICE_FEATURES, 4) == 0            # legacy: only 32 feature bits
    slot.write(regs.QUEUE_PFN, 4, 0)
    assert slot.queues == [] or slot.queue(0).pfn == 0
