"""Every `armvisor run` option that means something on the bare board and under
the hypervisor works in both; one that does not apply is a one-line error."""

from __future__ import annotations

import fdt
import pytest

from tests.machine.test_cli import armvisor, assert_one_line_error
from tests.machine.tinyguest import build

MODES = {"bare": ["--psci-conduit", "hvc"], "hyp": ["--hyp"]}
REPO_GUESTS = "guests/build"

# PSCI over HVC in both modes (the VM's DTB says hvc by default).
SYSTEM_OFF = """
    ldr x0, =0x84000008
    hvc #0
"""
SYSTEM_RESET = """
    ldr x0, =0x84000009
    hvc #0
"""


@pytest.fixture(params=list(MODES))
def mode(request):
    return MODES[request.param]


def test_no_reboot_ends_the_run_on_system_reset(tmp_path, mode):
    guest = build(tmp_path, "mov w1, #'b'\n putc w1\n" + SYSTEM_RESET, "reset")
    once = armvisor("run", "--kernel", guest, "--no-reboot", *mode, "--timeout", "30")
    assert (once.returncode, once.stdout) == (0, "b"), once.stderr
    again = armvisor("run", "--kernel", guest, *mode, "--timeout", "2")
    assert again.returncode == 4 and again.stdout.count("b") > 3, again.stderr


def test_the_timeout_ends_a_wait_for_a_far_timer(tmp_path, mode):
    # The virtual timer fires in about an hour; the CPU waits in WFI meanwhile.
    guest = build(tmp_path, """
    mrs x1, cntvct_el0
    ldr x2, =225000000000
    add x1, x1, x2
    msr cntv_cval_el0, x1
    mov x1, #1
    msr cntv_ctl_el0, x1
1:  wfi
    b 1b
""", "far_timer")
    proc = armvisor("run", "--kernel", guest, *mode, "--timeout", "1", timeout=30)
    assert proc.returncode == 4, proc.stderr
    assert "timeout after 1 s" in proc.stderr


def _demo_run(tmp_path, mode, *extra, tag=""):
    trace = tmp_path / f"trace{tag}.json"
    proc = armvisor("run", "--smp", "2", "--kernel", f"{REPO_GUESTS}/timer.elf", *mode,
                    "--deterministic", "--trace", trace, *extra, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, trace.read_bytes()


def test_deterministic_runs_repeat_byte_for_byte(tmp_path, mode, guest_programs):
    first = _demo_run(tmp_path, mode, tag="1")
    second = _demo_run(tmp_path, mode, tag="2")
    assert first == second


def test_the_slice_is_honoured(tmp_path, mode, guest_programs):
    # Deterministic runs differ only through the interleaving the slice gives.
    short = _demo_run(tmp_path, mode, "--slice", "1000", tag="s")
    long = _demo_run(tmp_path, mode, "--slice", "50000", tag="l")
    assert short[1] != long[1]


def test_a_given_dtb_replaces_the_generated_one(tmp_path, mode, guest_programs):
    dtb = tmp_path / "two.dtb"
    made = armvisor("run", "--smp", "2", "--kernel", f"{REPO_GUESTS}/smp_demo.elf",
                    "--psci-conduit", "hvc", "--append", "from-the-user", "--dumpdtb", dtb)
    assert made.returncode == 0, made.stderr
    assert b"from-the-user" in dtb.read_bytes()
    proc = armvisor("run", "--smp", "2", "--kernel", f"{REPO_GUESTS}/smp_demo.elf", *mode,
                    "--dtb", dtb, "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    assert "psci hvc" in proc.stdout


def test_the_vm_dtb_names_the_conduit_asked_for(tmp_path):
    for conduit in ("smc", "hvc"):
        dtb = tmp_path / f"{conduit}.dtb"
        proc = armvisor("run", "--hyp", "--kernel", f"{REPO_GUESTS}/smp_demo.elf",
                        "--psci-conduit", conduit, "--dumpdtb", dtb)
        assert proc.returncode == 0, proc.stderr
        tree = fdt.parse_dtb(dtb.read_bytes())
        assert tree.get_property("method", "/psci").value == conduit


@pytest.mark.parametrize("args,words", [
    (["--pcpus", "2"], ["--pcpus needs --hyp"]),
    (["--hyp", "--vm", "kernel=x.elf", "--smp", "2"], ["--smp", "each VM"]),
    (["--hyp", "--vm", "kernel=x.elf", "--virtio-console"], ["--virtio-console"]),
    (["--vm", "kernel=x.elf", "--drive", "file=d.img"], ["--drive"]),
])
def test_an_option_that_does_not_apply_is_an_error(args, words):
    proc = armvisor("run", "--kernel", "k.elf", *args) if "--hyp" not in args and \
        "--vm" not in args else armvisor("run", *args)
    assert_one_line_error(proc, 2, *words)


@pytest.fixture(scope="module")
def guest_programs():
    import shutil
    import subprocess
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs Debian's gcc-aarch64-linux-gnu")
    subprocess.run(["make", "-s", "-C", "guests"], check=True)
