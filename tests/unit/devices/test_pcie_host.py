import pytest

from armvisor.devices.pcie_host import PcieHost
from armvisor.machine import memmap


def ecam(bus=0, dev=0, fn=0, reg=0) -> int:
    return (bus << 20) | (dev << 15) | (fn << 12) | reg


@pytest.fixture
def host() -> PcieHost:
    return PcieHost(memmap.PCIE_ECAM_HIGH_SIZE)


def test_host_bridge_header_matches_qemu(host):
    # What U-Boot's `md.l 4010000000 10` shows on QEMU 7.2 virt before any write.
    words = [host.read(ecam(reg=r), 4) for r in range(0, 0x40, 4)]
    assert words[0] == 0x00081B36
    assert words[1] == 0                      # command, status
    assert words[2] == 0x06000000             # class 06/00/00, revision 0
    assert words[3] == 0                      # header type 0, single function
    assert words[4:10] == [0] * 6             # no BARs
    assert words[11] == 0x11001AF4            # subsystem 1af4:1100
    assert words[15] == 0                     # no interrupt pin
    assert host.read(ecam(reg=0), 2) == 0x1B36
    assert host.read(ecam(reg=0xB), 1) == 0x06
    assert host.bus_count == 256


def test_writes_follow_the_pci_write_masks(host):
    host.write(ecam(reg=4), 4, 0xFFFFFFFF)
    assert host.read(ecam(reg=4), 4) == 0x507    # as QEMU: io|mem|master|serr|intx-disable
    host.write(ecam(reg=0x10), 4, 0xFFFFFFFF)
    host.write(ecam(reg=0x30), 4, 0xFFFFFFFF)
    assert host.read(ecam(reg=0x10), 4) == 0 and host.read(ecam(reg=0x30), 4) == 0
    host.write(ecam(reg=0), 4, 0)
    assert host.read(ecam(reg=0), 4) == 0x00081B36
    host.write(ecam(reg=0xC), 1, 8)
    host.write(ecam(reg=0x3C), 1, 0x25)
    host.write(ecam(reg=0x40), 4, 0x12345678)
    assert host.read(ecam(reg=0xC), 4) == 8
    assert host.read(ecam(reg=0x3C), 4) == 0x25
    assert host.read(ecam(reg=0x42), 2) == 0x1234
    host.write(ecam(reg=6), 2, 0xFFFF)           # write-1-to-clear bits, all clear already
    assert host.read(ecam(reg=4), 4) == 0x507
    host.reset()
    assert host.read(ecam(reg=4), 4) == 0 and host.read(ecam(reg=0x40), 4) == 0


def test_status_error_bits_are_write_one_to_clear(host):
    bridge = host.functions[(0, 0, 0)]
    bridge.config[7] = 0xF9                      # as if every error had been seen
    host.write(ecam(reg=4), 4, 0x2000_0000)      # clear "received master abort" only
    assert host.read(ecam(reg=6), 2) == 0xD900


def test_absent_functions_and_extended_space_read_all_ones(host):
    assert host.read(ecam(dev=1), 4) == 0xFFFFFFFF
    assert host.read(ecam(fn=1), 2) == 0xFFFF
    assert host.read(ecam(bus=1), 1) == 0xFF
    assert host.read(ecam(bus=255, dev=31, fn=7, reg=0xFFC), 4) == 0xFFFFFFFF
    assert host.read(ecam(reg=0x100), 4) == 0xFFFFFFFF
    assert host.read(ecam(reg=0xFFE), 2) == 0xFFFF
    host.write(ecam(dev=1, reg=4), 4, 7)         # ignored
    assert host.read(ecam(dev=1, reg=4), 4) == 0xFFFFFFFF


def test_bad_accesses_never_raise(host):
    assert host.read(host.size, 4) == 0
    assert host.read(0, 3) == 0
    host.write(-4, 4, 1)
    host.write(host.size - 2, 4, 1)
    assert host.read(ecam(reg=0x28), 8) == 0x11001AF4_00000000
