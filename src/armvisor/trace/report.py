"""The bring-up report of a saved trace: `armvisor trace report`, and `report(trace)` in Python.

`build(trace)` returns plain data (what `--json` prints); `render_text` and
`render_rich` lay the same data out for a pipe or a terminal. Times are
seconds of trace time (the virtual clock with --deterministic), latencies
microseconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable, Dict, List, Optional

from armvisor.firmware.psci.constants import PsciReturn
from armvisor.machine.symbols import EMPTY, KernelSymbols, SymbolTable
from armvisor.trace.model import Lane, Trace

OFF_STATES = {"OFF", "ON_PENDING"}
AFFINITY_NAMES = {0: "ON", 1: "OFF", 2: "ON_PENDING"}


def _seconds(us: Optional[float]) -> Optional[float]:
    return None if us is None else round(us / 1e6, 9)


def result_name(function: str, value) -> str:
    if value is None:
        return "no return"
    if not isinstance(value, int):
        return str(value)
    if value < 0:
        try:
            return PsciReturn(value).name
        except ValueError:
            return str(value)
    if function.startswith("AFFINITY_INFO"):
        return AFFINITY_NAMES.get(value, str(value))
    if value == 0:
        return "SUCCESS"
    return hex(value)


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def kernel_symbols(trace: Trace, path: Optional[str] = None) -> Dict[Optional[str], SymbolTable]:
    """Symbols per VM (None: the bare machine): `path` (ELF or System.map) for every guest,
    else each kernel the trace names, when it is an ELF with symbols and still there."""
    if path:
        given = KernelSymbols(None, path).table
        return defaultdict(lambda: given)
    tables: Dict[Optional[str], SymbolTable] = defaultdict(lambda: EMPTY)
    for event in trace.events("machine.boot", "vm.boot"):
        kernel = event.args.get("kernel")
        if isinstance(kernel, str):
            tables[event.args.get("vm") if event.kind == "vm.boot" else None] = \
                KernelSymbols(kernel).table
    return tables


def bring_up(trace: Trace, symbols: Optional[Dict] = None) -> List[dict]:
    """Per CPU (then per vCPU): who asked for it and when, its first instruction, online."""
    first_on: Dict[Lane, object] = {}
    for flow in trace.flows:
        if flow.name == "CPU_ON":
            first_on.setdefault(flow.target, flow)
    firsts = defaultdict(list)
    for event in trace.events("cpu.first_insn"):
        firsts[event.lane].append(event)
    onlines = defaultdict(list)
    for event in trace.events("power.state"):
        if str(event.args.get("new")).upper() == "ON":
            onlines[event.lane].append(event.ts)
    cold = {e.lane: e.ts for e in trace.events("cpu.start") if e.args.get("reason") == "cold boot"}
    booted_vms = {e.args.get("vm"): e.ts for e in trace.events("vm.boot")}
    rows = []
    for lane in [*trace.cpus(None), *(l for vm in trace.vms for l in trace.cpus(vm))]:
        flow = first_on.get(lane)
        row = {"cpu": lane.label, "requested_by": None, "requested_at": None,
               "first_insn_at": None, "pc": None, "online_at": None,
               "to_first_insn_us": None, "to_online_us": None}
        if flow is not None:
            requested, first = flow.source_ts, flow.target_ts
            row.update(requested_by=flow.source.label, requested_at=_seconds(requested),
                       first_insn_at=_seconds(first))
            pc = next((e.args.get("pc") for e in firsts[lane] if e.ts == first), None)
            row["pc"] = pc
            if symbols is not None and isinstance(pc, int):
                row["symbol"] = symbols[lane.vm].lookup(pc)
            # A vCPU is online when it runs: virtual PSCI has no ON_PENDING.
            online = first if lane.vm else next((t for t in onlines[lane] if t >= first), None)
            row["online_at"] = _seconds(online)
            row["to_first_insn_us"] = round(first - requested, 3)
            if online is not None:
                row["to_online_us"] = round(online - requested, 3)
        elif lane.cpu == 0:
            start = cold.get(lane) if lane.vm is None else booted_vms.get(lane.vm)
            if start is None:              # a hypervisor's boot pCPU: its first event
                start = next((e.ts for e in trace.instants if e.lane == lane), None)
            row.update(requested_by="reset", requested_at=_seconds(start),
                       first_insn_at=_seconds(start), online_at=_seconds(start),
                       to_first_insn_us=0.0 if start is not None else None,
                       to_online_us=0.0 if start is not None else None)
        rows.append(row)
    return rows


def psci_calls(trace: Trace) -> List[dict]:
    counts: Counter = Counter()
    for event in trace.events("psci.call", "vpsci.call"):
        caller = "firmware" if event.kind == "psci.call" else f"vpsci ({event.args.get('vm')})"
        function = str(event.args.get("function"))
        counts[(caller, function, result_name(function, event.args.get("result")))] += 1
    return [{"to": to, "function": fn, "result": result, "count": n}
            for (to, fn, result), n in sorted(counts.items())]


def ipi_matrix(trace: Trace) -> List[dict]:
    latencies: Dict[tuple, List[float]] = defaultdict(list)
    for flow in trace.flows:
        if flow.name == "SGI":
            latencies[(flow.source.label, flow.target.label)].append(
                flow.target_ts - flow.source_ts)
    sent: Counter = Counter()
    for event in trace.events("gic.sgi"):
        if event.lane is None:
            continue
        for target in event.args.get("targets") or ():
            sent[(event.lane.label, Lane(event.lane.vm, target).label)] += 1
    rows = []
    for pair in sorted(set(latencies) | set(sent), key=_pair_order):
        values = latencies.get(pair, [])
        rows.append({"from": pair[0], "to": pair[1], "sent": sent.get(pair, len(values)),
                     "acknowledged": len(values),
                     "p50_us": round(percentile(values, 50), 3),
                     "p90_us": round(percentile(values, 90), 3),
                     "p99_us": round(percentile(values, 99), 3),
                     "max_us": round(max(values, default=0.0), 3)})
    return rows


def _pair_order(pair: tuple) -> tuple:
    return tuple(_label_order(label) for label in pair)


def _label_order(label: str) -> tuple:
    vm, _, cpu = label.rpartition("/")
    digits = "".join(ch for ch in cpu if ch.isdigit())
    return (vm, int(digits) if digits else -1)


def interrupts(trace: Trace) -> List[dict]:
    per_lane: Dict[Lane, Counter] = defaultdict(Counter)
    for event in trace.events("gic.ack"):
        if event.lane is not None:
            per_lane[event.lane][event.args.get("intid")] += 1
    rows = []
    for lane in sorted(per_lane, key=lambda lane: _label_order(lane.label)):
        counts = per_lane[lane]
        rows.append({"cpu": lane.label, "total": sum(counts.values()),
                     "by_intid": {str(k): v for k, v in sorted(counts.items(), key=lambda kv: kv[0])}})
    return rows


# How many of the commonest return addresses an exception row names.
WHERE_NAMED = 3


def exits(trace: Trace, symbols: Optional[Dict] = None) -> List[dict]:
    """Exits by kind; exceptions also say where they were taken most (ELR, as
    symbol+offset when the guest's symbols are known)."""
    counts: Counter = Counter()
    where: Dict[str, Counter] = defaultdict(Counter)
    for event in trace.events("exception"):
        kind = f"exception ec={event.args.get('ec', 0):#x}"
        counts[kind] += 1
        elr = event.args.get("elr")
        if isinstance(elr, int):
            vm = event.lane.vm if event.lane is not None else None
            name = symbols[vm].lookup(elr) if symbols is not None else None
            where[kind][name or f"{elr:#x}"] += 1
    for event in trace.events("vcpu.exit"):
        counts[f"vcpu exit: {event.args.get('reason')}"] += 1
    for event in trace.events("abort.outside"):
        counts["access outside RAM and devices"] += 1
    rows = []
    for kind, n in counts.most_common():
        row = {"kind": kind, "count": n}
        if kind in where:
            row["where"] = ", ".join(f"{name} x{k}" if k > 1 else name
                                     for name, k in where[kind].most_common(WHERE_NAMED))
        rows.append(row)
    return rows


def time_split(trace: Trace) -> List[dict]:
    """Where each CPU's (each vCPU's) time went over the whole trace, in seconds."""
    window = max(trace.end - trace.start, 0.0)
    sums: Dict[Lane, Counter] = defaultdict(Counter)
    for span in trace.spans:
        length = span.end - span.start
        if span.cat == "power":
            if span.name not in OFF_STATES:
                sums[span.lane]["on"] += length
        elif span.cat == "idle":
            sums[span.lane]["idle"] += length
        elif span.cat in ("psci", "vpsci"):
            sums[span.lane]["firmware"] += length
        elif span.cat == "vcpu":
            sums[span.lane]["guest"] += length
        elif span.cat == "run":
            sums[span.lane]["running"] += length
    powered = {span.lane for span in trace.spans if span.cat == "power"}
    rows = []
    for lane in [*trace.cpus(None), *(l for vm in trace.vms for l in trace.cpus(vm))]:
        s = sums[lane]
        # No power change at all: the boot CPU, ON from reset to the end.
        on = min(s["on"], window) if lane in powered else window
        row = {"cpu": lane.label, "off": window - on}
        if lane.vm:
            # A vCPU: ON in virtual PSCI, then running on a pCPU, blocked in WFI,
            # or runnable and waiting for its pCPU.
            row.update(running=s["running"], blocked=s["idle"],
                       waiting=max(on - s["running"] - s["idle"], 0.0))
        elif trace.hyp:
            row.update(guest=s["guest"], firmware=s["firmware"], idle=s["idle"],
                       hypervisor=max(on - s["guest"] - s["firmware"] - s["idle"], 0.0))
        else:
            row.update(guest=max(on - s["firmware"] - s["idle"], 0.0), firmware=s["firmware"],
                       idle=s["idle"])
        rows.append({k: (round(v / 1e6, 6) if isinstance(v, float) else v)
                     for k, v in row.items()})
    return rows


def build(trace: Trace, symbols: Optional[str] = None) -> dict:
    """The report's data; PCs are named from `symbols` (ELF or System.map) or the kernel."""
    tables = kernel_symbols(trace, symbols)
    return {"window_s": [_seconds(trace.start), _seconds(trace.end)],
            "mode": "hyp" if trace.hyp else "bare",
            "bring_up": bring_up(trace, tables), "psci": psci_calls(trace),
            "ipi": ipi_matrix(trace), "interrupts": interrupts(trace),
            "exits": exits(trace, tables), "time": time_split(trace)}


# -- layout -------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    if isinstance(value, int) and value > 9:
        return str(value) if value < 1 << 20 else hex(value)
    if value == "":
        return "-"
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in list(value.items())[:6]) + \
            (" ..." if len(value) > 6 else "")
    return str(value)


