"""Debian's unmodified arm64 kernel on armvisor: SMP bring-up, hotplug, virtio, console.

These boot the real kernel (several seconds each); CI runs them. The images
come through `armvisor images fetch debian` (see conftest.py).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from armvisor.devtools import qemu
from armvisor.images.initramfs import INIT_MARKER, RUN_EXIT_MARKER, ExtraFile, build_initramfs

HERE = Path(__file__).resolve().parent
# A guard, not a benchmark: a 4-CPU hotplug boot took 303 s on a loaded 2-core
# machine, against about 60 s unloaded.
BOOT_TIMEOUT = 900
HOTPLUG_CYCLES = 100


def armvisor_cmd(images, initrd: Path, smp: int, append: str = "", *extra) -> list:
    return [sys.executable, "-m", "armvisor", "run", "--smp", str(smp), "--memory", "512M",
            "--kernel", str(images.kernel), "--initrd", str(initrd),
            "--append", f"console=ttyAMA0 {append}".strip(), "--timeout", str(BOOT_TIMEOUT), *extra]


def check_initramfs(images, tmp_path: Path, script_args: str = "") -> tuple:
    """An initramfs whose init runs checks.sh; returns (path, kernel command-line part)."""
    runner = tmp_path / "run.sh"
    runner.write_text(f"#!/bin/sh\nsh /opt/checks.sh {script_args}\n")
    data = build_initramfs(images.busybox, images.kernel_release, images.modules,
                           extra=[ExtraFile(HERE / "checks.sh", "/opt/checks.sh"),
                                  ExtraFile(runner, "/opt/run.sh")])
    path = tmp_path / "checks.cpio.gz"
    path.write_bytes(data)
    return path, "armvisor.run=/opt/run.sh"


def script_initramfs(images, tmp_path: Path, script: str, name: str) -> tuple:
    """An initramfs whose init runs `script` (shell text); returns (path, command-line part)."""
    runner = tmp_path / f"{name}.sh"
    runner.write_text("#!/bin/sh\n" + script)
    data = build_initramfs(images.busybox, images.kernel_release, images.modules,
                           extra=[ExtraFile(runner, f"/opt/{name}.sh")])
    path = tmp_path / f"{name}.cpio.gz"
    path.write_bytes(data)
    return path, f"armvisor.run=/opt/{name}.sh"


def test_four_cpus_hotplug_virtio_and_poweroff(debian_images, tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"HOST-WROTE-THIS." + bytes((1 << 20) - 16))
    initrd, hook = check_initramfs(debian_images, tmp_path, str(HOTPLUG_CYCLES))
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook,
                                       "--drive", f"file={disk},format=raw", "--virtio-console"),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smp: Brought up 1 node, 4 CPUs" in out
    assert f"{INIT_MARKER} on 4 CPUs" in out
    checks = re.findall(r"^CHECK (.+?): (ok|FAIL.*)$", out, re.M)
    assert len(checks) == 8, out[-4000:]
    failed = [c for c in checks if c[1] != "ok"]
    assert not failed, failed
    assert f"hotplug: {HOTPLUG_CYCLES} cycles per secondary, online now: 0-3" in out
    assert "hvc0 says hello" in out
    assert f"{RUN_EXIT_MARKER} 0" in out
    assert "reboot: Power down" in out
    # What the guest wrote and synced is in the image file after power-off.
    pattern = b"armvisor-linux-disk-check-4"
    assert disk.read_bytes()[8 * 512:8 * 512 + len(pattern)] == pattern


@pytest.mark.parametrize("smp, conduit", [(1, "smc"), (2, "hvc"), (8, "smc")])
def test_cpuinfo_lists_every_cpu(debian_images, tmp_path, smp, conduit):
    """N CPUs come up through the conduit the DTB names (HVC is UNDEFINED unless it is the conduit)."""
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    'echo "processors: $(grep -c ^processor /proc/cpuinfo)"\n',
                                    "count")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, smp, hook,
                                       "--psci-conduit", conduit),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"processors: {smp}" in proc.stdout
    assert "psci: PSCIv1.1 detected in firmware." in proc.stdout


def test_reboot_restarts_the_machine(debian_images, tmp_path):
    """`reboot -f` is PSCI SYSTEM_RESET: the machine boots again; the second boot powers off."""
    # The command line does not change across a reset, so count boots by output instead.
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    "echo first-boot; reboot -f\n", "reboot")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 2, hook, "--no-reboot"),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("first-boot") == 1 and "reboot: Restarting system" in proc.stdout
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 2, hook)
                          + ["--timeout", "40"], capture_output=True, text=True, timeout=200)
    assert proc.stdout.count("Booting Linux on physical CPU") >= 2, proc.stdout[-2000:]


def test_linux_vm_with_four_pinned_vcpus_passes_the_same_checks(debian_images, tmp_path):
    """Under the hypervisor: 4 vCPUs pinned on 4 pCPUs, PSCI over HVC, CPU hotplug included."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"HOST-WROTE-THIS." + bytes((1 << 20) - 16))
    initrd, hook = check_initramfs(debian_images, tmp_path, f"{HOTPLUG_CYCLES} no-hvc")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook, "--hyp",
                                       "--drive", f"file={disk},format=raw"),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "psci: probing for conduit method from DT." in out
    assert "smp: Brought up 1 node, 4 CPUs" in out
    checks = re.findall(r"^CHECK (.+?): (ok|FAIL.*)$", out, re.M)
    assert len(checks) == 7 and all(result == "ok" for _, result in checks), checks
    pattern = b"armvisor-linux-disk-check-4"
    assert disk.read_bytes()[8 * 512:8 * 512 + len(pattern)] == pattern


