"""The newc cpio writer, read back with an independent parser of the documented format."""

from __future__ import annotations

import gzip
import stat

from armvisor.images import cpio


def parse(blob: bytes):
    entries, offset = [], 0
    while True:
        header = blob[offset:offset + 110]
        assert header[:6] == b"070701"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = offset + 110
        name = blob[name_start:name_start + namesize - 1].decode()
        assert blob[name_start + namesize - 1] == 0
        data_start = (name_start + namesize + 3) & ~3
        data = blob[data_start:data_start + filesize]
        offset = (data_start + filesize + 3) & ~3
        if name == "TRAILER!!!":
            assert offset == len(blob)
            return entries
        entries.append((name, mode, data, (rmaj, rmin)))


def test_round_trip_of_every_entry_kind():
    blob = cpio.archive([
        cpio.directory("bin"),
        cpio.regular("bin/busybox", b"\x7fELF" + b"x" * 13, 0o755),
        cpio.symlink("bin/sh", "busybox"),
        cpio.char_device("dev/console", 5, 1),
        cpio.regular("/init", b"#!/bin/sh\n", 0o755),
    ])
    entries = parse(blob)
    assert [e[0] for e in entries] == ["bin", "bin/busybox", "bin/sh", "dev/console", "init"]
    assert stat.S_ISDIR(entries[0][1])
    assert entries[1][2].startswith(b"\x7fELF") and entries[1][1] & 0o777 == 0o755
    assert stat.S_ISLNK(entries[2][1]) and entries[2][2] == b"busybox"
    assert stat.S_ISCHR(entries[3][1]) and entries[3][3] == (5, 1)


def test_gzipped_archive_is_reproducible():
    entries = [cpio.regular("a", b"1")]
    first, second = cpio.gzipped_archive(entries), cpio.gzipped_archive(entries)
    assert first == second
    assert parse(gzip.decompress(first))[0][:3] == ("a", stat.S_IFREG | 0o644, b"1")
