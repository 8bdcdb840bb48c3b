"""Virtio devices (virtio spec 1.2): the MMIO transport and, later, its device backends."""

from armvisor.devices.virtio.mmio import VirtioBackend, VirtioMmio, VirtioMmioBank, VirtQueue

__all__ = ["VirtioBackend", "VirtioMmio", "VirtioMmioBank", "VirtQueue"]
