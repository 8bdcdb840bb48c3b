"""virtio-blk (virtio 1.2 section 5.2) over a real image file, driven like Linux's virtio_blk."""

from __future__ import annotations

import os
import struct

import pytest

from armvisor.devices.virtio import mmio as regs
from armvisor.devices.virtio.blk import (SEG_MAX, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
                                         VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
                                         VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
                                         VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
                                         VirtioBlk)
from armvisor.devices.virtio.mmio import VirtioMmio
from armvisor.devices.virtio.queue import (VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1,
                                           VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE)
from armvisor.errors import ArmvisorError

try:
    from test_virtqueue import RAM_BASE, RAM_SIZE, Driver, GuestRam, bring_up
except ImportError:  # tests/unit as a package
    from .test_virtqueue import RAM_BASE, RAM_SIZE, Driver, GuestRam, bring_up

SECTORS = 64
HDR, DATA, STATUS = RAM_BASE + 0x8000, RAM_BASE + 0x9000, RAM_BASE + 0x8100


class Rig:
    """A virtio-blk slot brought up by a modern driver, with its image, RAM and IRQ line."""

    def __init__(self, tmp_path, read_only=False, accept=None, serial="armvisor-disk0"):
        self.path = tmp_path / "disk.img"
        self.original = bytes((i * 7) & 0xFF for i in range(SECTORS * 512))
        self.path.write_bytes(self.original)
        self.ram = GuestRam()
        self.driver = Driver(self.ram, num=16)
        self.fsyncs = []
        self.blk = VirtioBlk(self.ram, str(self.path), read_only=read_only, serial=serial,
                             fsync=self.fsyncs.append)
        self.lines = []
        self.slot = VirtioMmio(self.blk, legacy=False, on_irq_change=self.lines.append)
        self.features = bring_up(self.slot, {0: self.driver}, accept)

    def header(self, kind, sector=0, at=HDR):
        self.ram.write(at, struct.pack("<IIQ", kind, 0, sector))
        self.ram.write(STATUS, b"\xee")

    def request(self, kind, sector, data_segs, notify=True):
        """Header, data, status in three kinds of descriptor, as virtio_blk queues them."""
        self.header(kind, sector)
        head = self.driver.submit([(HDR, 16, False), *data_segs, (STATUS, 1, True)])
        if notify:
            self.notify()
        return head

    def notify(self):
        self.slot.write(regs.QUEUE_NOTIFY, 4, 0)

    def status(self):
        return self.ram.read(STATUS, 1)[0]

    def file(self):
        return self.path.read_bytes()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.blk.close()


def test_identity_features_and_config(rig):
    slot = rig.slot
    assert slot.read(regs.DEVICE_ID, 4) == 2
    assert rig.features & VIRTIO_F_VERSION_1 and rig.features & VIRTIO_BLK_F_FLUSH
    assert not rig.features & VIRTIO_BLK_F_RO
    capacity = slot.read(regs.CONFIG, 4) | slot.read(regs.CONFIG + 4, 4) << 32
    assert capacity == SECTORS
    assert slot.read(regs.CONFIG + 12, 4) == SEG_MAX                  # seg_max
    assert slot.read(regs.CONFIG + 20, 4) == 512                      # blk_size
    assert slot.read(regs.CONFIG + 0x40, 4) == 0                      # beyond the fields used
    assert slot.read(regs.QUEUE_NUM_MAX, 4) == 256


def test_write_then_read_back_through_the_file(rig):
    payload = bytes(range(256)) * 4
    rig.ram.write(DATA, payload[:600])
    rig.ram.write(DATA + 0x1000, payload[600:])
    head = rig.request(VIRTIO_BLK_T_OUT, 3, [(DATA, 600, False), (DATA + 0x1000, 424, False)])
    assert rig.status() == VIRTIO_BLK_S_OK
    assert rig.driver.take_used() == [(head, 1)]
    assert rig.lines == [True] and rig.slot.read(regs.INTERRUPT_STATUS, 4) == regs.INT_VRING
    expected = rig.original[:3 * 512] + payload + rig.original[5 * 512:]
    assert rig.file() == expected
    rig.slot.write(regs.INTERRUPT_ACK, 4, regs.INT_VRING)
    rig.driver.set_used_event(1)                      # what virtqueue_enable_cb does
    head = rig.request(VIRTIO_BLK_T_IN, 2, [(DATA + 0x2000, 1024, True),
                                            (DATA + 0x3000, 512, True)])
    assert rig.status() == VIRTIO_BLK_S_OK
    assert rig.driver.take_used() == [(head, 1536 + 1)]
    got = rig.ram.read(DATA + 0x2000, 1024) + rig.ram.read(DATA + 0x3000, 512)
    assert got == expected[2 * 512:5 * 512]
    assert rig.lines == [True, False, True]


