"""Guest RAM: one host buffer that every core of a machine (or a VM) maps."""

from __future__ import annotations

import ctypes
import mmap
import os
import stat
from typing import BinaryIO, Optional

from armvisor.errors import ArmvisorError
from armvisor.pages import restore_pages, save_pages
from armvisor.machine.config import format_size

PAGE_SIZE = mmap.PAGESIZE


class Ram:
    """One host buffer, mapped into every core at the same guest physical address."""

    def __init__(self, base: int, size: int):
        check_ram_size(size)
        self.base, self.size = base, size
        self._buffer = _map_anonymous(size)
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

    def save_state(self) -> dict:
        """The pages that are not all zero (a never-written page reads zero): sparse RAM."""
        return dict(save_pages(self._buffer), size=self.size)

    def restore_state(self, state: dict) -> None:
        if state["size"] != self.size:
            raise ValueError(f"the snapshot's RAM is {format_size(state['size'])}, this "
                             f"machine's {format_size(self.size)}")
        self.clear()                      # cheaper than writing zeros over every page
        restore_pages(self._buffer, state, clear=False)

    def clear(self) -> None:
        # Dropping the pages of a private anonymous mapping makes them read as
        # zero again, without touching every page as a memset would.
        self._buffer.madvise(mmap.MADV_DONTNEED)


def check_ram_size(size: int) -> None:
    """Unicorn maps RAM in whole pages, and mmap refuses an empty mapping."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % PAGE_SIZE:
        raise ArmvisorError(f"RAM size must be a positive multiple of {PAGE_SIZE} bytes, "
                            f"not {size!r}")


def _map_anonymous(size: int) -> mmap.mmap:
    """The guest's RAM, reserved but not touched: pages cost host memory only once used.

    With the kernel's default overcommit heuristic the mapping itself fails
    only when it is larger than the host could ever back (about RAM + swap),
    so this is where "-m 200G" on a small host is caught.
    """
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError as exc:
        available = host_memory_available()
        free = f"{format_size(available)} available" if available is not None else \
            "an unknown amount available"
        raise ArmvisorError(f"cannot allocate {format_size(size)} of guest RAM: the host "
                            f"refused the mapping ({exc.strerror}) and has {free} "
                            "(MemAvailable in /proc/meminfo)") from None


def host_memory_available(meminfo: str = "/proc/meminfo") -> Optional[int]:
    """MemAvailable in bytes: what the host can give without swapping (None if unknown)."""
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key == "MemAvailable":
                    number, _, unit = value.strip().partition(" ")
                    return int(number) * (1024 if unit == "kB" else 1)
    except (OSError, ValueError):
        pass
    return None


# -- files the user names ------------------------------------------------------------------

_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def open_input_file(path: str, what: str) -> BinaryIO:
    """Open a kernel, initrd, DTB or config file for reading: only a regular file will do.

    A FIFO would block the open (and the read) until someone writes to it,
    /dev/zero would never end, and a directory has no bytes: they are refused
    before reading. O_NONBLOCK keeps the open itself from waiting on a FIFO;
    fstat then says what was actually opened (the path may have changed since
    any earlier look).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArmvisorError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None
    except ValueError:             # a NUL inside the path (from a config file or the API)
        raise ArmvisorError(f"cannot read the {what} file {path!r}: the name holds a NUL "
                            "character") from None
    kind = _file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise ArmvisorError(f"the {what} file {path!r} is {kind}, not a regular file")
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> Optional[str]:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")


def read_opened_file(handle: BinaryIO, path: str, what: str, max_size: Optional[int] = None,
                     limit: str = "the machine's RAM") -> bytes:
    """Read a file from open_input_file whole, refusing one larger than `max_size`.

    The size is checked before reading, so a huge file is not pulled into
    host memory only to be refused; reading at most max_size + 1 bytes also
    catches a file that grows meanwhile (or a /proc file whose size says 0).
    """
    try:
        size = os.fstat(handle.fileno()).st_size
        if max_size is not None and size > max_size:
            _too_big(path, what, size, max_size, limit)
        data = handle.read() if max_size is None else handle.read(max_size + 1)
    except OSError as exc:
        raise ArmvisorError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None
    if max_size is not None and len(data) > max_size:
        _too_big(path, what, len(data), max_size, limit)
    return data


def _too_big(path: str, what: str, size: int, max_size: int, limit: str) -> None:
    raise ArmvisorError(f"the {what} file {path!r} is {format_size(size)}, more than "
                        f"{limit} ({format_size(max_size)})")


def read_input_file(path: str, what: str, max_size: Optional[int] = None,
                    limit: str = "the machine's RAM") -> bytes:
    """A kernel, initrd or DTB the user named, read whole; any problem is a one-line error.

    `max_size` is what the file may take (the guest RAM it is copied into);
    `limit` names it in the message.
    """
    with open_input_file(path, what) as handle:
        return read_opened_file(handle, path, what, max_size, limit)
