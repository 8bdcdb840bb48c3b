"""The flattened device tree QEMU `-M virt,gic-version=3` hands to its guest.

Linux, U-Boot and bare-metal test programs written for QEMU's virt board find
the CPUs, the GIC, the timer and the devices only through this blob, so node
names, phandle numbers and property order follow what QEMU 7.2 emits (checked
against `qemu-system-aarch64 -M virt,gic-version=3,dumpdtb=...`). QEMU builds
the tree with libfdt, which inserts each new property and subnode in front of
the older ones, so its blob lists them in reverse creation order; we write the
blob order directly.

Nodes QEMU has that we leave out because the board does not model them:
the non-secure pl061@9030000 and its gpio-keys. Leaving a node out makes the
guest skip the device instead of probing registers that would fault.

With `secure` (QEMU's secure=on, firmware at EL3) the tree is QEMU's for
that machine (hw/arm/virt.c create_secure_ram, create_uart for the secure
UART, create_gpio_devices for the secure GPIO, virt_flash_fdt): the secure
devices are there with status "disabled" and secure-status "okay", flash0
becomes secflash@0, and there is no psci node, since PSCI is the EL3
firmware's to describe (TF-A's BL2 adds the node before it starts BL33).
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from typing import Optional

import fdt

from armvisor.errors import ArmvisorError
from armvisor.machine import memmap

# PSCI legacy (0.1) function IDs QEMU advertises next to the 0.2+ compatible
# strings (PSCI DEN0022 5.1; QEMU target/arm/kvm-consts.h QEMU_PSCI_0_2_FN*).
PSCI_FN_CPU_SUSPEND_64 = 0xC400_0001
PSCI_FN_CPU_OFF = 0x8400_0002
PSCI_FN_CPU_ON_64 = 0xC400_0003
PSCI_FN_MIGRATE_64 = 0xC400_0005

# Interrupt specifier cells of the arm,gic-v3 binding: <type number flags>
# (Linux Documentation/devicetree/bindings/interrupt-controller/arm,gic-v3.yaml).
GIC_FDT_IRQ_TYPE_SPI = 0
GIC_FDT_IRQ_TYPE_PPI = 1
IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4

# GICv3 maintenance interrupt, PPI 9 (INTID 25), which QEMU lists when it emulates EL2.
GIC_MAINTENANCE_PPI = 9

# QEMU allocates phandles from 0x8000 upwards (softmmu/device_tree.c).
PHANDLE_BASE = 0x8000

APB_PCLK_HZ = 24_000_000           # QEMU virt create_fdt: fixed 24 MHz APB clock
RNG_SEED_BYTES = 32                # QEMU fills /chosen/rng-seed with 32 random bytes

FLASH_BANK_WIDTH = 4               # virt.c: each bank is two x16 chips side by side
# The secure PL061's lines (virt.c create_secure_gpio_pwr; TF-A plat/qemu
# SECURE_GPIO_POWEROFF and SECURE_GPIO_RESET).
SECURE_GPIO_POWEROFF = 0
SECURE_GPIO_RESET = 1

DTB_VERSION = 17                   # devicetree spec 5.2: version 17, compatible with 16
DTB_LAST_COMP_VERSION = 16

# The header of a flattened device tree (devicetree spec v0.4 section 5.2):
# ten big-endian 32-bit fields, magic first.
FDT_MAGIC = 0xD00DFEED
FDT_HEADER = struct.Struct(">10I")
# Oldest layout we read: version 16 is what version 17 stays compatible with;
# older blobs (before 2007) align properties differently.
FDT_MIN_VERSION = 16


@dataclass
class BoardDescription:
    cpu_count: int
    ram_base: int
    ram_size: int
    psci_conduit: str                              # "smc" | "hvc"
    cpu_compatible: str = "arm,cortex-a57"
    bootargs: str = ""
    initrd: Optional[tuple[int, int]] = None       # (start, end), end exclusive
    gic: bool = True
    its: bool = True                               # the GICv3 ITS (QEMU's its=on), with gic
    timer: bool = True
    virtio_slots: int = memmap.VIRTIO_MMIO_SLOTS
    rng_seed: Optional[bytes] = None
    kaslr_seed: Optional[int] = None
    # QEMU adds the GIC maintenance interrupt only with virtualization=on.
    gic_maintenance_irq: bool = False
    flash: bool = True                             # flash@0: two CFI banks
    pcie: bool = True                              # pcie@10000000: the gpex host bridge
    fw_cfg: bool = True                            # fw-cfg@9020000
    platform_bus: bool = True                      # platform-bus@c000000, always empty
    pmu: bool = True                               # pmu: PMUv3 overflow interrupt, PPI 7
    secure: bool = False                           # QEMU's secure=on (see the module doc)


def check_bootargs(text: str, what: str = "bootargs") -> None:
    """A kernel command line the DTB can carry: UTF-8 text without control characters.

    /chosen/bootargs is one NUL-terminated string. Linux copies its bytes and
    splits them at whitespace, so any UTF-8 text works; a NUL would cut it
    short, and newlines, tabs, escapes and the like only garble what the guest
    prints. A byte of argv that is not UTF-8 reaches us as a lone surrogate
    (PEP 383), which has no UTF-8 form at all.
    """
    if not isinstance(text, str):
        raise ArmvisorError(f"{what} must be a string, not {type(text).__name__}")
    for position, char in enumerate(text, 1):
        category = unicodedata.category(char)
        if category == "Cs":
            raise ArmvisorError(f"{what}: {_describe_surrogate(char)} at character {position} "
                                "is not UTF-8; the kernel command line must be UTF-8 text")
        if category == "Cc":
            raise ArmvisorError(f"{what}: control character U+{ord(char):04X} at character "
                                f"{position}; the kernel command line takes printable text "
                                "(no NUL, tab, newline or escape)")


def _describe_surrogate(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:         # surrogateescape: the byte itself
        return f"byte {code - 0xDC00:#04x}"
    return f"lone surrogate U+{code:04X}"


def check_dtb(data: bytes, path: str) -> None:
    """A --dtb file must be a flattened device tree the guest (and `fdt`) can read.

    The header fields are checked first so that the message says what is
    wrong; the `fdt` package's parse then catches a broken structure block.
    """
    where = f"the DTB file {path!r}"
    if len(data) < FDT_HEADER.size:
        raise ArmvisorError(f"{where} is {len(data)} bytes, too short for a device tree "
                            f"header ({FDT_HEADER.size} bytes)")
    (magic, total, off_struct, off_strings, off_rsvmap, version, last_comp,
     _boot_cpu, _size_strings, _size_struct) = FDT_HEADER.unpack_from(data)
    if magic != FDT_MAGIC:
        raise ArmvisorError(f"{where} is not a device tree blob: magic {magic:#010x}, "
                            f"expected {FDT_MAGIC:#010x}")
    if not FDT_HEADER.size <= total <= len(data):
        raise ArmvisorError(f"{where} is corrupt: header totalsize {total} but the file "
                            f"has {len(data)} bytes")
    if version < FDT_MIN_VERSION or last_comp > DTB_VERSION:
        raise ArmvisorError(f"{where} has device tree version {version} (compatible with "
                            f"{last_comp}); expected version {FDT_MIN_VERSION} or "
                            f"{DTB_VERSION}, as dtc writes")
    for name, offset in (("off_mem_rsvmap", off_rsvmap), ("off_dt_struct", off_struct),
                         ("off_dt_strings", off_strings)):
        if not FDT_HEADER.size <= offset < total:
            raise ArmvisorError(f"{where} is corrupt: header {name} {offset:#x} lies outside "
                                f"the blob's {total} bytes")
    try:
        tree = fdt.parse_dtb(bytes(data[:total]))
    except Exception as exc:       # fdt raises bare Exception, struct.error, IndexError...
        raise ArmvisorError(f"{where} is corrupt: {_one_line(exc)}") from None
    if tree.root is None:
        raise ArmvisorError(f"{where} is corrupt: it has no root node")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def build_dtb(desc: BoardDescription) -> bytes:
    """Return the DTB blob for `desc`; bad descriptions raise ArmvisorError."""
    _validate(desc)
    phandles = _Phandles(desc)
    tree = fdt.FDT()
    root = tree.root
    if desc.gic:
        root.append(fdt.PropWords("interrupt-parent", phandles.gic))
    root.append(fdt.PropStrings("model", "linux,dummy-virt"))
    root.append(fdt.PropWords("#size-cells", 2))
    root.append(fdt.PropWords("#address-cells", 2))
    root.append(fdt.PropStrings("compatible", "linux,dummy-virt"))

    if not desc.secure:
        root.append(_psci_node(desc))
    root.append(_memory_node(desc))
    if desc.platform_bus:
        root.append(_platform_bus_node(desc, phandles))
    if desc.fw_cfg:
        root.append(_fw_cfg_node())
    for slot in range(desc.virtio_slots):
        root.append(_virtio_node(desc, slot))
    if desc.secure:
        for node in _secure_gpio_nodes(desc, phandles):
            root.append(node)
    if desc.pcie:
        root.append(_pcie_node(desc, phandles))
    root.append(_pl031_node(desc, phandles))
    if desc.secure:
        root.append(_pl011_node(desc, phandles, memmap.SECURE_UART_BASE,
                                memmap.SECURE_UART_SPI, secure=True))
        root.append(_secure_ram_node())
    root.append(_pl011_node(desc, phandles))
    if desc.pmu:
        root.append(_pmu_node(desc))
    if desc.gic:
        root.append(_gic_node(desc, phandles))
    if desc.flash:
        for node in _flash_nodes(desc.secure):
            root.append(node)
    root.append(_cpus_node(desc, phandles))
    if desc.timer:
        root.append(_timer_node(desc))
    root.append(_apb_pclk_node(phandles))
    if desc.secure:
        root.append(_secure_chosen_node(desc))
    root.append(_chosen_node(desc))
    return tree.to_dtb(version=DTB_VERSION, last_comp_version=DTB_LAST_COMP_VERSION,
                       boot_cpuid_phys=0)


class _Phandles:
    """QEMU's phandle numbering: the clock first, then the CPUs in reverse, then the GIC."""

    def __init__(self, desc: BoardDescription):
        self.apb_pclk = PHANDLE_BASE
        self._cpu_count = desc.cpu_count
        self.gic = PHANDLE_BASE + desc.cpu_count + 1
        self.its = self.gic + 1
        # QEMU's non-secure pl061 (not modelled here) takes the next one.
        self.secure_gpio = self.gic + 3

    def cpu(self, index: int) -> int:
        # QEMU's cpu-map loop walks the CPUs from the last to the first.
        return PHANDLE_BASE + self._cpu_count - index


