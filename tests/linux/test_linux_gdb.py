"""gdb-multiarch on Debian's kernel: `-S` waits for the debugger, and a breakpoint on
a kernel function stops the secondary CPU that runs it.

Debian's packages ship no symbols (their System.map is a placeholder; the real
one is in the -dbg package), so the test asks the kernel itself: a first boot
prints the function's address from /proc/kallsyms, and `nokaslr` keeps it the
same in the second boot, which the debugger stops."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from armvisor.devtools.ports import free_port, listening
from tests.linux.test_linux import BOOT_TIMEOUT, armvisor_cmd, script_initramfs

GDB = shutil.which("gdb-multiarch")
FUNCTION = "secondary_start_kernel"


def kernel_address(images, tmp_path, mode) -> int:
    initrd, hook = script_initramfs(images, tmp_path,
                                    f"grep ' {FUNCTION}$' /proc/kallsyms\n", "kallsyms")
    proc = subprocess.run(armvisor_cmd(images, initrd, 2, f"nokaslr {hook}", *mode),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    found = re.search(rf"^([0-9a-f]{{16}}) [tT] {FUNCTION}\r?$", proc.stdout, re.M)
    assert proc.returncode == 0 and found, proc.stdout[-3000:]
    return int(found.group(1), 16)


@pytest.mark.skipif(GDB is None, reason="needs gdb-multiarch (scripts/setup installs it)")
@pytest.mark.parametrize("mode", [[], ["--hyp"]], ids=["bare", "hyp"])
def test_a_breakpoint_in_linux_stops_the_secondary_that_runs_it(debian_images, tmp_path, mode):
    entry = kernel_address(debian_images, tmp_path, mode)
    port = free_port()
    armvisor = subprocess.Popen(
        armvisor_cmd(debian_images, debian_images.initramfs, 2, "nokaslr", *mode,
                     "-S", "--gdb", f"tcp::{port}", "--quiet"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        for _ in range(600):
            if listening(port):
                break
            time.sleep(0.05)
        gdb = subprocess.run(
            [GDB, "-q", "-nx", "-batch", "-ex", "set pagination off", "-ex", "set confirm off",
             "-ex", f"target remote :{port}", "-ex", f"break *{entry:#x}", "-ex", "continue",
             "-ex", "printf \"stopped thread=%d pc=%#lx\\n\", $_thread, $pc",
             "-ex", "info threads", "-ex", "kill"],
            capture_output=True, text=True, timeout=BOOT_TIMEOUT)
        out = gdb.stdout + gdb.stderr
        # CPU 1 (thread 2) runs the function when Linux brings it up; CPU 0 never does.
        assert f"stopped thread=2 pc={entry:#x}" in out, out[-3000:]
        assert re.search(r"cpu1 ON EL1|vcpu1 RUNNABLE EL1", out), out[-3000:]
    finally:
        if armvisor.poll() is None:
            os.killpg(armvisor.pid, signal.SIGKILL)
        armvisor.wait()
