"""Guest RAM: one host buffer that every core of a machine (or a VM) maps."""

from __future__ import annotations

import ctypes
import mmap

from armvisor.errors import ArmvisorError


class Ram:
    """One host buffer, mapped into every core at the same guest physical address."""

    def __init__(self, base: int, size: int):
        self.base, self.size = base, size
        self._buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.pointer = ctypes.addressof(ctypes.c_char.from_buffer(self._buffer))

    def contains(self, address: int, size: int = 1) -> bool:
        return self.base <= address and address + size <= self.base + self.size

    def write(self, address: int, data: bytes) -> None:
        if not self.contains(address, len(data)):
            raise ArmvisorError(f"{len(data)} bytes at {address:#x} do not fit in RAM")
        offset = address - self.base
        self._buffer[offset:offset + len(data)] = data

    def read(self, address: int, size: int) -> bytes:
        offset = address - self.base
        return bytes(self._buffer[offset:offset + size])

    def clear(self) -> None:
        # Dropping the pages of a private anonymous mapping makes them read as
        # zero again, without touching every page as a memset would.
        self._buffer.madvise(mmap.MADV_DONTNEED)


def read_input_file(path: str, what: str) -> bytes:
    """A kernel, initrd or DTB the user named; a missing one is a one-line error."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ArmvisorError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None
