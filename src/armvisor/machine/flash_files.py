"""Files behind the flash banks (QEMU's -drive if=pflash,format=raw,file=...).

QEMU's pflash_cfi01 reads its whole backing file at start and writes every
program and erase back to it (pflash_update). Here the file is mapped into
memory: shared, so the guest's writes reach the file as they happen; private
(copy on write) with --snapshot or readonly=on, so the file never changes.
The cores map the same pages while the bank is in read-array mode.

QEMU insists that the file is exactly as large as the bank
(blk_check_size_and_read_all: "device requires 67108864 bytes, block backend
provides ..."), which is why Debian ships AAVMF_CODE.fd padded to 64 MiB:
armvisor refuses any other size too, rather than guess how to pad.
"""

from __future__ import annotations

import mmap
import os

from armvisor.errors import ArmvisorError
from armvisor.machine.config import PflashSpec, format_size
from armvisor.machine.memory import open_input_file


def map_flash_file(spec: PflashSpec, bank_size: int, snapshot: bool) -> mmap.mmap:
    """The bank's contents, mapped from `spec.path`; any problem is a one-line error."""
    what = f"pflash unit {spec.unit}"
    writes_through = not (spec.read_only or snapshot)
    with open_input_file(spec.path, what) as handle:     # a regular file, or refused
        size = os.fstat(handle.fileno()).st_size
        if size != bank_size:
            raise ArmvisorError(f"the {what} file {spec.path!r} is {format_size(size)} "
                                f"({size} bytes); a flash bank is {format_size(bank_size)} "
                                f"exactly, as on QEMU (pad a copy: truncate -s "
                                f"{bank_size >> 20}M FILE)")
        if writes_through and not os.access(spec.path, os.W_OK):
            raise ArmvisorError(f"the {what} file {spec.path!r} is not writable: add "
                                "readonly=on, or --snapshot to keep the guest's writes "
                                "in memory")
        try:
            if writes_through:
                with open(spec.path, "r+b") as writable:
                    return mmap.mmap(writable.fileno(), bank_size, flags=mmap.MAP_SHARED,
                                     prot=mmap.PROT_READ | mmap.PROT_WRITE)
            return mmap.mmap(handle.fileno(), bank_size, access=mmap.ACCESS_COPY)
        except OSError as exc:
            raise ArmvisorError(f"cannot map the {what} file {spec.path!r}: "
                                f"{exc.strerror}") from None
