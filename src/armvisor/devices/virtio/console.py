"""virtio-console (virtio 1.2 section 5.3) with a single port, no multiport.

Queue 0 (receiveq0) carries host input to the guest, queue 1 (transmitq0)
guest output to the host (5.3.2). Output goes to `sink` as soon as the
driver notifies the transmit queue. Host input given to `receive` fills the
buffers the driver posted in the receive queue; what does not fit yet waits
in a backlog until the driver posts more (it notifies then, 5.3.6.1).
"""

from __future__ import annotations

from typing import Callable

from armvisor.devices.virtio.queue import (RING_FEATURES, Chain, GuestMemory, QueueDevice,
                                           SplitQueue, read_stream, write_stream)

VIRTIO_ID_CONSOLE = 3               # 5 "Device Types"

RECEIVEQ = 0                        # 5.3.2: receiveq(port0)
TRANSMITQ = 1                       # 5.3.2: transmitq(port0)

# struct virtio_console_config (5.3.4): cols, rows, max_nr_ports, emerg_wr. All
# read zero: VIRTIO_CONSOLE_F_SIZE, _MULTIPORT and _EMERG_WRITE are not offered.
CONFIG_SIZE = 12

QUEUE_SIZE = 128
# Host input kept while the guest has no receive buffer; more is dropped so a
# guest that never reads cannot make the host hold unbounded data.
BACKLOG_LIMIT = 1 << 20


class VirtioConsole(QueueDevice):
    """A virtio console port; guest output goes to `sink`, host input comes through `receive`."""

    device_id = VIRTIO_ID_CONSOLE

    def __init__(self, memory: GuestMemory, sink: Callable[[bytes], None],
                 name: str = "virtio-console", trace=None):
        super().__init__(memory, queue_count=2, queue_size=QUEUE_SIZE, name=name, trace=trace)
        self._sink = sink
        # Host input outlives a device reset: it was typed for whoever reads the port next.
        self.backlog = bytearray()

    def save_state(self) -> dict:
        return dict(super().save_state(), backlog=bytes(self.backlog))

    def restore_state(self, state: dict) -> None:
        super().restore_state(state)
        self.backlog = bytearray(state["backlog"])

    # -- VirtioBackend -------------------------------------------------------
    def device_features(self) -> int:
        return RING_FEATURES

    def config_read(self, offset: int, size: int) -> int:
        return 0

    def config_write(self, offset: int, size: int, value: int) -> None:
        pass                              # emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE

    # -- host side -------------------------------------------------------------
    def receive(self, data: bytes) -> int:
        """Queue host input for the guest; returns how many bytes were accepted."""
        room = max(BACKLOG_LIMIT - len(self.backlog), 0)
        if room < len(data):
            self._emit("virtio.console_overrun", dropped=len(data) - room)
        self.backlog += data[:room]
        self.service(RECEIVEQ)
        return min(room, len(data))

    # -- queues --------------------------------------------------------------
    def _process(self, index: int, ring: SplitQueue) -> None:
        if index == RECEIVEQ:
            self._fill(ring)
        else:
            self._transmit(ring)

    def _transmit(self, ring: SplitQueue) -> None:
        while not self.failed:
            chain = ring.pop()
            if chain is None:
                return
            if not self._usable(chain):
                return
            data = read_stream(self.memory, chain.readable, 0, chain.readable_length)
            if data:
                self._sink(data)
            ring.push(chain.head, 0)

    def _fill(self, ring: SplitQueue) -> None:
        # A chain is taken only when there is data for it: empty buffers stay posted.
        while self.backlog and not self.failed:
            chain = ring.pop()
            if chain is None:
                return
            if not self._usable(chain):
                return
            if chain.readable or not chain.writable_length:
                # 5.3.6.1: receive buffers are device-writable; nothing else fits here.
                self.fail(f"receive chain {chain.head} has no place for input")
                return
            count = write_stream(self.memory, chain.writable, 0,
                                 bytes(self.backlog[:chain.writable_length]))
            del self.backlog[:count]
            ring.push(chain.head, count)

    def _usable(self, chain: Chain) -> bool:
        """A console has no status to fail one request in: a bad chain fails the device."""
        if chain.error or not chain.buffers_in_ram:
            self.fail(f"chain {chain.head}: {chain.error or 'buffer outside RAM'}")
            return False
        return True
