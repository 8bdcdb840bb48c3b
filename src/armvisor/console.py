"""The host terminal as the guest's serial console (PL011 on stdin/stdout).

Like QEMU's `-serial stdio`: guest output goes to stdout as it comes; input
is polled between scheduling rounds and fed to the UART. On a terminal the
input is raw (Ctrl-C reaches the guest) and Ctrl-A x quits, as in QEMU.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Callable, Optional

ESCAPE = 0x01          # Ctrl-A
QUIT = ord("x")


class QuitRequested(Exception):
    """The user typed the escape sequence."""


class HostConsole:
    def __init__(self, stdin=None, stdout=None, poll_every: int = 8):
        self._out = stdout if stdout is not None else sys.stdout.buffer
        self._in_fd: Optional[int] = None
        source = stdin if stdin is not None else sys.stdin
        try:
            self._in_fd = source.fileno()
        except (AttributeError, OSError, ValueError):
            self._in_fd = None
        self._saved_tty = None
        self._escape = False
        self._poll_every = poll_every
        self._rounds = 0
        self.receive: Callable[[bytes], None] = lambda data: None

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._out.flush()

    def __enter__(self) -> "HostConsole":
        if self._in_fd is not None and os.isatty(self._in_fd):
            import termios
            import tty
            self._saved_tty = termios.tcgetattr(self._in_fd)
            tty.setraw(self._in_fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved_tty is not None:
            import termios
            termios.tcsetattr(self._in_fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    @property
    def input_open(self) -> bool:
        """True while input may still arrive (a guest waiting for it is not hung)."""
        return self._in_fd is not None

    def poll(self) -> None:
        """Between rounds: pass typed bytes to the guest (not every round: select costs)."""
        self._rounds += 1
        if self._in_fd is None or self._rounds % self._poll_every:
            return
        self.wait(0)

    def wait(self, seconds: float) -> None:
        """Idle: sleep up to `seconds`, returning early with any input passed to the guest."""
        if self._in_fd is None:
            if seconds > 0:
                time.sleep(seconds)
            return
        try:
            ready, _, _ = select.select([self._in_fd], [], [], max(seconds, 0))
        except (OSError, ValueError):
            self._in_fd = None
            return
        if not ready:
            return
        data = os.read(self._in_fd, 256)
        if not data:                        # end of input: stop polling, keep running
            self._in_fd = None
            return
        self.receive(self._filter(data))

    def _filter(self, data: bytes) -> bytes:
        if self._saved_tty is None:
            return data
        out = bytearray()
        for byte in data:
            if self._escape:
                self._escape = False
                if byte == QUIT:
                    raise QuitRequested()
                if byte != ESCAPE:
                    out.append(ESCAPE)
                out.append(byte)
            elif byte == ESCAPE:
                self._escape = True
            else:
                out.append(byte)
        return bytes(out)
