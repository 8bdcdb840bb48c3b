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
