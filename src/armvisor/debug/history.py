"""Reverse execution: a deterministic machine's past, rebuilt by replay.

With `--deterministic` nothing but the debugger's own actions decides what
the machine does, so its past is the state at the session's start plus the
list of what the debugger did since: each run (which lanes were frozen, and
where it stopped), each step, each register or memory write, and what was
typed on the console meanwhile (kept by an in-memory recorder, as --record
does). Going back to any moment is restoring the latest checkpoint before it
and doing the same things again, with the console and the trace muted (they
were seen the first time), breakpoints and watchpoints passive.

A moment is named by one CPU's exact instruction count: "CPU c, right before
it starts its instruction X+1" (every core counts instructions as they start,
in C, while a history is kept; see Core.count_exactly). Replaying, every core
is stopped exactly where the original stopped it (Core.stop_before), so a
run that a breakpoint ended mid-block ends there again without the
breakpoint; the one CPU whose moment is wanted is stopped at its count.

- reverse-stepi on CPU c: the moment before c's last instruction, i.e. c at
  its count minus one; every other CPU as it was then.
- reverse-continue: a scan replays everything up to now with the present
  breakpoints and watchpoints noting their hits instead of stopping, then
  goes to the last hit. A watchpoint's hit is its access about to happen, so
  reverse-continue on a watched variable lands on the store that last wrote
  it, whichever CPU made it.

Hazards: a restore puts back every model's state, but the debugger's hooks
(breakpoints, watchpoints, the counting hook) live on the cores and stay;
and going back truncates the history, since what follows is done live and
is the debugger's new future.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import List, Optional, Tuple

from armvisor.api import Condition, Machine
from armvisor.machine.replay import Recorder, Replayer

# Instructions between checkpoints: replaying from one costs at most this much.
CHECKPOINT_EVERY = 20_000_000


@dataclass(frozen=True)
class Place:
    """Where the machine is: the run loop's turns and every CPU's exact count."""

    turns: int
    retired: Tuple[int, ...]


@dataclass
class Op:
    kind: str                          # "run", "step", "context", "memory"
    end: Place
    cpu: int = 0                       # step, context, memory: the CPU
    count: int = 0                     # step: instructions
    frozen: Tuple[int, ...] = ()       # run: lanes that did not run
    data: bytes = b""                  # context: the CPU state; memory: the bytes
    address: int = 0                   # memory: the virtual address
    stop: Optional["Hit"] = None       # run: the breakpoint or watchpoint hit that ended it


@dataclass
class Checkpoint:
    ops_done: int
    state: dict
    input_step: int


@dataclass
class Hit:
    cpu: int
    retired: int                       # the CPU's count before the instruction that hit
    reason: str                        # "swbreak", "hwbreak", "watch", "rwatch", "awatch"
    address: Optional[int] = None      # a watchpoint's data address, a breakpoint's PC
    op: int = 0                        # the op during which it happened
    at_end: bool = False               # it ended that op (the original run stopped there)


class ReplayUntil(Condition):
    """Stop where an op ended (its turn count), or where a CPU reaches its moment."""

    def __init__(self, machine: Machine, turns: int, frozen, moment: Optional[tuple] = None,
                 hits: Optional[list] = None):
        self.machine, self.turns, self.frozen = machine, turns, set(frozen)
        self.moment = moment             # (cpu, count) or None
        self.hits = hits                 # a scan's list, shared with the watchpoints' (in order)

    def clip(self, lane, budget):
        return 0 if lane in self.frozen else budget

    def breakpoint_hit(self, cpu, address):
        if self.hits is not None:
            self.hits.append((cpu, self.machine.cpus[cpu].core.retired - 1, address, "bp"))

    def met(self):
        if self.moment is not None:
            cpu, count = self.moment
            core = self.machine.cpus[cpu].core
            return core.retired == count and core.count_stopped
        return self.machine.board.loop.turns >= self.turns


class History:
    """What the debugger did since it attached, and the way back (see the module doc)."""

    def __init__(self, machine: Machine, target):
        self.machine, self.target = machine, target
        for cpu in machine.cpus:
            cpu.core.count_exactly()
        self._stream = io.StringIO()
        self.input = Recorder(target.host, self._stream, {"history": True},
                              machine.clock.counter) if target.host is not None else None
        self.ops: List[Op] = []
        self.checkpoints = [Checkpoint(0, self._save(), self._input_step())]
        self.start = self.place()
        self._since_checkpoint = 0

    # -- the present -----------------------------------------------------------------

    def place(self) -> Place:
        return Place(self.machine.board.loop.turns,
                     tuple(cpu.core.retired for cpu in self.machine.cpus))

    def _save(self) -> dict:
        m = self.machine
        return {"board": m.board.save_state(), "clock": m.clock.save_state(),
                "loop": m.board.loop.save_state()}

    def _load(self, state: dict) -> None:
        m = self.machine
        m.board.restore_state(state["board"])
        m.clock.restore_state(state["clock"])
        m.board.loop.restore_state(state["loop"])

    def _input_step(self) -> int:
        return self.input.step if self.input is not None else 0

    # -- recording what the debugger does --------------------------------------------------

    def note(self, op: Op) -> None:
        before = sum(self.ops[-1].end.retired) if self.ops else sum(self.start.retired)
        self.ops.append(op)
        self._since_checkpoint += sum(op.end.retired) - before
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self.checkpoints.append(Checkpoint(len(self.ops), self._save(), self._input_step()))
            self._since_checkpoint = 0

    def note_run(self, frozen, stop=None) -> None:
        """A run ended; `stop` the StopInfo of a breakpoint or watchpoint that ended it."""
        hit = None
        if stop is not None and stop.reason:
            cpu = self.machine.cpus[stop.cpu]
            address = stop.address if stop.reason.endswith("watch") else cpu.regs.pc
            hit = Hit(stop.cpu, cpu.core.retired, stop.reason, address, len(self.ops), True)
        self.note(Op("run", self.place(), frozen=tuple(frozen), stop=hit))

    def note_step(self, cpu: int, count: int) -> None:
        self.note(Op("step", self.place(), cpu=cpu, count=count))

    def note_registers(self, cpu: int) -> None:
        core = self.machine.cpus[cpu].core
        self.note(Op("context", self.place(), cpu=cpu, data=core.registers()))

    def note_memory(self, cpu: int, address: int, data: bytes) -> None:
        self.note(Op("memory", self.place(), cpu=cpu, address=address, data=bytes(data)))

    # -- going back ----------------------------------------------------------------------------

    def at_start(self, cpu: int) -> bool:
        return self.machine.cpus[cpu].core.retired <= self.start.retired[cpu]

    def back_one(self, cpu: int) -> bool:
        """reverse-stepi: `cpu` right before its last instruction. False at the start."""
        count = self.machine.cpus[cpu].core.retired
        if count <= self.start.retired[cpu]:
            return False
        self.go_to(cpu, count - 1)
        return True

    def last_hit(self) -> Optional[Hit]:
        """reverse-continue: the last hit of a breakpoint or watchpoint set now, before now."""
        now = self.place()
        hits = self._replay(len(self.ops), scan=True)
        assert self.place() == now, (self.place(), now)   # a scan replays every op: back to now
        # A hit that ended an op where the machine still is, is where it stopped: now.
        earlier = [h for h in hits if not (h.at_end and self.ops[h.op].end == now)]
        return earlier[-1] if earlier else None

    def go_to(self, cpu: int, count: int) -> None:
        """The moment right before `cpu` starts the instruction after its `count`th."""
        self._replay(self._op_of(cpu, count), moment=(cpu, count))

    def go_to_hit(self, hit: Hit) -> None:
        if hit.at_end:
            self._replay(hit.op + 1)                 # that op's own end
        else:
            self._replay(hit.op, moment=(hit.cpu, hit.retired))

    def go_to_start(self) -> None:
        self._replay(0)

    # -- replaying -----------------------------------------------------------------------------

    def _replay(self, upto: int, moment: Optional[tuple] = None,
                scan: bool = False) -> List[Hit]:
        """Replay ops before `upto` from the latest checkpoint that allows it, then, with a
        `moment`, op `upto` until it is reached; truncate the history there (not for a scan,
        which replays everything and notes the hits of the present points)."""
        checkpoint = self.checkpoints[0] if scan else \
            max((c for c in self.checkpoints if c.ops_done <= upto), key=lambda c: c.ops_done)
        hits: List[Hit] = []
        self._quiet(True, scan)
        try:
            self._load(checkpoint.state)
            replayer = self._input_replayer(checkpoint.input_step)
            for index in range(checkpoint.ops_done, upto):
                self._do(self.ops[index], replayer, None)
                if scan:
                    hits += self._hits(index)
            if scan:
                return hits
            if moment is not None:
                self._do(self.ops[upto], replayer, moment)
                kept = self.ops[:upto] + [self._partial(upto, moment)]
            else:
                kept = self.ops[:upto]
            self.ops = kept
            self.checkpoints = [c for c in self.checkpoints if c.ops_done <= len(kept)]
            self._since_checkpoint = 0
            self._rewind_input(replayer.step if replayer is not None else checkpoint.input_step)
            return []
        finally:
            self._quiet(False, scan)

    def _partial(self, index: int, moment: tuple) -> Op:
        """The op that reached `moment`, replayable as it was done: stopped there."""
        op = self.ops[index]
        if op.kind == "step":
            before = self.ops[index - 1].end.retired[op.cpu] if index else self.start.retired[op.cpu]
            return Op("step", self.place(), cpu=op.cpu, count=moment[1] - before)
        return Op("run", self.place(), frozen=op.frozen)

    def _op_of(self, cpu: int, count: int) -> int:
        """The op during which `cpu` went past `count` (started its instruction count+1)."""
        before = self.start.retired[cpu]
        for index, op in enumerate(self.ops):
            if before <= count < op.end.retired[cpu]:
                return index
            before = op.end.retired[cpu]
        raise ValueError(f"cpu {cpu} has not run past {count} instructions")

    def _do(self, op: Op, replayer, moment: Optional[tuple]) -> None:
        machine, cpus = self.machine, self.machine.cpus
        if op.kind == "run":
            for cpu in cpus:                 # what the original skipped once, as it resumed
                self.target.breaks.resume_from(cpu)
        if op.kind == "context":
            cpus[op.cpu].core.set_registers(op.data)
            return
        if op.kind == "memory":
            self.target.write_memory(cpus[op.cpu], op.address, op.data)
            return
        for index, cpu in enumerate(cpus):
            cpu.core.count_stopped = False
            cpu.core.stop_before(op.end.retired[index])
        if moment is not None:
            cpus[moment[0]].core.stop_before(moment[1])
        try:
            if op.kind == "step":
                count = op.count if moment is None else moment[1] - cpus[op.cpu].core.retired
                machine.step(op.cpu, count)
                return
            condition = ReplayUntil(machine, op.end.turns, op.frozen, moment,
                                    self.target.watch.scan)
            machine.run(until=condition, host=replayer)
        finally:
            for cpu in cpus:
                cpu.core.stop_before(None)

    def _hits(self, index: int) -> List[Hit]:
        """Op `index`'s hits of the present breakpoints and watchpoints, in order: those
        its replay noted, then the one that ended it in the original run."""
        reasons = {2: "watch", 3: "rwatch", 4: "awatch"}
        scanned = self.target.watch.scan
        hits = [Hit(cpu, retired, self.target.breaks.reason(where), where, index) if kind == "bp"
                else Hit(cpu, retired, reasons[kind], where, index)
                for cpu, retired, where, kind in scanned]
        scanned.clear()
        end = self.ops[index].stop
        if end is not None and self._still_set(end):
            hits.append(end)
        return hits

    def _still_set(self, hit: Hit) -> bool:
        if hit.reason in ("swbreak", "hwbreak"):
            return hit.address in self.target.breaks.kinds
        return any(watch.va <= hit.address < watch.va + watch.length
                   for watch in self.target.watch.watches.values())

    def _quiet(self, on: bool, scan: bool) -> None:
        machine = self.machine
        machine.console.muted = on
        machine.trace.bus.muted = on
        for cpu in machine.cpus:
            cpu._breakpoints().passive = on
        self.target.watch.passive = on
        self.target.watch.scan = [] if (on and scan) else None

    # -- console input ------------------------------------------------------------------------

    def _input_replayer(self, step: int):
        if self.input is None:
            return None
        lines = self._stream.getvalue().splitlines()
        return Replayer("the debugger's history", self.target.host.receive, lines=lines,
                        step=step)

    def _rewind_input(self, step: int) -> None:
        """Typed input after `step` belongs to a future that no longer happens."""
        if self.input is None:
            return
        kept = [line for line in self._stream.getvalue().splitlines()
                if '"step"' not in line or _step_of(line) <= step]
        self._stream.seek(0)
        self._stream.truncate()
        self._stream.write("".join(line + "\n" for line in kept))
        self.input.step = step


def _step_of(line: str) -> int:
    import json
    return int(json.loads(line).get("step", 0))