def _validate(desc: BoardDescription) -> None:
    if not 1 <= desc.cpu_count <= memmap.MAX_CPUS:
        raise ArmvisorError(f"cpu count {desc.cpu_count} out of range 1..{memmap.MAX_CPUS}")
    if desc.psci_conduit not in ("smc", "hvc"):
        raise ArmvisorError(f"PSCI conduit must be 'smc' or 'hvc', not {desc.psci_conduit!r}")
    if desc.ram_size <= 0:
        raise ArmvisorError(f"RAM size must be positive, not {desc.ram_size:#x}")
    if not 0 <= desc.virtio_slots <= memmap.VIRTIO_MMIO_SLOTS:
        raise ArmvisorError(f"virtio slots {desc.virtio_slots} out of range 0..{memmap.VIRTIO_MMIO_SLOTS}")
    if desc.initrd is not None and desc.initrd[1] < desc.initrd[0]:
        raise ArmvisorError(f"initrd end {desc.initrd[1]:#x} is below its start {desc.initrd[0]:#x}")
    check_bootargs(desc.bootargs)


def _cells64(*values: int) -> list[int]:
    """Split 64-bit numbers into the <high low> cell pairs of a 2-cell address."""
    cells: list[int] = []
    for value in values:
        cells += [(value >> 32) & 0xFFFF_FFFF, value & 0xFFFF_FFFF]
    return cells