def tables(data: dict) -> List[tuple]:
    """(title, headers, rows of strings) for each section, in order."""
    sections = [("bring-up (s; latencies in us)", "bring_up",
                 ["cpu", "requested_by", "requested_at", "first_insn_at", "pc", "symbol",
                  "online_at", "to_first_insn_us", "to_online_us"]),
                ("PSCI calls", "psci", ["to", "function", "result", "count"]),
                ("IPIs (SGIs), sender x receiver (latency to acknowledge, us)", "ipi",
                 ["from", "to", "sent", "acknowledged", "p50_us", "p90_us", "p99_us", "max_us"]),
                ("interrupts acknowledged per CPU (by INTID)", "interrupts",
                 ["cpu", "total", "by_intid"]),
                ("exits by kind (exceptions: where, by ELR)", "exits",
                 ["kind", "count", "where"])]
    out = []
    for title, key, headers in sections:
        out.append((title, headers, [[_cell(row.get(h)) for h in headers] for row in data[key]]))
    for title, vcpus in (("time per CPU (s)", False), ("time per vCPU (s)", True)):
        rows = [row for row in data["time"] if ("running" in row) == vcpus]
        if rows:
            headers = list(rows[0])
            out.append((title, headers, [[_cell(row.get(h)) for h in headers] for row in rows]))
    return out


def render_text(data: dict) -> str:
    lines = [f"trace {data['mode']}, {data['window_s'][0]} s to {data['window_s'][1]} s"]
    for title, headers, rows in tables(data):
        lines += ["", title]
        if not rows:
            lines.append("  (none)")
            continue
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def render_rich(data: dict, print_: Optional[Callable] = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    out = print_ or console.print
    out(f"[bold]trace[/bold] {data['mode']}, {data['window_s'][0]} s to {data['window_s'][1]} s")
    for title, headers, rows in tables(data):
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        out(table)
