"""Crash reports start with the first exception, symbolized, and what armvisor thinks happened."""

import re
import subprocess
import sys

import pytest

from tests.machine.tinyguest import build

JUMP_TO_NOWHERE = """
    bl jumper
    b .
jumper:
    nop
    ldr x0, =0x20000000      // between flash and the devices: nothing there
    blr x0
"""


def run(*args):
    return subprocess.run([sys.executable, "-m", "armvisor", "run", *map(str, args),
                           "--timeout", "20"], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode, culprit", [((), "cpu0"), (("--hyp",), "vm0/vcpu0")],
                         ids=["bare", "vm"])
def test_jump_to_nowhere_names_the_first_exception_and_its_symbol(tmp_path, mode, culprit):
    elf = build(tmp_path, JUMP_TO_NOWHERE)
    proc = run(*mode, "--kernel", elf)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"armvisor: error: {culprit}: exception loop")
    # The report starts with the exception that began it all, not the loop's ones ...
    assert lines[1].startswith(f"first exception: {culprit} EC 0x21 (instruction abort) "
                               "ESR 0x86000010 ELR 0x20000000 FAR 0x20000000")
    # ... and says what happened, naming where the call came from by its symbol.
    assert lines[2].startswith(f"what happened: {culprit} jumped to 0x20000000, where nothing "
                               "is mapped (LR 0x")
    assert "<jumper+0xc>: a call from there?)" in lines[2]
    assert "its vector (VBAR_EL1 = 0x0) faults as well" in lines[2]
    # The repeated exceptions of the loop are folded.
    assert re.search(r"\((these 2 lines )?x\d+\)", proc.stderr)


def test_symbols_from_a_system_map(tmp_path):
    elf = build(tmp_path, JUMP_TO_NOWHERE)
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-n", str(elf)], capture_output=True, text=True)
    jumper = next(int(line.split()[0], 16) for line in nm.stdout.splitlines()
                  if line.endswith(" jumper"))
    system_map = tmp_path / "System.map"
    system_map.write_text(f"{jumper:016x} T from_the_map\n{jumper + 0x100:016x} T after\n")
    stripped = tmp_path / "stripped.elf"
    subprocess.run(["aarch64-linux-gnu-strip", "-o", str(stripped), str(elf)], check=True)
    proc = run("--kernel", stripped, "--symbols", system_map)
    assert proc.returncode == 3
    assert "<from_the_map+0xc>" in proc.stderr.splitlines()[2]
    proc = run("--kernel", stripped)
    assert "<" not in proc.stderr.splitlines()[2]                # no symbols, no names


def test_a_bad_symbols_file_is_one_line_and_exit_2(tmp_path):
    elf = build(tmp_path, JUMP_TO_NOWHERE)
    junk = tmp_path / "junk.txt"
    junk.write_text("not symbols\n")
    for path in (junk, tmp_path / "missing.map"):
        proc = run("--kernel", elf, "--symbols", path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
