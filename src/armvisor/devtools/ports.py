"""TCP ports for tests and benchmarks that start a GDB stub and attach to it."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A local TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on `port`, without connecting (a connection would be a
    debugger to the stub)."""
    with open("/proc/net/tcp") as table:
        return any(f":{port:04X} " in line and line.split()[3] == "0A" for line in table)
