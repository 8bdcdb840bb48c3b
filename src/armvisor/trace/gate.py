"""A switch between the bus and one subscriber: the console monitor's `trace on|off`.

Only the subscriber behind the gate (the trace file) stops seeing events; the
bus, the run conditions and the status line still see every one.
"""

from __future__ import annotations

from typing import Callable

from armvisor.trace.bus import Event


class TraceGate:
    def __init__(self, callback: Callable[[Event], None]):
        self._callback = callback
        self.on = True

    def __call__(self, event: Event) -> None:
        if self.on:
            self._callback(event)
