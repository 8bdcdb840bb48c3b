"""The checks behind one-line errors for bad input, called as the Python API calls them."""

from __future__ import annotations

import math
import mmap
import os
import struct

import fdt
import pytest

from armvisor.errors import ArmvisorError
from armvisor.hypervisor.config import VmConfig, check_vm, load_vm_file, parse_cpu_list
from armvisor.machine import memory
from armvisor.machine.config import (MAX_SLICE_BUDGET, MachineConfig, check_timeout,
                                     format_size)
from armvisor.machine.dtb import BoardDescription, build_dtb, check_bootargs, check_dtb
from armvisor.machine.loader import read_dtb_file, read_initrd_file, read_kernel_file
from armvisor.machine.memory import Ram, host_memory_available, read_input_file
from armvisor.trace.chrome import ChromeTraceWriter

MiB = 1 << 20


def one_line_error(call, *args, match: str, **kwargs) -> str:
    with pytest.raises(ArmvisorError, match=match) as err:
        call(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- bootargs -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "console=ttyAMA0 root=/dev/vda rw", "name=café ☃",
                                  "quoted=\"a b\" x=~!@#$%^&*()"])
def test_bootargs_accepted(text):
    check_bootargs(text, "--append")


@pytest.mark.parametrize("text, match", [
    ("a\x00b", r"U\+0000 at character 2"),
    ("\tx", r"U\+0009 at character 1"),
    ("x\n", r"U\+000A at character 2"),
    ("\x1b[31m", r"U\+001B"),
    ("x\x7f", r"U\+007F"),
    ("x\x85", r"U\+0085"),                          # C1 control (NEL)
    ("caf\udce9", r"byte 0xe9 at character 4 is not UTF-8"),
    ("\ud800", r"lone surrogate U\+D800"),
])
def test_bootargs_refused(text, match):
    message = one_line_error(check_bootargs, text, "--append", match=match)
    assert message.startswith("--append: ")
    message.encode("ascii")                         # printable on any terminal


def test_bootargs_must_be_a_string():
    one_line_error(check_bootargs, b"console=ttyAMA0", "--append", match="must be a string")


def test_utf8_bootargs_reach_the_dtb_as_utf8_bytes():
    blob = build_dtb(BoardDescription(1, 0x4000_0000, 128 * MiB, "smc", bootargs="x=café"))
    assert fdt.parse_dtb(blob).get_property("bootargs", "/chosen") is not None
    assert "x=café\0".encode() in blob


def test_build_dtb_refuses_control_characters():
    one_line_error(build_dtb, BoardDescription(1, 0x4000_0000, 128 * MiB, "smc",
                                               bootargs="a\x01"), match="U\\+0001")


def test_machine_config_and_vm_check_append():
    one_line_error(MachineConfig, kernel="k", append="a\nb", match="--append: control")
    one_line_error(check_vm, VmConfig(name="a", kernel="k", append="\x01"), match="append: control")


# -- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [0, -1, MAX_SLICE_BUDGET + 1, 2**63, 2**64])
def test_slice_budget_out_of_range(budget):
    one_line_error(MachineConfig, kernel="k", slice_budget=budget, match="--slice must be between")


def test_slice_budget_bounds_accepted():
    assert MachineConfig(kernel="k", slice_budget=1).slice_budget == 1
    assert MachineConfig(kernel="k", slice_budget=MAX_SLICE_BUDGET).slice_budget == MAX_SLICE_BUDGET
    assert MAX_SLICE_BUDGET < 2**63                 # the C side's int64_t


@pytest.mark.parametrize("field, value", [("smp", 2.0), ("smp", "2"), ("memory", 512.0 * MiB),
                                          ("slice_budget", True), ("smp", None)])
def test_machine_config_wants_whole_numbers(field, value):
    one_line_error(MachineConfig, kernel="k", **{field: value}, match="whole number")


def test_vm_config_wants_whole_numbers():
    one_line_error(check_vm, VmConfig(name="a", kernel="k", smp=1.5), match="smp must be a whole")


