"""Arm PrimeCell UART PL011 (DDI0183), register level, as QEMU's virt board has it.

Transmission is instantaneous: a write to UARTDR goes straight to `sink`, the
transmit FIFO is always empty and TXRIS is raised after every write (QEMU
hw/char/pl011.c does the same, and Linux's driver relies on the TX interrupt
following a write). Received bytes come from the host through `receive()`;
what does not fit in the 16-entry RX FIFO waits in a host-side backlog and is
moved in as the guest reads, so pasted input is never dropped.

Like QEMU, the RX interrupt is raised as soon as one character is in the FIFO
(QEMU ignores UARTIFLS), and the receive-timeout interrupt is never raised.
"""

from __future__ import annotations

from collections import deque
from armvisor.devices.primecell import PrimeCell
from typing import Callable, Deque, Optional

# Register offsets (DDI0183 3.2, table 3-1).
UARTDR = 0x000
UARTRSR = 0x004                    # UARTECR on write
UARTFR = 0x018
UARTILPR = 0x020
UARTIBRD = 0x024
UARTFBRD = 0x028
UARTLCR_H = 0x02C
UARTCR = 0x030
UARTIFLS = 0x034
UARTIMSC = 0x038
UARTRIS = 0x03C
UARTMIS = 0x040
UARTICR = 0x044
UARTDMACR = 0x048

# PrimeCell identification bytes QEMU reports: part 0x011, designer 0x41 (Arm),
# revision 1 (PeriphID0..3); the cell ID comes from primecell.py.
PL011_ID_BYTES = (0x11, 0x10, 0x14, 0x00)

# UARTFR bits (DDI0183 3.3.3).
FR_CTS = 1 << 0
FR_DSR = 1 << 1
FR_DCD = 1 << 2
FR_BUSY = 1 << 3
FR_RXFE = 1 << 4
FR_TXFF = 1 << 5
FR_RXFF = 1 << 6
FR_TXFE = 1 << 7
FR_RI = 1 << 8

# UARTLCR_H bits (DDI0183 3.3.7).
LCR_H_FEN = 1 << 4

# UARTCR bits (DDI0183 3.3.8).
CR_UARTEN = 1 << 0
CR_TXE = 1 << 8
CR_RXE = 1 << 9
CR_RESET = CR_TXE | CR_RXE         # reset value 0x300

# Interrupt bits shared by UARTIMSC/RIS/MIS/ICR (DDI0183 3.3.10-13).
INT_RI = 1 << 0
INT_CTS = 1 << 1
INT_DCD = 1 << 2
INT_DSR = 1 << 3
INT_RX = 1 << 4
INT_TX = 1 << 5
INT_RT = 1 << 6
INT_FE = 1 << 7
INT_PE = 1 << 8
INT_BE = 1 << 9
INT_OE = 1 << 10
INT_ALL = (1 << 11) - 1

IFLS_RESET = 0x12                  # both FIFO levels at 1/2 (DDI0183 3.3.9)
IBRD_MASK = 0xFFFF                 # 16-bit integer divisor (DDI0183 3.3.5)
FBRD_MASK = 0x3F                   # 6-bit fractional divisor (DDI0183 3.3.6)
LCR_H_MASK = 0xFF
CR_MASK = 0xFF87                   # bits 6:3 are reserved (DDI0183 3.3.8)
DMACR_MASK = 0x7

FIFO_DEPTH = 16                    # RX FIFO entries (DDI0183 2.4.3), as QEMU models it



