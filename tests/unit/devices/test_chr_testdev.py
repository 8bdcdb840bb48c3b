"""QEMU's chr-testdev protocol: digits then 'q' end the run with (n << 1) | 1."""

from armvisor.devices.chr_testdev import ChrTestdev


def test_digits_then_q_give_the_exit_status():
    seen = []
    dev = ChrTestdev(seen.append)
    dev.write(b"0q")
    dev.write(b"1")
    dev.write(b"2q")
    assert seen == [1, 25]


def test_other_bytes_reset_the_argument():
    seen = []
    dev = ChrTestdev(seen.append)
    dev.write(b"9xq")
    assert seen == [1]
