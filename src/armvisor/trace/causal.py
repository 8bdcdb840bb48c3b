"""What the events imply, as Chrome trace records: durations, power spans, flows, counters.

The models emit instants (a PSCI call's entry and return, a WFI and the
wake-up, an acknowledge and an EOI); this layer pairs them into "X" slices
and links causes to effects with "s"/"f" flows:

- CPU_ON that succeeded -> the target's first instruction (bare, pCPUs, vCPUs);
- SGI -> its acknowledge on each target (a hypervisor's kick is a physical SGI);
- the hypervisor's injection of a vCPU's timer -> the guest's acknowledge.

A flow's ends are written together, once the effect is seen, each at the
start of a slice on its own track (Perfetto binds a flow end to the slice
enclosing it): a cause never seen to take effect leaves no dangling id.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

from armvisor.trace.bus import Event
from armvisor.trace.tracks import Track, Tracks

# Interrupt-rate counters count acknowledges per bucket of trace time.
RATE_BUCKET_US = 10_000.0
SGI_LIMIT = 16                      # INTIDs 0-15 are SGIs (IHI0069 2.2.1)
IDLE_KINDS = {"cpu.wfi": "WFI", "cpu.standby": "standby", "cpu.powerdown": "suspended",
              "pcpu.idle": "idle"}
# What ends an idle span: the CPU runs again, or it is started or stopped anew.
IDLE_ENDS = frozenset(("cpu.wake", "cpu.start", "cpu.first_insn", "cpu.off", "vcpu.load"))

Cause = Tuple[int, Track, float]    # flow id, the cause's track, its timestamp


class CausalLayer:
    def __init__(self, tracks: Tracks, emit: Callable[[dict], None]):
        self._tracks = tracks
        self._emit = emit
        self._next_id = 1
        self._last_ts = 0.0
        self._calls: Dict[Track, Tuple[float, str]] = {}
        self._idle: Dict[Track, Tuple[float, str]] = {}
        self._runs: Dict[Track, Tuple[float, Track, str]] = {}
        self._power: Dict[Track, str] = {}
        self._irqs: Dict[Track, List[list]] = defaultdict(list)   # [intid, ts, causes]
        self._sgis: Dict[Tuple[Track, int], List[Cause]] = defaultdict(list)
        self._starts: Dict[Track, Cause] = {}
        self._rates: Dict[int, list] = {}            # pid -> [bucket, {label: count}]
        self._handlers = {
            "psci.enter": self._call_enter, "vpsci.enter": self._call_enter,
            "psci.call": self._call_return, "vpsci.call": self._call_return,
            "power.state": self._power_state, "vcpu.power": self._power_state,
            "cpu.first_insn": self._first_insn,
            "gic.ack": self._ack, "gic.eoi": self._eoi, "gic.sgi": self._sgi,
            "vcpu.inject": self._inject, "vcpu.load": self._vcpu_load,
        }

    def on_event(self, event: Event, track: Track, ts: float) -> None:
        if ts > self._last_ts:
            self._last_ts = ts
        kind = event.kind
        if kind in IDLE_ENDS:
            self._end_idle(track, ts)
        idle = IDLE_KINDS.get(kind)
        if idle is not None:
            if kind == "pcpu.idle":
                self._end_run(track, ts)
            self._end_idle(track, ts)
            self._idle[track] = (ts, idle)
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event, track, ts)

    def close(self) -> None:
        """The run ended: close what is still open at the last timestamp seen."""
        end = self._last_ts
        for track in list(self._calls):
            start, name = self._calls.pop(track)
            self._slice(track, start, end, name, "psci", {"result": "no return"})
        for track in list(self._idle):
            self._end_idle(track, end)
        for track in list(self._runs):
            self._end_run(track, end)
        for track, stack in self._irqs.items():
            while stack:
                self._finish_irq(track, stack.pop(), end)
        for power, state in self._power.items():
            self._emit({"name": state, "cat": "power", "ph": "E", "ts": end,
                        "pid": power.pid, "tid": power.tid})
        self._power.clear()
        for pid in list(self._rates):
            self._flush_rate(pid)

    # -- PSCI calls and CPU_ON ------------------------------------------------------------
    def _call_enter(self, event: Event, track: Track, ts: float) -> None:
        self._calls[track] = (ts, str(event.fields.get("function")))

    def _call_return(self, event: Event, track: Track, ts: float) -> None:
        fields = event.fields
        start, _ = self._calls.pop(track, (ts, None))
        result = fields.get("result")
        self._slice(track, start, ts, str(fields.get("function")),
                    event.kind.split(".")[0], {"result": result})
        target = fields.get("target")
        if target is not None and result == 0:
            self._starts[self._tracks.track(track.vm, target)] = (self._new_id(), track, start)

    def _first_insn(self, event: Event, track: Track, ts: float) -> None:
        self._slice(track, ts, ts, "first instruction", "boot",
                    {"pc": hex(event.fields.get("pc", 0))})
        cause = self._starts.pop(track, None)
        if cause is not None:
            self._flow("CPU_ON", cause, track, ts)

    def _power_state(self, event: Event, track: Track, ts: float) -> None:
        new = event.fields.get("new")
        if new is None or track.cpu is None:
            return
        power = self._tracks.power(track)
        old = self._power.pop(power, None)
        if old is not None:
            self._emit({"name": old, "cat": "power", "ph": "E", "ts": ts,
                        "pid": power.pid, "tid": power.tid})
        name = str(new).upper()
        self._emit({"name": name, "cat": "power", "ph": "B", "ts": ts,
                    "pid": power.pid, "tid": power.tid})
        self._power[power] = name

    # -- idle and vCPU runs -------------------------------------------------------------
    def _end_idle(self, track: Track, ts: float) -> None:
        open_ = self._idle.pop(track, None)
        if open_ is not None:
            self._slice(track, open_[0], ts, open_[1], "idle", None)

    def _vcpu_load(self, event: Event, track: Track, ts: float) -> None:
        self._end_run(track, ts)
        name = str(event.fields.get("vcpu"))
        self._runs[track] = (ts, self._vcpu_track(name), name)

    def _vcpu_track(self, name: str) -> Track:
        """The track of the vCPU the hypervisor names "vm/vcpuN" on a pCPU's events."""
        vm, _, index = name.rpartition("/vcpu")
        return self._tracks.track(vm, int(index) if index.isdigit() else None)

    def _end_run(self, pcpu: Track, ts: float) -> None:
        open_ = self._runs.pop(pcpu, None)
        if open_ is None:
            return
        start, vcpu, name = open_
        self._slice(pcpu, start, ts, name, "vcpu", {"vm": vcpu.vm})
        if vcpu.cpu is not None:
            self._slice(vcpu, start, ts, f"on pCPU {pcpu.cpu}", "run", None)

    # -- interrupts -----------------------------------------------------------------------
    def _sgi(self, event: Event, track: Track, ts: float) -> None:
        fields = event.fields
        intid = fields.get("intid", 0)
        targets = fields.get("targets") or ()
        label = ",".join(str(t) for t in targets) or "none"
        self._slice(track, ts, ts, f"SGI {intid} -> {label}", "sgi", None)
        for target in targets:
            cause = (self._new_id(), track, ts)
            self._sgis[(self._tracks.track(track.vm, target), intid)].append(cause)

    def _inject(self, event: Event, track: Track, ts: float) -> None:
        fields = event.fields
        intid = fields.get("intid", 0)
        name = str(fields.get("vcpu"))
        vcpu = self._vcpu_track(name)
        self._slice(track, ts, ts, f"inject {intid} -> {name}", "inject", None)
        self._sgis[(vcpu, intid)].append((self._new_id(), track, ts))

    def _ack(self, event: Event, track: Track, ts: float) -> None:
        intid = event.fields.get("intid", 0)
        causes = self._sgis.pop((track, intid), None) or []
        self._irqs[track].append([intid, ts, causes])
        self._count_rate(track, ts)

    def _eoi(self, event: Event, track: Track, ts: float) -> None:
        intid = event.fields.get("intid", 0)
        stack = self._irqs.get(track)
        if not stack:
            return
        # Priority drops come in the reverse order of the acknowledges; look
        # down the stack so that one missing EOI does not shift the rest.
        for depth in range(len(stack) - 1, -1, -1):
            if stack[depth][0] == intid:
                self._finish_irq(track, stack.pop(depth), ts)
                return

    def _finish_irq(self, track: Track, entry: list, end: float) -> None:
        intid, start, causes = entry
        self._slice(track, start, end, f"IRQ {intid}", "irq", None)
        for cause in causes:
            self._flow("SGI" if intid < SGI_LIMIT else "inject", cause, track, start)

    def _count_rate(self, track: Track, ts: float) -> None:
        bucket = int(ts // RATE_BUCKET_US)
        rate = self._rates.get(track.pid)
        if rate is None:
            rate = self._rates[track.pid] = [bucket, {}]
        elif rate[0] != bucket:
            self._flush_rate(track.pid)
            if bucket > rate[0] + 1:          # the quiet buckets between count zero
                self._counter(track.pid, (rate[0] + 1) * RATE_BUCKET_US,
                              {k: 0 for k in rate[1]})
            rate[0] = bucket
            rate[1] = {k: 0 for k in rate[1]}
        counts = rate[1]
        counts[track.label] = counts.get(track.label, 0) + 1

    def _flush_rate(self, pid: int) -> None:
        bucket, counts = self._rates[pid]
        if counts:
            self._counter(pid, bucket * RATE_BUCKET_US, counts)

    def _counter(self, pid: int, ts: float, counts: dict) -> None:
        self._emit({"name": "irqs per 10 ms", "cat": "irq", "ph": "C", "ts": ts, "pid": pid,
                    "tid": 0, "args": dict(counts)})

    # -- records --------------------------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _slice(self, track: Track, start: float, end: float, name: str, cat: str,
               args: Optional[dict]) -> None:
        record = {"name": name, "cat": cat, "ph": "X", "ts": start,
                  "dur": max(end - start, 0.0), "pid": track.pid, "tid": track.tid}
        if args:
            record["args"] = args
        self._emit(record)

    def _flow(self, name: str, cause: Cause, track: Track, ts: float) -> None:
        flow_id, source, source_ts = cause
        self._emit({"name": name, "cat": "flow", "ph": "s", "id": flow_id, "ts": source_ts,
                    "pid": source.pid, "tid": source.tid})
        self._emit({"name": name, "cat": "flow", "ph": "f", "bp": "e", "id": flow_id,
                    "ts": ts, "pid": track.pid, "tid": track.tid})
