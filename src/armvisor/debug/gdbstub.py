"""The GDB remote serial protocol server (GDB manual, Appendix E "GDB Remote Serial Protocol").

`serve` replaces `Machine.run` for `armvisor run --gdb ...`: it runs the
machine in the calling thread and answers the debugger between runs. With
`wait` (-S) nothing runs before a debugger has connected and resumed;
without it the guest runs at once and a debugger that connects later stops
it, as QEMU does. One debugger at a time; after `D` (detach) or a dropped
connection the guest runs on and another debugger may attach.

Threads are CPUs: thread N is `machine.cpus[N - 1]` (bare CPUs, or every
vCPU of every VM under --hyp). All-stop: a `vCont` with a step action steps
those CPUs by one instruction each while every other CPU stays stopped
(QEMU lets the others run during the step; here the step is exact).
"""

from __future__ import annotations

import time
from typing import List, Optional

from armvisor.api import Machine
from armvisor.debug.monitor import Monitor
from armvisor.debug.packets import INTERRUPT, unescape
from armvisor.debug.points import ACCESS_WATCH, HW_BREAK, READ_WATCH, SW_BREAK, WRITE_WATCH
from armvisor.debug.registers import REGISTERS, RegisterFile, decode, encode, target_xml
from armvisor.debug.target import SIGSEGV, SIGTRAP, StopInfo, Target
from armvisor.debug.transport import Connection, Listener
from armvisor.errors import ArmvisorError, GuestError, GuestTimeout

PACKET_SIZE = 0x4000
MAX_MEMORY_READ = 0x2000      # bytes per `m` (hex doubles it; fits PacketSize)


class Killed(Exception):
    """The debugger sent `k`: armvisor exits."""