def _reg(base: int, size: int) -> fdt.PropWords:
    return fdt.PropWords("reg", *_cells64(base, size))


def _interrupts(*specs: tuple[int, int, int]) -> fdt.PropWords:
    return fdt.PropWords("interrupts", *[cell for spec in specs for cell in spec])


def _psci_node(desc: BoardDescription) -> fdt.Node:
    node = fdt.Node("psci")
    node.append(fdt.PropWords("migrate", PSCI_FN_MIGRATE_64))
    node.append(fdt.PropWords("cpu_on", PSCI_FN_CPU_ON_64))
    node.append(fdt.PropWords("cpu_off", PSCI_FN_CPU_OFF))
    node.append(fdt.PropWords("cpu_suspend", PSCI_FN_CPU_SUSPEND_64))
    node.append(fdt.PropStrings("method", desc.psci_conduit))
    node.append(fdt.PropStrings("compatible", "arm,psci-1.0", "arm,psci-0.2", "arm,psci"))
    return node


def _memory_node(desc: BoardDescription) -> fdt.Node:
    node = fdt.Node(f"memory@{desc.ram_base:x}")
    node.append(_reg(desc.ram_base, desc.ram_size))
    node.append(fdt.PropStrings("device_type", "memory"))
    return node


def _virtio_node(desc: BoardDescription, slot: int) -> fdt.Node:
    base = memmap.VIRTIO_MMIO_BASE + slot * memmap.VIRTIO_MMIO_SLOT_SIZE
    node = fdt.Node(f"virtio_mmio@{base:x}")
    node.append(fdt.Property("dma-coherent"))
    if desc.gic:
        node.append(_interrupts((GIC_FDT_IRQ_TYPE_SPI, memmap.VIRTIO_MMIO_FIRST_SPI + slot,
                                 IRQ_TYPE_EDGE_RISING)))
    node.append(_reg(base, memmap.VIRTIO_MMIO_SLOT_SIZE))
    node.append(fdt.PropStrings("compatible", "virtio,mmio"))
    return node


