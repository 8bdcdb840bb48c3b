"""The console's monitor (Ctrl-A c), a small cousin of QEMU's: a command line in, text out.

It runs in the machine's thread between slices (the console polls there), so
it reads CPUs and the GIC while nothing moves. The views of CPUs and
interrupts are the GDB stub's `monitor psci` and `monitor gic`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

from armvisor.console import QuitRequested
from armvisor.debug.monitor import Monitor
from armvisor.trace.gate import TraceGate

HELP = """\
info cpus       each CPU's power state, EL and PC (with its symbol)
info irq        pending and active interrupts per CPU
trace on|off    start or stop writing events to the trace file
savevm FILE     save the whole machine there (armvisor run --restore FILE)
quit            quit armvisor (as Ctrl-A x)
help            this list
"""


class ConsoleMonitor:
    def __init__(self, machine, gate: Optional[TraceGate] = None):
        self._views = Monitor(SimpleNamespace(machine=machine, cpus=machine.cpus))
        self._gate = gate

    def __call__(self, line: str) -> str:
        words = line.split()
        if not words or words[0] == "help":
            return HELP
        if words[0] in ("quit", "q"):
            raise QuitRequested("monitor 'quit'")
        if words[:2] == ["info", "cpus"]:
            return self._views.psci([])
        if words[:2] == ["info", "irq"]:
            return self._views.gic([])
        if words[0] in ("savevm", "snapshot"):
            return self._views.run(" ".join(["snapshot", *words[1:]]), self._views.cpu)
        if words[0] == "trace" and words[1:] in (["on"], ["off"]):
            if self._gate is None:
                return "no trace file: run with --trace FILE (or --timeline, --report)\n"
            self._gate.on = words[1] == "on"
            return f"trace {words[1]}\n"
        return f"unknown command {line.strip()!r}; 'help' lists them\n"
