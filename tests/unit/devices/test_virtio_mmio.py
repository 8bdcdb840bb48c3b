from armvisor.devices.gic import GicV3
from armvisor.devices.gic import registers as gicr
from armvisor.devices.virtio import VirtioMmio, VirtioMmioBank, VirtQueue
from armvisor.devices.virtio import mmio as regs
from armvisor.devices.virtio.queue import VIRTIO_F_VERSION_1, QueueDevice
from armvisor.machine.memmap import mpidr_affinity
from armvisor.trace import TraceBus

try:
    from test_virtqueue import RAM_BASE, Driver, GuestRam, bring_up
except ImportError:  # tests/unit as a package
    from .test_virtqueue import RAM_BASE, Driver, GuestRam, bring_up


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


# ---------------------------------------------------------------- modern mode, end to end
class Echo(QueueDevice):
    """A minimal QueueDevice: every chain comes back with its writable bytes set to 0xAB."""

    device_id = 42

    def __init__(self, memory):
        super().__init__(memory, queue_count=1, queue_size=64, name="echo")

    def device_features(self):
        return VIRTIO_F_VERSION_1 | (1 << 3)

    def config_read(self, offset, size):
        return 0

    def config_write(self, offset, size, value):
        pass

    def _process(self, index, ring):
        while (chain := ring.pop()) is not None:
            for buf in chain.writable:
                self.memory.write(buf.addr, b"\xab" * buf.length)
            ring.push(chain.head, chain.writable_length)


def modern_slot():
    ram = GuestRam()
    device = Echo(ram)
    lines = []
    slot = VirtioMmio(device, legacy=False, on_irq_change=lines.append, trace=TraceBus())
    return ram, device, slot, lines


def test_modern_init_sequence_end_to_end():
    ram, device, slot, lines = modern_slot()
    driver = Driver(ram, num=32)
    # Register by register, as Linux's virtio_mmio + virtio core do it (3.1.1, 4.2.3).
    slot.write(regs.STATUS, 4, 0)
    slot.write(regs.STATUS, 4, regs.STATUS_ACKNOWLEDGE)
    slot.write(regs.STATUS, 4, regs.STATUS_ACKNOWLEDGE | regs.STATUS_DRIVER)
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 1)
    assert slot.read(regs.DEVICE_FEATURES, 4) == 1                 # VERSION_1
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 0)
    assert slot.read(regs.DEVICE_FEATURES, 4) == 1 << 3
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 2)
    assert slot.read(regs.DEVICE_FEATURES, 4) == 0                 # no bits past 63
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 1)
    slot.write(regs.DRIVER_FEATURES, 4, 1)
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 0)
    slot.write(regs.DRIVER_FEATURES, 4, 0)
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 2)
    slot.write(regs.DRIVER_FEATURES, 4, 0xFFFF)                    # ignored
    assert slot.driver_features == VIRTIO_F_VERSION_1
    slot.write(regs.STATUS, 4, 0b1011)
    assert slot.read(regs.STATUS, 4) == 0b1011                     # FEATURES_OK kept
    slot.write(regs.QUEUE_SEL, 4, 0)
    assert slot.read(regs.QUEUE_READY, 4) == 0
    assert slot.read(regs.QUEUE_NUM_MAX, 4) == 64
    slot.write(regs.QUEUE_NUM, 4, 32)
    slot.write(regs.QUEUE_DESC_LOW, 4, driver.desc)
    slot.write(regs.QUEUE_DESC_HIGH, 4, 0)
    slot.write(regs.QUEUE_DRIVER_LOW, 4, driver.avail)
    slot.write(regs.QUEUE_DRIVER_HIGH, 4, 0)
    slot.write(regs.QUEUE_DEVICE_LOW, 4, driver.used)
    slot.write(regs.QUEUE_DEVICE_HIGH, 4, 0)
    slot.write(regs.QUEUE_READY, 4, 1)
    assert slot.read(regs.QUEUE_READY, 4) == 1
    slot.write(regs.STATUS, 4, 0b1111)
    assert device.features == VIRTIO_F_VERSION_1
    head = driver.submit([(RAM_BASE + 0x8000, 4, True)])
    slot.write(regs.QUEUE_NOTIFY, 4, 0)
    assert driver.take_used() == [(head, 4)] and ram.read(RAM_BASE + 0x8000, 4) == b"\xab" * 4
    assert slot.read(regs.INTERRUPT_STATUS, 4) == regs.INT_VRING and lines == [True]
    slot.write(regs.INTERRUPT_ACK, 4, regs.INT_VRING)
    assert slot.read(regs.INTERRUPT_STATUS, 4) == 0 and lines == [True, False]
    # vm_del_vq: QueueReady 0 reads back 0; the device stops using the queue.
    slot.write(regs.QUEUE_READY, 4, 0)
    assert slot.read(regs.QUEUE_READY, 4) == 0
    driver.submit([(RAM_BASE + 0x8100, 4, True)])
    slot.write(regs.QUEUE_NOTIFY, 4, 0)
    assert driver.take_used() == []