def _platform_bus_node(desc: BoardDescription, phandles: _Phandles) -> fdt.Node:
    # QEMU's dynamic sysbus window: empty unless devices are added at run time.
    node = fdt.Node(f"platform-bus@{memmap.PLATFORM_BUS_BASE:x}")
    if desc.gic:
        node.append(fdt.PropWords("interrupt-parent", phandles.gic))
    node.append(fdt.PropWords("ranges", 0, 0, memmap.PLATFORM_BUS_BASE,
                              memmap.PLATFORM_BUS_SIZE))
    node.append(fdt.PropWords("#address-cells", 1))
    node.append(fdt.PropWords("#size-cells", 1))
    node.append(fdt.PropStrings("compatible", "qemu,platform", "simple-bus"))
    return node


def _fw_cfg_node() -> fdt.Node:
    node = fdt.Node(f"fw-cfg@{memmap.FW_CFG_BASE:x}")
    node.append(fdt.Property("dma-coherent"))
    node.append(_reg(memmap.FW_CFG_BASE, memmap.FW_CFG_SIZE))
    node.append(fdt.PropStrings("compatible", "qemu,fw-cfg-mmio"))
    return node


# PCI bus binding (IEEE 1275 PCI bus binding 2.2.1.1; Linux
# Documentation/devicetree/bindings/pci/host-generic-pci.yaml): the first cell
# of a 3-cell PCI address says which space it names.
PCI_SPACE_IO = 0x0100_0000
PCI_SPACE_MEM32 = 0x0200_0000
PCI_SPACE_MEM64 = 0x0300_0000
PCI_DEVFN_SLOT_SHIFT = 11          # device number in the phys.hi cell
PCI_SLOT_MASK = 0x1800             # interrupt-map-mask: only the slot's low 2 bits matter
PCI_PIN_MASK = 0x7                 # ... and the pin INTA..INTD (1..4)
PCI_PINS = 4


