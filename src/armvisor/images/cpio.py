"""Write "newc" cpio archives, the format the Linux initramfs unpacker reads.

Documented in the kernel's Documentation/driver-api/early-userspace/buffer-format.rst:
a 110-byte ASCII header per entry (magic "070701", thirteen 8-digit hex
fields), the NUL-terminated name, padding to 4 bytes, the data, padding to 4
bytes, and a final entry named "TRAILER!!!".
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass
from typing import Iterable, List

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    name: str                 # path inside the archive, without a leading "/"
    mode: int                 # file type and permission bits (stat.S_IF* | 0o755...)
    data: bytes = b""         # file contents, or the target of a symlink
    rdev: tuple = (0, 0)      # (major, minor) of a device node


def directory(name: str, perm: int = 0o755) -> Entry:
    return Entry(name, stat.S_IFDIR | perm)


def regular(name: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(name, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(ino: int, entry: Entry, name: bytes) -> bytes:
    fields = [
        ino, entry.mode, 0, 0,                       # owned by root
        2 if stat.S_ISDIR(entry.mode) else 1,        # nlink
        0,                                           # mtime: fixed, so builds are reproducible
        len(entry.data),
        0, 0,                                        # devmajor, devminor
        entry.rdev[0], entry.rdev[1],
        len(name) + 1,                               # namesize, with the NUL
        0,                                           # check (unused by newc)
    ]
    return NEWC_MAGIC + b"".join(b"%08X" % field for field in fields)


def archive(entries: Iterable[Entry]) -> bytes:
    """The cpio archive of `entries`, in order, followed by the trailer."""
    out: List[bytes] = []
    ino = 1
    for entry in list(entries) + [Entry(TRAILER, 0)]:
        name = entry.name.lstrip("/").encode()
        header = _header(ino if entry.name != TRAILER else 0, entry, name)
        out += [header, name, b"\0", _pad4(len(header) + len(name) + 1),
                entry.data, _pad4(len(entry.data))]
        ino += 1
    return b"".join(out)


def gzipped_archive(entries: Iterable[Entry]) -> bytes:
    return gzip.compress(archive(entries), compresslevel=6, mtime=0)
