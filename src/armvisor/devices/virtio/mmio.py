"""The virtio-mmio transport (virtio spec 1.2 section 4.2), one 0x200-byte slot.

QEMU's virt board has 32 of these at 0x0a000000. A slot without a device
(`backend=None`) answers like QEMU's empty transport (hw/virtio/virtio-mmio.c):
MagicValue, Version and VendorID read back, every other register reads zero
and ignores writes, so drivers see "no device" (DeviceID 0) instead of a fault.

QEMU's virt transports are legacy by default (property force-legacy=true,
never overridden by virt.c): Version reads 1 and the legacy registers of spec
section 4.2.4 (GuestPageSize, QueueAlign, QueuePFN) are live. `legacy=False`
gives the modern (Version 2) register set of section 4.2.2.

With a backend the transport keeps the register state (feature selectors,
per-queue size / addresses / ready, InterruptStatus, Status) and hands the
device-specific parts to it: the config space at 0x100, queue notifications,
reset. A backend that has an `attach(transport)` method gets this transport
when the slot is built; it raises interrupts through `raise_interrupt` and
enters the error state of section 2.1.2 through `needs_reset`.

Interrupt line: QEMU's DTB declares the SPI edge-triggered (rising) and the
GIC latches an edge SPI on the rising edge of its input. The line is held
high while InterruptStatus is non-zero, so one batch of notifications gives
one edge; if InterruptAck leaves bits set (the device raised a new one after
the driver read InterruptStatus), the line drops and rises again, so that
notification gets its own edge instead of being lost. A level-configured
line sees the same wire and works as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol

# Register offsets (virtio 1.2 section 4.2.2 table "MMIO Device Register Layout";
# legacy-only ones from section 4.2.4).
MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
GUEST_PAGE_SIZE = 0x028            # legacy
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_ALIGN = 0x03C                # legacy
QUEUE_PFN = 0x040                  # legacy
QUEUE_READY = 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC
SHM_LEN_LOW = 0x0B0
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC
CONFIG = 0x100

SLOT_SIZE = 0x200

MAGIC = 0x7472_6976                # "virt" in little-endian (4.2.2)
VERSION_LEGACY = 1
VERSION_MODERN = 2
VENDOR_QEMU = 0x554D_4551          # "QEMU", what QEMU's transport reports

# InterruptStatus bits (4.2.2).
INT_VRING = 1 << 0                 # used buffer notification
INT_CONFIG = 1 << 1                # configuration change notification

# Device status bits (2.1).
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_NEEDS_RESET = 64
STATUS_FAILED = 128

VIRTIO_F_VERSION_1 = 1 << 32       # 6 "Reserved Feature Bits": the modern interface

QUEUE_MAX = 1024                   # QEMU VIRTIO_QUEUE_MAX: QueueSel values at or above are ignored
QUEUE_SIZE_MAX = 1024              # QEMU VIRTQUEUE_MAX_SIZE, what QueueNumMax reports
LEGACY_QUEUE_ALIGN = 4096          # 4.2.4: the default QueueAlign


@dataclass
class VirtQueue:
    """One virtqueue as the driver configured it (4.2.2 Queue* registers)."""

    num: int = 0
    ready: bool = False
    desc: int = 0                  # descriptor area
    driver: int = 0                # driver area (avail ring)
    device: int = 0                # device area (used ring)
    align: int = LEGACY_QUEUE_ALIGN
    pfn: int = 0                   # legacy: guest page number of the whole queue


class VirtioBackend(Protocol):
    """What a virtio device (blk, console, ...) supplies to its transport."""

    device_id: int                 # 5.x "Device ID"; never 0

    def device_features(self) -> int:
        """All 64 feature bits the device offers (6 "Reserved Feature Bits" included)."""

    def queue_size_max(self, index: int) -> int:
        """Largest size of queue `index`, 0 if the device has no such queue."""

    def config_read(self, offset: int, size: int) -> int:
        """Read the device-specific configuration space (4.2.2, offset 0x100 and up)."""

    def config_write(self, offset: int, size: int, value: int) -> None:
        """Write the device-specific configuration space."""

    def queue_notify(self, index: int, queue: VirtQueue) -> None:
        """The driver has made buffers available in queue `index`."""

    def driver_ok(self, features: int) -> None:
        """The driver finished initialisation with the negotiated `features`."""

    def reset(self) -> None:
        """The driver wrote 0 to Status: forget every queue and in-flight request."""

    def save_state(self) -> dict:
        """What the device holds beyond the transport's registers (machine/snapshot.py)."""

    def restore_state(self, state: dict) -> None:
        """Called after the transport restored its registers; calls back nothing."""