def _pcie_node(desc: BoardDescription, phandles: _Phandles) -> fdt.Node:
    node = fdt.Node(f"pcie@{memmap.PCIE_MMIO_BASE:x}")
    if desc.gic:
        # The standard swizzle (PCI-to-PCI bridge spec 9.1): slot s, pin p
        # raises INT[(p - 1 + s) % 4]; QEMU writes it out for slots 0-3.
        cells: list[int] = []
        for slot in range(PCI_PINS):
            for pin in range(1, PCI_PINS + 1):
                spi = memmap.PCIE_FIRST_SPI + (pin - 1 + slot) % PCI_PINS
                cells += [slot << PCI_DEVFN_SLOT_SHIFT, 0, 0, pin, phandles.gic, 0, 0,
                          GIC_FDT_IRQ_TYPE_SPI, spi, IRQ_TYPE_LEVEL_HIGH]
        node.append(fdt.PropWords("interrupt-map-mask", PCI_SLOT_MASK, 0, 0, PCI_PIN_MASK))
        node.append(fdt.PropWords("interrupt-map", *cells))
        node.append(fdt.PropWords("#interrupt-cells", 1))
    node.append(fdt.PropWords(
        "ranges",
        PCI_SPACE_IO, 0, 0, *_cells64(memmap.PCIE_PIO_BASE, memmap.PCIE_PIO_SIZE),
        PCI_SPACE_MEM32, *_cells64(memmap.PCIE_MMIO_BASE, memmap.PCIE_MMIO_BASE,
                                   memmap.PCIE_MMIO_SIZE),
        PCI_SPACE_MEM64, *_cells64(memmap.PCIE_MMIO_HIGH_BASE, memmap.PCIE_MMIO_HIGH_BASE,
                                   memmap.PCIE_MMIO_HIGH_SIZE)))
    node.append(_reg(memmap.PCIE_ECAM_HIGH_BASE, memmap.PCIE_ECAM_HIGH_SIZE))
    if desc.gic and desc.its:
        # Requester ID r of the root bus is DeviceID r at the ITS, for all 64 Ki IDs.
        node.append(fdt.PropWords("msi-map", 0, phandles.its, 0, 0x10000))
    node.append(fdt.Property("dma-coherent"))
    # One bus per MiB of ECAM (PCIe Base 6.0 section 7.2.2).
    node.append(fdt.PropWords("bus-range", 0, (memmap.PCIE_ECAM_HIGH_SIZE >> 20) - 1))
    node.append(fdt.PropWords("linux,pci-domain", 0))
    node.append(fdt.PropWords("#size-cells", 2))
    node.append(fdt.PropWords("#address-cells", 3))
    node.append(fdt.PropStrings("device_type", "pci"))
    node.append(fdt.PropStrings("compatible", "pci-host-ecam-generic"))
    return node


def _flash_nodes(secure: bool) -> list:
    """One node for both banks, or with `secure` flash1 alone and flash0 as secflash@0
    (virt.c virt_flash_fdt)."""
    bank = memmap.FLASH_BANK_SIZE
    if not secure:
        return [_flash_node("flash", memmap.FLASH_BASE, memmap.FLASH_BASE, bank,
                            memmap.FLASH_BASE + bank, bank)]
    flash1 = memmap.FLASH_BASE + bank
    return [_flash_node("flash", flash1, flash1, bank),
            _flash_node("secflash", memmap.FLASH_BASE, memmap.FLASH_BASE, bank, secure=True)]


def _flash_node(name: str, base: int, *banks: int, secure: bool = False) -> fdt.Node:
    node = _node(f"{name}@{base:x}", secure)
    node.append(fdt.PropWords("bank-width", FLASH_BANK_WIDTH))
    node.append(fdt.PropWords("reg", *_cells64(*banks)))
    node.append(fdt.PropStrings("compatible", "cfi-flash"))
    return node


