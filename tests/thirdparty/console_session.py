"""Drive a machine's serial console from a test: wait for text, type, wait for the end.

The same driver runs `armvisor run` and `qemu-system-aarch64 -serial stdio`,
so a comparison types the same keys at the same points of both transcripts.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from typing import List, Optional


class ConsoleSession:
    """A machine as a child process whose stdin and stdout are its console."""

    def __init__(self, command: List[str], env: Optional[dict] = None, cwd=None):
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.output = bytearray()
        self._seen = 0                  # what expect() has consumed

    def expect(self, text: bytes, timeout: float) -> float:
        """Wait until `text` appears after what earlier calls matched; returns the time
        since start. Fails the test with the transcript on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(text, self._seen)
            if found >= 0:
                self._seen = found + len(text)
                return time.monotonic() - self.started
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"no {text!r} after {timeout:g} s")
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 1 << 16)
                if not chunk:
                    self._fail(f"the machine exited before printing {text!r}")
                self.output += chunk

    @property
    def matched(self) -> bytes:
        """The output up to the end of the last text expect() found."""
        return bytes(self.output[:self._seen])

    def send(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def finish(self, timeout: float) -> int:
        """Wait for the machine to exit (it powers off); returns its exit code."""
        try:
            out, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            self._fail(f"still running {timeout:g} s after the last command")
        self.output += out
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()

    def _fail(self, why: str) -> None:
        import pytest
        self.close()
        tail = bytes(self.output[-2000:]).decode("latin-1")
        pytest.fail(f"{why}; the console's last output:\n{tail}")

    def __enter__(self) -> "ConsoleSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