class VirtioMmio:
    """One virtio-mmio slot; `read`/`write` are its MMIO handlers (offsets 0..0x1FF)."""

    def __init__(self, backend: Optional[VirtioBackend] = None, legacy: bool = True,
                 name: str = "virtio-mmio", trace=None,
                 on_irq_change: Optional[Callable[[bool], None]] = None):
        self.backend = backend
        self.legacy = legacy
        self.name = name
        self._trace = trace
        self._on_irq_change = on_irq_change
        self.irq_level = False
        self.reset()
        attach = getattr(backend, "attach", None)
        if attach is not None:
            attach(self)

    @property
    def version(self) -> int:
        return VERSION_LEGACY if self.legacy else VERSION_MODERN

    def reset(self) -> None:
        """Device reset (3.1.1 step 1 / system reset): every register to its initial value."""
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.guest_page_shift = 0
        self.queue_sel = 0
        self.queues: List[VirtQueue] = []
        self.interrupt_status = 0
        self.status = 0
        self.config_generation = 0
        if self.backend is not None:
            self.backend.reset()
        self._update_irq()

    # ------------------------------------------------------------- snapshots
    def save_state(self) -> dict:
        """The transport's registers, every queue's, the line as last driven, then the backend's."""
        return {
            "legacy": self.legacy,
            "device_id": 0 if self.backend is None else self.backend.device_id,
            "device_features_sel": self.device_features_sel,
            "driver_features_sel": self.driver_features_sel,
            "driver_features": self.driver_features,
            "guest_page_shift": self.guest_page_shift,
            "queue_sel": self.queue_sel,
            "queues": [{"num": q.num, "ready": q.ready, "desc": q.desc, "driver": q.driver,
                        "device": q.device, "align": q.align, "pfn": q.pfn}
                       for q in self.queues],
            "interrupt_status": self.interrupt_status,
            "status": self.status,
            "config_generation": self.config_generation,
            "irq_level": self.irq_level,
            "backend": None if self.backend is None else self.backend.save_state(),
        }

    def restore_state(self, state: dict) -> None:
        device_id = 0 if self.backend is None else self.backend.device_id
        if state["device_id"] != device_id or state["legacy"] != self.legacy:
            raise ValueError(f"the snapshot's {self.name} has device ID {state['device_id']} "
                             f"({'legacy' if state['legacy'] else 'modern'}), this one "
                             f"{device_id} ({'legacy' if self.legacy else 'modern'})")
        self.device_features_sel = state["device_features_sel"]
        self.driver_features_sel = state["driver_features_sel"]
        self.driver_features = state["driver_features"]
        self.guest_page_shift = state["guest_page_shift"]
        self.queue_sel = state["queue_sel"]
        self.queues = [VirtQueue(num=q["num"], ready=bool(q["ready"]), desc=q["desc"],
                                 driver=q["driver"], device=q["device"], align=q["align"],
                                 pfn=q["pfn"])
                       for q in state["queues"]]
        self.interrupt_status = state["interrupt_status"]
        self.status = state["status"]
        self.config_generation = state["config_generation"]
        self.irq_level = bool(state["irq_level"])
        if self.backend is not None:
            self.backend.restore_state(state["backend"])

    # ------------------------------------------------------------ backend side
    def raise_interrupt(self, bits: int = INT_VRING) -> None:
        """Set InterruptStatus bits (INT_VRING / INT_CONFIG) and the line."""
        if bits & INT_CONFIG:
            self.config_generation = (self.config_generation + 1) & 0xFFFF_FFFF
        self.interrupt_status |= bits & (INT_VRING | INT_CONFIG)
        self._update_irq()

    def needs_reset(self) -> None:
        """The device hit an error it cannot report otherwise (2.1.2): DEVICE_NEEDS_RESET."""
        if self.status & STATUS_NEEDS_RESET:
            return
        self.status |= STATUS_NEEDS_RESET
        self._emit("virtio.needs_reset")
        if self.status & STATUS_DRIVER_OK:
            # 2.1.2: with DRIVER_OK set the device must send a configuration change notification.
            self.raise_interrupt(INT_CONFIG)

    def queue(self, index: int) -> VirtQueue:
        while len(self.queues) <= index:
            self.queues.append(VirtQueue())
        return self.queues[index]

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        mask = (1 << (8 * size)) - 1 if size in (1, 2, 4, 8) else 0
        if self.backend is None:
            # QEMU's empty transport answers at any access size.
            return self._identity(offset) & mask
        if offset >= CONFIG:
            if size not in (1, 2, 4):
                self._bad_access("read", offset, size)
                return 0
            return self.backend.config_read(offset - CONFIG, size) & mask
        if size != 4:
            self._bad_access("read", offset, size)      # 4.2.2: registers are 32-bit
            return 0
        return self._read_register(offset) & 0xFFFF_FFFF

    def write(self, offset: int, size: int, value: int) -> None:
        if self.backend is None:
            return                                       # write-ignored, as QEMU
        if offset >= CONFIG:
            if size in (1, 2, 4):
                self.backend.config_write(offset - CONFIG, size, value & ((1 << (8 * size)) - 1))
            else:
                self._bad_access("write", offset, size)
            return
        if size != 4:
            self._bad_access("write", offset, size)
            return
        self._write_register(offset, value & 0xFFFF_FFFF)

    def _identity(self, offset: int) -> int:
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return self.version
        if offset == VENDOR_ID:
            return VENDOR_QEMU
        return 0

    def _read_register(self, offset: int) -> int:
        backend = self.backend
        queue = self.queue(self.queue_sel)
        if offset in (MAGIC_VALUE, VERSION, VENDOR_ID):
            return self._identity(offset)
        if offset == DEVICE_ID:
            return backend.device_id
        if offset == DEVICE_FEATURES:
            features = backend.device_features()
            if self.legacy:
                # Legacy drivers see only the first 32 bits.
                return 0 if self.device_features_sel else features & 0xFFFF_FFFF
            if self.device_features_sel > 1:
                return 0                                 # only 64 feature bits exist
            return (features >> (32 * self.device_features_sel)) & 0xFFFF_FFFF
        if offset == QUEUE_NUM_MAX:
            return min(backend.queue_size_max(self.queue_sel), QUEUE_SIZE_MAX)
        if offset == QUEUE_PFN:
            return queue.pfn if self.legacy else 0
        if offset == QUEUE_READY:
            return int(queue.ready) if not self.legacy else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if offset == CONFIG_GENERATION:
            return 0 if self.legacy else self.config_generation
        if offset in (SHM_LEN_LOW, SHM_LEN_HIGH):
            return 0xFFFF_FFFF                           # no shared memory region (QEMU)
        return 0                                         # write-only and reserved registers

    def _write_register(self, offset: int, value: int) -> None:
        queue = self.queue(self.queue_sel)
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            if self.legacy:
                if not self.driver_features_sel:
                    self.driver_features = value
            elif self.driver_features_sel <= 1:
                shift = 32 * self.driver_features_sel
                self.driver_features = (self.driver_features & ~(0xFFFF_FFFF << shift)) | \
                    (value << shift)
        elif offset == GUEST_PAGE_SIZE:
            if self.legacy:
                self.guest_page_shift = (value & -value).bit_length() - 1 if value else 0
        elif offset == QUEUE_SEL:
            if value < QUEUE_MAX:
                self.queue_sel = value
        elif offset == QUEUE_NUM:
            queue.num = value
        elif offset == QUEUE_ALIGN:
            if self.legacy:
                queue.align = value
        elif offset == QUEUE_PFN:
            if self.legacy:
                self._write_queue_pfn(queue, value)
        elif offset == QUEUE_READY:
            if not self.legacy:
                queue.ready = bool(value & 1)
        elif offset == QUEUE_NOTIFY:
            if value < QUEUE_MAX:
                if self.legacy and not self.status & STATUS_DRIVER_OK and \
                        getattr(self.backend, "features", 0) is None:
                    # A legacy driver may notify before DRIVER_OK, and QEMU serves it
                    # (kvm-unit-tests' chr-testdev never sets the status at all).
                    self.backend.driver_ok(self.driver_features)
                self.backend.queue_notify(value, self.queue(value))
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            if self.interrupt_status and self.irq_level:
                self._set_line(False)                    # a fresh edge for what is left
            self._update_irq()
        elif offset == STATUS:
            self._write_status(value & 0xFF)
        elif offset in (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH,
                        QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH):
            if not self.legacy:
                self._write_queue_address(queue, offset, value)
        else:
            self._bad_access("write", offset, 4)         # read-only or reserved

    def _write_queue_pfn(self, queue: VirtQueue, value: int) -> None:
        if value == 0:
            self.reset()                                 # 4.2.4: PFN 0 stops the queue / device
            return
        # Legacy layout (4.2.4 / 2.7 legacy interfaces): descriptors, then the
        # avail ring, then the used ring at the next QueueAlign boundary.
        queue.pfn = value
        base = value << self.guest_page_shift
        avail = base + 16 * queue.num
        used = avail + 6 + 2 * queue.num
        align = queue.align or LEGACY_QUEUE_ALIGN
        queue.desc, queue.driver = base, avail
        queue.device = (used + align - 1) // align * align
        queue.ready = True

    @staticmethod
    def _write_queue_address(queue: VirtQueue, offset: int, value: int) -> None:
        field = {QUEUE_DESC_LOW: "desc", QUEUE_DESC_HIGH: "desc",
                 QUEUE_DRIVER_LOW: "driver", QUEUE_DRIVER_HIGH: "driver",
                 QUEUE_DEVICE_LOW: "device", QUEUE_DEVICE_HIGH: "device"}[offset]
        shift = 32 if offset & 4 else 0
        current = getattr(queue, field)
        setattr(queue, field, (current & ~(0xFFFF_FFFF << shift)) | (value << shift))

    def _write_status(self, value: int) -> None:
        if value == 0:
            self._emit("virtio.reset")
            self.reset()
            return
        newly = value & ~self.status
        if newly & STATUS_FEATURES_OK and not self._features_acceptable():
            # 3.1.1 step 6: the device leaves FEATURES_OK clear; the driver reads it back.
            self._emit("virtio.features_rejected", features=self.driver_features)
            value &= ~STATUS_FEATURES_OK
            newly &= ~STATUS_FEATURES_OK
        # DEVICE_NEEDS_RESET is the device's to set; only a reset clears it.
        self.status = (value & ~STATUS_NEEDS_RESET) | (self.status & STATUS_NEEDS_RESET)
        if newly & STATUS_DRIVER_OK:
            self._emit("virtio.driver_ok", features=self.driver_features)
            self.backend.driver_ok(self.driver_features)

    def _features_acceptable(self) -> bool:
        """Is the driver's feature set a subset of the device's, with VERSION_1 if modern?"""
        offered = self.backend.device_features()
        if self.driver_features & ~offered:
            return False
        # 6.1: a modern (Version 2) device needs VIRTIO_F_VERSION_1.
        return self.legacy or bool(self.driver_features & VIRTIO_F_VERSION_1)

    # ---------------------------------------------------------------- plumbing
    def _update_irq(self) -> None:
        level = bool(self.interrupt_status)
        if level != self.irq_level:
            self._set_line(level)

    def _set_line(self, level: bool) -> None:
        self.irq_level = level
        self._emit("irq.line", level=level)
        if self._on_irq_change is not None:
            self._on_irq_change(level)

    def _emit(self, kind: str, **fields) -> None:
        if self._trace is not None:
            self._trace.emit(kind, None, device=self.name, **fields)

    def _bad_access(self, op: str, offset: int, size: int) -> None:
        self._emit("device.bad_access", op=op, offset=offset, size=size)


