"""The QEMU `virt` memory map and interrupt numbers (hw/arm/virt.c base_memmap, a15irqmap).

Software built for `qemu-system-aarch64 -M virt` finds its devices here.
"""

FLASH_BASE = 0x0000_0000
FLASH_SIZE = 0x0800_0000          # both banks
FLASH_BANK_SIZE = 0x0400_0000     # flash0 at FLASH_BASE, flash1 right after it
FLASH_SECTOR_SIZE = 0x0004_0000   # virt.c VIRT_FLASH_SECTOR_SIZE (256 KiB)
GICD_BASE = 0x0800_0000
GICD_SIZE = 0x0001_0000
GITS_BASE = 0x0808_0000
GITS_SIZE = 0x0002_0000
GICR_BASE = 0x080A_0000
GICR_SIZE = 0x00F6_0000
GICR_STRIDE = 0x2_0000            # RD frame + SGI frame, 64 KiB each (IHI0069 12.10)
UART0_BASE = 0x0900_0000
UART0_SIZE = 0x1000
RTC_BASE = 0x0901_0000
RTC_SIZE = 0x1000
FW_CFG_BASE = 0x0902_0000
FW_CFG_SIZE = 0x18                # data +0, selector +8, DMA address +16
GPIO_BASE = 0x0903_0000
# The Secure world's devices with secure=on (virt.c base_memmap VIRT_SECURE_*).
SECURE_UART_BASE = 0x0904_0000
SECURE_GPIO_BASE = 0x090B_0000
SECURE_GPIO_SIZE = 0x1000
SECURE_RAM_BASE = 0x0E00_0000
SECURE_RAM_SIZE = 0x0100_0000
VIRTIO_MMIO_BASE = 0x0A00_0000
VIRTIO_MMIO_SLOT_SIZE = 0x200
VIRTIO_MMIO_SLOTS = 32
PLATFORM_BUS_BASE = 0x0C00_0000
PLATFORM_BUS_SIZE = 0x0200_0000
PCIE_MMIO_BASE = 0x1000_0000      # 32-bit PCI memory window (CPU address = PCI address)
PCIE_MMIO_SIZE = 0x2EFF_0000
PCIE_PIO_BASE = 0x3EFF_0000       # PCI I/O space 0..0xFFFF
PCIE_PIO_SIZE = 0x0001_0000
PCIE_ECAM_BASE = 0x3F00_0000      # low ECAM: QEMU uses it only with highmem=off
PCIE_ECAM_SIZE = 0x0100_0000
RAM_BASE = 0x4000_0000
# Above 4 GiB (virt.c extended_memmap, highmem on): the ECAM QEMU's DTB names
# (256 buses x 1 MiB) and the 64-bit PCI memory window.
PCIE_ECAM_HIGH_BASE = 0x40_1000_0000
PCIE_ECAM_HIGH_SIZE = 0x1000_0000
PCIE_MMIO_HIGH_BASE = 0x80_0000_0000
PCIE_MMIO_HIGH_SIZE = 0x80_0000_0000

# SPI numbers (add 32 for the GIC INTID).
UART0_SPI = 1
RTC_SPI = 2
GPIO_SPI = 7
SECURE_UART_SPI = 8
SECURE_GPIO_SPI = 0
VIRTIO_MMIO_FIRST_SPI = 16
PCIE_FIRST_SPI = 3                # INTA..INTD, swizzled over SPIs 3..6
PCIE_IRQ_COUNT = 4

# PPI numbers for the generic timers (add 16 for the INTID), as QEMU's DTB lists them.
TIMER_SECURE_PHYS_PPI = 13        # INTID 29
TIMER_NONSECURE_PHYS_PPI = 14     # INTID 30
TIMER_VIRT_PPI = 11               # INTID 27
TIMER_HYP_PHYS_PPI = 10           # INTID 26
PMU_PPI = 7                       # INTID 23: the PMU's overflow interrupt (devices/pmu.py)

MAX_CPUS = 64
GICV3_CPUS_PER_CLUSTER = 16       # QEMU virt_cpu_mp_affinity with GICv3


def mpidr_affinity(cpu_index: int) -> int:
    """The MPIDR affinity fields QEMU gives CPU n on virt with GICv3 (Aff0 = n%16, Aff1 = n/16)."""
    return ((cpu_index // GICV3_CPUS_PER_CLUSTER) << 8) | (cpu_index % GICV3_CPUS_PER_CLUSTER)
