"""The split virtqueue engine (virtio 1.2 section 2.7), driven the way Linux's virtio_ring does.

`GuestRam` and `Driver` are shared with the virtio-blk/console tests.
"""

from __future__ import annotations

import struct
from typing import List, Optional, Sequence, Tuple

import pytest

from armvisor.devices.virtio.mmio import VirtQueue
from armvisor.devices.virtio.queue import (VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
                                           VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
                                           VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, Buffer,
                                           QueueError, SplitQueue, need_event, read_stream,
                                           write_stream)

RAM_BASE = 0x4000_0000
RAM_SIZE = 0x10_0000


class GuestRam:
    """Guest RAM as a bytearray at RAM_BASE; a write outside it is a test failure."""

    def __init__(self, base: int = RAM_BASE, size: int = RAM_SIZE):
        self.base, self.size = base, size
        self.data = bytearray(size)
        self.reads = 0

    def contains(self, address: int, size: int = 1) -> bool:
        return self.base <= address and address + size <= self.base + self.size

    def read(self, address: int, size: int) -> bytes:
        assert self.contains(address, size), f"device read outside RAM at {address:#x}"
        self.reads += 1
        offset = address - self.base
        return bytes(self.data[offset:offset + size])

    def write(self, address: int, data: bytes) -> None:
        assert self.contains(address, len(data)), f"device write outside RAM at {address:#x}"
        offset = address - self.base
        self.data[offset:offset + len(data)] = data


# (address, length, device-writable)
Seg = Tuple[int, int, bool]


