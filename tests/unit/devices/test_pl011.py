import pytest

from armvisor.devices import pl011
from armvisor.devices.pl011 import Pl011
from armvisor.trace.bus import TraceBus

DR, RSR, FR, IBRD, FBRD, LCR_H, CR, IFLS, IMSC, RIS, MIS, ICR, DMACR = (
    0x00, 0x04, 0x18, 0x24, 0x28, 0x2C, 0x30, 0x34, 0x38, 0x3C, 0x40, 0x44, 0x48)
TXFE, RXFF, RXFE, BUSY, TXFF = 0x80, 0x40, 0x10, 0x08, 0x20
RXIM, TXIM, RTIM = 0x10, 0x20, 0x40
FEN = 0x10


class Uart:
    def __init__(self, **kw):
        self.out = bytearray()
        self.levels: list[bool] = []
        self.dev = Pl011(self.out.extend, on_irq_change=self.levels.append, **kw)

    def r(self, off, size=4):
        return self.dev.read(off, size)

    def w(self, off, value, size=4):
        self.dev.write(off, size, value)


def test_reset_values():
    u = Uart()
    assert u.r(FR) == TXFE | RXFE
    assert u.r(CR) == 0x300
    assert u.r(IFLS) == 0x12
    assert u.r(LCR_H) == 0 and u.r(IMSC) == 0 and u.r(RIS) == 0 and u.r(MIS) == 0
    assert not u.dev.irq_level and u.levels == []


def test_primecell_ids_as_linux_reads_them():
    u = Uart()
    ids = [u.r(0xFE0 + 4 * i) for i in range(8)]
    periph = ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24
    cell = ids[4] | ids[5] << 8 | ids[6] << 16 | ids[7] << 24
    assert periph & 0x000F_FFFF == 0x0004_1011          # Linux amba id table mask
    assert cell == 0xB105_F00D


@pytest.mark.parametrize("size", [1, 2, 4])
def test_transmit_any_access_size(size):
    u = Uart()
    for ch in b"hi\n":
        u.w(DR, 0x4100 | ch, size)                      # high bits are not data
    assert bytes(u.out) == b"hi\n"
    assert u.r(FR) & (TXFE | TXFF | BUSY) == TXFE


def test_tx_interrupt_after_write_and_icr_clears_it():
    u = Uart()
    u.w(IMSC, TXIM)
    assert not u.dev.irq_level
    u.w(DR, ord("a"))
    assert u.r(RIS) & TXIM and u.r(MIS) == TXIM
    assert u.dev.irq_level and u.levels == [True]
    u.w(ICR, TXIM)
    assert u.r(RIS) == 0 and not u.dev.irq_level
    assert u.levels == [True, False]


def test_masked_interrupt_does_not_change_line():
    u = Uart()
    u.w(DR, ord("a"))
    assert u.r(RIS) == TXIM and u.r(MIS) == 0
    assert u.levels == []
    u.w(IMSC, TXIM)                                     # unmasking a pending interrupt raises it
    assert u.levels == [True]


def test_receive_with_fifo_and_backlog():
    u = Uart()
    u.w(LCR_H, FEN | 0x60)
    u.w(IMSC, RXIM | RTIM)
    data = bytes(range(0x41, 0x41 + 40))
    u.dev.receive(data)
    assert u.r(FR) & RXFF and not u.r(FR) & RXFE
    assert u.r(RIS) & RXIM and u.dev.irq_level
    assert u.dev.pending_input == 40
    got = bytearray()
    while not u.r(FR) & RXFE:
        got.append(u.r(DR) & 0xFF)
    assert bytes(got) == data                           # nothing lost past the 16-byte FIFO
    assert u.r(RIS) & RXIM == 0 and not u.dev.irq_level
    assert u.r(FR) == TXFE | RXFE


def test_receive_without_fifo_holds_one_byte():
    u = Uart()
    u.dev.receive(b"xy")
    assert u.r(FR) & RXFF                               # 1-byte holding register is full
    assert u.r(DR) == ord("x")
    assert u.r(FR) & RXFF
    assert u.r(DR) == ord("y")
    assert u.r(FR) & RXFE and not u.r(FR) & RXFF


def test_byte_read_of_dr_pops():
    u = Uart()
    u.dev.receive(b"ab")
    assert u.r(DR, 1) == ord("a")
    assert u.r(DR, 1) == ord("b")


def test_fifo_enable_toggle_keeps_input():
    u = Uart()
    u.w(LCR_H, FEN)
    u.dev.receive(b"abc")
    u.w(LCR_H, 0)                                       # flush: bytes go back to the backlog
    assert u.r(DR) == ord("a")
    u.w(LCR_H, FEN)
    assert u.r(DR) == ord("b") and u.r(DR) == ord("c")
    assert u.r(FR) & RXFE


def test_rx_interrupt_raised_on_first_byte_like_qemu():
    u = Uart()
    u.w(LCR_H, FEN)
    u.w(IMSC, RXIM)
    u.dev.receive(b"a")
    assert u.levels == [True]
    u.r(DR)
    assert u.levels == [True, False]


def test_plain_registers_and_masks():
    u = Uart()
    u.w(IBRD, 0x1_0013)
    u.w(FBRD, 0xFF)
    u.w(DMACR, 0xFF)
    u.w(IFLS, 0x2D)
    assert u.r(IBRD) == 0x0013 and u.r(FBRD) == 0x3F and u.r(DMACR) == 7 and u.r(IFLS) == 0x2D
    u.w(FR, 0)                                          # read-only
    assert u.r(FR) == TXFE | RXFE
    u.w(RSR, 0)
    assert u.r(RSR) == 0


def test_bad_offsets_are_traced_not_fatal():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    u = Uart(trace=bus)
    assert u.r(0x08) == 0 and u.r(0x4C) == 0 and u.r(0x1, 1) == 0
    u.w(0x800, 1)
    assert [e.kind for e in events] == ["device.bad_access"] * 4
    assert events[-1].fields["op"] == "write"


def test_irq_trace_event():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    u = Uart(trace=bus)
    u.w(IMSC, TXIM)
    u.w(DR, 0x41)
    assert [(e.kind, e.fields["level"]) for e in events] == [("irq.line", True)]


def test_constants_named_after_spec():
    assert pl011.UARTFR == FR and pl011.UARTICR == ICR and pl011.FIFO_DEPTH == 16
