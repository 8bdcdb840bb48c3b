"""The host terminal as the guest's serial console (PL011 on stdin/stdout).

Like QEMU's `-serial stdio`: guest output goes to stdout as it comes; input
is polled between scheduling rounds and fed to the UART. On a terminal the
input is raw (Ctrl-C reaches the guest), Ctrl-A x quits and Ctrl-A h lists
the keys, as in QEMU. Given a `status` (a function returning one line), the
console shows it on stderr once the guest has been silent for a second, and
clears it as soon as the guest prints again. Given a `monitor` (a function
from a command line to its answer), Ctrl-A c switches typed input between
the guest and that monitor, as QEMU's Ctrl-A c does; the guest runs on.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Callable, Optional

ESCAPE = 0x01          # Ctrl-A
QUIT = ord("x")
HELP = ord("h")
MONITOR = ord("c")
KEYS = ("Ctrl-A x       quit armvisor",
        "Ctrl-A h       this list",
        "Ctrl-A c       switch between the console and the monitor",
        "Ctrl-A Ctrl-A  send Ctrl-A to the guest")
PROMPT = b"(armvisor) "
ENTER = (0x0D, 0x0A)
ERASE = (0x7F, 0x08)
# The guest has printed nothing for this long: show the status line.
SILENCE_S = 1.0
STATUS_EVERY_S = 0.5
CLEAR_LINE = b"\r\x1b[K"


class QuitRequested(Exception):
    """The user asked to quit: the escape sequence, or the monitor's `quit` (the message)."""

    def __init__(self, how: str = "Ctrl-A x"):
        super().__init__(how)


# Longest single host wait while a deterministic guest idles (input and Ctrl-A are seen).
MAX_IDLE_WAIT = 0.05


class HostConsole:
    def __init__(self, stdin=None, stdout=None, poll_every: int = 8,
                 status: Optional[Callable[[], str]] = None, stderr=None,
                 clock: Callable[[], float] = time.monotonic):
        self._out = stdout if stdout is not None else sys.stdout.buffer
        self._err = stderr if stderr is not None else sys.stderr.buffer
        self._status = status
        self._clock = clock
        self._last_output = clock()
        self._status_at: Optional[float] = None       # when the shown status line was drawn
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
        # Ctrl-A c: typed lines go to `monitor` instead of the guest (None: no monitor).
        self.monitor: Optional[Callable[[str], str]] = None
        self._in_monitor = False
        self._line = bytearray()

    def write(self, data: bytes) -> None:
        if self._status_at is not None:
            self._err.write(CLEAR_LINE)
            self._err.flush()
            self._status_at = None
        self._out.write(data)
        self._out.flush()
        self._last_output = self._clock()

    def show_status(self) -> None:
        """Between rounds: the status line, if the guest has been quiet long enough."""
        if self._status is None or self._in_monitor:      # it would overwrite the prompt
            return
        now = self._clock()
        if now - self._last_output < SILENCE_S:
            return
        if self._status_at is not None and now - self._status_at < STATUS_EVERY_S:
            return
        self._err.write(CLEAR_LINE + self._status().encode())
        self._err.flush()
        self._status_at = now

    def __enter__(self) -> "HostConsole":
        if self._in_fd is not None and os.isatty(self._in_fd):
            import termios
            import tty
            self._saved_tty = termios.tcgetattr(self._in_fd)
            tty.setraw(self._in_fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._status_at is not None:
            self._err.write(CLEAR_LINE)
            self._err.flush()
            self._status_at = None
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
        if self._rounds % self._poll_every:
            return
        self.show_status()
        if self._in_fd is not None:
            self.wait(0)

    def wait(self, seconds: float) -> None:
        """Idle: sleep up to `seconds`, returning early with any input passed to the guest."""
        if seconds > 0:
            self.show_status()
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

    def idle(self, now: int, deadline: int) -> int:
        """Deterministic clock, idle: wait the host time the counter would take to reach
        `deadline` (at most MAX_IDLE_WAIT at once); `now` if input came meanwhile."""
        from armvisor.devices.timer import COUNTER_HZ
        seconds = min((deadline - now) / COUNTER_HZ, MAX_IDLE_WAIT)
        received = []
        receive, self.receive = self.receive, lambda data: (received.append(data), receive(data))
        started = self._clock()
        try:
            self.wait(seconds)
        finally:
            self.receive = receive
        if received:
            return now
        waited = int((self._clock() - started) * COUNTER_HZ)
        return deadline if waited >= deadline - now else now + max(waited, 1)

    def _filter(self, data: bytes) -> bytes:
        if self._saved_tty is None:
            return data
        out = bytearray()
        for byte in data:
            if self._escape:
                self._escape = False
                if byte == QUIT:
                    raise QuitRequested()
                if byte == HELP:
                    self._err.write(b"\r\n" + b"\r\n".join(k.encode() for k in KEYS) + b"\r\n")
                    self._err.flush()
                    continue
                if byte == MONITOR and self.monitor is not None:
                    self._switch_monitor()
                    continue
                if byte != ESCAPE:
                    out.append(ESCAPE)
                out.append(byte)
            elif byte == ESCAPE:
                self._escape = True
            elif self._in_monitor:
                self._monitor_key(byte)
            else:
                out.append(byte)
        return bytes(out)

    def _say(self, data: bytes) -> None:
        # The terminal is raw: a bare newline would not return the carriage.
        self._err.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        self._err.flush()

    def _switch_monitor(self) -> None:
        self._in_monitor = not self._in_monitor
        self._line.clear()
        if self._in_monitor:
            if self._status_at is not None:
                self._err.write(CLEAR_LINE)
                self._status_at = None
            self._say(b"\narmvisor monitor ('help' for commands, Ctrl-A c back to the guest)\n"
                      + PROMPT)
        else:
            self._say(b"\n")

    def _monitor_key(self, byte: int) -> None:
        """Line editing for the monitor: echo, erase, and run the line on Enter."""
        if byte in ENTER:
            line = self._line.decode(errors="replace")
            self._line.clear()
            self._say(b"\n")
            answer = self.monitor(line) if line.strip() else ""   # may raise QuitRequested
            self._say(answer.encode() + (PROMPT if self._in_monitor else b""))
        elif byte in ERASE:
            if self._line:
                self._line.pop()
                self._say(b"\b \b")
        elif 0x20 <= byte < 0x7F:
            self._line.append(byte)
            self._say(bytes([byte]))
