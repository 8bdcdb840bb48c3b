"""The snapshot file: header, checksum, and one-line errors for every bad file."""

import json
import struct

import pytest

from armvisor.errors import ArmvisorError
from armvisor.machine import snapshot


def write_sample(path):
    state = {"ram": b"\x00" * 4096 + b"x", "cpus": [{"pc": 2**64 - 1}], "none": None}
    snapshot.write(str(path), {"mode": "bare"}, state)
    return state


def test_round_trip(tmp_path):
    path = tmp_path / "s.avs"
    state = write_sample(path)
    header, loaded = snapshot.read(str(path))
    assert loaded == state
    assert header["mode"] == "bare" and header["unicorn"] == snapshot.unicorn_build()


def rewrite_header(path, **changes):
    data = path.read_bytes()
    start = len(snapshot.MAGIC)
    (length,) = struct.unpack("<I", data[start:start + 4])
    header = json.loads(data[start + 4:start + 4 + length])
    header.update(changes)
    head = json.dumps(header).encode()
    path.write_bytes(data[:start] + struct.pack("<I", len(head)) + head
                     + data[start + 4 + length:])


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"hello"), "not an armvisor snapshot"),
    (lambda p: p.write_bytes(p.read_bytes()[:-20]), "corrupt or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:-3] + b"xyz"), "corrupt"),
    (lambda p: p.write_bytes(snapshot.MAGIC + struct.pack("<I", 5) + b"{nope"), "not JSON"),
    (lambda p: p.write_bytes(snapshot.MAGIC + struct.pack("<I", 1 << 30)), "corrupt"),
    (lambda p: rewrite_header(p, format=99), "version 99"),
    (lambda p: rewrite_header(p, unicorn="0123456789abcdef"), "another Unicorn build"),
])
def test_bad_files_are_one_line_errors(tmp_path, damage, message):
    path = tmp_path / "s.avs"
    write_sample(path)
    damage(path)
    with pytest.raises(ArmvisorError, match=message) as error:
        snapshot.read(str(path))
    assert "\n" not in str(error.value)


def test_a_missing_file_and_a_directory(tmp_path):
    with pytest.raises(ArmvisorError, match="cannot read snapshot"):
        snapshot.read(str(tmp_path / "nothing"))
    with pytest.raises(ArmvisorError, match="directory"):
        snapshot.read(str(tmp_path))
