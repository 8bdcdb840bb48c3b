"""Debian's unmodified arm64 kernel on armvisor: SMP bring-up, hotplug, virtio, console.

These boot the real kernel (several seconds each); CI runs them. The images
come through `armvisor images fetch debian` (see conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from armvisor.devtools import qemu
from armvisor.images.initramfs import INIT_MARKER, RUN_EXIT_MARKER, ExtraFile, build_initramfs
from tests.terminal import Terminal

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


@pytest.fixture(params=["bare", "hyp"])
def mode(request) -> list:
    """Every Linux test runs on the bare board and as a VM under the hypervisor
    (its vCPUs pinned on as many pCPUs), with the same checks."""
    return ["--hyp"] if request.param == "hyp" else []


def test_four_cpus_hotplug_virtio_and_poweroff(debian_images, tmp_path, mode):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"HOST-WROTE-THIS." + bytes((1 << 20) - 16))
    frozen = tmp_path / "readonly.img"
    frozen.write_bytes(bytes(1 << 20))
    initrd, hook = check_initramfs(debian_images, tmp_path, f"{HOTPLUG_CYCLES} hvc ro")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook, *mode,
                                       "--drive", f"file={disk},format=raw",
                                       "--drive", f"file={frozen},format=raw,readonly=on",
                                       "--virtio-console"),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smp: Brought up 1 node, 4 CPUs" in out
    assert f"{INIT_MARKER} on 4 CPUs" in out
    if mode:
        assert "psci: probing for conduit method from DT." in out
    checks = re.findall(r"^CHECK (.+?): (ok|FAIL.*)$", out, re.M)
    assert len(checks) == 10, out[-4000:]
    failed = [c for c in checks if c[1] != "ok"]
    assert not failed, failed
    assert f"hotplug: {HOTPLUG_CYCLES} cycles per secondary, online now: 0-3" in out
    assert "hvc0 says hello" in out
    assert f"{RUN_EXIT_MARKER} 0" in out
    assert "reboot: Power down" in out
    # What the guest wrote and synced is in the image file after power-off.
    pattern = b"armvisor-linux-disk-check-4"
    assert disk.read_bytes()[8 * 512:8 * 512 + len(pattern)] == pattern
    assert frozen.read_bytes() == bytes(1 << 20)


@pytest.mark.parametrize("smp, conduit", [(1, "smc"), (2, "hvc"), (8, "smc")])
def test_cpuinfo_lists_every_cpu(debian_images, tmp_path, smp, conduit, mode):
    """N CPUs come up through the conduit the DTB names (HVC is UNDEFINED unless it is the conduit)."""
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    'echo "processors: $(grep -c ^processor /proc/cpuinfo)"\n',
                                    "count")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, smp, hook,
                                       "--psci-conduit", conduit, *mode),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"processors: {smp}" in proc.stdout
    assert "psci: PSCIv1.1 detected in firmware." in proc.stdout


def test_reboot_restarts_the_machine(debian_images, tmp_path, mode):
    """`reboot -f` is PSCI SYSTEM_RESET: the machine (or the VM) boots again;
    with --no-reboot the run ends instead."""
    # The command line does not change across a reset, so count boots by output instead.
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    "echo first-boot; reboot -f\n", "reboot")
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 2, hook, "--no-reboot", *mode),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("first-boot") == 1 and "reboot: Restarting system" in proc.stdout
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 2, hook, *mode)
                          + ["--timeout", "40"], capture_output=True, text=True, timeout=200)
    assert proc.stdout.count("Booting Linux on physical CPU") >= 2, proc.stdout[-2000:]


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
def test_ipis_and_virtual_timer_give_the_same_results_as_qemu(debian_images, tmp_path, mode):
    """Debian's kernel, which nobody here wrote, uses IPIs between all CPUs and the
    virtual timer; what it reports about them is the same on armvisor and on QEMU."""
    data = build_initramfs(debian_images.busybox, debian_images.kernel_release,
                           debian_images.modules,
                           extra=[ExtraFile(HERE / "smp_results.sh", "/opt/smp_results.sh")])
    initrd = tmp_path / "smp.cpio.gz"
    initrd.write_bytes(data)
    hook = "armvisor.run=/opt/smp_results.sh"
    ours = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook, *mode), capture_output=True,
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


def test_deterministic_boots_are_identical(debian_images, tmp_path, mode):
    """With --deterministic, two 4-CPU boots (4 pinned vCPUs under --hyp) print the
    same bytes, kernel timestamps included, and write the same trace file."""
    initrd, hook = script_initramfs(debian_images, tmp_path, "cat /proc/interrupts\n", "irqs")
    runs, traces = [], []
    for number in range(2):
        trace = tmp_path / f"trace{number}.json"
        runs.append(subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook, *mode,
                                                "--deterministic", "--trace", str(trace)),
                                   capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60))
        traces.append(trace.read_bytes())
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:]
    assert "smp: Brought up 1 node, 4 CPUs" in runs[0].stdout
    assert runs[0].stdout == runs[1].stdout
    assert traces[0] == traces[1]


def test_two_vms_sharing_pcpus_repeat_exactly(debian_images, tmp_path):
    """Two Debian VMs time-sliced on 2 pCPUs, --deterministic: the same console
    (both VMs' lines interleaved the same way) and the same trace, twice."""
    initrd, hook = script_initramfs(debian_images, tmp_path,
                                    'echo "hello from a VM with $(nproc) cpus"\n', "hello")
    spec = (f"kernel={debian_images.kernel},initrd={initrd},smp=2,memory=256M,"
            f"append=console=ttyAMA0 {hook},placement=shared")
    outputs = []
    for number in range(2):
        trace = tmp_path / f"trace{number}.json"
        proc = subprocess.run([sys.executable, "-m", "armvisor", "run", "--hyp", "--pcpus", "2",
                               "--vm", spec + ",name=a", "--vm", spec + ",name=b",
                               "--deterministic", "--trace", str(trace),
                               "--timeout", str(BOOT_TIMEOUT)],
                              capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append((proc.stdout, trace.read_bytes()))
    assert "[b] hello from a VM with 2 cpus" in outputs[0][0]
    assert outputs[0] == outputs[1]


def test_interactive_shell_ctrl_c_and_escape(debian_images, mode):
    """Typing works, Ctrl-C reaches the guest, Ctrl-A x quits armvisor (exit 130)."""
    term = Terminal(armvisor_cmd(debian_images, debian_images.initramfs, 2, "", *mode),
                    timeout=BOOT_TIMEOUT)
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


def test_shell_poweroff_exits_zero(debian_images, mode):
    term = Terminal(armvisor_cmd(debian_images, debian_images.initramfs, 4, "", *mode),
                    timeout=BOOT_TIMEOUT)
    term.expect(INIT_MARKER)
    time.sleep(1.0)
    term.send(b"poweroff -f\r")
    term.expect("reboot: Power down", timeout=60)
    assert term.close() == 0
