"""VM descriptions: the --vm option, the --config TOML file, cross-VM validation."""

from __future__ import annotations

import os

import pytest

from armvisor.errors import ArmvisorError
from armvisor.hypervisor.config import (
    VmConfig,
    load_vm_file,
    parse_cpu_list,
    parse_vm_option,
    validate,
)

MiB = 1 << 20


def one_line_error(call, *args, match: str) -> str:
    with pytest.raises(ArmvisorError, match=match) as err:
        call(*args)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- --vm ---------------------------------------------------------------------------------


def test_minimal_option_gets_the_defaults():
    vm = parse_vm_option("kernel=Image", 2)
    assert vm == VmConfig(name="vm2", kernel="Image", smp=1, memory=512 * MiB, initrd=None,
                          append="", drives=(), placement="pinned", pcpus=None,
                          cpu="cortex-a57")


def test_every_key():
    vm = parse_vm_option("kernel=/k/Image,smp=4,memory=1G,initrd=/k/initrd.cpio,"
                         "append=console=ttyAMA0 quiet,drive=a.img,drive=b.img,"
                         "placement=shared,pcpus=1-2,name=web,cpu=max", 0)
    assert vm == VmConfig(name="web", kernel="/k/Image", smp=4, memory=1 << 30,
                          initrd="/k/initrd.cpio", append="console=ttyAMA0 quiet",
                          drives=("a.img", "b.img"), placement="shared", pcpus=(1, 2),
                          cpu="max")


@pytest.mark.parametrize("text, size", [("512", 512 * MiB), ("256M", 256 * MiB),
                                        ("2G", 2 << 30), ("65536K", 64 * MiB)])
def test_memory_sizes_follow_qemu(text, size):
    assert parse_vm_option(f"kernel=k,memory={text}", 0).memory == size


def test_double_comma_is_a_literal_comma():
    vm = parse_vm_option("kernel=a,,b,append=x,,y,,,,z,smp=2", 0)
    assert vm.kernel == "a,b"
    assert vm.append == "x,y,,z"
    assert vm.smp == 2


def test_double_comma_before_a_separator():
    vm = parse_vm_option("append=a,,,smp=3,kernel=k", 0)
    assert vm.append == "a," and vm.smp == 3


def test_equals_sign_inside_a_value():
    assert parse_vm_option("kernel=k,append=root=/dev/vda rw", 0).append == "root=/dev/vda rw"


@pytest.mark.parametrize("text, cpus", [
    ("pcpus=0-3", (0, 1, 2, 3)),
    ("pcpus=0,2", (0, 2)),
    ("pcpus=0,,2", (0, 2)),
    ("pcpus=3,1-2,smp=2", (3, 1, 2)),
    ("pcpus=5", (5,)),
])
def test_pcpu_lists(text, cpus):
    assert parse_vm_option(f"kernel=k,{text}", 0).pcpus == cpus


@pytest.mark.parametrize("text, match", [
    ("smp=2", "kernel=FILE is required"),
    ("kernel=k,foo=1", "unknown key 'foo'"),
    ("kernel=k,smp=two", "smp must be a number"),
    ("kernel=k,smp=0", "smp must be between 1 and 64"),
    ("kernel=k,smp=65", "smp must be between 1 and 64"),
    ("kernel=k,memory=lots", "bad size"),
    ("kernel=k,memory=1M", "memory must be between"),
    ("kernel=k,memory=16400K", "multiple of 64K"),
    ("kernel=k,placement=spread", "placement must be pinned or shared"),
    ("kernel=k,pcpus=3-1", "end is below the start"),
    ("kernel=k,pcpus=a", "bad pCPU list"),
    ("kernel=k,pcpus=1,1", "names a pCPU twice"),
    ("kernel=k,pcpus=", "bad pCPU list"),
    ("kernel=k,cpu=cortex-a53", "cpu must be one of"),
    ("kernel=k,name=a b", "bad name"),
    ("kernel=k,name=", "bad name"),
    ("kernel=k,smp=1,smp=2", "smp given twice"),
    ("kernel=k,smp", "expected key=value"),
    ("kernel=k,", "empty item"),
    ("kernel=", "kernel=FILE is required"),
    ("kernel=k,drive=", "drive needs a FILE"),
])
def test_bad_options(text, match):
    message = one_line_error(parse_vm_option, text, 1, match=match)
    assert message.startswith("--vm #2: ")


def test_too_many_drives():
    text = "kernel=k," + ",".join(f"drive=d{i}" for i in range(33))
    one_line_error(parse_vm_option, text, 0, match="at most 32 drives")


# -- TOML -------------------------------------------------------------------------------


def write(tmp_path, text: str) -> str:
    path = tmp_path / "vms.toml"
    path.write_text(text)
    return str(path)


def test_toml_file_with_two_vms(tmp_path):
    path = write(tmp_path, """
pcpus = 4

[[vm]]
name = "a"
kernel = "/abs/Image"
smp = 2
memory = "1G"
initrd = "initrd.cpio"
append = "console=ttyAMA0, quiet"
drives = ["disk.img", "/abs/other.img"]
placement = "pinned"
pcpus = [0, 1]
cpu = "max"

[[vm]]
kernel = "Image"
smp = 4
memory = 256
placement = "shared"
pcpus = "2-3"
""")
    pcpus, vms = load_vm_file(path)
    assert pcpus == 4
    base = str(tmp_path)
    assert vms[0] == VmConfig(name="a", kernel="/abs/Image", smp=2, memory=1 << 30,
                              initrd=os.path.join(base, "initrd.cpio"),
                              append="console=ttyAMA0, quiet",
                              drives=(os.path.join(base, "disk.img"), "/abs/other.img"),
                              placement="pinned", pcpus=(0, 1), cpu="max")
    assert vms[1] == VmConfig(name="vm1", kernel=os.path.join(base, "Image"), smp=4,
                              memory=256 * MiB, placement="shared", pcpus=(2, 3))


