"""`armvisor run` as a user meets it: exit codes, one-line errors, reports, reset, DTB dump."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.machine.tinyguest import build


def armvisor(*args, input_=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "armvisor", *map(str, args)],
                          capture_output=True, text=True, input=input_, timeout=timeout)


def assert_one_line_error(proc, code, *words):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armvisor: error: "), proc.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def hello(tmp_path):
    return build(tmp_path, """
    mov w1, #'h'
    putc w1
    system_off
""", "hello")


def test_runs_and_powers_off(hello):
    proc = armvisor("run", "--kernel", hello)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "h", "")


@pytest.mark.parametrize("args, words", [
    (["--smp", "0"], ["--smp"]),
    (["--smp", "65"], ["--smp", "64"]),
    (["--memory", "lots"], ["size"]),
    (["--memory", "8M"], ["--memory"]),
    (["--psci-conduit", "svc"], ["psci-conduit"]),
    (["--cpu", "cortex-a99"], ["cpu"]),
    (["--frobnicate"], ["frobnicate"]),
    (["--drive", "disk.img"], ["--drive"]),
    (["--drive", "file=/nonexistent/disk.img"], ["disk.img"]),
    (["--drive", "file=x.img,format=qcow2"], ["format=raw"]),
    (["--drive", "file=x.img,cache=none"], ["cache"]),
])
def test_bad_options(hello, args, words):
    assert_one_line_error(armvisor("run", "--kernel", hello, *args), 2, *words)


def test_missing_kernel(tmp_path):
    assert_one_line_error(armvisor("run", "--kernel", tmp_path / "nope.elf"), 2, "nope.elf")


def test_truncated_elf(hello, tmp_path):
    cut = tmp_path / "cut.elf"
    cut.write_bytes(hello.read_bytes()[:100])
    assert_one_line_error(armvisor("run", "--kernel", cut), 2)


def test_image_too_big_for_ram(tmp_path):
    image = tmp_path / "big.bin"
    image.write_bytes(b"\x1f\x20\x03\xd5" * (5 << 20))      # 20 MiB of NOPs, 16 MiB of RAM
    assert_one_line_error(armvisor("run", "--kernel", image, "--memory", "16M"), 2)


def test_missing_initrd(hello, tmp_path):
    assert_one_line_error(armvisor("run", "--kernel", hello, "--initrd", tmp_path / "x"), 2,
                          "initrd")


def test_timeout_names_every_cpu(tmp_path):
    spin = build(tmp_path, """
    ldr x0, =0xC4000003     // CPU_ON cpu1 at `spin`
    mov x1, #1
    adr x2, spin
    mov x3, #0
    smc #0
spin:
    b spin
""", "spin")
    proc = armvisor("run", "--kernel", spin, "--smp", "3", "--timeout", "0.5")
    assert proc.returncode == 4
    assert "timeout" in proc.stderr.splitlines()[0]
    assert "cpu0: running" in proc.stderr and "cpu1: running" in proc.stderr
    assert "cpu2: off" in proc.stderr
    assert "pc=0x" in proc.stderr and "el=1" in proc.stderr


RESET_COUNTER = """
    // prints one 'b' per boot: RAM is reloaded on reset, so the output counts boots
    mov w1, #'b'
    putc w1
    ldr x0, =0x84000009     // SYSTEM_RESET
    smc #0
    b .
"""


def test_system_reset_reboots_and_no_reboot_exits(tmp_path):
    elf = build(tmp_path, RESET_COUNTER, "reset")
    proc = armvisor("run", "--kernel", elf, "--no-reboot")
    assert (proc.returncode, proc.stdout) == (0, "b")
    proc = armvisor("run", "--kernel", elf, "--timeout", "1")
    assert proc.returncode == 4
    assert proc.stdout.startswith("bbb")          # it really rebooted, again and again


@pytest.mark.skipif(shutil.which("dtc") is None, reason="needs dtc (device-tree-compiler)")
def test_dumpdtb_is_accepted_by_dtc(hello, tmp_path):
    out = tmp_path / "virt.dtb"
    proc = armvisor("run", "--kernel", hello, "--smp", "4", "--dumpdtb", out,
                    "--append", "console=ttyAMA0")
    assert proc.returncode == 0 and out.exists()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(out)], capture_output=True,
                         text=True, check=True).stdout
    assert 'enable-method = "psci"' in dts and 'bootargs = "console=ttyAMA0"' in dts
    assert dts.count('device_type = "cpu"') == 4


def test_trace_file_has_a_track_per_cpu(tmp_path):
    elf = build(tmp_path, """
    ldr x0, =0xC4000003
    mov x1, #1
    adr x2, second
    mov x3, #0x55
    smc #0
    b .
second:
    system_off
""", "two")
    trace = tmp_path / "t.json"
    assert armvisor("run", "--kernel", elf, "--smp", "2", "--trace", trace).returncode == 0
    data = json.loads(trace.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {"cpu0", "cpu1", "machine"} <= names
    calls = [e for e in events if e.get("name") == "psci.call"]
    assert [c["args"]["function"] for c in calls] == ["CPU_ON", "SYSTEM_OFF"]


def test_every_cpu_waiting_with_nothing_armed_is_a_hang(tmp_path):
    elf = build(tmp_path, """
1:  wfi
    b 1b
""", "hang")
    proc = armvisor("run", "--kernel", elf, "--timeout", "20")
    assert proc.returncode == 3
    assert "hangs" in proc.stderr.splitlines()[0]
    assert "cpu0: wfi" in proc.stderr


def test_waiting_for_a_timer_sleeps_on_the_host_instead_of_spinning(tmp_path):
    """WFI until a virtual timer 0.5 s away: the wall time passes, the CPU time does not."""
    import resource
    import time
    elf = build(tmp_path, """
    // GIC: distributor Grp1 + ARE, redistributor 0 awake, PPI 27 enabled, CPU interface on
    ldr x1, =0x08000000
    mov w2, #0x12
    str w2, [x1]
    ldr x1, =0x080A0014
    str wzr, [x1]
    ldr x1, =0x080B0100
    mov w2, #(1 << 27)
    str w2, [x1]
    mov x2, #1
    msr S3_0_C12_C12_5, x2       // ICC_SRE_EL1
    mov x2, #0xff
    msr S3_0_C4_C6_0, x2         // ICC_PMR_EL1
    mov x2, #1
    msr S3_0_C12_C12_7, x2       // ICC_IGRPEN1_EL1
    mrs x3, cntvct_el0
    mrs x4, cntfrq_el0
    add x3, x3, x4, lsr #1       // now + 0.5 s
    msr cntv_cval_el0, x3
    mov x2, #1
    msr cntv_ctl_el0, x2
1:  wfi                          // IRQs stay masked: the pending PPI only ends the WFI
    mrs x5, cntvct_el0
    cmp x5, x3
    b.lo 1b
    mov w1, #'t'
    putc w1
    system_off
""", "sleep")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = armvisor("run", "--kernel", elf, "--timeout", "20")
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert (proc.returncode, proc.stdout) == (0, "t"), proc.stderr
    assert wall >= 0.5
    assert cpu < wall - 0.3          # most of the half second was spent asleep
