"""Sparse page images (armvisor.pages): only pages that differ from the fill are kept."""

import mmap

import pytest

from armvisor.pages import PAGE, restore_pages, save_pages


@pytest.mark.parametrize("fill", [0, 0xFF])
def test_round_trip_keeps_only_the_pages_that_differ(fill):
    buffer = bytearray([fill]) * (16 * PAGE)
    buffer[3 * PAGE + 5] = fill ^ 1
    buffer[15 * PAGE + PAGE - 1] = 7
    saved = save_pages(buffer, fill)
    assert len(saved["data"]) == 2 * PAGE
    other = mmap.mmap(-1, 16 * PAGE)
    other[:PAGE] = b"\x55" * PAGE                  # stale content is overwritten with the fill
    restore_pages(other, saved)
    assert bytes(other) == bytes(buffer)


def test_pages_of_another_buffer_are_refused():
    saved = save_pages(bytearray(b"\x01") * (8 * PAGE))
    with pytest.raises(ValueError, match="do not fit"):
        restore_pages(bytearray(4 * PAGE), saved)


def test_numpy_is_imported_by_the_first_snapshot_only():
    """numpy takes 60 ms to import, a fifth of a command's start; and when it comes,
    its OpenBLAS must not start a spinning thread per host core."""
    import subprocess
    import sys
    script = ("import os, sys\n"
              "os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
              "import armvisor.cli\n"
              "print('numpy' in sys.modules)\n"
              "from armvisor.pages import save_pages\n"
              "save_pages(bytearray(4096))\n"
              "print('numpy' in sys.modules, os.environ.get('OPENBLAS_NUM_THREADS'))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.split("\n")[:2] == ["False", "True 1"]