class Driver:
    """The driver half of one split virtqueue, laid out as Linux's vring_init does."""

    def __init__(self, ram: GuestRam, num: int = 16, base: int = RAM_BASE):
        self.ram, self.num = ram, num
        self.desc = base
        self.avail = base + 16 * num
        self.used = (self.avail + 6 + 2 * num + 0xFFF) & ~0xFFF
        self.config = VirtQueue(num=num, ready=True, desc=self.desc, driver=self.avail,
                                device=self.used)
        self.next_free = 0
        self.avail_idx = 0
        self.last_used = 0
        # Fresh, zeroed rings, as the driver allocates them at every probe.
        ram.write(self.desc, bytes(self.used + 8 + 8 * num - self.desc))

    def set_desc(self, index: int, addr: int, length: int, flags: int, nxt: int = 0,
                 table: Optional[int] = None) -> None:
        base = self.desc if table is None else table
        self.ram.write(base + 16 * index, struct.pack("<QIHH", addr, length, flags, nxt))

    def chain(self, segs: Sequence[Seg]) -> int:
        """Write `segs` as a NEXT-linked chain in free descriptors; returns the head."""
        indices = [(self.next_free + i) % self.num for i in range(len(segs))]
        self.next_free = (self.next_free + len(segs)) % self.num
        for position, (index, (addr, length, writable)) in enumerate(zip(indices, segs)):
            last = position == len(segs) - 1
            flags = (VIRTQ_DESC_F_WRITE if writable else 0) | (0 if last else VIRTQ_DESC_F_NEXT)
            self.set_desc(index, addr, length, flags, 0 if last else indices[position + 1])
        return indices[0]

    def indirect(self, table: int, segs: Sequence[Seg]) -> int:
        """Write `segs` as an indirect table at `table` behind one descriptor; returns it."""
        for index, (addr, length, writable) in enumerate(segs):
            last = index == len(segs) - 1
            flags = (VIRTQ_DESC_F_WRITE if writable else 0) | (0 if last else VIRTQ_DESC_F_NEXT)
            self.set_desc(index, addr, length, flags, 0 if last else index + 1, table=table)
        head = self.next_free
        self.next_free = (self.next_free + 1) % self.num
        self.set_desc(head, table, 16 * len(segs), VIRTQ_DESC_F_INDIRECT)
        return head

    def publish(self, head: int) -> None:
        self.ram.write(self.avail + 4 + 2 * (self.avail_idx % self.num), struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.ram.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    def submit(self, segs: Sequence[Seg]) -> int:
        head = self.chain(segs)
        self.publish(head)
        return head

    def take_used(self) -> List[Tuple[int, int]]:
        """The used elements the device added since the last call."""
        idx = struct.unpack("<H", self.ram.read(self.used + 2, 2))[0]
        out = []
        while self.last_used != idx:
            slot = self.used + 4 + 8 * (self.last_used % self.num)
            out.append(struct.unpack("<II", self.ram.read(slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out

    def set_used_event(self, value: int) -> None:
        self.ram.write(self.avail + 4 + 2 * self.num, struct.pack("<H", value))

    def set_avail_flags(self, flags: int) -> None:
        self.ram.write(self.avail, struct.pack("<H", flags))

    def avail_event(self) -> int:
        return struct.unpack("<H", self.ram.read(self.used + 4 + 8 * self.num, 2))[0]


BUF = RAM_BASE + 0x8000          # data buffers live from here


def make(num: int = 16, features: int = VIRTIO_F_INDIRECT_DESC):
    ram = GuestRam()
    driver = Driver(ram, num)
    return ram, driver, SplitQueue(ram, driver.config, features)


def test_chain_split_into_readable_and_writable_buffers():
    ram, driver, queue = make()
    assert queue.pop() is None
    head = driver.submit([(BUF, 16, False), (BUF + 0x100, 512, True), (BUF + 0x400, 1, True)])
    chain = queue.pop()
    assert chain.head == head and chain.error is None
    assert chain.readable == [Buffer(BUF, 16, True)]
    assert chain.writable == [Buffer(BUF + 0x100, 512, True), Buffer(BUF + 0x400, 1, True)]
    assert (chain.readable_length, chain.writable_length) == (16, 513)
    assert queue.pop() is None


def test_used_ring_and_indices_wrap_modulo_2_16():
    ram, driver, queue = make(num=4)
    # Start both sides just below the wrap, as after 65534 requests.
    driver.avail_idx = driver.last_used = queue.last_avail = queue.used_idx = 0xFFFE
    for i in range(3):
        head = driver.submit([(BUF + 16 * i, 1, True)])
        chain = queue.pop()
        assert chain.head == head
        queue.push(chain.head, i + 7)
    assert queue.used_idx == 1 and queue.last_avail == 1
    assert [length for _, length in driver.take_used()] == [7, 8, 9]


def test_indirect_table_replaces_the_rest_of_the_chain():
    ram, driver, queue = make()
    table = BUF + 0x1000
    head = driver.indirect(table, [(BUF, 16, False), (BUF + 0x200, 8, False),
                                   (BUF + 0x400, 1, True)])
    driver.publish(head)
    chain = queue.pop()
    assert chain.error is None and chain.head == head
    assert [b.addr for b in chain.readable] == [BUF, BUF + 0x200]
    assert [b.addr for b in chain.writable] == [BUF + 0x400]


def test_direct_descriptors_may_lead_into_an_indirect_table():
    # 2.7.5.3.2: zero or more chained descriptors, then one indirect descriptor.
    ram, driver, queue = make()
    table = BUF + 0x1000
    driver.set_desc(0, table, 16, VIRTQ_DESC_F_WRITE, table=table)      # the table's only entry
    driver.set_desc(3, BUF, 16, VIRTQ_DESC_F_NEXT, 5)
    driver.set_desc(5, table, 16, VIRTQ_DESC_F_INDIRECT)
    driver.publish(3)
    chain = queue.pop()
    assert chain.error is None
    assert chain.readable == [Buffer(BUF, 16, True)]
    assert chain.writable == [Buffer(table, 16, True)]


@pytest.mark.parametrize("features,table_len,flags,nested,reason", [
    (0, 32, VIRTQ_DESC_F_INDIRECT, False, "without VIRTIO_F_INDIRECT_DESC"),
    (VIRTIO_F_INDIRECT_DESC, 24, VIRTQ_DESC_F_INDIRECT, False, "table of 24"),
    (VIRTIO_F_INDIRECT_DESC, 0, VIRTQ_DESC_F_INDIRECT, False, "table of 0"),
    (VIRTIO_F_INDIRECT_DESC, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, False, "NEXT"),
    (VIRTIO_F_INDIRECT_DESC, 32, VIRTQ_DESC_F_INDIRECT, True, "inside an indirect"),
])
def test_bad_indirect_descriptors_are_structural_errors(features, table_len, flags, nested,
                                                        reason):
    ram, driver, queue = make(features=features)
    table = BUF + 0x1000
    inner = VIRTQ_DESC_F_INDIRECT if nested else 0
    driver.set_desc(0, BUF, 16, inner | VIRTQ_DESC_F_NEXT, 1, table=table)
    driver.set_desc(1, BUF, 1, VIRTQ_DESC_F_WRITE, table=table)
    driver.set_desc(2, table, table_len, flags, 4)
    driver.publish(2)
    chain = queue.pop()
    assert chain.error is not None and reason in chain.error


def test_indirect_table_outside_ram_is_not_read():
    ram, driver, queue = make()
    driver.set_desc(0, RAM_BASE + RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT)
    driver.publish(0)
    chain = queue.pop()
    assert chain.error is not None and "not aligned guest RAM" in chain.error


def test_descriptor_loop_is_detected_not_followed_forever():
    ram, driver, queue = make(num=8)
    driver.set_desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1)
    driver.set_desc(1, BUF, 16, VIRTQ_DESC_F_NEXT, 0)
    driver.publish(0)
    chain = queue.pop()
    assert chain.error is not None and "loop" in chain.error
    assert len(chain.readable) == 8                       # stopped after one lap of the table


def test_loop_inside_an_indirect_table_is_bounded_by_the_table():
    ram, driver, queue = make(num=8)
    table = BUF + 0x1000
    driver.set_desc(0, BUF, 1, VIRTQ_DESC_F_NEXT, 1, table=table)
    driver.set_desc(1, BUF, 1, VIRTQ_DESC_F_NEXT, 0, table=table)
    driver.set_desc(0, table, 32, VIRTQ_DESC_F_INDIRECT)
    driver.publish(0)
    chain = queue.pop()
    assert "loop" in chain.error and len(chain.readable) == 2


def test_next_index_outside_the_table():
    ram, driver, queue = make(num=8)
    driver.set_desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 8)
    driver.publish(0)
    assert "outside a table of 8" in queue.pop().error


def test_head_index_outside_the_table():
    ram, driver, queue = make(num=8)
    driver.publish(200)
    assert "outside" in queue.pop().error


def test_readable_after_writable_is_a_structural_error():
    ram, driver, queue = make()
    driver.submit([(BUF, 1, True), (BUF + 16, 16, False)])
    assert "after a device-writable" in queue.pop().error


def test_buffers_outside_ram_are_flagged_not_read():
    ram, driver, queue = make()
    end = RAM_BASE + RAM_SIZE
    driver.submit([(end - 8, 16, False), (0x1000, 4, True), (BUF, 0, True), (BUF, 1, True)])
    chain = queue.pop()
    assert chain.error is None and not chain.buffers_in_ram
    assert [b.in_ram for b in chain.readable + chain.writable] == [False, False, True, True]


def test_avail_index_jumping_past_the_queue_size_is_a_queue_error():
    ram, driver, queue = make(num=4)
    ram.write(driver.avail + 2, struct.pack("<H", 5))
    with pytest.raises(QueueError):
        queue.pop()


@pytest.mark.parametrize("field,value", [
    ("num", 12), ("num", 0), ("desc", RAM_BASE + RAM_SIZE - 16), ("desc", RAM_BASE + 8),
    ("driver", 0x1000), ("device", RAM_BASE + 2), ("device", RAM_BASE + RAM_SIZE - 8),
])
def test_rings_must_be_aligned_guest_ram(field, value):
    ram = GuestRam()
    config = Driver(ram, 16).config
    setattr(config, field, value)
    with pytest.raises(QueueError):
        SplitQueue(ram, config, 0)


def test_need_event_matches_the_spec_formula():
    assert need_event(event=5, new=6, old=5)               # the driver asked for entry 5
    assert not need_event(event=7, new=6, old=5)           # not reached yet
    assert not need_event(event=4, new=6, old=5)           # already passed before this batch
    assert need_event(event=0xFFFF, new=1, old=0xFFFE)     # across the wrap


def test_notification_suppression_without_event_idx():
    ram, driver, queue = make()
    driver.submit([(BUF, 1, True)])
    queue.push(queue.pop().head, 1)
    assert queue.should_notify(0)
    driver.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    assert not queue.should_notify(0)
    assert not queue.should_notify(queue.used_idx)          # nothing used: never notify


def test_event_idx_used_event_and_avail_event():
    ram, driver, queue = make(features=VIRTIO_F_EVENT_IDX)
    for _ in range(3):
        driver.submit([(BUF, 1, True)])
    driver.set_used_event(2)                                # interrupt after the 3rd entry
    old = queue.used_idx
    queue.push(queue.pop().head, 1)
    queue.push(queue.pop().head, 1)
    assert not queue.should_notify(old)
    old = queue.used_idx
    queue.push(queue.pop().head, 1)
    assert queue.should_notify(old)
    queue.publish_avail_event()
    assert driver.avail_event() == 3                        # notify me when entry 3 comes


def test_streams_cross_buffer_boundaries():
    ram = GuestRam()
    bufs = [Buffer(BUF, 3, True), Buffer(BUF + 0x100, 0, True), Buffer(BUF + 0x200, 5, True)]
    assert write_stream(ram, bufs, 2, b"abcdefgh") == 6
    assert read_stream(ram, bufs, 0, 8) == b"\0\0abcdef"
    assert read_stream(ram, bufs, 4, 100) == b"cdef"
    assert ram.data[0x8000:0x8003] == b"\0\0a" and ram.data[0x8200:0x8205] == b"bcdef"


def bring_up(slot, drivers, accept: Optional[int] = None) -> int:
    """Linux's virtio_mmio probe in modern mode (virtio 1.2 section 3.1.1 / 4.2.3.1).

    `drivers` maps queue index -> Driver; `accept` masks the features the
    driver takes (default: all offered). Returns the negotiated features.
    """
    from armvisor.devices.virtio import mmio as regs
    assert slot.read(regs.MAGIC_VALUE, 4) == regs.MAGIC and slot.read(regs.VERSION, 4) == 2
    slot.write(regs.STATUS, 4, 0)
    slot.write(regs.STATUS, 4, regs.STATUS_ACKNOWLEDGE)
    slot.write(regs.STATUS, 4, regs.STATUS_ACKNOWLEDGE | regs.STATUS_DRIVER)
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 1)
    offered = slot.read(regs.DEVICE_FEATURES, 4) << 32
    slot.write(regs.DEVICE_FEATURES_SEL, 4, 0)
    offered |= slot.read(regs.DEVICE_FEATURES, 4)
    features = offered if accept is None else offered & accept
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 1)
    slot.write(regs.DRIVER_FEATURES, 4, features >> 32)
    slot.write(regs.DRIVER_FEATURES_SEL, 4, 0)
    slot.write(regs.DRIVER_FEATURES, 4, features & 0xFFFF_FFFF)
    status = regs.STATUS_ACKNOWLEDGE | regs.STATUS_DRIVER | regs.STATUS_FEATURES_OK
    slot.write(regs.STATUS, 4, status)
    assert slot.read(regs.STATUS, 4) & regs.STATUS_FEATURES_OK, "device refused the features"
    for index, driver in drivers.items():
        slot.write(regs.QUEUE_SEL, 4, index)
        assert slot.read(regs.QUEUE_READY, 4) == 0
        assert slot.read(regs.QUEUE_NUM_MAX, 4) >= driver.num
        slot.write(regs.QUEUE_NUM, 4, driver.num)
        for low, address in ((regs.QUEUE_DESC_LOW, driver.desc),
                             (regs.QUEUE_DRIVER_LOW, driver.avail),
                             (regs.QUEUE_DEVICE_LOW, driver.used)):
            slot.write(low, 4, address & 0xFFFF_FFFF)
            slot.write(low + 4, 4, address >> 32)
        slot.write(regs.QUEUE_READY, 4, 1)
    slot.write(regs.STATUS, 4, status | regs.STATUS_DRIVER_OK)
    return features
