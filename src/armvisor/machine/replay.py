"""Record and replay of a deterministic run's inputs from outside.

With the counter on instructions (`--deterministic`) and the RTC on a fixed
epoch, a run depends on the outside world only through what is typed on the
console, the disks' contents at start, and how long the guest idled while
someone could type (the run loop asks the host, see RunLoop._idle). The
recorder wraps the host console and logs each of those at the loop's step
(every poll, wait and idle of the loop is one step); the replayer gives the
same answers at the same steps without a host, so the console and the trace
repeat byte for byte, an interactive shell session included.

The log is JSON lines: a header, then {"step", "input" (hex)} and
{"step", "idle"} entries, then {"end": step} where the recording stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Dict, List, Optional, TextIO, Union

from armvisor.errors import ArmvisorError

FORMAT = "armvisor-record"
VERSION = 1


class ReplayFinished(Exception):
    """The replay reached the step where the recording ended."""


def disk_identity(paths: List[str]) -> List[dict]:
    """What a disk's contents at start are checked by: size and SHA-256."""
    found = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        found.append({"path": os.path.abspath(path), "size": os.path.getsize(path),
                      "sha256": digest.hexdigest()})
    return found


class Recorder:
    """A HostIO that passes everything to `inner` (the host console) and logs it."""

    def __init__(self, inner, path: Union[str, TextIO], header: dict, clock: Callable[[], int]):
        """`path`: a file to create, or an open text stream (a debugger's history)."""
        self.inner = inner
        self._clock = clock
        self.step = 0
        if not isinstance(path, str):
            self._file: Optional[TextIO] = path
        else:
            try:
                self._file = open(path, "w", encoding="utf-8")
            except OSError as exc:
                raise ArmvisorError(f"cannot write recording {path}: {exc.strerror}") from None
        self._log(dict(header, format=FORMAT, version=VERSION))
        self._receive = inner.receive
        inner.receive = self._received

    @property
    def input_open(self) -> bool:
        return self.inner.input_open

    def poll(self) -> None:
        self.step += 1
        self.inner.poll()

    def wait(self, seconds: float) -> None:
        self.step += 1
        self.inner.wait(seconds)

    def idle(self, now: int, deadline: int) -> int:
        self.step += 1
        value = self.inner.idle(now, deadline)
        if value != deadline:
            self._log({"step": self.step, "idle": value})
        return value

    def _received(self, data: bytes) -> None:
        if data:
            self._log({"step": self.step, "counter": self._clock(), "input": data.hex()})
        self._receive(data)

    def _log(self, entry: dict) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()                 # a killed run keeps what it typed

    def close(self) -> None:
        if self._file is not None:
            self._log({"end": self.step})
            self._file.close()
            self._file = None
            self.inner.receive = self._receive


class Replayer:
    """A HostIO that answers from a recording, at the steps the recording logged."""

    def __init__(self, path: str, receive: Callable[[bytes], None],
                 lines: Optional[List[str]] = None, step: int = 0):
        """From the file `path`, or from `lines` already read (a debugger's history, whose
        recording has not ended: it replays from `step`, with no end)."""
        if lines is None:
            self.header, self._inputs, self._idles, self._end = read_recording(path)
        else:
            self.header, self._inputs, self._idles, _ = parse_recording(lines, path)
            self._end = float("inf")
        self.receive = receive
        self.step = step

    @property
    def input_open(self) -> bool:
        return self.step < self._end

    def _next_step(self) -> None:
        self.step += 1
        if self.step > self._end:        # the recorded run had ended before this step
            raise ReplayFinished()
        for data in self._inputs.pop(self.step, []):
            self.receive(data)

    def poll(self) -> None:
        self._next_step()

    def wait(self, seconds: float) -> None:
        self._next_step()

    def idle(self, now: int, deadline: int) -> int:
        self._next_step()
        return self._idles.get(self.step, deadline)


def read_recording(path: str):
    """(header, inputs by step, idle answers by step, end step); one-line errors."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ArmvisorError(f"cannot read recording {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ArmvisorError(f"{path} is not an armvisor recording") from None
    return parse_recording(lines, path)


def parse_recording(lines: List[str], path: str):
    inputs: Dict[int, List[bytes]] = {}
    idles: Dict[int, int] = {}
    end = None
    try:
        header = json.loads(lines[0]) if lines else None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ArmvisorError(f"{path} is not an armvisor recording")
        if header.get("version") != VERSION:
            raise ArmvisorError(f"{path} is a version {header.get('version')!r} recording; "
                                f"this armvisor reads version {VERSION}")
        for number, line in enumerate(lines[1:], 2):
            entry = json.loads(line)
            if "end" in entry:
                end = int(entry["end"])
            elif "input" in entry:
                inputs.setdefault(int(entry["step"]), []).append(bytes.fromhex(entry["input"]))
            elif "idle" in entry:
                idles[int(entry["step"])] = int(entry["idle"])
            else:
                raise ValueError(f"line {number}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ArmvisorError(f"{path}: corrupt recording ({exc})") from None
    if end is None:
        # A recording cut short (the recorder was killed): replay what it has.
        end = max(list(inputs) + list(idles) + [0]) + 1
    return header, inputs, idles, end