@pytest.mark.parametrize("timeout", [None, 0.001, 1, 30.5])
def test_timeout_accepted(timeout):
    check_timeout(timeout)


@pytest.mark.parametrize("timeout", [0, -1, -0.5, math.nan, math.inf, -math.inf, "5", True])
def test_timeout_refused(timeout):
    one_line_error(check_timeout, timeout, match="--timeout must be a positive number")


@pytest.mark.parametrize("size, text", [(0, "0 bytes"), (1023, "1023 bytes"), (512 * MiB, "512 MiB"),
                                        (200 << 30, "200 GiB"), (3 << 29, "1.5 GiB"),
                                        (1 << 40, "1 TiB")])
def test_format_size(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize("text", ["0-999999999999", "64", "0,2,64-65"])
def test_cpu_list_beyond_any_machine(text):
    one_line_error(parse_cpu_list, text, match="does not exist")


def test_vm_pcpus_beyond_any_machine():
    one_line_error(check_vm, VmConfig(name="a", kernel="k", pcpus=(0, 10**20)),
                   match="cannot exist")


# -- guest RAM ----------------------------------------------------------------------------

def test_ram_refused_by_the_host_says_how_much(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  2048 kB\nMemAvailable:    1048576 kB\n")

    def refuse(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(memory.mmap, "mmap", refuse)
    monkeypatch.setattr(memory, "host_memory_available",
                        lambda: host_memory_available(str(meminfo)))
    message = one_line_error(Ram, 0x4000_0000, 200 << 30, match="cannot allocate 200 GiB")
    assert "1 GiB available" in message and "MemAvailable" in message


@pytest.mark.parametrize("size", [0, -4096, 4095, 1.5])
def test_ram_size_must_be_whole_pages(size):
    one_line_error(Ram, 0x4000_0000, size, match="RAM size must be a positive multiple")


def test_ram_stays_lazy():
    ram = Ram(0x4000_0000, 1 << 30)                 # 1 GiB, never touched
    assert ram.read(0x4000_0000 + (1 << 29), 8) == bytes(8)


def test_host_memory_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   24070964 kB\n")
    assert host_memory_available(str(meminfo)) == 24070964 * 1024
    assert host_memory_available(str(tmp_path / "none")) is None
    meminfo.write_text("MemTotal: 1 kB\n")
    assert host_memory_available(str(meminfo)) is None


# -- input files --------------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


def test_fifo_is_refused_without_blocking(fifo):
    one_line_error(read_input_file, fifo, "kernel", match="kernel file .* is a named pipe")


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"),
                                        ("/", "a directory")])
def test_special_files_are_refused(path, kind):
    one_line_error(read_input_file, path, "initrd", match=f"is {kind}, not a regular file")


def test_missing_file_and_nul_in_name(tmp_path):
    one_line_error(read_input_file, str(tmp_path / "nope"), "kernel", match="No such file")
    one_line_error(read_input_file, "a\0b", "kernel", match="NUL")


def sparse(tmp_path, name, size, head=b""):
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return str(path)


def test_file_larger_than_ram_is_refused_before_reading(tmp_path):
    path = sparse(tmp_path, "huge", 1 << 40)
    message = one_line_error(read_initrd_file, path, 64 * MiB, match="1 TiB")
    assert "64 MiB" in message
    one_line_error(read_kernel_file, path, 64 * MiB, match="more than the machine's RAM")


def test_elf_kernel_may_be_larger_than_ram(tmp_path):
    # Symbols and DWARF are never loaded: only the host's free memory bounds an ELF.
    path = sparse(tmp_path, "vmlinux", 2 * MiB, head=b"\x7fELF")
    assert len(read_kernel_file(path, MiB)) == 2 * MiB
    if (host_memory_available() or 0) >= 1 << 40:
        pytest.skip("this host has 1 TiB free")
    huge = sparse(tmp_path, "huge.elf", 1 << 40, head=b"\x7fELF")
    one_line_error(read_kernel_file, huge, MiB, match="MemAvailable")


def test_bounded_read_of_a_file_whose_size_says_zero():
    # /proc files report st_size 0; the read itself is bounded too.
    one_line_error(read_input_file, "/proc/self/maps", "initrd", 10, match="more than")


def header(magic=0xD00DFEED, totalsize=None, off_struct=0x38, off_strings=0x48, off_rsvmap=0x28,
           version=17, last_comp=16, size=0x60) -> bytes:
    total = size if totalsize is None else totalsize
    return struct.pack(">10I", magic, total, off_struct, off_strings, off_rsvmap, version,
                       last_comp, 0, 0, 0).ljust(size, b"\0")


GOOD_DTB = build_dtb(BoardDescription(1, 0x4000_0000, 128 * MiB, "smc"))


def test_generated_dtb_passes_check():
    check_dtb(GOOD_DTB, "virt.dtb")


@pytest.mark.parametrize("data, match", [
    (b"", "too short"),
    (b"\xd0\x0d\xfe\xed", "too short"),
    (b"x" * 64, "magic 0x78787878, expected 0xd00dfeed"),
    (header(totalsize=0x1000), "totalsize 4096 but the file has 96 bytes"),
    (header(totalsize=8), "totalsize 8"),
    (header(version=3, last_comp=2), "version 3"),
    (header(last_comp=18), "compatible with 18"),
    (header(off_struct=0x100), "off_dt_struct 0x100"),
    (header(off_rsvmap=0), "off_mem_rsvmap"),
    (GOOD_DTB[:0x48] + b"\xff" * (len(GOOD_DTB) - 0x48), "corrupt"),
])
def test_check_dtb_refuses(data, match):
    message = one_line_error(check_dtb, data, "x.dtb", match=match)
    assert "'x.dtb'" in message


def test_read_dtb_file(tmp_path):
    good = tmp_path / "good.dtb"
    good.write_bytes(GOOD_DTB)
    assert read_dtb_file(str(good), 128 * MiB) == GOOD_DTB
    bad = tmp_path / "bad.dtb"
    bad.write_bytes(b"not a dtb" * 10)
    one_line_error(read_dtb_file, str(bad), 128 * MiB, match="bad.dtb' is not a device tree")


# -- --config ------------------------------------------------------------------------------

def test_config_not_utf8(tmp_path):
    path = tmp_path / "vms.toml"
    path.write_bytes(b'[[vm]]\nkernel = "ab\xe9"\n')
    one_line_error(load_vm_file, str(path), match=r"not UTF-8 text: byte 0xe9 at line 2, column 13")


@pytest.mark.parametrize("data, match", [
    (b'[[vm]\nkernel = "k"\n', "not valid TOML"),
    (b"a = " + b"[" * 100_000, "nested too deeply"),
    (b"#" * (2 * MiB), "more than a VM description can need"),
])
def test_config_not_toml(tmp_path, data, match):
    path = tmp_path / "vms.toml"
    path.write_bytes(data)
    one_line_error(load_vm_file, str(path), match=match)


def test_config_fifo(fifo):
    one_line_error(load_vm_file, fifo, match="config file .* is a named pipe")


# -- --trace --------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["nope/t.json", "file/t.json", ""])
def test_trace_file_that_cannot_be_written(tmp_path, where):
    (tmp_path / "file").write_text("")
    path = str(tmp_path / where) if where else str(tmp_path)      # "" : a directory
    one_line_error(ChromeTraceWriter, path, match="cannot write the trace file")


def test_trace_file_nul_in_name():
    one_line_error(ChromeTraceWriter, "t\0.json", match="cannot write the trace file")


def test_mmap_flags_keep_ram_private_and_anonymous(monkeypatch):
    seen = {}
    real = mmap.mmap

    def spy(fileno, length, **kwargs):
        seen.update(kwargs, fileno=fileno)
        return real(fileno, length, **kwargs)

    monkeypatch.setattr(memory.mmap, "mmap", spy)
    Ram(0x4000_0000, 16 * MiB)
    assert seen == {"fileno": -1, "flags": mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS}
