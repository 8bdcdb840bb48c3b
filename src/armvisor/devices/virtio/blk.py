"""virtio-blk (virtio 1.2 section 5.2) backed by a disk image file.

One request queue. Requests are served synchronously when the driver
notifies the queue, with os.pread/os.pwrite on the image, so data the guest
wrote is in the file as soon as the request completes and VIRTIO_BLK_T_FLUSH
(fsync) makes it durable.

Snapshot mode (`snapshot=True`, as QEMU's `-snapshot`): the image is opened
read-only and never written; the guest's writes go to an in-memory overlay
of OVERLAY_BLOCK-byte blocks that reads consult first. The overlay lives as
long as the device (a guest reboot keeps it) and is part of its saved
state, so a machine snapshot does not depend on the image changing.

The request is read as two byte streams (2.6.4:
devices must not depend on how the driver splits a message into descriptors):
the readable stream is the 16-byte header then the data to write, the
writable stream is the data read then the status byte (its last byte).
"""

from __future__ import annotations

import fcntl
import os
import struct
from typing import Callable, Dict, Optional, Tuple

from armvisor.devices.virtio.queue import (RING_FEATURES, Chain, GuestMemory, QueueDevice,
                                           SplitQueue, read_stream, write_stream)
from armvisor.errors import ArmvisorError

VIRTIO_ID_BLOCK = 2                 # 5 "Device Types"

# Feature bits (5.2.3).
VIRTIO_BLK_F_SEG_MAX = 1 << 2
VIRTIO_BLK_F_RO = 1 << 5
VIRTIO_BLK_F_BLK_SIZE = 1 << 6
VIRTIO_BLK_F_FLUSH = 1 << 9

# Request types (5.2.6).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
# Status values (5.2.6).
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

VIRTIO_BLK_ID_BYTES = 20            # 5.2.6: the device ID string of T_GET_ID
SECTOR_SIZE = 512                   # 5.2.6: `sector` counts 512-byte units whatever blk_size is
HEADER = struct.Struct("<IIQ")      # le32 type, le32 reserved, le64 sector (5.2.6)

# struct virtio_blk_config (5.2.4): the fields this device fills in.
CONFIG_CAPACITY = 0                 # le64, in 512-byte sectors
CONFIG_SEG_MAX = 12                 # le32
CONFIG_BLK_SIZE = 20                # le32
CONFIG_SIZE = 72                    # through secure_erase_sector_alignment

# Snapshot mode's unit of copy-on-write: a page, the size of most of Linux's
# block I/O, so whole-page writes need no read of the image first.
OVERLAY_BLOCK = 4096

QUEUE_SIZE = 256
# Data segments per request: the queue size less the header and status
# descriptors, so a request fits in the ring even without indirect tables (as QEMU).
SEG_MAX = QUEUE_SIZE - 2


