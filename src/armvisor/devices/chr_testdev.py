"""QEMU's chr-testdev: a character device that lets a test end the emulator.

kvm-unit-tests (lib/chr-testdev.c) writes "%dq" to a virtio console backed by
it; QEMU's chardev/testdev.c reads digits as an argument and, on 'q', exits
with status (argument << 1) | 1, so 1 means the test passed and 3 that it
failed (scripts/runtime.bash reads those). Other bytes are ignored, as there.
The device knows no board: it reports the status through `on_exit`.
"""

from __future__ import annotations

from typing import Callable


class ChrTestdev:
    def __init__(self, on_exit: Callable[[int], None]):
        self._on_exit = on_exit
        self._argument = 0

    def write(self, data: bytes) -> None:
        for byte in data:
            if 0x30 <= byte <= 0x39:                      # a decimal digit of the argument
                self._argument = self._argument * 10 + byte - 0x30
            elif byte == ord("q"):
                status, self._argument = (self._argument << 1) | 1, 0
                self._on_exit(status & 0xFF)
            else:
                self._argument = 0

    def save_state(self) -> dict:
        return {"argument": self._argument}

    def restore_state(self, state: dict) -> None:
        self._argument = int(state["argument"])
