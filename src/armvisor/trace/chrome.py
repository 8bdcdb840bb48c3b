"""Write TraceBus events as a Chrome trace-event JSON file (chrome://tracing, Perfetto).

One track per CPU ("cpu0", "cpu1", ...) and one "machine" track for events
without a CPU. Every event becomes an instant event; "power.state" events,
which carry the CPU's `old` and `new` power state, also close the span of the
old state and open one named after the new state, so the viewer shows when
each CPU was OFF, ON_PENDING, ON... Events are written as they arrive, in the
JSON Array Format, which viewers accept even without the closing bracket, so a
run that dies before `close()` still leaves a readable trace; `close()` ends
the open spans and makes the file strict JSON.
"""

from __future__ import annotations

import json
from typing import Any, Optional, TextIO

from armvisor.errors import ArmvisorError
from armvisor.trace.bus import Event

PID = 1
MACHINE_TID = 0
POWER_STATE_KIND = "power.state"


def cpu_tid(cpu: int) -> int:
    return cpu + 1                     # tid 0 is the machine-wide track


def _json_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        # Addresses and IDs read best in hex, as Event.describe shows them;
        # JSON numbers would also lose precision above 2^53.
        return hex(value) if value > 9 or value < -9 else value
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _open_trace_file(path: str) -> TextIO:
    """Open (create or truncate) the trace file now, so that a missing or unwritable
    directory is a one-line error before the guest runs, not after it."""
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise ArmvisorError(f"cannot write the trace file {path!r}: "
                            f"{exc.strerror or exc}") from None
    except ValueError as exc:      # a path with a NUL byte in it
        raise ArmvisorError(f"cannot write the trace file {path!r}: {exc}") from None


class ChromeTraceWriter:
    """Subscribe `on_event` to a TraceBus; call `close()` (from a finally) at the end."""

    def __init__(self, path: str, process_name: str = "armvisor"):
        self.path = path
        self._file: Optional[TextIO] = _open_trace_file(path)
        self._first = True
        self._named_tids: set[int] = set()
        self._open_spans: dict[int, str] = {}      # tid -> name of the open power span
        self._last_ts = 0.0
        self._file.write("[\n")
        self._emit({"name": "process_name", "ph": "M", "pid": PID, "tid": MACHINE_TID,
                    "args": {"name": process_name}})
        self._name_track(MACHINE_TID, "machine", sort_index=-1)

    @property
    def closed(self) -> bool:
        return self._file is None

    def on_event(self, event: Event) -> None:
        if self._file is None:
            return
        tid = MACHINE_TID if event.cpu is None else cpu_tid(event.cpu)
        if tid not in self._named_tids:
            self._name_track(tid, f"cpu{event.cpu}", sort_index=event.cpu)
        ts = float(event.ts_us)
        self._last_ts = max(self._last_ts, ts)
        args = {str(k): _json_value(v) for k, v in event.fields.items()}
        if event.kind == POWER_STATE_KIND and "new" in event.fields:
            self._switch_span(tid, ts, str(event.fields["new"]), args)
        self._emit({"name": event.kind, "cat": event.kind.split(".", 1)[0], "ph": "i",
                    "s": "t", "ts": ts, "pid": PID, "tid": tid, "args": args})

    def close(self) -> None:
        """End the open spans and terminate the JSON array; safe to call twice."""
        if self._file is None:
            return
        try:
            for tid in sorted(self._open_spans):
                self._emit({"name": self._open_spans[tid], "cat": "power", "ph": "E",
                            "ts": self._last_ts, "pid": PID, "tid": tid})
            self._open_spans.clear()
            self._file.write("\n]\n")
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> "ChromeTraceWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    def _switch_span(self, tid: int, ts: float, new_state: str, args: dict) -> None:
        old = self._open_spans.pop(tid, None)
        if old is not None:
            self._emit({"name": old, "cat": "power", "ph": "E", "ts": ts, "pid": PID, "tid": tid})
        self._emit({"name": new_state, "cat": "power", "ph": "B", "ts": ts, "pid": PID,
                    "tid": tid, "args": args})
        self._open_spans[tid] = new_state

    def _name_track(self, tid: int, name: str, sort_index: int) -> None:
        self._named_tids.add(tid)
        self._emit({"name": "thread_name", "ph": "M", "pid": PID, "tid": tid,
                    "args": {"name": name}})
        self._emit({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": tid,
                    "args": {"sort_index": sort_index}})

    def _emit(self, record: dict) -> None:
        assert self._file is not None
        if not self._first:
            self._file.write(",\n")
        self._first = False
        self._file.write(json.dumps(record, separators=(",", ":")))
