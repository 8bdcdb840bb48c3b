"""GICv3 interrupt controller (Arm IHI 0069), as QEMU's virt board has it: one Security
state, or two with secure=on (armvisor's --secure)."""

from armvisor.devices.gic.gicv3 import GicV3

__all__ = ["GicV3"]
