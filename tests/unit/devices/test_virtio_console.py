"""virtio-console (virtio 1.2 section 5.3), one port, driven like Linux's virtio_console."""

from __future__ import annotations

from armvisor.devices.virtio import mmio as regs
from armvisor.devices.virtio.console import BACKLOG_LIMIT, RECEIVEQ, TRANSMITQ, VirtioConsole
from armvisor.devices.virtio.mmio import VirtioMmio
from armvisor.devices.virtio.queue import VIRTIO_F_VERSION_1

try:
    from test_virtqueue import RAM_BASE, RAM_SIZE, Driver, GuestRam, bring_up
except ImportError:  # tests/unit as a package
    from .test_virtqueue import RAM_BASE, RAM_SIZE, Driver, GuestRam, bring_up

RX_BUF, TX_BUF = RAM_BASE + 0x8000, RAM_BASE + 0xC000


class Rig:
    def __init__(self, up: bool = True):
        self.ram = GuestRam()
        self.out = []
        self.console = VirtioConsole(self.ram, self.out.append)
        self.lines = []
        self.slot = VirtioMmio(self.console, legacy=False, on_irq_change=self.lines.append)
        self.rx = Driver(self.ram, num=8, base=RAM_BASE)
        self.tx = Driver(self.ram, num=8, base=RAM_BASE + 0x2000)
        if up:
            self.features = bring_up(self.slot, {RECEIVEQ: self.rx, TRANSMITQ: self.tx})

    def post_rx(self, count: int, size: int = 4) -> None:
        """Linux's fill_queue: one device-writable buffer per chain, then a kick."""
        for _ in range(count):
            head = self.rx.next_free                  # buffer address follows the descriptor
            self.rx.submit([(RX_BUF + 0x100 * head, size, True)])
        self.slot.write(regs.QUEUE_NOTIFY, 4, RECEIVEQ)

    def received(self):
        return [self.ram.read(RX_BUF + 0x100 * head, length)
                for head, length in self.rx.take_used()]

    def send(self, *pieces: bytes) -> int:
        segs = []
        for i, piece in enumerate(pieces):
            self.ram.write(TX_BUF + 0x100 * i, piece)
            segs.append((TX_BUF + 0x100 * i, len(piece), False))
        head = self.tx.submit(segs)
        self.slot.write(regs.QUEUE_NOTIFY, 4, TRANSMITQ)
        return head


def test_identity_and_queues():
    rig = Rig()
    assert rig.slot.read(regs.DEVICE_ID, 4) == 3
    assert rig.features & VIRTIO_F_VERSION_1
    assert rig.features & 0xFFFFFF == 0               # no SIZE / MULTIPORT / EMERG_WRITE
    for index, size in ((0, 128), (1, 128), (2, 0), (3, 0)):
        rig.slot.write(regs.QUEUE_SEL, 4, index)
        assert rig.slot.read(regs.QUEUE_NUM_MAX, 4) == size
    assert rig.slot.read(regs.CONFIG + 4, 4) == 0      # max_nr_ports: not multiport


def test_transmit_goes_to_the_sink():
    rig = Rig()
    head = rig.send(b"hello, ", b"world\n")
    assert rig.out == [b"hello, world\n"]
    assert rig.tx.take_used() == [(head, 0)]
    assert rig.lines == [True]


def test_receive_fills_posted_buffers_and_keeps_a_backlog():
    rig = Rig()
    rig.post_rx(2)
    assert rig.console.receive(b"0123456789") == 10
    assert rig.received() == [b"0123", b"4567"]
    assert bytes(rig.console.backlog) == b"89" and rig.lines == [True]
    rig.slot.write(regs.INTERRUPT_ACK, 4, regs.INT_VRING)
    rig.rx.set_used_event(2)
    rig.post_rx(1)                                    # the guest gives a buffer back
    assert rig.received() == [b"89"] and rig.console.backlog == b""
    assert rig.lines == [True, False, True]


def test_no_buffers_taken_without_input():
    rig = Rig()
    rig.post_rx(3)
    assert rig.rx.take_used() == [] and rig.lines == []
    rig.console.receive(b"x")
    assert rig.received() == [b"x"]
    rig.console.receive(b"y")
    assert rig.received() == [b"y"]                   # the next posted buffer


def test_input_before_driver_ok_waits_in_the_backlog():
    rig = Rig(up=False)
    rig.console.receive(b"early")
    assert rig.console.backlog == b"early"
    for i in range(2):
        rig.rx.submit([(RX_BUF + 0x100 * i, 4, True)])
    bring_up(rig.slot, {RECEIVEQ: rig.rx, TRANSMITQ: rig.tx})
    assert rig.received() == [b"earl", b"y"]


def test_backlog_is_bounded():
    rig = Rig()
    assert rig.console.receive(b"a" * (BACKLOG_LIMIT + 10)) == BACKLOG_LIMIT
    assert len(rig.console.backlog) == BACKLOG_LIMIT


def test_backlog_survives_a_device_reset():
    rig = Rig()
    rig.console.receive(b"typed")
    rig.slot.write(regs.STATUS, 4, 0)
    rig.rx = Driver(rig.ram, num=8, base=RAM_BASE)
    rig.tx = Driver(rig.ram, num=8, base=RAM_BASE + 0x2000)
    bring_up(rig.slot, {RECEIVEQ: rig.rx, TRANSMITQ: rig.tx})
    rig.post_rx(2)
    assert rig.received() == [b"type", b"d"]


def test_bad_transmit_chain_needs_reset_and_sends_nothing():
    rig = Rig()
    rig.tx.submit([(RAM_BASE + RAM_SIZE - 2, 8, False)])
    rig.slot.write(regs.QUEUE_NOTIFY, 4, TRANSMITQ)
    assert rig.out == [] and rig.tx.take_used() == []
    assert rig.slot.read(regs.STATUS, 4) & regs.STATUS_NEEDS_RESET
    assert rig.slot.read(regs.INTERRUPT_STATUS, 4) == regs.INT_CONFIG


def test_read_only_receive_buffer_needs_reset():
    rig = Rig()
    rig.rx.submit([(RX_BUF, 4, False)])
    rig.console.receive(b"zz")
    assert rig.slot.read(regs.STATUS, 4) & regs.STATUS_NEEDS_RESET
    assert rig.rx.take_used() == [] and rig.ram.read(RX_BUF, 2) == b"\0\0"
    assert rig.console.backlog == b"zz"
