"""The trace event bus that every model publishes to."""

from armvisor.trace.bus import Event, TraceBus

__all__ = ["Event", "TraceBus"]
