"""armvisor's Python API: the README's examples, run as they are, and what they
do not show (code breakpoints, instruction counts, memory writes, errors)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import armvisor
from tests.machine.tinyguest import build

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def guests():
    proc = subprocess.run(["make", "-s", "-C", str(REPO / "guests")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build the guest programs: {proc.stderr[-300:]}")


def readme_examples() -> list:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_has_api_examples():
    assert len(readme_examples()) >= 2


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_example_runs(index, guests, monkeypatch):
    monkeypatch.chdir(REPO)
    exec(compile(readme_examples()[index], f"README example {index}", "exec"), {})


def test_a_code_breakpoint_stops_before_the_instruction_and_the_run_goes_on(tmp_path):
    elf = build(tmp_path, """
    mov x5, #1
target:
    mov x5, #2
    ldr x0, =0x84000008
    hvc #0
""", "bp")
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as handle:
        symbols = ELFFile(handle).get_section_by_name(".symtab")
        target = next(s["st_value"] for s in symbols.iter_symbols() if s.name == "target")
    m = armvisor.Machine(kernel=str(elf), psci_conduit="hvc")
    assert m.run(until=armvisor.Pc(target), timeout=10) is None
    assert m.cpus[0].regs.pc == target and m.cpus[0].regs.x[5] == 1
    assert m.run(timeout=10) == 0
    assert m.cpus[0].regs.x[5] == 2


def test_stepping_is_exact_and_registers_can_be_written(tmp_path):
    elf = build(tmp_path, """
    mov x3, #0
1:  add x3, x3, #1
    b 1b
""", "count")
    m = armvisor.Machine(kernel=str(elf))
    m.step(0, 3)                          # ldr x20 (prelude), mov x3, add
    assert m.cpus[0].regs.x[3] == 1
    m.step(0, 20)                         # ten more turns of the loop
    assert m.cpus[0].regs.x[3] == 11
    m.cpus[0].regs.x[3] = 100
    m.step(0, 1)                          # b 1b
    m.step(0, 1)
    assert m.cpus[0].regs.x[3] == 101


def test_instruction_count_condition_and_memory_write(tmp_path):
    elf = build(tmp_path, """
    ldr x1, =0x40100000
1:  ldr w2, [x1]
    cbz w2, 1b
    putc w2
    ldr x0, =0x84000008
    smc #0
""", "poll")
    m = armvisor.Machine(kernel=str(elf), slice=1000)
    assert m.run(until=armvisor.Instructions(20_000), timeout=10) is None
    assert 20_000 <= m.instructions < 22_000
    m.memory.write(0x40100000, b"Z\0\0\0")
    assert m.run(timeout=10) == 0
    assert m.console.output == b"Z"


def test_bad_machine_descriptions_are_armvisor_errors():
    with pytest.raises(armvisor.ArmvisorError, match="pcpus"):
        armvisor.Machine(kernel="x", pcpus=2)
    with pytest.raises(armvisor.ArmvisorError, match="not both"):
        armvisor.Machine(kernel="x", vms=[armvisor.VM(kernel="x")])
    with pytest.raises(armvisor.ArmvisorError, match="cannot read"):
        armvisor.Machine(kernel="/no/such/file")
