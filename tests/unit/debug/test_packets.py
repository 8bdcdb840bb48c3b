"""RSP framing, endpoints and the target description (no machine, no gdb)."""

import xml.etree.ElementTree as ET

import pytest

from armvisor.debug.packets import CORRUPT, INTERRUPT, RESEND, PacketReader, frame, unescape
from armvisor.debug.registers import REGISTERS, decode, encode, target_xml
from armvisor.debug.transport import LOOPBACK, Endpoint, Listener, parse_endpoint
from armvisor.errors import ArmvisorError


def test_frame_checksum_and_escapes():
    assert frame("OK") == b"$OK#9a"
    assert frame(b"a#b") == b"$a}\x03b#" + b"%02x" % ((ord("a") + 0x7D + 3 + ord("b")) & 0xFF)
    assert unescape(b"a}\x03b}]") == b"a#b}"


def test_reader_packets_interrupts_acks_and_corruption():
    reader = PacketReader()
    assert reader.feed(b"+$g#67") == [b"g"]
    assert reader.feed(b"\x03") == [INTERRUPT]
    assert reader.feed(b"$m0,4#") == []                # split across reads
    assert reader.feed(b"fd") == [b"m0,4"]
    assert reader.feed(b"$g#00") == [CORRUPT]
    assert reader.feed(b"-") == [RESEND]


@pytest.mark.parametrize("spec, kind, host, port", [
    ("tcp::1234", "tcp", LOOPBACK, 1234), ("tcp:0.0.0.0:5000", "tcp", "0.0.0.0", 5000),
    (":77", "tcp", LOOPBACK, 77), ("4321", "tcp", LOOPBACK, 4321)])
def test_endpoints(spec, kind, host, port):
    endpoint = parse_endpoint(spec)
    assert (endpoint.kind, endpoint.host, endpoint.port) == (kind, host, port)


def test_unix_endpoint_and_bad_specs():
    assert parse_endpoint("unix:/tmp/x.sock").path == "/tmp/x.sock"
    for bad in ("tcp::", "tcp::99999", "udp::1", "unix:", "tcp:host:port"):
        with pytest.raises(ArmvisorError):
            parse_endpoint(bad)


def test_port_in_use_is_an_armvisor_error():
    first = Listener(Endpoint("tcp", port=0))          # any free port
    port = first.sock.getsockname()[1]
    try:
        with pytest.raises(ArmvisorError, match="cannot listen"):
            Listener(parse_endpoint(f"tcp::{port}"))
    finally:
        first.close()


def test_target_xml_has_the_standard_features():
    root = ET.fromstring(target_xml())
    features = {f.get("name"): [r.get("name") for r in f.findall("reg")] for f in root.findall("feature")}
    assert features["org.gnu.gdb.aarch64.core"] == [f"x{n}" for n in range(31)] + ["sp", "pc", "cpsr"]
    assert features["org.gnu.gdb.aarch64.fpu"] == [f"v{n}" for n in range(32)] + ["fpsr", "fpcr"]
    assert [int(r.get("regnum")) for r in root.iter("reg")] == list(range(len(REGISTERS)))


def test_register_encoding_is_little_endian():
    assert encode(0x1122, 32) == "22110000"
    assert decode("22110000", 32) == 0x1122
    with pytest.raises(ValueError):
        decode("2211", 32)
