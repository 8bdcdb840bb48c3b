"""MMIO windows: a device's register block as the cores map it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class MmioWindow:
    """A device's register block at `base`: the unit each core maps with mmio_map."""

    name: str
    base: int
    size: int
    read: Callable[[int, int, int], int]            # (offset, size, cpu) -> value
    write: Callable[[int, int, int, int], None]     # (offset, size, value, cpu)


def per_device(device) -> tuple:
    """Read/write callables for a device whose registers do not depend on the CPU."""
    return (lambda offset, size, cpu: device.read(offset, size),
            lambda offset, size, value, cpu: device.write(offset, size, value))


def gic_windows(gic, cpu_count: int) -> list:
    """The GICv3 distributor, its ITS if it has one, and the redistributor frames of
    `cpu_count` CPUs."""
    from armvisor.machine import memmap
    windows = [MmioWindow("gicd", memmap.GICD_BASE, memmap.GICD_SIZE, gic.distributor_read,
                          gic.distributor_write)]
    if getattr(gic, "its", None) is not None:
        windows.append(MmioWindow("gits", memmap.GITS_BASE, memmap.GITS_SIZE, gic.its_read,
                                  gic.its_write))
    windows.append(MmioWindow("gicr", memmap.GICR_BASE, cpu_count * memmap.GICR_STRIDE,
                              gic.redistributor_read, gic.redistributor_write))
    return windows


def watched(window: MmioWindow, before: Callable[[int], None]) -> MmioWindow:
    """`window`, calling `before(cpu)` ahead of each access (a schedule's sync point)."""
    read, write = window.read, window.write

    def watched_read(offset: int, size: int, cpu: int) -> int:
        before(cpu)
        return read(offset, size, cpu)

    def watched_write(offset: int, size: int, value: int, cpu: int) -> None:
        before(cpu)
        write(offset, size, value, cpu)

    return MmioWindow(window.name, window.base, window.size, watched_read, watched_write)
