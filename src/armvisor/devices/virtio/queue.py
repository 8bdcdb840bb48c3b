"""The device side of a split virtqueue (virtio 1.2 section 2.7) and what devices share.

`SplitQueue` reads the descriptor table and available ring the driver wrote in
guest RAM and writes the used ring. Every guest address it touches is first
checked against RAM through `GuestMemory`, so a driver bug shows up as a
failed request or a device that needs reset, never as an exception in the
machine.

A chain is walked into readable and writable `Buffer` lists. Two kinds of
damage are told apart because devices answer them differently:
- `Chain.error` (structural): an index out of range, a loop, a bad indirect
  table, readable after writable. The chain's layout is unknown, so nothing
  in it may be written; the device drops it and asks for a reset (2.1.2).
- a `Buffer` with `in_ram=False`: the layout is known and the device may
  still report failure in a buffer that is valid (virtio-blk's status byte).

`QueueDevice` is the part every backend shares: attaching to its transport,
the negotiated features, one `SplitQueue` per ready queue, used-buffer
notifications (with VIRTIO_F_EVENT_IDX suppression) and DEVICE_NEEDS_RESET.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Tuple

from armvisor.devices.virtio.mmio import INT_VRING, QUEUE_SIZE_MAX, VIRTIO_F_VERSION_1, VirtQueue

# Descriptor flags (2.7.5 "struct virtq_desc").
VIRTQ_DESC_F_NEXT = 1
VIRTQ_DESC_F_WRITE = 2
VIRTQ_DESC_F_INDIRECT = 4
# Available ring flag (2.7.6): the driver does not want used-buffer notifications.
VIRTQ_AVAIL_F_NO_INTERRUPT = 1

# Reserved feature bits (6 "Reserved Feature Bits").
VIRTIO_F_INDIRECT_DESC = 1 << 28
VIRTIO_F_EVENT_IDX = 1 << 29
# What this queue implementation supports; devices offer it with their own bits.
RING_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX

DESC_SIZE = 16                      # le64 addr, le32 len, le16 flags, le16 next (2.7.5)
USED_ELEM_SIZE = 8                  # le32 id, le32 len (2.7.8)
# 2.7 table "Virtqueue Part Alignment": descriptor table 16, available ring 2, used ring 4.
DESC_ALIGN, AVAIL_ALIGN, USED_ALIGN = 16, 2, 4
# Longest indirect table accepted: the largest queue the transport offers.
# (2.7.5.3.1 lets a table be as long as a queue; QEMU caps it the same way.)
INDIRECT_MAX = QUEUE_SIZE_MAX

_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")


class GuestMemory(Protocol):
    """Guest physical RAM as devices see it (board.Ram satisfies it)."""

    def contains(self, address: int, size: int = 1) -> bool: ...
    def read(self, address: int, size: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


class Transport(Protocol):
    """What a backend needs from its transport (mmio.VirtioMmio satisfies it)."""

    def queue(self, index: int) -> VirtQueue: ...
    def raise_interrupt(self, bits: int = INT_VRING) -> None: ...
    def needs_reset(self) -> None: ...


class QueueError(Exception):
    """The queue itself is unusable (rings outside RAM, bad size, avail index jump)."""


@dataclass(frozen=True)
class Buffer:
    addr: int
    length: int
    in_ram: bool


@dataclass
class Chain:
    """One descriptor chain taken from the available ring."""

    head: int
    readable: List[Buffer] = field(default_factory=list)
    writable: List[Buffer] = field(default_factory=list)
    error: Optional[str] = None      # structural damage: the chain must not be written

    @property
    def buffers_in_ram(self) -> bool:
        return all(b.in_ram for b in self.readable) and all(b.in_ram for b in self.writable)

    @property
    def readable_length(self) -> int:
        return sum(b.length for b in self.readable)

    @property
    def writable_length(self) -> int:
        return sum(b.length for b in self.writable)


def read_stream(memory: GuestMemory, buffers: List[Buffer], start: int, size: int) -> bytes:
    """`size` bytes at byte `start` of the buffers seen as one stream (2.6.4 message framing)."""
    out = bytearray()
    for buf in buffers:
        if size <= 0:
            break
        if start >= buf.length:
            start -= buf.length
            continue
        take = min(buf.length - start, size)
        out += memory.read(buf.addr + start, take)
        size -= take
        start = 0
    return bytes(out)


def write_stream(memory: GuestMemory, buffers: List[Buffer], start: int, data: bytes) -> int:
    """Write `data` at byte `start` of the buffers seen as one stream; returns bytes written."""
    done = 0
    view = memoryview(data)
    for buf in buffers:
        if done >= len(data):
            break
        if start >= buf.length:
            start -= buf.length
            continue
        take = min(buf.length - start, len(data) - done)
        memory.write(buf.addr + start, bytes(view[done:done + take]))
        done += take
        start = 0
    return done


def need_event(event: int, new: int, old: int) -> bool:
    """2.7.10: notify iff `event` lies in (old, new], all indices modulo 2^16."""
    return ((new - event - 1) & 0xFFFF) < ((new - old) & 0xFFFF)


class SplitQueue:
    """The device's view of one ready split virtqueue in guest RAM."""

    def __init__(self, memory: GuestMemory, config: VirtQueue, features: int):
        num = config.num
        # 2.7: the split ring's Queue Size is a power of 2 (so 16-bit indices wrap cleanly).
        if not 0 < num <= 32768 or num & (num - 1):
            raise QueueError(f"queue size {num} is not a power of two up to 32768")
        areas = ((config.desc, DESC_SIZE * num, DESC_ALIGN, "descriptor table"),
                 (config.driver, 6 + 2 * num, AVAIL_ALIGN, "available ring"),
                 (config.device, 6 + USED_ELEM_SIZE * num, USED_ALIGN, "used ring"))
        for address, size, align, what in areas:
            if address % align or not memory.contains(address, size):
                raise QueueError(f"{what} at {address:#x} (+{size:#x}) is not aligned guest RAM")
        self.memory = memory
        self.num = num
        self.desc, self.avail, self.used = config.desc, config.driver, config.device
        self.key: Tuple[int, int, int, int] = (num, config.desc, config.driver, config.device)
        self.event_idx = bool(features & VIRTIO_F_EVENT_IDX)
        self.indirect = bool(features & VIRTIO_F_INDIRECT_DESC)
        self.last_avail = 0           # next available ring entry to take (2.7.13)
        self.used_idx = 0             # what the device last published in used->idx

    def save_state(self) -> dict:
        """Where the ring is and how far the device got; the rings' contents are guest RAM."""
        return {"num": self.num, "desc": self.desc, "avail": self.avail, "used": self.used,
                "event_idx": self.event_idx, "indirect": self.indirect,
                "last_avail": self.last_avail, "used_idx": self.used_idx}

    def restore_state(self, state: dict) -> None:
        """On a queue built over the saved addresses (QueueDevice.restore_state does that)."""
        self.event_idx = bool(state["event_idx"])
        self.indirect = bool(state["indirect"])
        self.last_avail = state["last_avail"]
        self.used_idx = state["used_idx"]

    # -- available side ------------------------------------------------------
    def _u16(self, address: int) -> int:
        return _U16.unpack(self.memory.read(address, 2))[0]

    def pending(self) -> int:
        """How many chains the driver made available that the device has not taken."""
        count = (self._u16(self.avail + 2) - self.last_avail) & 0xFFFF
        if count > self.num:
            raise QueueError(f"available index moved {count} entries in a queue of {self.num}")
        return count

    def pop(self) -> Optional[Chain]:
        """Take the next available chain (None if there is none)."""
        if not self.pending():
            return None
        slot = self.avail + 4 + 2 * (self.last_avail % self.num)
        head = self._u16(slot)
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return self.walk(head)

    def walk(self, head: int) -> Chain:
        chain = Chain(head)
        table, count, budget = self.desc, self.num, self.num
        in_indirect = False
        index = head
        while True:
            if index >= count:
                chain.error = f"descriptor index {index} outside a table of {count}"
                return chain
            budget -= 1
            if budget < 0:
                # A chain can visit each descriptor of its table once: more is a loop.
                chain.error = "descriptor chain loops (longer than its table)"
                return chain
            addr, length, flags, nxt = _DESC.unpack(self.memory.read(table + DESC_SIZE * index,
                                                                     DESC_SIZE))
            if flags & VIRTQ_DESC_F_INDIRECT:
                problem = self._indirect_problem(in_indirect, addr, length, flags)
                if problem:
                    chain.error = problem
                    return chain
                # 2.7.5.3.2: the table replaces the rest of the chain; its WRITE flag is ignored.
                table, count = addr, length // DESC_SIZE
                budget, index, in_indirect = count, 0, True
                continue
            buf = Buffer(addr, length, length == 0 or self.memory.contains(addr, length))
            if flags & VIRTQ_DESC_F_WRITE:
                chain.writable.append(buf)
            elif chain.writable:
                # 2.7.4.2: device-readable descriptors come before device-writable ones.
                chain.error = "device-readable descriptor after a device-writable one"
                return chain
            else:
                chain.readable.append(buf)
            if not flags & VIRTQ_DESC_F_NEXT:
                return chain
            index = nxt

    def _indirect_problem(self, in_indirect: bool, addr: int, length: int,
                          flags: int) -> Optional[str]:
        if not self.indirect:
            return "indirect descriptor without VIRTIO_F_INDIRECT_DESC"
        if in_indirect:
            return "indirect descriptor inside an indirect table"       # 2.7.5.3.1
        if flags & VIRTQ_DESC_F_NEXT:
            return "indirect descriptor with NEXT set"                  # 2.7.5.3.1
        if length == 0 or length % DESC_SIZE or length // DESC_SIZE > INDIRECT_MAX:
            return f"indirect table of {length} bytes"
        if addr % DESC_ALIGN or not self.memory.contains(addr, length):
            return f"indirect table at {addr:#x} is not aligned guest RAM"
        return None

    # -- used side -----------------------------------------------------------
    def push(self, head: int, written: int) -> None:
        """Return chain `head` with `written` bytes put in its writable buffers (2.7.8)."""
        slot = self.used + 4 + USED_ELEM_SIZE * (self.used_idx % self.num)
        self.memory.write(slot, _USED_ELEM.pack(head, written))
        # The element is in place before the index that publishes it moves (2.7.8.2).
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self.memory.write(self.used + 2, _U16.pack(self.used_idx))

    def publish_avail_event(self) -> None:
        """2.7.10: ask to be notified as soon as the driver adds past what was taken."""
        if self.event_idx:
            self.memory.write(self.used + 4 + USED_ELEM_SIZE * self.num,
                              _U16.pack(self.last_avail))

    def should_notify(self, old_used: int) -> bool:
        """After a batch that moved used->idx from `old_used`: does the driver want an interrupt?"""
        if self.used_idx == old_used:
            return False
        if self.event_idx:
            used_event = self._u16(self.avail + 4 + 2 * self.num)
            return need_event(used_event, self.used_idx, old_used)
        return not self._u16(self.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT


class QueueDevice:
    """Base of a virtio backend: queue bookkeeping between transport and device logic.

    Subclasses set `device_id`, implement `device_features`, `config_read`,
    `config_write` and `_process(index, ring)` (take chains, push them back),
    and may extend `_reset_device`. The transport calls `attach(self)` when
    it is built with this backend.
    """

    device_id = 0

    def __init__(self, memory: GuestMemory, queue_count: int, queue_size: int,
                 name: str, trace=None):
        self.memory = memory
        self.queue_count = queue_count
        self.queue_size = queue_size
        self.name = name
        self._trace = trace
        self._transport: Optional[Transport] = None
        self._rings: Dict[int, SplitQueue] = {}
        self.features: Optional[int] = None      # negotiated; None until DRIVER_OK
        self.failed = False                      # DEVICE_NEEDS_RESET was raised

    def attach(self, transport: Transport) -> None:
        self._transport = transport

    # -- snapshots -------------------------------------------------------------
    def save_state(self) -> dict:
        """Negotiated features, the error state and every queue in use with its indices.

        A queue the transport has ready but the device has not used yet has no
        ring here: it is built from the transport's registers on first use,
        after a restore as before.
        """
        rings = []
        for index, ring in sorted(self._rings.items()):
            rings.append(dict(ring.save_state(), index=index))
        return {"features": self.features, "failed": self.failed, "rings": rings}

    def restore_state(self, state: dict) -> None:
        rings: Dict[int, SplitQueue] = {}
        for saved in state["rings"]:
            index = saved["index"]
            if not 0 <= index < self.queue_count:
                raise ValueError(f"the snapshot's {self.name} uses queue {index}, this device "
                                 f"has {self.queue_count}")
            config = VirtQueue(num=saved["num"], ready=True, desc=saved["desc"],
                               driver=saved["avail"], device=saved["used"])
            try:
                ring = SplitQueue(self.memory, config, state["features"] or 0)
            except QueueError as exc:
                raise ValueError(f"the snapshot's {self.name} queue {index} does not fit this "
                                 f"machine's RAM: {exc}") from None
            ring.restore_state(saved)
            rings[index] = ring
        self.features = state["features"]
        self.failed = bool(state["failed"])
        self._rings = rings

    # -- VirtioBackend -------------------------------------------------------
    def queue_size_max(self, index: int) -> int:
        return self.queue_size if 0 <= index < self.queue_count else 0

    def queue_notify(self, index: int, queue: VirtQueue) -> None:
        if 0 <= index < self.queue_count:
            self.service(index)

    def driver_ok(self, features: int) -> None:
        self.features = features
        # 2.1.2 / 3.1.1: buffers made available before DRIVER_OK are used now.
        for index in range(self.queue_count):
            self.service(index)

    def reset(self) -> None:
        self._rings.clear()
        self.features = None
        self.failed = False
        self._reset_device()

    def _reset_device(self) -> None:
        pass

    # -- queue servicing ---------------------------------------------------------
    def service(self, index: int) -> None:
        """Let the device work on queue `index`, then notify the driver if it wants it."""
        ring = self.ring(index)
        if ring is None:
            return
        old_used = ring.used_idx
        try:
            self._process(index, ring)
            ring.publish_avail_event()
            notify = ring.should_notify(old_used)
        except QueueError as exc:
            self.fail(str(exc))
            return
        if notify and self._transport is not None:
            self._transport.raise_interrupt(INT_VRING)

    def ring(self, index: int) -> Optional[SplitQueue]:
        """Queue `index` if the device may use it now (DRIVER_OK, ready, not failed)."""
        if self.features is None or self.failed or self._transport is None:
            return None
        config = self._transport.queue(index)
        if not config.ready:
            self._rings.pop(index, None)
            return None
        ring = self._rings.get(index)
        if ring is None or ring.key != (config.num, config.desc, config.driver, config.device):
            if config.num > self.queue_size_max(index):
                # 4.2.2: QueueNum must not exceed QueueNumMax.
                self.fail(f"queue {index}: size {config.num} above {self.queue_size_max(index)}")
                return None
            try:
                ring = SplitQueue(self.memory, config, self.features)
            except QueueError as exc:
                self.fail(f"queue {index}: {exc}")
                return None
            self._rings[index] = ring
        return ring

    def _process(self, index: int, ring: SplitQueue) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        """Enter the error state of 2.1.2: stop, set DEVICE_NEEDS_RESET, tell the driver."""
        self._emit("virtio.device_error", reason=reason)
        if self.failed:
            return
        self.failed = True
        if self._transport is not None:
            self._transport.needs_reset()

    def _emit(self, kind: str, **fields) -> None:
        if self._trace is not None:
            self._trace.emit(kind, None, device=self.name, **fields)