def _node(name: str, secure: bool = False) -> fdt.Node:
    """A new node; with `secure` one only the Secure world may use (the devicetree
    binding's secure-status, as virt.c marks its secure devices)."""
    node = fdt.Node(name)
    if secure:
        node.append(fdt.PropStrings("secure-status", "okay"))
        node.append(fdt.PropStrings("status", "disabled"))
    return node


def _secure_ram_node() -> fdt.Node:
    node = _node(f"secram@{memmap.SECURE_RAM_BASE:x}", secure=True)
    node.append(_reg(memmap.SECURE_RAM_BASE, memmap.SECURE_RAM_SIZE))
    node.append(fdt.PropStrings("device_type", "memory"))
    return node


def _secure_gpio_nodes(desc: BoardDescription, phandles: _Phandles) -> list:
    """virt.c create_gpio_devices for the secure PL061 and create_secure_gpio_pwr: line 0
    powers the machine off, line 1 resets it."""
    restart = _node("gpio-restart", secure=True)
    restart.append(fdt.PropWords("gpios", phandles.secure_gpio, SECURE_GPIO_RESET, 0))
    restart.append(fdt.PropStrings("compatible", "gpio-restart"))
    poweroff = _node("gpio-poweroff", secure=True)
    poweroff.append(fdt.PropWords("gpios", phandles.secure_gpio, SECURE_GPIO_POWEROFF, 0))
    poweroff.append(fdt.PropStrings("compatible", "gpio-poweroff"))
    gpio = _node(f"pl061@{memmap.SECURE_GPIO_BASE:x}", secure=True)
    gpio.append(fdt.PropWords("phandle", phandles.secure_gpio))
    gpio.append(fdt.PropStrings("clock-names", "apb_pclk"))
    gpio.append(fdt.PropWords("clocks", phandles.apb_pclk))
    if desc.gic:
        gpio.append(_interrupts((GIC_FDT_IRQ_TYPE_SPI, memmap.SECURE_GPIO_SPI,
                                 IRQ_TYPE_LEVEL_HIGH)))
    gpio.append(fdt.Property("gpio-controller"))
    gpio.append(fdt.PropWords("#gpio-cells", 2))
    gpio.append(fdt.PropStrings("compatible", "arm,pl061", "arm,primecell"))
    gpio.append(_reg(memmap.SECURE_GPIO_BASE, memmap.SECURE_GPIO_SIZE))
    return [restart, poweroff, gpio]


def _pl031_node(desc: BoardDescription, phandles: _Phandles) -> fdt.Node:
    node = fdt.Node(f"pl031@{memmap.RTC_BASE:x}")
    node.append(fdt.PropStrings("clock-names", "apb_pclk"))
    node.append(fdt.PropWords("clocks", phandles.apb_pclk))
    if desc.gic:
        node.append(_interrupts((GIC_FDT_IRQ_TYPE_SPI, memmap.RTC_SPI, IRQ_TYPE_LEVEL_HIGH)))
    node.append(_reg(memmap.RTC_BASE, memmap.RTC_SIZE))
    node.append(fdt.PropStrings("compatible", "arm,pl031", "arm,primecell"))
    return node


def _pl011_node(desc: BoardDescription, phandles: _Phandles, base: int = memmap.UART0_BASE,
                spi: int = memmap.UART0_SPI, secure: bool = False) -> fdt.Node:
    node = _node(f"pl011@{base:x}", secure)
    node.append(fdt.PropStrings("clock-names", "uartclk", "apb_pclk"))
    node.append(fdt.PropWords("clocks", phandles.apb_pclk, phandles.apb_pclk))
    if desc.gic:
        node.append(_interrupts((GIC_FDT_IRQ_TYPE_SPI, spi, IRQ_TYPE_LEVEL_HIGH)))
    node.append(_reg(base, memmap.UART0_SIZE))
    node.append(fdt.PropStrings("compatible", "arm,pl011", "arm,primecell"))
    return node


