"""Snapshots of a whole machine: what each part saves, and the file that holds them.

Conventions every stateful object follows (devices, firmware, cores, RAM,
the boards, the hypervisor):

- `save_state() -> dict` returns plain data only: None, bool, int (within
  64 bits, signed or not), float, str, bytes, and lists and dicts of those
  (dict keys are str). No objects, enums (save `.value`), tuples that must
  come back as tuples (they come back as lists), callables or file handles.
- `restore_state(state)` is called on an object freshly built from the same
  configuration (the same command line), never booted. It replaces every
  piece of guest-visible and scheduling state, keeps the wiring it was built
  with (callbacks, trace bus, clock), and emits no trace event and raises no
  interrupt line: the lines' levels are part of the saved state of whoever
  drives them, and the receiver restores its own view.
- A part saves what it owns and asks its parts for theirs: a board saves
  `{"ram": ..., "devices": ..., "cores": [...], ...}`; nothing reaches into
  another object's private fields.
- Restoring a state that does not fit (another shape of machine) raises
  ValueError with a sentence that says what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from functools import lru_cache
from typing import Tuple

import msgpack
import zstandard

from armvisor.errors import ArmvisorError

# The file: MAGIC, a 4-byte little-endian header length, the header (JSON,
# readable with `head -c`), then one zstd frame (with its checksum) holding
# the state as MessagePack.
MAGIC = b"ARMVISOR-SNAPSHOT\n"
FORMAT_VERSION = 1
HEADER_LIMIT = 1 << 20
ZSTD_LEVEL = 3                        # ~400 MB/s on this kind of data; RAM is mostly zero


@lru_cache(maxsize=1)
def unicorn_build() -> str:
    """What names the CPU state's layout: the Unicorn library's own bytes."""
    from unicorn.unicorn_py3 import unicorn as binding
    digest = hashlib.sha256()
    with open(binding.uclib._name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def write(path: str, header: dict, state: dict) -> int:
    """Write a snapshot file atomically (a reader never sees half of one); returns its size."""
    from armvisor import __version__
    header = dict(header, format=FORMAT_VERSION, armvisor=__version__, unicorn=unicorn_build())
    head = json.dumps(header, sort_keys=True).encode()
    body = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=-1).compress(
        msgpack.packb(state, use_bin_type=True))
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(MAGIC + struct.pack("<I", len(head)) + head + body)
        os.replace(temporary, path)
    except OSError as exc:
        raise ArmvisorError(f"cannot write snapshot {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return len(MAGIC) + 4 + len(head) + len(body)


def read_header(path: str) -> Tuple[dict, int]:
    """The header of snapshot `path` and where its state begins; one-line errors."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(MAGIC) + 4)
            if len(start) < len(MAGIC) + 4 or not start.startswith(MAGIC):
                raise ArmvisorError(f"{path} is not an armvisor snapshot")
            (length,) = struct.unpack("<I", start[len(MAGIC):])
            if length > HEADER_LIMIT:
                raise ArmvisorError(f"{path}: corrupt snapshot (header of {length} bytes)")
            head = handle.read(length)
    except IsADirectoryError:
        raise ArmvisorError(f"{path} is a directory, not a snapshot") from None
    except OSError as exc:
        raise ArmvisorError(f"cannot read snapshot {path}: {exc.strerror}") from None
    try:
        header = json.loads(head)
        if not isinstance(header, dict):
            raise ValueError
    except ValueError:
        raise ArmvisorError(f"{path}: corrupt snapshot (its header is not JSON)") from None
    if header.get("format") != FORMAT_VERSION:
        raise ArmvisorError(f"{path} is a version {header.get('format')!r} snapshot; this "
                            f"armvisor reads version {FORMAT_VERSION}")
    if header.get("unicorn") != unicorn_build():
        raise ArmvisorError(f"{path} was made with another Unicorn build "
                            f"({header.get('unicorn')}, this one is {unicorn_build()}): "
                            "CPU state does not carry over")
    return header, len(MAGIC) + 4 + length


def read(path: str) -> Tuple[dict, dict]:
    """Header and state of snapshot `path`; a corrupt or truncated file is a one-line error."""
    header, offset = read_header(path)
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            body = handle.read()
    except OSError as exc:
        raise ArmvisorError(f"cannot read snapshot {path}: {exc.strerror}") from None
    try:
        packed = zstandard.ZstdDecompressor().decompress(body)
    except zstandard.ZstdError as exc:
        raise ArmvisorError(f"{path}: corrupt or truncated snapshot ({exc})") from None
    try:
        state = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ArmvisorError(f"{path}: corrupt snapshot ({exc})") from None
    if not isinstance(state, dict):
        raise ArmvisorError(f"{path}: corrupt snapshot (no state)")
    return header, state
