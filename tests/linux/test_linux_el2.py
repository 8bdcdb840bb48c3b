"""Debian's arm64 kernel entered at EL2 (--virtualization, QEMU's virtualization=on).

The kernel owns EL2: it installs its hyp stub, drops to EL1 and initialises
KVM in nVHE mode, whose EL2 code probes the GIC virtualization interface
(ICH_VTR_EL2, ICC_SRE_EL1 from EL2). Its list registers are written only once
a VM exists (hardware enable is lazy in 6.1), which BusyBox cannot create.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import time

import pytest

from armvisor.devtools import qemu
from armvisor.images.initramfs import INIT_MARKER
from tests.linux.test_linux import BOOT_TIMEOUT, armvisor_cmd
from tests.terminal import Terminal

CPUS = 4
LIST_REGISTERS = 4


def test_linux_at_el2_initialises_kvm_and_reaches_the_shell(debian_images, tmp_path):
    trace = tmp_path / "el2.json"
    term = Terminal(armvisor_cmd(debian_images, debian_images.initramfs, CPUS, "",
                                 "--virtualization", "--trace", str(trace)),
                    timeout=BOOT_TIMEOUT)
    term.expect(f"{INIT_MARKER} on {CPUS} CPUs")
    time.sleep(1.0)                   # let the shell start reading
    term.send(b"echo cpus=$(grep -c ^processor /proc/cpuinfo)-counted\r")
    term.expect(f"cpus={CPUS}-counted")
    term.send(b"grep -c vgic /proc/interrupts; echo vgic-listed\r")
    out = term.expect("vgic-listed\r\n", timeout=60)
    term.send(b"poweroff -f\r")
    out = term.expect("reboot: Power down", timeout=60)
    assert term.close() == 0
    assert "CPU: All CPU(s) started at EL2" in out
    assert f"smp: Brought up 1 node, {CPUS} CPUs" in out
    # KVM's nVHE init and its vGIC probe (arch/arm64/kvm/vgic/vgic-v3.c vgic_v3_probe).
    for line in ("kvm [1]: IPA Size Limit: 44 bits",
                 "kvm [1]: GIC system register CPU interface enabled",
                 "kvm [1]: vgic interrupt IRQ",
                 "kvm [1]: Hyp mode initialized successfully"):
        assert line in out, line
    assert "VHE mode initialized" not in out
    assert "vgic-listed" in out and "\n1\r\nvgic-listed" in out.replace("\r\r", "\r")
    # vgic_v3_probe asked KVM's EL2 code for ICH_VTR_EL2 (__vgic_v3_get_gic_config).
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    probes = [e["args"] for e in events if e.get("name") == "gic.ich_probe"]
    assert probes and all(p["reg"] == "ICH_VTR_EL2" and p["list_registers"] == LIST_REGISTERS
                          for p in probes), probes


def kvm_lines(console: str) -> list:
    """KVM's boot messages without their timestamps."""
    return re.findall(r"^\[[ 0-9.]+\] (kvm \[1\]: .*?)\r?$", console, re.M)


def console_until(cmd: list, marker: str, timeout: float) -> str:
    """What `cmd` prints until `marker`; then it is stopped."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while marker.encode() not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
    finally:
        proc.kill()
        proc.wait()
    return seen.decode(errors="replace")


def test_kvm_says_on_armvisor_what_it_says_on_qemu(debian_images):
    """The same kernel and initramfs on QEMU 7.2 -M virt,virtualization=on: the same KVM
    messages, in the same order."""
    if not qemu.available():
        pytest.skip("qemu-system-aarch64 not installed")
    theirs = console_until(qemu.virt_command(
        machine="virt,virtualization=on,gic-version=3", smp=CPUS, kernel=debian_images.kernel,
        extra=["-initrd", str(debian_images.initramfs), "-append", "console=ttyAMA0"]),
        INIT_MARKER, BOOT_TIMEOUT)
    ours = console_until(armvisor_cmd(debian_images, debian_images.initramfs, CPUS, "",
                                      "--virtualization"), INIT_MARKER, BOOT_TIMEOUT)
    assert INIT_MARKER in theirs and INIT_MARKER in ours
    assert kvm_lines(theirs) and kvm_lines(ours) == kvm_lines(theirs), (kvm_lines(ours),
                                                                       kvm_lines(theirs))


def test_hotplug_virtio_and_poweroff_at_el2(debian_images, tmp_path):
    """The bare board's whole Linux check, entered at EL2: 100 CPU_OFF/CPU_ON cycles per
    secondary (each CPU back at EL2, through KVM's hyp stub), virtio disks and console."""
    from tests.linux.test_linux import test_four_cpus_hotplug_virtio_and_poweroff
    test_four_cpus_hotplug_virtio_and_poweroff(debian_images, tmp_path, ["--virtualization"])