def _gic_node(desc: BoardDescription, phandles: _Phandles) -> fdt.Node:
    # QEMU lists the whole first redistributor region (room for 123 CPUs), not
    # one frame per CPU: Linux walks it until a frame has GICR_TYPER.Last set
    # (IHI0069 12.11.35), so the GIC model must set Last on the last CPU.
    node = fdt.Node(f"intc@{memmap.GICD_BASE:x}")
    node.append(fdt.PropWords("phandle", phandles.gic))
    if desc.gic_maintenance_irq:
        node.append(_interrupts((GIC_FDT_IRQ_TYPE_PPI, GIC_MAINTENANCE_PPI, IRQ_TYPE_LEVEL_HIGH)))
    node.append(fdt.PropWords("reg", *_cells64(memmap.GICD_BASE, memmap.GICD_SIZE,
                                               memmap.GICR_BASE, memmap.GICR_SIZE)))
    node.append(fdt.PropWords("#redistributor-regions", 1))
    node.append(fdt.PropStrings("compatible", "arm,gic-v3"))
    node.append(fdt.Property("ranges"))
    node.append(fdt.PropWords("#size-cells", 2))
    node.append(fdt.PropWords("#address-cells", 2))
    node.append(fdt.Property("interrupt-controller"))
    node.append(fdt.PropWords("#interrupt-cells", 3))
    if desc.its:
        node.append(_its_node(phandles))
    return node


def _its_node(phandles: _Phandles) -> fdt.Node:
    """The arm,gic-v3-its binding: the ITS as an MSI controller, one cell of DeviceID."""
    node = fdt.Node(f"its@{memmap.GITS_BASE:x}")
    node.append(fdt.PropWords("phandle", phandles.its))
    node.append(_reg(memmap.GITS_BASE, memmap.GITS_SIZE))
    node.append(fdt.PropWords("#msi-cells", 1))
    node.append(fdt.Property("msi-controller"))
    node.append(fdt.PropStrings("compatible", "arm,gic-v3-its"))
    return node


def _cpus_node(desc: BoardDescription, phandles: _Phandles) -> fdt.Node:
    affinities = [memmap.mpidr_affinity(i) for i in range(desc.cpu_count)]
    # QEMU uses two address cells only when some CPU has Aff3 (MPIDR bits [39:32]).
    address_cells = 2 if any(aff >> 32 for aff in affinities) else 1
    node = fdt.Node("cpus")
    node.append(fdt.PropWords("#size-cells", 0))
    node.append(fdt.PropWords("#address-cells", address_cells))

    # QEMU 7.2 describes `-smp N` as one socket holding one cluster of N cores.
    cluster = fdt.Node("cluster0")
    for i in range(desc.cpu_count):
        core = fdt.Node(f"core{i}")
        core.append(fdt.PropWords("cpu", phandles.cpu(i)))
        cluster.append(core)
    socket = fdt.Node("socket0")
    socket.append(cluster)
    cpu_map = fdt.Node("cpu-map")
    cpu_map.append(socket)
    node.append(cpu_map)

    for i, aff in enumerate(affinities):
        cpu = fdt.Node(f"cpu@{i}")     # QEMU names the node by index, not by reg
        cpu.append(fdt.PropWords("phandle", phandles.cpu(i)))
        reg = _cells64(aff) if address_cells == 2 else [aff]
        cpu.append(fdt.PropWords("reg", *reg))
        # With one CPU nothing needs bringing up, and QEMU omits the method.
        if desc.cpu_count > 1:
            cpu.append(fdt.PropStrings("enable-method", "psci"))
        cpu.append(fdt.PropStrings("compatible", desc.cpu_compatible))
        cpu.append(fdt.PropStrings("device_type", "cpu"))
        node.append(cpu)
    return node


def _pmu_node(desc: BoardDescription) -> fdt.Node:
    """The arm,armv8-pmuv3 binding: each CPU's overflow interrupt, a level-sensitive PPI."""
    node = fdt.Node("pmu")
    if desc.gic:
        node.append(_interrupts((GIC_FDT_IRQ_TYPE_PPI, memmap.PMU_PPI, IRQ_TYPE_LEVEL_HIGH)))
    node.append(fdt.PropStrings("compatible", "arm,armv8-pmuv3"))
    return node