@pytest.mark.parametrize("pcpus, vcpus", [(2, 2), (4, 4)])
def test_two_linux_vms_share_the_pcpus(debian_images, tmp_path, pcpus, vcpus):
    """Two Debian VMs time-sliced on the same pCPUs both boot and power off."""
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    'echo "hello from a VM with $(nproc) cpus"\n', "hello")
    spec = (f"kernel={debian_images.kernel},initrd={initrd},smp={vcpus},memory=256M,"
            f"append=console=ttyAMA0 quiet {hook},placement=shared")
    proc = subprocess.run([sys.executable, "-m", "armvisor", "run", "--hyp", "--pcpus",
                           str(pcpus), "--vm", spec + ",name=a", "--vm", spec + ",name=b",
                           "--timeout", str(BOOT_TIMEOUT)],
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("a", "b"):
        assert f"[{name}] hello from a VM with {vcpus} cpus" in proc.stdout
        assert f"[{name}] {RUN_EXIT_MARKER} 0" in proc.stdout


@pytest.mark.skipif(not qemu.available(),
                    reason="needs qemu-system-aarch64 (Debian's qemu-system-arm) to compare with")
def test_ipis_and_virtual_timer_give_the_same_results_as_qemu(debian_images, tmp_path):
    """Debian's kernel, which nobody here wrote, uses IPIs between all CPUs and the
    virtual timer; what it reports about them is the same on armvisor and on QEMU."""
    data = build_initramfs(debian_images.busybox, debian_images.kernel_release,
                           debian_images.modules,
                           extra=[ExtraFile(HERE / "smp_results.sh", "/opt/smp_results.sh")])
    initrd = tmp_path / "smp.cpio.gz"
    initrd.write_bytes(data)
    hook = "armvisor.run=/opt/smp_results.sh"
    ours = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook), capture_output=True,
                          text=True, timeout=BOOT_TIMEOUT + 60)
    assert ours.returncode == 0, ours.stderr[-3000:]
    theirs = subprocess.run(
        qemu.virt_command(smp=4, kernel=debian_images.kernel,
                          extra=["-initrd", str(initrd), "-append", f"console=ttyAMA0 {hook}"]),
        capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)

    def results(text: str) -> list:
        return [line.strip() for line in text.splitlines() if line.startswith("RESULT ")]

    assert len(results(ours.stdout)) == 8, ours.stdout[-3000:]
    assert results(ours.stdout) == results(theirs.stdout)
    assert "RESULT every cpu received IPIs: yes" in results(ours.stdout)
    assert "RESULT cpus with timer interrupts: 4" in results(ours.stdout)


def test_deterministic_boots_are_identical(debian_images, tmp_path):
    """With --deterministic, two 4-CPU boots print the same bytes, kernel timestamps included."""
    initrd, hook = script_initramfs(debian_images, tmp_path, "cat /proc/interrupts\n", "irqs")
    runs = [subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook, "--deterministic"),
                           capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    assert "smp: Brought up 1 node, 4 CPUs" in runs[0].stdout
    assert runs[0].stdout == runs[1].stdout


class Terminal:
    """armvisor on a pseudo-terminal, as a person at a shell sees it."""

    def __init__(self, cmd: list):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; got:\n{self.seen[-2000:].decode(errors='replace')}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        assert text.encode() in self.seen, self.seen[-2000:]

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


def test_interactive_shell_ctrl_c_and_escape(debian_images):
    """Typing works, Ctrl-C reaches the guest, Ctrl-A x quits armvisor (exit 130)."""
    term = Terminal(armvisor_cmd(debian_images, debian_images.initramfs, 2))
    term.expect(INIT_MARKER)
    time.sleep(1.0)                   # let the shell start reading
    term.send(b"echo $((6 * 7))-answer\r")
    term.expect("42-answer")
    term.send(b"sleep 1000\r")
    time.sleep(1.0)
    term.send(b"\x03")                # Ctrl-C: SIGINT to the guest's foreground job
    term.send(b"echo after-interrupt\r")
    term.expect("after-interrupt", timeout=60)
    term.send(b"\x01x")               # Ctrl-A x: leave armvisor
    assert term.close() == 130


def test_shell_poweroff_exits_zero(debian_images):
    term = Terminal(armvisor_cmd(debian_images, debian_images.initramfs, 4))
    term.expect(INIT_MARKER)
    time.sleep(1.0)
    term.send(b"poweroff -f\r")
    term.expect("reboot: Power down", timeout=60)
    assert term.close() == 0