class Pl011(PrimeCell):
    """One PL011. `read`/`write` are the MMIO handlers for offsets within its 4 KiB page."""

    PERIPH_ID_BYTES = PL011_ID_BYTES

    def __init__(self, sink: Callable[[bytes], None],
                 on_irq_change: Optional[Callable[[bool], None]] = None,
                 trace=None, name: str = "uart0"):
        self._sink = sink
        super().__init__(name, trace, on_irq_change)
        self._backlog: Deque[int] = deque()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.rx_fifo: Deque[int] = deque()
        self.rsr = 0
        self.ilpr = 0
        self.ibrd = 0
        self.fbrd = 0
        self.lcr_h = 0
        self.cr = CR_RESET
        self.ifls = IFLS_RESET
        self.imsc = 0
        self.ris = 0
        self.dmacr = 0
        self.irq_level = False
        self._update_irq()
        self._fill_from_backlog()

    def save_state(self) -> dict:
        # The backlog is input the guest has not read yet, as much as the FIFO is.
        state = super().save_state()
        state.update(rx_fifo=bytes(self.rx_fifo), backlog=bytes(self._backlog), rsr=self.rsr,
                     ilpr=self.ilpr, ibrd=self.ibrd, fbrd=self.fbrd, lcr_h=self.lcr_h,
                     cr=self.cr, ifls=self.ifls, imsc=self.imsc, ris=self.ris,
                     dmacr=self.dmacr)
        return state

    def restore_state(self, state: dict) -> None:
        super().restore_state(state)
        self.rx_fifo = deque(state["rx_fifo"])
        self._backlog = deque(state["backlog"])
        self.rsr = state["rsr"]
        self.ilpr = state["ilpr"]
        self.ibrd = state["ibrd"]
        self.fbrd = state["fbrd"]
        self.lcr_h = state["lcr_h"]
        self.cr = state["cr"]
        self.ifls = state["ifls"]
        self.imsc = state["imsc"]
        self.ris = state["ris"]
        self.dmacr = state["dmacr"]

    @property
    def fifo_depth(self) -> int:
        # With FEN clear the FIFO becomes a 1-byte holding register (DDI0183 2.4.3).
        return FIFO_DEPTH if self.lcr_h & LCR_H_FEN else 1

    @property
    def flags(self) -> int:
        fr = FR_TXFE                   # transmission is instantaneous
        if not self.rx_fifo:
            fr |= FR_RXFE
        if len(self.rx_fifo) >= self.fifo_depth:
            fr |= FR_RXFF
        return fr

    @property
    def pending_input(self) -> int:
        """Bytes received from the host that the guest has not read yet."""
        return len(self.rx_fifo) + len(self._backlog)

    # ------------------------------------------------------------------- host
    def receive(self, data: bytes) -> None:
        """Bytes typed or pasted on the host side of the line."""
        self._backlog.extend(data)
        self._fill_from_backlog()

    def _fill_from_backlog(self) -> None:
        # Like QEMU 7.2 the receiver ignores UARTCR.UARTEN/RXE: bare-metal
        # programs written for QEMU read UARTDR without enabling the UART.
        moved = False
        while self._backlog and len(self.rx_fifo) < self.fifo_depth:
            self.rx_fifo.append(self._backlog.popleft())
            moved = True
        if moved:
            self.ris |= INT_RX
            self._update_irq()

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        if not self._valid_access(offset, size):
            self.bad_access("read", offset, size)
            return 0
        value = self._read_reg(offset)
        return value & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if not self._valid_access(offset, size):
            self.bad_access("write", offset, size)
            return
        self._write_reg(offset, value & ((1 << (8 * size)) - 1))

    @staticmethod
    def _valid_access(offset: int, size: int) -> bool:
        # Registers are word aligned; byte and halfword accesses read or write
        # the low bits (U-Boot and some earlycons use strb to UARTDR).
        return size in (1, 2, 4) and offset % 4 == 0 and 0 <= offset < 0x1000

    def _read_reg(self, offset: int) -> int:
        if offset == UARTDR:
            return self._read_dr()
        if offset == UARTRSR:
            return self.rsr
        if offset == UARTFR:
            return self.flags
        if offset == UARTILPR:
            return self.ilpr
        if offset == UARTIBRD:
            return self.ibrd
        if offset == UARTFBRD:
            return self.fbrd
        if offset == UARTLCR_H:
            return self.lcr_h
        if offset == UARTCR:
            return self.cr
        if offset == UARTIFLS:
            return self.ifls
        if offset == UARTIMSC:
            return self.imsc
        if offset == UARTRIS:
            return self.ris
        if offset == UARTMIS:
            return self.ris & self.imsc
        if offset == UARTDMACR:
            return self.dmacr
        ident = self.id_register(offset)
        if ident is not None:
            return ident
        self.bad_access("read", offset, 4)
        return 0

    def _read_dr(self) -> int:
        # Reading an empty FIFO returns 0 here (the hardware value is undefined).
        value = self.rx_fifo.popleft() if self.rx_fifo else 0
        self.rsr = (value >> 8) & 0xF          # error bits travel with the byte (DDI0183 3.3.2)
        self._fill_from_backlog()
        if not self.rx_fifo:
            self.ris &= ~INT_RX
        self._update_irq()
        return value

    def _write_reg(self, offset: int, value: int) -> None:
        if offset == UARTDR:
            self._sink(bytes([value & 0xFF]))
            self.ris |= INT_TX
            self._update_irq()
        elif offset == UARTRSR:
            self.rsr = 0                        # UARTECR: any write clears the errors
        elif offset == UARTFR:
            pass                                # read only
        elif offset == UARTILPR:
            self.ilpr = value & 0xFF
        elif offset == UARTIBRD:
            self.ibrd = value & IBRD_MASK
        elif offset == UARTFBRD:
            self.fbrd = value & FBRD_MASK
        elif offset == UARTLCR_H:
            self._write_lcr_h(value & LCR_H_MASK)
        elif offset == UARTCR:
            self.cr = value & CR_MASK
        elif offset == UARTIFLS:
            self.ifls = value & 0x3F
        elif offset == UARTIMSC:
            self.imsc = value & INT_ALL
            self._update_irq()
        elif offset == UARTICR:
            self.ris &= ~value
            self._update_irq()
        elif offset == UARTDMACR:
            self.dmacr = value & DMACR_MASK
        else:
            self.bad_access("write", offset, 4)

    def _write_lcr_h(self, value: int) -> None:
        if (self.lcr_h ^ value) & LCR_H_FEN:
            # Switching the FIFO on or off flushes it (QEMU does the same);
            # what the guest had not read goes back to the backlog, not lost.
            self._backlog.extendleft(reversed(self.rx_fifo))
            self.rx_fifo.clear()
            self.ris &= ~INT_RX
        self.lcr_h = value
        self._fill_from_backlog()
        self._update_irq()

    # -------------------------------------------------------------- interrupt
    def _update_irq(self) -> None:
        self.set_irq(bool(self.ris & self.imsc))