def test_framing_does_not_matter(rig):
    # 2.6.4: header and data in one descriptor, status byte at the end of the data one.
    rig.ram.write(HDR, struct.pack("<IIQ", VIRTIO_BLK_T_OUT, 0, 1) + b"\x5a" * 512)
    head = rig.driver.submit([(HDR, 16 + 512, False), (DATA, 513, True)])
    rig.notify()
    assert rig.ram.read(DATA + 512, 1)[0] == VIRTIO_BLK_S_OK
    assert rig.driver.take_used() == [(head, 1)]
    assert rig.file()[512:1024] == b"\x5a" * 512


def test_flush_fsyncs_the_image(rig):
    rig.request(VIRTIO_BLK_T_FLUSH, 0, [])
    assert rig.status() == VIRTIO_BLK_S_OK
    assert len(rig.fsyncs) == 1 and os.fstat(rig.fsyncs[0]).st_ino == os.stat(rig.path).st_ino


def test_flush_failure_is_an_io_error(tmp_path):
    rig = Rig(tmp_path)

    def broken(fd):
        raise OSError(5, "EIO")
    rig.blk._fsync = broken
    rig.request(VIRTIO_BLK_T_FLUSH, 0, [])
    assert rig.status() == VIRTIO_BLK_S_IOERR
    rig.blk.close()


@pytest.mark.parametrize("kind,sector,length", [
    (VIRTIO_BLK_T_IN, SECTORS - 1, 1024),          # runs past the end
    (VIRTIO_BLK_T_OUT, SECTORS, 512),              # starts at the end
    (VIRTIO_BLK_T_OUT, 2**64 - 1, 512),            # sector arithmetic must not wrap
    (VIRTIO_BLK_T_IN, 0, 100),                     # not whole sectors
    (VIRTIO_BLK_T_OUT, 0, 700),
])
def test_out_of_range_and_partial_sectors_are_io_errors(rig, kind, sector, length):
    head = rig.request(kind, sector, [(DATA, length, kind == VIRTIO_BLK_T_IN)])
    assert rig.status() == VIRTIO_BLK_S_IOERR
    assert rig.driver.take_used() == [(head, 1)]
    assert rig.file() == rig.original and not rig.blk.failed


def test_last_sector_is_reachable(rig):
    rig.request(VIRTIO_BLK_T_IN, SECTORS - 1, [(DATA, 512, True)])
    assert rig.status() == VIRTIO_BLK_S_OK
    assert rig.ram.read(DATA, 512) == rig.original[-512:]


def test_get_id_returns_the_20_byte_serial(rig):
    rig.ram.write(DATA, b"\xff" * 20)
    head = rig.request(VIRTIO_BLK_T_GET_ID, 0, [(DATA, 20, True)])
    assert rig.status() == VIRTIO_BLK_S_OK
    assert rig.ram.read(DATA, 20) == b"armvisor-disk0" + b"\0" * 6
    assert rig.driver.take_used() == [(head, 21)]


def test_unsupported_request_type(rig):
    head = rig.request(11, 0, [(DATA, 16, False)])               # T_DISCARD, not offered
    assert rig.status() == VIRTIO_BLK_S_UNSUPP
    assert rig.driver.take_used() == [(head, 1)]


def test_read_only_image_rejects_writes(tmp_path, monkeypatch):
    rig = Rig(tmp_path, read_only=True)
    assert rig.features & VIRTIO_BLK_F_RO
    writes = []
    monkeypatch.setattr(os, "pwrite", lambda *args: writes.append(args))
    rig.ram.write(DATA, b"\x11" * 512)
    rig.request(VIRTIO_BLK_T_OUT, 0, [(DATA, 512, False)])
    assert rig.status() == VIRTIO_BLK_S_IOERR and rig.file() == rig.original
    assert writes == []                               # refused before the file is touched
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.status() == VIRTIO_BLK_S_OK and rig.ram.read(DATA, 512) == rig.original[:512]
    rig.blk.close()


def test_data_buffer_outside_ram_fails_the_request_only(rig):
    head = rig.request(VIRTIO_BLK_T_IN, 0, [(RAM_BASE + RAM_SIZE - 256, 512, True)])
    assert rig.status() == VIRTIO_BLK_S_IOERR
    assert rig.driver.take_used() == [(head, 1)]
    assert not rig.slot.status & regs.STATUS_NEEDS_RESET
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])           # the device still works
    assert rig.status() == VIRTIO_BLK_S_OK


def test_header_in_a_device_writable_buffer_is_an_io_error(rig):
    rig.header(VIRTIO_BLK_T_OUT, 0)
    head = rig.driver.submit([(HDR, 16, True), (STATUS, 1, True)])
    rig.notify()
    assert rig.status() == VIRTIO_BLK_S_IOERR
    assert rig.driver.take_used() == [(head, 1)]
    assert rig.file() == rig.original


def needs_reset(rig):
    return (rig.slot.read(regs.STATUS, 4) & regs.STATUS_NEEDS_RESET
            and rig.slot.read(regs.INTERRUPT_STATUS, 4) & regs.INT_CONFIG)