def _timer_node(desc: BoardDescription) -> fdt.Node:
    node = fdt.Node("timer")
    if desc.gic:
        # Order fixed by the arm,arch_timer binding: secure phys, non-secure
        # phys, virtual, hypervisor phys.
        node.append(_interrupts(
            (GIC_FDT_IRQ_TYPE_PPI, memmap.TIMER_SECURE_PHYS_PPI, IRQ_TYPE_LEVEL_HIGH),
            (GIC_FDT_IRQ_TYPE_PPI, memmap.TIMER_NONSECURE_PHYS_PPI, IRQ_TYPE_LEVEL_HIGH),
            (GIC_FDT_IRQ_TYPE_PPI, memmap.TIMER_VIRT_PPI, IRQ_TYPE_LEVEL_HIGH),
            (GIC_FDT_IRQ_TYPE_PPI, memmap.TIMER_HYP_PHYS_PPI, IRQ_TYPE_LEVEL_HIGH),
        ))
    node.append(fdt.Property("always-on"))
    node.append(fdt.PropStrings("compatible", "arm,armv8-timer", "arm,armv7-timer"))
    return node


def _apb_pclk_node(phandles: _Phandles) -> fdt.Node:
    node = fdt.Node("apb-pclk")
    node.append(fdt.PropWords("phandle", phandles.apb_pclk))
    node.append(fdt.PropStrings("clock-output-names", "clk24mhz"))
    node.append(fdt.PropWords("clock-frequency", APB_PCLK_HZ))
    node.append(fdt.PropWords("#clock-cells", 0))
    node.append(fdt.PropStrings("compatible", "fixed-clock"))
    return node


def _address_cells_value(name: str, value: int) -> fdt.PropWords:
    # QEMU 7.2 writes the initrd bounds as one cell when they fit; Linux reads
    # either length (of_read_number over the property length).
    if value > 0xFFFF_FFFF:
        return fdt.PropWords(name, *_cells64(value))
    return fdt.PropWords(name, value)


def _bootargs(text: str) -> fdt.Property:
    # The fdt package takes only ASCII strings; UTF-8 goes in as the same
    # bytes libfdt (and so QEMU) would write: the text and a NUL.
    if text.isascii():
        return fdt.PropStrings("bootargs", text)
    return fdt.PropBytes("bootargs", data=text.encode("utf-8") + b"\0")


def _secure_chosen_node(desc: BoardDescription) -> fdt.Node:
    """The Secure world's /chosen: its console is the secure UART; QEMU gives it seeds too."""
    node = fdt.Node("secure-chosen")
    node.append(fdt.PropStrings("stdout-path", f"/pl011@{memmap.SECURE_UART_BASE:x}"))
    _append_seeds(node, desc)
    return node


def _chosen_node(desc: BoardDescription) -> fdt.Node:
    node = fdt.Node("chosen")
    if desc.initrd is not None:
        start, end = desc.initrd
        node.append(_address_cells_value("linux,initrd-end", end))
        node.append(_address_cells_value("linux,initrd-start", start))
    if desc.bootargs:
        node.append(_bootargs(desc.bootargs))
    node.append(fdt.PropStrings("stdout-path", f"/pl011@{memmap.UART0_BASE:x}"))
    _append_seeds(node, desc)
    return node


def _append_seeds(node: fdt.Node, desc: BoardDescription) -> None:
    """The random seeds QEMU puts in /chosen and /secure-chosen alike (each its own)."""
    if desc.rng_seed is not None:
        node.append(fdt.PropBytes("rng-seed", data=bytes(desc.rng_seed)))
    if desc.kaslr_seed is not None:
        node.append(fdt.PropWords("kaslr-seed", *_cells64(desc.kaslr_seed & 0xFFFF_FFFF_FFFF_FFFF)))