def test_toml_without_pcpus_and_with_defaults(tmp_path):
    pcpus, vms = load_vm_file(write(tmp_path, '[[vm]]\nkernel = "/k"\n'))
    assert pcpus is None
    assert vms == [VmConfig(name="vm0", kernel="/k")]


@pytest.mark.parametrize("text, match", [
    ('[[vm]]\nkernel = "/k"\nsmp = "2"\n', r"\[\[vm\]\] #1: smp must be a number"),
    ('[[vm]]\nkernel = "/k"\nfoo = 1\n', "unknown key 'foo'"),
    ('[[vm]]\nkernel = "/k"\ndrive = "x"\n', "unknown key 'drive'"),
    ('[[vm]]\nkernel = "/k"\ndrives = "x"\n', "drives must be a list"),
    ('[[vm]]\nkernel = "/k"\nmemory = 1.5\n', "memory must be a size"),
    ('[[vm]]\nkernel = "/k"\nmemory = 8\n', "memory must be between"),
    ('[[vm]]\nkernel = "/k"\npcpus = [0, "1"]\n', "pcpus must be a list of numbers"),
    ('[[vm]]\nkernel = "/k"\nplacement = 1\n', "placement must be a string"),
    ('[[vm]]\nsmp = 1\n', "kernel = \"FILE\" is required"),
    ('[[vm]]\nkernel = "/k"\n[[vm]]\nkernel = "/k"\nsmp = 0\n', r"#2: smp must be between"),
    ('pcpus = 0\n[[vm]]\nkernel = "/k"\n', "pcpus must be a number between 1 and 64"),
    ('pcpus = true\n[[vm]]\nkernel = "/k"\n', "pcpus must be a number"),
    ('pcpu = 2\n[[vm]]\nkernel = "/k"\n', "unknown top-level key 'pcpu'"),
    ('pcpus = 2\n', "no VM"),
    ('vm = 3\n', "no VM"),
    ('[[vm]\nkernel = "/k"\n', "vms.toml: "),
])
def test_bad_toml_files(tmp_path, text, match):
    message = one_line_error(load_vm_file, write(tmp_path, text), match=match)
    assert message.startswith(str(tmp_path / "vms.toml"))


def test_missing_toml_file(tmp_path):
    one_line_error(load_vm_file, str(tmp_path / "nope.toml"), match="cannot read")


# -- validate -------------------------------------------------------------------------------


def vm(name="a", **kw) -> VmConfig:
    return VmConfig(name=name, kernel="/k", **kw)


def test_valid_mixes():
    validate([vm(smp=4)], 4)
    validate([vm("a", smp=4, placement="shared"), vm("b", smp=4, placement="shared")], 4)
    validate([vm("a", smp=2), vm("b", smp=2, placement="shared", pcpus=(2, 3))], 4)
    validate([vm("a", smp=2), vm("b", smp=2, pcpus=(2, 3))], 4)
    validate([vm("a", smp=2, pcpus=(0, 1, 2))], 3)            # more pCPUs than vCPUs is fine
    validate([vm("a", smp=8, placement="shared", pcpus=(1,))], 2)


@pytest.mark.parametrize("vms, pcpus, match", [
    ([], 4, "no VM to run"),
    ([vm()], 0, "--pcpus must be between 1 and 64"),
    ([vm("a"), vm("a")], 4, "two VMs are named 'a'"),
    ([vm(smp=5)], 4, "5 pinned vCPUs need 5 free pCPUs, 4 of 4 are free"),
    ([vm(smp=3, pcpus=(0, 1))], 4, "3 pinned vCPUs but only 2 pCPUs given"),
    ([vm(pcpus=(4,))], 4, "pCPU 4 does not exist"),
    ([vm(placement="shared", pcpus=(1, 7))], 4, "pCPU 7 does not exist"),
    ([vm("a", smp=2), vm("b", smp=2, pcpus=(1, 2))], 4,
     "VM b: pCPU 1 is already pinned to VM a vCPU 1"),
    ([vm("a", smp=2), vm("b", smp=3)], 4, "VM b: 3 pinned vCPUs need 3 free pCPUs, 2 of 4"),
    ([vm("a", smp=2, pcpus=(2, 3)), vm("b", smp=2, pcpus=(3, 0))], 4,
     "pCPU 3 is already pinned to VM a"),
    ([vm(smp=0)], 4, "VM a: smp must be between"),
    ([vm(smp=65, placement="shared")], 64, "smp must be between 1 and 64"),
    ([vm(memory=(1 << 40))], 4, "memory must be between"),
    ([vm(memory=100 * MiB + 4096)], 4, "multiple of 64K"),
    ([vm(placement="both")], 4, "placement must be pinned or shared"),
    ([vm(cpu="a72")], 4, "cpu must be one of"),
    ([vm(pcpus=())], 4, "pcpus is empty"),
    ([vm(pcpus=(1, 1))], 4, "names a pCPU twice"),
    ([vm(name="x/y")], 4, "bad name"),
    ([VmConfig(name="a", kernel="")], 4, "kernel=FILE is required"),
])
def test_validation_errors(vms, pcpus, match):
    one_line_error(validate, vms, pcpus, match=match)


def test_parse_cpu_list_keeps_the_order_given():
    assert parse_cpu_list("3,0-1") == (3, 0, 1)
    assert parse_cpu_list(" 2 - 4 ") == (2, 3, 4)