class VirtioBlk(QueueDevice):
    """A virtio-blk device over the image at `path`; `close()` releases it."""

    device_id = VIRTIO_ID_BLOCK

    def __init__(self, memory: GuestMemory, path: str, read_only: bool = False,
                 serial: str = "", name: str = "virtio-blk", trace=None,
                 fsync: Callable[[int], None] = os.fsync, snapshot: bool = False):
        super().__init__(memory, queue_count=1, queue_size=QUEUE_SIZE, name=name, trace=trace)
        self.path = path
        self.read_only = read_only
        self.snapshot = snapshot
        self.serial = serial.encode("utf-8")[:VIRTIO_BLK_ID_BYTES].ljust(VIRTIO_BLK_ID_BYTES,
                                                                         b"\0")
        self._fsync = fsync
        # Snapshot mode only reads the image, so it shares it as readers do.
        self._fd: Optional[int] = self._open(path, read_only or snapshot)
        # Snapshot mode: block number (offset // OVERLAY_BLOCK) -> the block's bytes.
        self._overlay: Dict[int, bytes] = {}
        # A partial last sector is not addressable (QEMU rounds the same way for raw images).
        self.capacity = os.fstat(self._fd).st_size // SECTOR_SIZE
        self._config = bytearray(CONFIG_SIZE)
        struct.pack_into("<Q", self._config, CONFIG_CAPACITY, self.capacity)
        struct.pack_into("<I", self._config, CONFIG_SEG_MAX, SEG_MAX)
        struct.pack_into("<I", self._config, CONFIG_BLK_SIZE, SECTOR_SIZE)

    @staticmethod
    def _open(path: str, read_only: bool) -> int:
        try:
            fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        except OSError as exc:
            raise ArmvisorError(f"cannot open the disk image {path!r}: {exc.strerror}") from None
        try:
            # Two writers on one image corrupt it; readers may share (QEMU locks too).
            fcntl.flock(fd, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ArmvisorError(f"the disk image {path!r} is in use by another process") \
                from None
        return fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)            # releases the lock too
            self._fd = None

    # -- snapshots -------------------------------------------------------------
    def save_state(self) -> dict:
        """The queue, the overlay (empty unless in snapshot mode) and the image's identity."""
        state = super().save_state()
        state.update(
            image=self._identity(),
            snapshot=self.snapshot,
            overlay_block=OVERLAY_BLOCK,
            overlay={str(block): self._overlay[block] for block in sorted(self._overlay)},
        )
        return state

    def restore_state(self, state: dict) -> None:
        """Refuses an image that is not the one saved, as it was then (path, size, mtime)."""
        saved, now = state["image"], self._identity()
        if saved["path"] != now["path"]:
            raise ValueError(f"the snapshot's disk image is {saved['path']}, "
                             f"{self.name}'s is {now['path']}")
        if (saved["size"], saved["mtime_ns"]) != (now["size"], now["mtime_ns"]):
            raise ValueError(f"disk image {self.path} changed since the snapshot was taken "
                             f"(size {saved['size']} then, {now['size']} now; "
                             f"mtime_ns {saved['mtime_ns']} then, {now['mtime_ns']} now)")
        # The other way round is fine: a snapshot-mode disk starts with an empty overlay.
        if state["snapshot"] and not self.snapshot:
            raise ValueError(f"the snapshot's {self.name} kept its writes in an overlay "
                             f"(snapshot mode); this disk writes through to {self.path}")
        if state["overlay_block"] != OVERLAY_BLOCK:
            raise ValueError(f"the snapshot's overlay blocks are {state['overlay_block']} "
                             f"bytes, this model's {OVERLAY_BLOCK}")
        super().restore_state(state)
        self._overlay = {int(block): bytes(data) for block, data in state["overlay"].items()}

    def _identity(self) -> dict:
        info = os.stat(self.path) if self._fd is None else os.fstat(self._fd)
        return {"path": os.path.abspath(self.path), "size": info.st_size,
                "mtime_ns": info.st_mtime_ns}

    # -- VirtioBackend -------------------------------------------------------
    def device_features(self) -> int:
        features = RING_FEATURES | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
        return features | (VIRTIO_BLK_F_RO if self.read_only else 0)

    def config_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self._config[offset:offset + size].ljust(size, b"\0"), "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        pass                              # every field is read-only without CONFIG_WCE

    # -- requests ------------------------------------------------------------
    def _process(self, index: int, ring: SplitQueue) -> None:
        while not self.failed:
            chain = ring.pop()
            if chain is None:
                return
            self._request(ring, chain)

    def _request(self, ring: SplitQueue, chain: Chain) -> None:
        status_buf = chain.writable[-1] if chain.writable else None
        if chain.error or status_buf is None or status_buf.length == 0 or not status_buf.in_ram:
            # No place to report the failure: drop the chain, the device needs reset (2.1.2).
            self.fail(f"request {chain.head}: " + (chain.error or "no writable status byte"))
            return
        data_in = chain.writable_length - 1               # room before the status byte
        if not chain.buffers_in_ram or chain.readable_length < HEADER.size:
            status, written = VIRTIO_BLK_S_IOERR, 0
            self._emit("virtio.blk_bad_request", head=chain.head,
                       reason="buffer outside RAM" if not chain.buffers_in_ram else
                       "no readable header")
        else:
            kind, _, sector = HEADER.unpack(read_stream(self.memory, chain.readable, 0,
                                                        HEADER.size))
            status, written = self._execute(chain, kind, sector, data_in)
        write_stream(self.memory, chain.writable, data_in, bytes([status]))
        ring.push(chain.head, written + 1)

    def _execute(self, chain: Chain, kind: int, sector: int, data_in: int) -> Tuple[int, int]:
        """Do one well-formed request; returns (status, bytes written before the status)."""
        if self._fd is None:
            return VIRTIO_BLK_S_IOERR, 0              # closed: the machine is shutting down
        if kind == VIRTIO_BLK_T_IN:
            data = self._read_sectors(sector, data_in)
            if data is None:
                return VIRTIO_BLK_S_IOERR, 0
            return VIRTIO_BLK_S_OK, write_stream(self.memory, chain.writable, 0, data)
        if kind == VIRTIO_BLK_T_OUT:
            size = chain.readable_length - HEADER.size
            if self.read_only or not self._in_range(sector, size):
                # 5.2.6.2: with VIRTIO_BLK_F_RO a write fails with IOERR and changes nothing.
                return VIRTIO_BLK_S_IOERR, 0
            data = read_stream(self.memory, chain.readable, HEADER.size, size)
            return (VIRTIO_BLK_S_OK if self._pwrite(sector * SECTOR_SIZE, data)
                    else VIRTIO_BLK_S_IOERR), 0
        if kind == VIRTIO_BLK_T_FLUSH:
            if self.snapshot:
                return VIRTIO_BLK_S_OK, 0         # the overlay is memory: nothing to sync
            try:
                self._fsync(self._fd)
            except OSError:
                return VIRTIO_BLK_S_IOERR, 0
            return VIRTIO_BLK_S_OK, 0
        if kind == VIRTIO_BLK_T_GET_ID:
            # 5.2.6: the string is 20 bytes, NUL-padded, not NUL-terminated when 20 long.
            return VIRTIO_BLK_S_OK, write_stream(self.memory, chain.writable, 0,
                                                 self.serial[:data_in])
        self._emit("virtio.blk_unsupported", type=kind)
        return VIRTIO_BLK_S_UNSUPP, 0

    def _in_range(self, sector: int, size: int) -> bool:
        """5.2.6: whole sectors, all below the capacity."""
        return size % SECTOR_SIZE == 0 and sector + size // SECTOR_SIZE <= self.capacity

    def _read_sectors(self, sector: int, size: int) -> Optional[bytes]:
        if not self._in_range(sector, size):
            return None
        try:
            if not self._overlay:
                return self._pread(sector * SECTOR_SIZE, size)
            return self._read_through_overlay(sector * SECTOR_SIZE, size)
        except OSError:
            return None

    def _pread(self, offset: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            piece = os.pread(self._fd, size - len(out), offset + len(out))
            if not piece:
                break                     # the file shrank under us: reads as zeros
            out += piece
        return bytes(out.ljust(size, b"\0"))

    def _read_through_overlay(self, offset: int, size: int) -> bytes:
        """Blocks the guest wrote come from the overlay, runs of the others from the image."""
        out = bytearray()
        position, end = offset, offset + size
        while position < end:
            block, within = divmod(position, OVERLAY_BLOCK)
            data = self._overlay.get(block)
            if data is not None:
                take = min(OVERLAY_BLOCK - within, end - position)
                out += data[within:within + take]
            else:
                run_end = (block + 1) * OVERLAY_BLOCK
                while run_end < end and run_end // OVERLAY_BLOCK not in self._overlay:
                    run_end += OVERLAY_BLOCK
                take = min(run_end, end) - position
                out += self._pread(position, take)
            position += take
        return bytes(out)

    def _write_overlay(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        position, end = offset, offset + len(data)
        while position < end:
            block, within = divmod(position, OVERLAY_BLOCK)
            take = min(OVERLAY_BLOCK - within, end - position)
            piece = view[position - offset:position - offset + take]
            if take == OVERLAY_BLOCK:
                self._overlay[block] = bytes(piece)
            else:
                # Part of a block: the rest is what the guest reads there now.
                current = self._overlay.get(block)
                if current is None:
                    current = self._pread(block * OVERLAY_BLOCK, OVERLAY_BLOCK)
                merged = bytearray(current)
                merged[within:within + take] = piece
                self._overlay[block] = bytes(merged)
            position += take

    def _pwrite(self, offset: int, data: bytes) -> bool:
        if self.snapshot:
            try:
                self._write_overlay(offset, data)
            except OSError:
                return False
            return True
        view = memoryview(data)
        try:
            while view:
                done = os.pwrite(self._fd, view, offset)
                view, offset = view[done:], offset + done
        except OSError:
            return False
        return True
