"""`armvisor run` on a terminal: the status line while the guest is silent, Ctrl-A h and x."""

import os
import subprocess
import sys
import time

import pytest

from tests.machine.tinyguest import build

SILENT = """
1:  wfi
    b 1b
"""


def run_on_terminal(elf, *extra, wait=1.8):
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "armvisor", "run", "--kernel", str(elf),
                             "--timeout", "30", *extra],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        time.sleep(wait)                               # silent for more than a second
        os.write(master, b"\x01h")
        time.sleep(0.3)
        os.write(master, b"\x01x")
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, err.decode()


@pytest.mark.parametrize("quiet", [False, True])
def test_status_line_help_and_a_clean_quit(tmp_path, quiet):
    elf = build(tmp_path, SILENT)
    status, err = run_on_terminal(elf, *(["--quiet"] if quiet else []))
    assert status == 130
    assert "error" not in err and "armvisor: quit (Ctrl-A x)" in err
    assert "Ctrl-A x" in err and "Ctrl-A h" in err
    assert ("1/1 CPUs online, 0 PSCI calls" in err) is not quiet
