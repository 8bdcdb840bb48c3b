"""Where the debugger connects: `--gdb tcp::PORT`, `tcp:HOST:PORT` or `unix:PATH`, as QEMU.

QEMU's `-gdb tcp::1234` listens on every address; here an empty host means
loopback, since the stub gives whoever connects the whole machine. One
debugger at a time; a second one waits until the first detaches.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import time
from dataclasses import dataclass
from typing import List, Optional

from armvisor.debug.packets import CORRUPT, RESEND, PacketReader, frame
from armvisor.errors import ArmvisorError

DEFAULT_PORT = 1234          # `-s` is `-gdb tcp::1234`
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    kind: str                # "tcp" or "unix"
    host: str = LOOPBACK
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"tcp:{self.host}:{self.port}" if self.kind == "tcp" else f"unix:{self.path}"


def parse_endpoint(spec: str) -> Endpoint:
    """`tcp::PORT`, `tcp:HOST:PORT`, `:PORT`, `PORT` or `unix:PATH`; ArmvisorError otherwise."""
    text = spec.strip()
    if text.startswith("unix:"):
        path = text[5:].split(",")[0]
        if not path:
            raise ArmvisorError(f"--gdb {spec!r}: unix: needs a path")
        return Endpoint("unix", path=path)
    if text.startswith("tcp:"):
        text = text[4:]
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    port = port.split(",")[0]
    bad_host = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if bad_host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArmvisorError(f"--gdb {spec!r}: expected tcp::PORT, tcp:HOST:PORT or unix:PATH")
    return Endpoint("tcp", host=host.strip("[]") or LOOPBACK, port=int(port))


class Listener:
    """The listening socket; `accept` hands out one Connection at a time."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        try:
            if endpoint.kind == "unix":
                if os.path.exists(endpoint.path) and stat.S_ISSOCK(os.stat(endpoint.path).st_mode):
                    os.unlink(endpoint.path)          # a stale socket from an earlier run
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(endpoint.path)
            else:
                family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((endpoint.host, endpoint.port))
            sock.listen(1)
        except OSError as exc:
            raise ArmvisorError(f"--gdb {endpoint}: cannot listen: {exc.strerror or exc}") from None
        self.sock = sock

    def pending(self) -> bool:
        """A debugger is waiting to be accepted (never blocks)."""
        return bool(select.select([self.sock], [], [], 0)[0])

    def accept(self, deadline: Optional[float] = None) -> Optional["Connection"]:
        """Wait for a debugger (until `deadline`, host monotonic time); None on timeout."""
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([self.sock], [], [], wait)[0]:
            return None
        conn, _ = self.sock.accept()
        if self.endpoint.kind == "tcp":
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Connection(conn)

    def close(self) -> None:
        self.sock.close()
        if self.endpoint.kind == "unix":
            try:
                os.unlink(self.endpoint.path)
            except OSError:
                pass


class Connection:
    """One debugger: packets in (with acks), packets out."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = PacketReader()
        self.queue: List[object] = []
        self.closed = False
        self.ack = True                     # until QStartNoAckMode
        self._last_sent = b""

    def send(self, data) -> None:
        self._last_sent = frame(data)
        self._write(self._last_sent)

    def _write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def poll(self) -> bool:
        """Read whatever has arrived without blocking; True if something is queued."""
        self._read(0)
        return bool(self.queue)

    def next(self, deadline: Optional[float] = None) -> Optional[object]:
        """The next packet (bytes) or INTERRUPT, blocking until `deadline`; None: closed or late."""
        while not self.queue and not self.closed:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            self._read(wait)
        return self.queue.pop(0) if self.queue else None

    def _read(self, wait: Optional[float]) -> None:
        if self.closed or not select.select([self.sock], [], [], wait)[0]:
            return
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        for item in self.reader.feed(data):
            if item is RESEND:
                self._write(self._last_sent)
                continue
            if item is CORRUPT:
                self._write(b"-")                  # ask the debugger to send it again
                continue
            if isinstance(item, bytes) and self.ack:
                self._write(b"+")
            self.queue.append(item)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
