"""armvisor-qemu's translation of QEMU's command line (no guest runs)."""

import pytest

from armvisor.errors import ArmvisorError
from armvisor.qemu_compat import translate


def test_kvm_unit_tests_command_line():
    t = translate("-nodefaults -machine virt -accel tcg -cpu cortex-a57 -device "
                  "virtio-serial-device -device virtconsole,chardev=ctd -chardev testdev,id=ctd "
                  "-display none -serial stdio -kernel arm/selftest.flat -smp 2 -m 256 "
                  "-machine gic-version=3".split() + ["-append", "setup smp=2 mem=256"])
    assert t.query is None
    assert t.finish() == ["--psci-conduit", "hvc", "--cpu", "cortex-a57",
                          "--kernel", "arm/selftest.flat", "--smp", "2", "--memory", "256M",
                          "--append", "setup smp=2 mem=256", "--chr-testdev"]


def test_virtualization_on_is_armvisors_virtualization_with_psci_over_smc():
    t = translate("-M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 "
                  "-kernel Image".split())
    assert t.finish() == ["--virtualization", "--cpu", "cortex-a57", "--smp", "4",
                          "--kernel", "Image"]
    assert translate("-M virt -machine virtualization=on -machine virtualization=off".split()
                     ).finish() == ["--psci-conduit", "hvc"]
    assert "virtualization" in translate(["-M", "virt,?"]).query


def test_secure_on_is_armvisors_secure():
    """TF-A's QEMU command line (tests/thirdparty/test_tfa.py runs both)."""
    t = translate("-M virt,secure=on,virtualization=on,gic-version=3 -cpu max -smp 4 "
                  "-bios flash.bin".split())
    assert t.finish() == ["--secure", "--virtualization", "--cpu", "max", "--smp", "4",
                          "--bios", "flash.bin"]
    assert "--secure" not in translate("-M virt,secure=on -M virt,secure=off".split()).finish()
    assert "secure" in translate(["-M", "virt,?"]).query


def test_the_seed_hypervisors_command_line_with_no_network_card():
    """Its author's QEMU command (-nographic), with the `-nic none` a QEMU installed
    without recommends needs (tests/thirdparty/test_seed_hypervisor.py runs both)."""
    t = translate("-M virt,virtualization=on,gic-version=3 -cpu max -smp 4 -m 2G -nographic "
                  "-nic none -kernel hypervisor".split())
    assert t.finish() == ["--virtualization", "--cpu", "max", "--smp", "4", "--memory", "2G",
                          "--kernel", "hypervisor"]


@pytest.mark.parametrize("args, query", [(["-machine", "?"], "ARM Virtual Machine"),
                                         (["-M", "virt,?"], "gic-version"),
                                         (["-device", "help"], "virtconsole"),
                                         (["-chardev", "?"], "testdev"),
                                         (["-version"], "QEMU emulator version 7.2.0")])
def test_queries(args, query):
    assert query in translate(args).query


@pytest.mark.parametrize("args, words", [
    (["-machine", "virt,secure=maybe"], "secure=maybe"), (["-M", "sbsa-ref"], "sbsa-ref"),
    (["-M", "virt,its=off"], "its=off"),
    (["-device", "pci-testdev"], "pci-testdev"), (["-serial", "pty"], "pty"),
    (["-nic", "user"], "network card"),
    (["-kernel"], "needs a value"), (["stray"], "stray"), (["-smp", "x"], "number of CPUs"),
])
def test_what_armvisor_cannot_be_is_refused_by_name(args, words):
    with pytest.raises(ArmvisorError, match=words):
        translate(args).finish()


def test_a_console_needs_its_chardev_and_the_serial_bus():
    with pytest.raises(ArmvisorError, match="names no -chardev"):
        translate(["-device", "virtio-serial-device", "-device", "virtconsole,chardev=x"]).finish()
    with pytest.raises(ArmvisorError, match="virtio-serial-device"):
        translate(["-device", "virtconsole,chardev=c", "-chardev", "testdev,id=c"]).finish()


def test_qemu_own_complaints_whatever_the_flags_around_them(tmp_path):
    """A flag without a value (-no-reboot) before -kernel once hid the missing kernel."""
    from armvisor.qemu_compat import _qemu_errors
    missing = str(tmp_path / "nothing.flat")
    assert _qemu_errors(translate(["-no-reboot", "-kernel", missing])) == \
        f"could not load kernel '{missing}'"
    assert "Invalid SMP CPUs 128" in _qemu_errors(translate(["-s", "-smp", "128"]))


def test_its_on_is_the_board_as_it_is():
    assert translate(["-M", "virt,gic-version=3,its=on"]).query is None
    assert "its=<bool>" in translate(["-M", "virt,?"]).query
