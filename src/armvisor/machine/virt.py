"""The devices of a virt board, as a table: the physical board and every VM's board
are built from it.

Each row is one device: its MMIO window in QEMU's map (memmap.py), its
interrupt, how to make it from what the board provides (`Wiring`), the DTB
node that describes it, and whether a VM's board has it (a VM under the
hypervisor gets no flash, PCIe or fw_cfg: nothing a guest kernel needs, and
less for it to probe). Adding a device is one row and one model file.

Not in the table, because their windows depend on more than a row holds: the
GICv3 (one redistributor frame per CPU, gic_windows) and the two CFI flash
banks (mapped as memory while in read-array mode, see board.FlashBank).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from armvisor.devices.chr_testdev import ChrTestdev
from armvisor.devices.fw_cfg import FwCfg
from armvisor.devices.pcie_host import PcieHost
from armvisor.devices.pl011 import Pl011
from armvisor.devices.pl031 import Pl031
from armvisor.devices.pl061 import Pl061
from armvisor.devices.virtio.blk import VirtioBlk
from armvisor.devices.virtio.console import VirtioConsole
from armvisor.devices.virtio.mmio import VirtioMmio, VirtioMmioBank
from armvisor.machine import memmap
from armvisor.machine.config import DriveSpec
from armvisor.machine.dtb import SECURE_GPIO_POWEROFF, SECURE_GPIO_RESET
from armvisor.machine.mmio import MmioWindow, gic_windows, per_device

SPI_BASE = 32                     # SPIs start at INTID 32 (IHI0069 2.2.1)


@dataclass
class Wiring:
    """What a board gives its devices: they know no board, only these."""

    gic: object                                  # set_spi_level(intid, level)
    ram: object                                  # guest memory for DMA (virtio, fw_cfg)
    clock: object                                # .wall() for the RTC
    console: Callable[[bytes], None]             # where the UART and hvc0 write
    trace: object
    cpu_count: int
    prefix: str = ""                             # "vm0/" for a VM's devices
    drives: Sequence[DriveSpec] = ()
    virtio_console: bool = False
    disk_snapshot: bool = False                  # writes to disks stay in memory
    # QEMU's chr-testdev behind the virtio console (kvm-unit-tests' exit codes):
    # what it calls with the status the emulator exits with.
    testdev_exit: Optional[Callable[[int], None]] = None
    secure: bool = False                         # QEMU's secure=on: the Secure world's devices
    power_off: Callable[[], None] = lambda: None   # the secure GPIO's power-off line
    reset: Callable[[], None] = lambda: None       # ... and its reset line

    def spi(self, number: int) -> Callable[[bool], None]:
        """The input line of SPI `number`, as a device drives it."""
        intid = SPI_BASE + number
        return lambda level: self.gic.set_spi_level(intid, level)


@dataclass(frozen=True)
class Row:
    name: str                       # the MMIO window's name (exit counters, traces)
    base: int
    size: int
    spi: Optional[int]              # its interrupt (SPI number), None for none or several
    make: Callable[[Wiring], object]
    dtb_node: str                   # the node build_dtb writes for it
    in_vm: bool = True
    secure: bool = False            # only on a board with secure=on (never in a VM)


def _uart(w: Wiring) -> Pl011:
    return Pl011(w.console, trace=w.trace, name=f"{w.prefix}uart0",
                 on_irq_change=w.spi(memmap.UART0_SPI))


def _secure_uart(w: Wiring) -> Pl011:
    # QEMU connects the secure UART to a second -serial, which `-nographic` alone
    # does not give: its output goes nowhere.
    return Pl011(lambda data: None, trace=w.trace, name="secure-uart",
                 on_irq_change=w.spi(memmap.SECURE_UART_SPI))


def _secure_gpio(w: Wiring) -> Pl061:
    """The secure PL061 whose line 0 powers the machine off and line 1 resets it, on a
    rising level (virt.c create_secure_gpio_pwr and its DTB; TF-A's qemu_system_off)."""
    def output(line: int, level: bool) -> None:
        if level and line == SECURE_GPIO_POWEROFF:
            w.power_off()
        elif level and line == SECURE_GPIO_RESET:
            w.reset()
    return Pl061(output, on_irq_change=w.spi(memmap.SECURE_GPIO_SPI), trace=w.trace,
                 name="secure-gpio")


def _rtc(w: Wiring) -> Pl031:
    return Pl031(clock=w.clock.wall, trace=w.trace, name=f"{w.prefix}rtc",
                 on_irq_change=w.spi(memmap.RTC_SPI))


def _fw_cfg(w: Wiring) -> FwCfg:
    return FwCfg(w.ram, cpu_count=w.cpu_count, trace=w.trace)


def _pcie(w: Wiring) -> PcieHost:
    return PcieHost(memmap.PCIE_ECAM_HIGH_SIZE, trace=w.trace)


def _virtio(w: Wiring) -> VirtioMmioBank:
    """Disks, then the console, from the last slot down, as QEMU fills virt's transports.

    Devices we add are modern (virtio-mmio Version 2); empty slots stay
    legacy like QEMU's.
    """
    bank = VirtioMmioBank.empty(memmap.VIRTIO_MMIO_SLOTS, trace=w.trace)
    backends: list = []
    for number, drive in enumerate(w.drives):
        serial = f"{w.prefix[:-1] if w.prefix else 'armvisor'}-vd{number}"
        backends.append(VirtioBlk(w.ram, drive.path, read_only=drive.read_only, serial=serial,
                                  name=f"{w.prefix}virtio-blk{number}", trace=w.trace,
                                  snapshot=w.disk_snapshot))
    if w.virtio_console or w.testdev_exit is not None:
        sink = w.console if w.testdev_exit is None else ChrTestdev(w.testdev_exit).write
        backends.append(VirtioConsole(w.ram, sink, name=f"{w.prefix}virtio-console",
                                      trace=w.trace))
    for position, backend in enumerate(backends):
        slot = memmap.VIRTIO_MMIO_SLOTS - 1 - position
        # chr-testdev's console is legacy, as QEMU's virtio-mmio is by default
        # (force-legacy): kvm-unit-tests' driver speaks only Version 1.
        legacy = w.testdev_exit is not None and isinstance(backend, VirtioConsole)
        bank.slots[slot] = VirtioMmio(backend, legacy=legacy, name=f"{w.prefix}virtio-mmio{slot}",
                                      trace=w.trace,
                                      on_irq_change=w.spi(memmap.VIRTIO_MMIO_FIRST_SPI + slot))
    return bank


# QEMU hw/arm/virt.c base_memmap and a15irqmap, for the devices armvisor models.
VIRT_DEVICES = (
    Row("pl011", memmap.UART0_BASE, memmap.UART0_SIZE, memmap.UART0_SPI, _uart, "pl011"),
    Row("pl031", memmap.RTC_BASE, memmap.RTC_SIZE, memmap.RTC_SPI, _rtc, "pl031"),
    Row("fw_cfg", memmap.FW_CFG_BASE, 0x1000, None, _fw_cfg, "fw-cfg", in_vm=False),
    Row("virtio-mmio", memmap.VIRTIO_MMIO_BASE,
        memmap.VIRTIO_MMIO_SLOTS * memmap.VIRTIO_MMIO_SLOT_SIZE, None, _virtio, "virtio_mmio"),
    Row("pcie-ecam", memmap.PCIE_ECAM_HIGH_BASE, memmap.PCIE_ECAM_HIGH_SIZE, None, _pcie,
        "pcie", in_vm=False),
    Row("secure-uart", memmap.SECURE_UART_BASE, memmap.UART0_SIZE, memmap.SECURE_UART_SPI,
        _secure_uart, "secure-uart", in_vm=False, secure=True),
    Row("secure-gpio", memmap.SECURE_GPIO_BASE, memmap.SECURE_GPIO_SIZE, memmap.SECURE_GPIO_SPI,
        _secure_gpio, "secure-gpio", in_vm=False, secure=True),
)


@dataclass
class VirtDevices:
    """One board's devices, made from VIRT_DEVICES, and the windows the cores map."""

    devices: Dict[str, object]
    windows: List[MmioWindow] = field(default_factory=list)
    physical: bool = True

    @classmethod
    def build(cls, wiring: Wiring, physical: bool) -> "VirtDevices":
        devices = {row.name: row.make(wiring) for row in VIRT_DEVICES
                   if (physical or row.in_vm) and (wiring.secure or not row.secure)}
        windows = gic_windows(wiring.gic, wiring.cpu_count) + [
            MmioWindow(row.name, row.base, row.size, *per_device(devices[row.name]))
            for row in VIRT_DEVICES if row.name in devices]
        return cls(devices, windows, physical)

    @property
    def uart(self) -> Pl011:
        return self.devices["pl011"]

    @property
    def rtc(self) -> Pl031:
        return self.devices["pl031"]

    @property
    def virtio(self) -> VirtioMmioBank:
        return self.devices["virtio-mmio"]

    @property
    def disks(self) -> List[VirtioBlk]:
        return [slot.backend for slot in self.virtio.slots if isinstance(slot.backend, VirtioBlk)]

    @property
    def fw_cfg(self) -> Optional[FwCfg]:
        return self.devices.get("fw_cfg")

    @property
    def virtio_console(self) -> Optional[VirtioConsole]:
        return next((slot.backend for slot in self.virtio.slots
                     if isinstance(slot.backend, VirtioConsole)), None)

    def dtb_nodes(self) -> dict:
        """The BoardDescription switches for the nodes of devices this board lacks."""
        nodes = {row.dtb_node.replace("-", "_"): row.name in self.devices
                 for row in VIRT_DEVICES if not row.in_vm and not row.secure}
        return dict(nodes, flash=self.physical, platform_bus=self.physical)

    def reset(self) -> None:
        for device in self.devices.values():
            device.reset()

    def save_state(self) -> dict:
        return {name: device.save_state() for name, device in self.devices.items()}

    def restore_state(self, state: dict) -> None:
        if sorted(state) != sorted(self.devices):
            raise ValueError(f"the snapshot's devices {sorted(state)} are not this board's "
                             f"{sorted(self.devices)}")
        for name, device in self.devices.items():
            device.restore_state(state[name])

    def close(self) -> None:
        for disk in self.disks:
            disk.close()
