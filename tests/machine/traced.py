"""A deterministic run written to a Chrome trace file, for the trace tests."""

from __future__ import annotations

from pathlib import Path

from armvisor.api import Machine
from armvisor.trace import TraceBus
from armvisor.trace.chrome import ChromeTraceWriter

BUILD = Path(__file__).resolve().parents[2] / "guests" / "build"


def run_to_trace(path, **machine) -> bytes:
    """Run `Machine(**machine)` to SYSTEM_OFF with its trace written to `path`; the console."""
    bus = TraceBus()
    out = []
    with ChromeTraceWriter(str(path)) as writer:
        bus.subscribe(writer.on_event)
        m = Machine(trace=bus, console=out.append, deterministic=True, **machine)
        try:
            assert m.run(timeout=120) == 0
        finally:
            m.close()
    return b"".join(out)
