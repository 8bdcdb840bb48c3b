"""Sparse images of big buffers for snapshots: only the pages that differ from a fill.

Guest RAM reads zero where nothing was written and an erased flash bank
reads 0xFF; saving only the other pages keeps a snapshot of a 512 MiB
machine running Linux at a few tens of MB before compression, and makes
restoring it a copy of those pages alone.
"""

from __future__ import annotations

import os

PAGE = 4096


def _numpy():
    """numpy, imported on the first snapshot: it takes 60 ms, a fifth of a command's
    start, and most runs take no snapshot."""
    # numpy's OpenBLAS starts a thread per host core that spins on import, taking
    # CPU from the machine (and from QEMU beside it in a benchmark); nothing here
    # uses BLAS. A user's own setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy
    return numpy


def save_pages(buffer, fill: int = 0) -> dict:
    """{"pages": page numbers (little-endian u32), "data": those pages, "fill": fill}."""
    numpy = _numpy()
    pages = numpy.frombuffer(buffer, dtype=numpy.uint8).reshape(-1, PAGE)
    if fill == 0:
        # Whole 64-bit words: several times faster than bytes on a mostly-zero buffer.
        used = numpy.flatnonzero(pages.view(numpy.uint64).any(axis=1))
    else:
        used = numpy.flatnonzero((pages != fill).any(axis=1))
    return {"fill": fill, "pages": used.astype("<u4").tobytes(), "data": pages[used].tobytes()}


def restore_pages(buffer, saved: dict, clear: bool = True) -> None:
    """Write `saved` into `buffer` (every other page becomes the fill, unless `clear` is
    False because the caller cleared it more cheaply); ValueError if it does not fit."""
    numpy = _numpy()
    pages = numpy.frombuffer(buffer, dtype=numpy.uint8).reshape(-1, PAGE)
    used = numpy.frombuffer(saved["pages"], dtype="<u4")
    data = numpy.frombuffer(saved["data"], dtype=numpy.uint8)
    if len(data) != len(used) * PAGE or (len(used) and int(used.max()) >= len(pages)):
        raise ValueError("the saved pages do not fit this buffer")
    if clear:
        pages[:] = saved["fill"]
    pages[used] = data.reshape(-1, PAGE)
