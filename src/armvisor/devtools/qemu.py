"""The reference machine: `qemu-system-aarch64 -M virt` command lines for comparisons.

Every comparison with QEMU (tests, benchmarks) builds its command here so all
of them run on exactly what `scripts/setup` installs. QEMU is installed
without recommends, so it has no option ROMs: its default NIC (a virtio-net
PCI card, which wants `efi-virtio.rom`) would stop QEMU before the guest
runs. `-nic none` removes it, as armvisor has no network card either.
"""

from __future__ import annotations

import shutil
from typing import List, Optional

QEMU = "qemu-system-aarch64"
# What a run never needs: no display, no monitor, no network card (see above).
HEADLESS = ["-display", "none", "-monitor", "none", "-nic", "none"]


def available() -> bool:
    return shutil.which(QEMU) is not None


def virt_command(*, machine: str = "virt,gic-version=3", cpu: str = "cortex-a57", smp: int = 1,
                 memory: str = "512M", kernel: Optional[str] = None, serial: str = "stdio",
                 extra: Optional[List[str]] = None) -> List[str]:
    """A headless QEMU virt run: the console on `serial`, no reboot (SYSTEM_RESET ends it)."""
    command = [QEMU, "-M", machine, "-cpu", cpu, "-smp", str(smp), "-m", memory,
               *HEADLESS, "-serial", serial, "-no-reboot"]
    if kernel is not None:
        command += ["-kernel", str(kernel)]
    return command + list(extra or [])