def test_features_ok_refused_for_unknown_bits_or_missing_version_1():
    for features in (VIRTIO_F_VERSION_1 | (1 << 5), 1 << 3):
        ram, device, slot, lines = modern_slot()
        slot.write(regs.STATUS, 4, 3)
        slot.write(regs.DRIVER_FEATURES_SEL, 4, 1)
        slot.write(regs.DRIVER_FEATURES, 4, features >> 32)
        slot.write(regs.DRIVER_FEATURES_SEL, 4, 0)
        slot.write(regs.DRIVER_FEATURES, 4, features & 0xFFFF_FFFF)
        slot.write(regs.STATUS, 4, 0b1011)
        assert slot.read(regs.STATUS, 4) == 0b0011, hex(features)


def test_needs_reset_sets_status_and_config_interrupt_until_reset():
    ram, device, slot, lines = modern_slot()
    bring_up(slot, {0: Driver(ram, num=32)})
    slot.needs_reset()
    assert slot.read(regs.STATUS, 4) == 0x4F
    assert slot.read(regs.INTERRUPT_STATUS, 4) == regs.INT_CONFIG
    slot.write(regs.STATUS, 4, 0x0F)                   # the driver cannot clear it
    assert slot.read(regs.STATUS, 4) & regs.STATUS_NEEDS_RESET
    slot.write(regs.STATUS, 4, 0)
    assert slot.read(regs.STATUS, 4) == 0 and lines == [True, False]


def test_ack_leaving_bits_set_makes_a_new_edge():
    ram, device, slot, lines = modern_slot()
    slot.raise_interrupt(regs.INT_CONFIG)
    slot.raise_interrupt(regs.INT_VRING)               # same batch: the line stays high
    assert lines == [True]
    slot.write(regs.INTERRUPT_ACK, 4, regs.INT_CONFIG)
    assert lines == [True, False, True]
    slot.write(regs.INTERRUPT_ACK, 4, regs.INT_VRING)
    assert lines == [True, False, True, False]


def test_edge_triggered_gic_spi_sees_one_interrupt_per_batch():
    intid = 32 + 16                                     # slot 0: SPI 16 (PLATFORM-FACTS)
    gic = GicV3(1, mpidr_affinity)
    bit = 1 << (intid % 32)
    ispendr = gicr.GICD_ISPENDR + 4 * (intid // 32)
    # Linux programs the DTB's "edge rising" into ICFGR (odd bit of the INTID's pair).
    gic.distributor_write(gicr.GICD_ICFGR + 4 * (intid // 16), 4, 2 << (2 * (intid % 16)), 0)

    def pending():
        return bool(gic.distributor_read(ispendr, 4, 0) & bit)

    def take():                                         # the CPU takes the interrupt
        gic.distributor_write(gicr.GICD_ICPENDR + 4 * (intid // 32), 4, bit, 0)

    ram, device, slot, _ = modern_slot()
    slot._on_irq_change = lambda level: gic.set_spi_level(intid, level)
    driver = Driver(ram, num=32)
    bring_up(slot, {0: driver})
    for i in range(3):
        driver.submit([(RAM_BASE + 0x8000 + 16 * i, 4, True)])
    slot.write(regs.QUEUE_NOTIFY, 4, 0)
    assert pending()
    take()
    slot.raise_interrupt(regs.INT_VRING)                # more before the driver acks: no edge
    assert not pending()
    slot.write(regs.INTERRUPT_ACK, 4, slot.read(regs.INTERRUPT_STATUS, 4))
    assert not pending()
    driver.set_used_event(3)
    driver.submit([(RAM_BASE + 0x8100, 4, True)])
    slot.write(regs.QUEUE_NOTIFY, 4, 0)
    assert pending()                                    # the next batch: a new edge


def test_queue_larger_than_queue_num_max_fails_the_device():
    ram, device, slot, lines = modern_slot()
    driver = Driver(ram, num=128)                       # Echo offers 64
    slot.write(regs.STATUS, 4, 3)
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 1)
    slot.write(regs.DRIVER_FEATURES, 4, 1)
    slot.write(regs.STATUS, 4, 0b1011)
    q = slot.queue(0)
    q.num, q.desc, q.driver, q.device, q.ready = 128, driver.desc, driver.avail, driver.used, True
    slot.write(regs.STATUS, 4, 0b1111)
    assert device.failed and slot.read(regs.STATUS, 4) & regs.STATUS_NEEDS_RESET