class GdbStub:
    def __init__(self, machine: Machine, listener: Listener, host=None, reverse: bool = False):
        self.machine = machine
        self.listener = listener
        self.target = Target(machine)
        self.target.host = host
        self.monitor = Monitor(self.target)
        self.conn: Optional[Connection] = None
        self.stop: Optional[StopInfo] = None      # the last stop reported (None: running)
        self.error: Optional[BaseException] = None   # a guest failure reported as SIGSEGV
        self.g_cpu = 0                             # Hg: registers and memory
        self.c_cpu = 0                             # Hc: the old `c` and `s`
        self.xml = target_xml().encode()
        self.reverse = reverse                     # keep a history (debug/history.py)

    # -- the session ----------------------------------------------------------------------

    def serve(self, wait: bool, timeout: Optional[float] = None) -> int:
        """Run the machine under the debugger until it ends; returns the exit status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.machine.boot()
        if self.reverse:
            if not self.machine.clock.deterministic:
                raise ArmvisorError("reverse execution needs a deterministic machine")
            self.target.keep_history()        # reverse execution: bs, bc
        try:
            if wait:
                self._attach(deadline)
                self.stop = StopInfo(SIGTRAP, 0)
            while True:
                if self.conn is None or self.conn.closed:
                    status = self._run_detached(deadline)
                    if status is not None:
                        return status
                    continue
                action = self._serve_packets(deadline)
                if action is None:                  # detached or dropped: the guest runs on
                    self._drop()
                    continue
                status = self._resume(action, deadline)
                if status is not None:
                    self._send(f"W{status & 0xFF:02x}")
                    return status
        except Killed:
            return 0
        finally:
            self._drop()
            self.listener.close()

    def _attach(self, deadline: Optional[float]) -> None:
        conn = self.listener.accept(deadline)
        if conn is None:
            raise GuestTimeout("timeout waiting for a debugger", "")
        self.conn = conn

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.target.detach()
        self.stop = None

    def _run_detached(self, deadline: Optional[float]) -> Optional[int]:
        """No debugger: run until the guest ends or a debugger connects (then stop, as QEMU)."""
        status, stop, woken = self.target.run(list(range(len(self.target.cpus))),
                                              self.listener.pending, None, _left(deadline))
        if status is not None:
            return status
        if self.listener.pending():
            self._attach(deadline)
            self.stop = StopInfo(SIGTRAP, stop.cpu if stop else 0)
        return None

    # -- resuming -------------------------------------------------------------------------

    def _resume(self, actions: List[tuple], deadline: Optional[float]) -> Optional[int]:
        """Carry out a resume (`c`, `s`, `vCont`); report the stop. Returns an exit status."""
        if self.error is not None:                 # the guest cannot go on: end as it would have
            raise self.error
        current, self.stop = self.stop, None
        steps = [cpu for kind, cpu in actions if kind == "s"]
        try:
            if steps:
                stop = None
                for index in steps:
                    stop = self.target.step(self.target.cpus[index], current)
                    if stop.reason:
                        break
                self._report(stop)
                return None
            resumed = sorted({cpu for kind, cpu in actions if kind == "c"})
            status, stop, _ = self.target.run(resumed, self._interrupted, current,
                                              _left(deadline))
        except GuestError as exc:
            # The guest stopped the machine: let the debugger look at it first.
            self.error = exc
            self._report(StopInfo(SIGSEGV, self._culprit(exc)))
            return None
        if status is not None:
            return status
        self._report(stop)
        return None

    def _interrupted(self) -> bool:
        """While the guest runs: a 0x03 (or a dropped debugger) stops it."""
        conn = self.conn
        if conn is None or conn.closed:
            return True
        conn.poll()
        if conn.closed:
            return True
        if INTERRUPT in conn.queue:
            conn.queue.remove(INTERRUPT)
            return True
        return False

    def _culprit(self, exc: GuestError) -> int:
        for n, cpu in enumerate(self.target.cpus):
            if cpu.name in str(exc):
                return n
        return self.c_cpu

    def _report(self, stop: StopInfo) -> None:
        self.stop = stop
        self.g_cpu = self.c_cpu = stop.cpu
        self._send(self._stop_reply(stop))

    def _stop_reply(self, stop: StopInfo) -> str:
        """GDB manual, "Stop Reply Packets": `T sig thread:N; reason:value;`."""
        reply = f"T{stop.signal:02x}thread:{stop.cpu + 1:x};"
        if stop.reason in ("swbreak", "hwbreak"):
            reply += f"{stop.reason}:;"
        elif stop.reason == "replaylog":
            reply += "replaylog:begin;"               # no history before this
        elif stop.reason:
            reply += f"{stop.reason}:{stop.address:x};"
        return reply

    # -- packets --------------------------------------------------------------------------

    def _send(self, data) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.send(data)

    def _serve_packets(self, deadline: Optional[float]) -> Optional[List[tuple]]:
        """Answer packets until one resumes the machine (its actions) or the debugger leaves."""
        while True:
            item = self.conn.next(deadline)
            if item is None:
                if self.conn.closed:
                    return None
                raise GuestTimeout("timeout with the debugger attached", self.machine.board.report())
            if item is INTERRUPT:
                continue                            # already stopped
            packet = item.decode("latin-1")
            try:
                answer = self._dispatch(packet)
            except (ArmvisorError, ValueError, IndexError, KeyError):
                answer = "E01"
            if isinstance(answer, list):
                return answer
            if answer is None:                      # detach
                return None
            self._send(answer)

    def _dispatch(self, packet: str):
        head = packet[:1]
        if packet.startswith("vCont"):
            return self._vcont(packet)
        if packet.startswith("q") or packet.startswith("Q"):
            return self._query(packet)
        handler = {
            "?": lambda p: self._stop_reply(self.stop or StopInfo(SIGTRAP, self.g_cpu)),
            "g": lambda p: RegisterFile(self._cpu()).read_all(),
            "G": self._write_registers,
            "p": self._read_register, "P": self._write_register,
            "m": self._read_memory, "M": self._write_memory, "X": self._write_binary,
            "H": self._set_thread, "T": self._thread_alive,
            "c": lambda p: [("c", n) for n in range(len(self.target.cpus))],
            "s": lambda p: [("s", self.c_cpu)],
            "Z": self._insert_point, "z": self._remove_point,
            "b": self._backwards,
            "D": self._detach, "k": self._kill,
        }.get(head)
        if handler is None:
            return ""                               # unsupported: the empty reply
        return handler(packet)

    def _cpu(self):
        return self.target.cpus[self.g_cpu]

    def _thread(self, text: str, default: int) -> int:
        """A thread id (GDB manual, "thread-id syntax"): `p1.N`, `N`, `0` (any) or `-1` (all)."""
        if "." in text:
            text = text.split(".", 1)[1]
        number = int(text, 16) if text != "-1" else -1
        if number in (0, -1):
            return default
        if not 1 <= number <= len(self.target.cpus):
            raise ValueError(f"no thread {number}")
        return number - 1

    # -- reverse execution (GDB manual, "Packets": bs, bc) ---------------------------------

    def _backwards(self, packet):
        """`bs`: the selected CPU one instruction back; `bc`: back to the last breakpoint or
        watchpoint hit. The stop is reported as a forward one would be."""
        history = self.target.history
        if history is None or packet not in ("bs", "bc"):
            return "E01"                            # not deterministic: no past to go back to
        self.error = None
        if packet == "bs":
            cpu = self.c_cpu
            stop = StopInfo(SIGTRAP, cpu) if history.back_one(cpu) else \
                StopInfo(SIGTRAP, cpu, "replaylog")
        else:
            hit = history.last_hit()
            if hit is None:
                history.go_to_start()
                stop = StopInfo(SIGTRAP, self.c_cpu, "replaylog")
            else:
                history.go_to_hit(hit)
                address = hit.address if hit.reason.endswith("watch") else None
                stop = StopInfo(SIGTRAP, hit.cpu, hit.reason, address)
        self.stop = stop
        self.g_cpu = self.c_cpu = stop.cpu
        return self._stop_reply(stop)

    # -- registers and memory -------------------------------------------------------------

    def _write_registers(self, packet):
        RegisterFile(self._cpu()).write_all(packet[1:])
        self.target.registers_written(self._cpu())
        return "OK"

    def _read_register(self, packet):
        number = int(packet[1:], 16)
        if number >= len(REGISTERS):
            return "E01"
        return encode(RegisterFile(self._cpu()).read(number), REGISTERS[number].bits)

    def _write_register(self, packet):
        number, value = packet[1:].split("=")
        number = int(number, 16)
        RegisterFile(self._cpu()).write(number, decode(value, REGISTERS[number].bits))
        self.target.registers_written(self._cpu())
        return "OK"

    def _read_memory(self, packet):
        address, length = (int(x, 16) for x in packet[1:].split(","))
        return self.target.read_memory(self._cpu(), address, min(length, MAX_MEMORY_READ)).hex()

    def _write_memory(self, packet):
        where, data = packet[1:].split(":", 1)
        address, length = (int(x, 16) for x in where.split(","))
        payload = bytes.fromhex(data)
        if len(payload) != length:
            return "E02"
        self.target.write_memory(self._cpu(), address, payload)
        return "OK"

    def _write_binary(self, packet):
        raw = packet.encode("latin-1")
        colon = raw.index(b":")
        address, length = (int(x, 16) for x in raw[1:colon].decode().split(","))
        payload = unescape(raw[colon + 1:])
        if length == 0:
            return "OK"                             # gdb probing for X support
        if len(payload) != length:
            return "E02"
        self.target.write_memory(self._cpu(), address, payload)
        return "OK"

    # -- threads ----------------------------------------------------------------------------

    def _set_thread(self, packet):
        which, thread = packet[1], packet[2:]
        if which == "g":
            self.g_cpu = self._thread(thread, self.g_cpu)
        elif which == "c":
            self.c_cpu = self._thread(thread, self.c_cpu)
        else:
            return "E01"
        return "OK"

    def _thread_alive(self, packet):
        self._thread(packet[1:], 0)
        return "OK"

    def _vcont(self, packet: str):
        """GDB manual, "Packets", vCont: `vCont;action[:thread];...`, the first match wins."""
        if packet == "vCont?":
            return "vCont;c;C;s;S"
        actions: dict = {}
        for part in packet.split(";")[1:]:
            action, _, thread = part.partition(":")
            kind = action[0].lower()
            if kind not in "cs":
                return "E01"                        # 't' and 'r' are not offered
            targets = range(len(self.target.cpus)) if not thread or thread in ("-1", "p1.-1") \
                else [self._thread(thread, 0)]
            for cpu in targets:
                actions.setdefault(cpu, kind)
        return [(kind, cpu) for cpu, kind in sorted(actions.items())]

    # -- break and watch points -------------------------------------------------------------

    def _insert_point(self, packet):
        kind, address, length = self._point_args(packet)
        if kind in (SW_BREAK, HW_BREAK):
            self.target.breaks.insert(kind, address)
        elif kind in (WRITE_WATCH, READ_WATCH, ACCESS_WATCH):
            if length <= 0 or not self.target.watch.insert(self._cpu(), kind, address, length):
                return "E01"
        else:
            return ""
        return "OK"

    def _remove_point(self, packet):
        kind, address, length = self._point_args(packet)
        if kind in (SW_BREAK, HW_BREAK):
            self.target.breaks.remove(kind, address)
        elif kind in (WRITE_WATCH, READ_WATCH, ACCESS_WATCH):
            self.target.watch.remove(kind, address, length)
        else:
            return ""
        return "OK"

    @staticmethod
    def _point_args(packet):
        fields = packet[1:].split(";")[0].split(",")
        return int(fields[0]), int(fields[1], 16), int(fields[2], 16)

    # -- leaving ----------------------------------------------------------------------------

    def _detach(self, packet):
        self._send("OK")
        return None

    def _kill(self, packet):
        raise Killed()

    # -- queries ----------------------------------------------------------------------------

    def _query(self, packet: str):
        name, _, args = packet.partition(":")
        name = name.split(",")[0]
        if name == "qSupported":
            reverse = ";ReverseStep+;ReverseContinue+" if self.target.history else ""
            return (f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;swbreak+;hwbreak+;"
                    "vContSupported+" + reverse)
        if name == "qXfer" and args.startswith("features:read:"):
            annex, _, span = args[len("features:read:"):].partition(":")
            if annex != "target.xml":
                return "E00"
            offset, length = (int(x, 16) for x in span.split(","))
            chunk = self.xml[offset:offset + length]
            return ("l" if offset + length >= len(self.xml) else "m") + chunk.decode()
        if packet == "qfThreadInfo":
            return "m" + ",".join(f"{n + 1:x}" for n in range(len(self.target.cpus)))
        if packet == "qsThreadInfo":
            return "l"
        if packet == "qC":
            return f"QC{self.g_cpu + 1:x}"
        if name == "qThreadExtraInfo":
            cpu = self.target.cpus[self._thread(packet.split(",")[1], 0)]
            return self.target.describe(cpu).encode().hex()
        if name == "qAttached":
            return "1"                              # detach, not kill, when gdb quits
        if name == "qRcmd":
            line = bytes.fromhex(packet.split(",", 1)[1]).decode(errors="replace")
            out = self.monitor.run(line, self._cpu())
            self._send("O" + out.encode().hex())
            return "OK"
        if packet == "qOffsets":
            return "Text=0;Data=0;Bss=0"
        if packet == "qSymbol::":
            return "OK"
        return ""


def _left(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.001, deadline - time.monotonic())