def test_status_byte_outside_ram_drops_the_chain_and_needs_reset(rig):
    rig.header(VIRTIO_BLK_T_IN, 0)
    rig.driver.submit([(HDR, 16, False), (DATA, 512, True), (RAM_BASE + RAM_SIZE, 1, True)])
    generation = rig.slot.read(regs.CONFIG_GENERATION, 4)
    rig.notify()
    assert needs_reset(rig)
    assert rig.driver.take_used() == [] and rig.lines == [True]
    assert rig.slot.read(regs.CONFIG_GENERATION, 4) != generation
    # A failed device ignores further requests until the driver resets it ...
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.driver.take_used() == []
    # ... and works again afterwards.
    rig.slot.write(regs.STATUS, 4, 0)
    assert rig.slot.read(regs.STATUS, 4) == 0 and rig.lines == [True, False]
    rig.driver = Driver(rig.ram, num=16)
    bring_up(rig.slot, {0: rig.driver})
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.status() == VIRTIO_BLK_S_OK and len(rig.driver.take_used()) == 1


def test_descriptor_loop_needs_reset(rig):
    rig.header(VIRTIO_BLK_T_IN, 0)
    d = rig.driver
    d.set_desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1)
    d.set_desc(1, DATA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2)
    d.set_desc(2, STATUS, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1)
    d.publish(0)
    rig.notify()
    assert needs_reset(rig) and rig.driver.take_used() == []
    assert rig.status() == 0xEE                                      # nothing written


def test_zero_length_chain_needs_reset(rig):
    rig.driver.submit([(DATA, 0, True)])
    rig.notify()
    assert needs_reset(rig) and rig.driver.take_used() == []


def test_indirect_request_like_linux_multi_segment(rig):
    rig.header(VIRTIO_BLK_T_IN, 4)
    segs = [(HDR, 16, False)] + [(DATA + 0x1000 * i, 512, True) for i in range(4)] + \
        [(STATUS, 1, True)]
    head = rig.driver.indirect(RAM_BASE + 0x7000, segs)
    rig.driver.publish(head)
    rig.notify()
    assert rig.status() == VIRTIO_BLK_S_OK
    assert rig.driver.take_used() == [(head, 2049)]
    for i in range(4):
        assert rig.ram.read(DATA + 0x1000 * i, 512) == rig.original[(4 + i) * 512:(5 + i) * 512]


def test_one_interrupt_per_batch(rig):
    for sector in range(3):
        rig.request(VIRTIO_BLK_T_IN, sector, [(DATA + 0x1000 * sector, 512, True)], notify=False)
    rig.notify()
    assert len(rig.driver.take_used()) == 3 and rig.lines == [True]


def test_event_idx_suppresses_interrupts_until_used_event(tmp_path):
    rig = Rig(tmp_path)
    assert rig.features & VIRTIO_F_EVENT_IDX
    rig.driver.set_used_event(1)                      # interrupt once entry 1 is used
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.lines == [] and rig.driver.avail_event() == 1
    rig.request(VIRTIO_BLK_T_IN, 1, [(DATA, 512, True)])
    assert rig.lines == [True] and rig.driver.avail_event() == 2
    rig.blk.close()


def test_without_event_idx_the_avail_flag_suppresses(tmp_path):
    rig = Rig(tmp_path, accept=~VIRTIO_F_EVENT_IDX)
    rig.driver.set_avail_flags(1)
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.lines == [] and rig.status() == VIRTIO_BLK_S_OK
    rig.driver.set_avail_flags(0)
    rig.request(VIRTIO_BLK_T_IN, 0, [(DATA, 512, True)])
    assert rig.lines == [True]
    rig.blk.close()


def test_requests_before_driver_ok_wait_for_it(tmp_path):
    path = tmp_path / "d.img"
    path.write_bytes(b"\x42" * 1024)
    ram = GuestRam()
    blk = VirtioBlk(ram, str(path), fsync=lambda fd: None)
    slot = VirtioMmio(blk, legacy=False)
    driver = Driver(ram, num=16)
    ram.write(HDR, struct.pack("<IIQ", VIRTIO_BLK_T_IN, 0, 1))
    driver.submit([(HDR, 16, False), (DATA, 512, True), (STATUS, 1, True)])
    slot.write(regs.QUEUE_NOTIFY, 4, 0)               # not even set up: ignored
    assert driver.take_used() == []
    bring_up(slot, {0: driver})                       # DRIVER_OK serves what is waiting
    assert driver.take_used() == [(0, 513)] and ram.read(DATA, 512) == b"\x42" * 512
    blk.close()


def test_written_data_survives_close(tmp_path):
    rig = Rig(tmp_path)
    rig.ram.write(DATA, b"persist!" * 64)
    rig.request(VIRTIO_BLK_T_OUT, 7, [(DATA, 512, False)])
    rig.request(VIRTIO_BLK_T_FLUSH, 0, [])
    rig.blk.close()
    rig.blk.close()                                   # idempotent
    assert rig.path.read_bytes()[7 * 512:8 * 512] == b"persist!" * 64


def test_missing_image_and_second_writer_are_user_errors(tmp_path, rig):
    with pytest.raises(ArmvisorError, match="cannot open"):
        VirtioBlk(GuestRam(), str(tmp_path / "missing.img"))
    with pytest.raises(ArmvisorError, match="in use"):
        VirtioBlk(GuestRam(), str(rig.path))