class VirtioMmioBank:
    """The board's `count` consecutive slots as one MMIO window (slot i at i * SLOT_SIZE)."""

    def __init__(self, slots: List[VirtioMmio]):
        self.slots = slots

    @classmethod
    def empty(cls, count: int, legacy: bool = True, trace=None) -> "VirtioMmioBank":
        return cls([VirtioMmio(None, legacy, name=f"virtio-mmio{i}", trace=trace)
                    for i in range(count)])

    @property
    def size(self) -> int:
        return len(self.slots) * SLOT_SIZE

    def read(self, offset: int, size: int) -> int:
        index, inner = divmod(offset, SLOT_SIZE)
        if not 0 <= index < len(self.slots):
            return 0
        return self.slots[index].read(inner, size)

    def write(self, offset: int, size: int, value: int) -> None:
        index, inner = divmod(offset, SLOT_SIZE)
        if 0 <= index < len(self.slots):
            self.slots[index].write(inner, size, value)

    def reset(self) -> None:
        for slot in self.slots:
            slot.reset()

    def save_state(self) -> dict:
        return {"slots": [slot.save_state() for slot in self.slots]}

    def restore_state(self, state: dict) -> None:
        if len(state["slots"]) != len(self.slots):
            raise ValueError(f"the snapshot has {len(state['slots'])} virtio-mmio slots, "
                             f"this board {len(self.slots)}")
        for slot, saved in zip(self.slots, state["slots"]):
            slot.restore_state(saved)
