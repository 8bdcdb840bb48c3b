"""armvisor on a pseudo-terminal (stdin, stdout and stderr), read as a person at a shell would."""

from __future__ import annotations

import os
import select
import subprocess
import time


class Terminal:
    def __init__(self, cmd: list, timeout: float = 30):
        self.timeout = timeout                         # how long `expect` waits by default
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float | None = None) -> str:
        """Wait until `text` has been shown; everything shown so far."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; got:\n{self.seen[-2000:].decode(errors='replace')}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        assert text.encode() in self.seen, self.seen[-2000:].decode(errors="replace")
        return self.seen.decode(errors="replace")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> int:
        """Wait for the process to end; what it wrote until then is in `seen`."""
        try:
            status = self.proc.wait(timeout=60)
            while select.select([self.master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:                 # the other side is closed: all was read
                    break
                if not chunk:
                    break
                self.seen += chunk
            return status
        finally:
            os.close(self.master)
