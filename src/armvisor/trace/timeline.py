"""A picture of a saved trace: `armvisor trace timeline`, and `draw(trace, path)` in Python.

One lane per CPU (per pCPU under --hyp, the vCPU it runs as a band in its
VM's colour), power states as bands, PSCI calls as markers, CPU_ON and SGI
flows as arrows from cause to effect, acknowledged interrupts as ticks.
PNG and SVG come from matplotlib; HTML is the SVG inline with a few lines of
script for zoom, pan and hover, nothing fetched from the network. Every lane
and arrow carries an id (`lane-cpu0`, `arrow-cpu_on-3`, `arrow-sgi-17`) so a
test, or a reader of the SVG, can find them.
"""

from __future__ import annotations

import bisect
import io
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from armvisor.errors import ArmvisorError
from armvisor.trace.model import Lane, Trace
from armvisor.trace.report import bring_up, result_name

FORMATS = (".png", ".svg", ".html")
POWER_COLOURS = {"OFF": "#e6e6e6", "ON_PENDING": "#f5a623", "ON": "#b8e0b8",
                 "STANDBY": "#9ecae1", "POWERDOWN": "#b39ddb"}
IDLE_COLOUR, FIRMWARE_COLOUR, HYP_COLOUR = "#6b8fb3", "#d62728", "#b8e0b8"
LANE_COLOUR = "#f2f2f2"
VM_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
# Above this many CPUs, text on the picture would only overlap: markers stay, labels go.
LABELS_UP_TO = 16
MAX_SGI_ARROWS = 3000


def bring_up_window(trace: Trace) -> Tuple[float, float]:
    """From the first CPU_ON to the last CPU online, in microseconds, with a margin."""
    rows = [r for r in bring_up(trace) if r["requested_by"] not in (None, "reset")]
    if not rows:
        raise ArmvisorError("--bring-up: the trace has no CPU_ON that brought a CPU up")
    start = min(r["requested_at"] for r in rows) * 1e6
    end = max((r["online_at"] or r["first_insn_at"]) for r in rows) * 1e6
    margin = max((end - start) * 0.04, 1.0)
    return start - margin, end + margin


class _Placer:
    """Where a vCPU's moment is drawn: on the pCPU that ran it then (hyp mode)."""

    def __init__(self, trace: Trace, lanes: List[Lane]):
        self._row = {lane: i for i, lane in enumerate(lanes)}
        self._runs: Dict[Lane, Tuple[List[float], list]] = {}
        runs: Dict[Lane, list] = {}
        for span in trace.spans:
            if span.cat == "run" and span.name.startswith("on pCPU "):
                pcpu = Lane(None, int(span.name.split()[-1]))
                runs.setdefault(span.lane, []).append((span.start, span.end, pcpu))
        for lane, items in runs.items():
            items.sort()
            self._runs[lane] = ([s for s, _, _ in items], items)

    def row(self, lane: Optional[Lane], ts: float) -> Optional[int]:
        if lane is None:
            return None
        if lane.vm is None:
            return self._row.get(lane)
        starts, items = self._runs.get(lane, ([], []))
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and items[i][0] <= ts <= items[i][1]:
            return self._row.get(items[i][2])
        return None


def draw(trace: Trace, path: str, start_us: Optional[float] = None,
         end_us: Optional[float] = None, title: Optional[str] = None) -> dict:
    """Write the timeline to `path` (.png, .svg or .html); returns what was drawn (counts)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ArmvisorError(f"{path!r}: the timeline is written as .png, .svg or .html")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Patch

    lanes = trace.cpus(None)
    if not lanes:
        raise ArmvisorError("the trace has no CPU tracks: nothing to draw")
    lo = trace.start if start_us is None else start_us
    hi = trace.end if end_us is None else end_us
    if hi <= lo:
        hi = lo + 1.0
    n = len(lanes)
    placer = _Placer(trace, lanes)
    scale = 1e-6                                     # microseconds -> seconds on the axis
    fig, ax = plt.subplots(figsize=(14, max(3.0, 1.4 + 0.2 * n)))
    tips: Dict[str, str] = {}
    counts = {"lanes": n, "cpu_on_arrows": 0, "sgi_arrows": 0, "psci_markers": 0, "irq_ticks": 0}
    vm_colour = {vm: VM_COLOURS[i % len(VM_COLOURS)] for i, vm in enumerate(trace.vms)}
    labels = n <= LABELS_UP_TO

    def clip(a: float, b: float) -> Optional[Tuple[float, float]]:
        a, b = max(a, lo), min(b, hi)
        return (a * scale, (b - a) * scale) if b >= a else None

    spans_of: Dict[Lane, list] = {}
    for span in trace.spans:
        spans_of.setdefault(span.lane, []).append(span)
    for row, lane in enumerate(lanes):
        y = n - 1 - row
        own = spans_of.get(lane, [])
        power = [s for s in own if s.cat == "power"]
        bands: Dict[str, list] = {}
        if power:
            first = min(s.start for s in power)
            if first > lo:                         # before its first change: OFF
                bands.setdefault("OFF", []).append((lo, first))
            for s in power:
                bands.setdefault(s.name, []).append((s.start, s.end))
        else:
            bands["ON"] = [(lo, hi)]               # the boot CPU: ON from reset
        # The lane itself, under its bands: a shape with an area, so the lane
        # has a place on the page (hover, and a browser can find it).
        background = ax.broken_barh([(lo * scale, (hi - lo) * scale)], (y - 0.4, 0.8),
                                    facecolors=LANE_COLOUR, linewidth=0, zorder=0)
        background.set_gid(f"lane-{lane.label}")
        tips[f"lane-{lane.label}"] = lane.label
        for state, pieces in bands.items():
            bars = [c for c in (clip(a, b) for a, b in pieces) if c]
            colour = HYP_COLOUR if (trace.hyp and state == "ON") else \
                POWER_COLOURS.get(state, "#cccccc")
            if bars:
                ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=colour, linewidth=0)
        for cat, colour, name in (("idle", IDLE_COLOUR, "idle"),
                                  ("psci", FIRMWARE_COLOUR, "firmware")):
            bars = [c for c in (clip(s.start, s.end) for s in own if s.cat == cat) if c]
            if bars:
                ax.broken_barh(bars, (y - 0.25, 0.5), facecolors=colour, linewidth=0)
        for vm in trace.vms:
            bars = [c for c in (clip(s.start, s.end) for s in own
                                if s.cat == "vcpu" and s.args.get("vm") == vm) if c]
            if bars:
                ax.broken_barh(bars, (y - 0.3, 0.6), facecolors=vm_colour[vm], linewidth=0,
                               alpha=0.85)
            if labels:
                for s in own:
                    if s.cat == "vcpu" and s.args.get("vm") == vm and s.end >= lo and \
                            s.start <= hi and (min(s.end, hi) - max(s.start, lo)) > (hi - lo) / 12:
                        ax.text((max(s.start, lo) + min(s.end, hi)) / 2 * scale, y,
                                s.name, ha="center", va="center", fontsize=7, color="white")

    # Interrupt ticks: one scatter per lane, under the arrows.
    ticks: Dict[int, List[float]] = {}
    for event in trace.events("gic.ack"):
        if lo <= event.ts <= hi:
            row = placer.row(event.lane, event.ts)
            if row is not None:
                ticks.setdefault(row, []).append(event.ts * scale)
    for row, xs in ticks.items():
        y = n - 1 - row
        ax.scatter(xs, [y - 0.42] * len(xs), marker="|", s=18, color="#333333", linewidths=0.6,
                   zorder=3)
        counts["irq_ticks"] += len(xs)

    # PSCI calls: a marker on the caller, the result in the tip (and text when few CPUs).
    for event in trace.events("psci.call", "vpsci.call"):
        if not lo <= event.ts <= hi:
            continue
        row = placer.row(event.lane, event.ts)
        if row is None:
            continue
        y = n - 1 - row
        function = str(event.args.get("function"))
        result = result_name(function, event.args.get("result"))
        marker = ax.plot([event.ts * scale], [y + 0.3], marker="v", markersize=5,
                         color="black" if result in ("SUCCESS", "no return") else FIRMWARE_COLOUR,
                         zorder=5)[0]
        gid = f"psci-{counts['psci_markers']}"
        marker.set_gid(gid)
        who = event.lane.label if event.lane else "?"
        tips[gid] = f"{who}: {function} -> {result} at {event.ts / 1e6:.6f} s"
        counts["psci_markers"] += 1
        if labels and function.startswith("CPU_ON"):
            ax.annotate(f"{function} {result}", (event.ts * scale, y + 0.3), fontsize=6,
                        xytext=(2, 4), textcoords="offset points")

    def arrow(kind: str, flow, colour: str, width: float, alpha: float) -> bool:
        if not (lo <= flow.source_ts <= hi and lo <= flow.target_ts <= hi):
            return False
        a, b = placer.row(flow.source, flow.source_ts), placer.row(flow.target, flow.target_ts)
        if a is None or b is None:
            return False
        patch = FancyArrowPatch((flow.source_ts * scale, n - 1 - a),
                                (flow.target_ts * scale, n - 1 - b),
                                arrowstyle="-|>", mutation_scale=8 if width < 1 else 12,
                                color=colour, linewidth=width, alpha=alpha, zorder=6)
        gid = f"arrow-{kind}-{counts[kind + '_arrows']}"
        patch.set_gid(gid)
        ax.add_patch(patch)
        tips[gid] = (f"{flow.name}: {flow.source.label} -> {flow.target.label}, "
                     f"{(flow.target_ts - flow.source_ts):.1f} us")
        counts[kind + "_arrows"] += 1
        return True

    for flow in trace.flows:
        if flow.name == "CPU_ON":
            arrow("cpu_on", flow, "#000000", 1.4, 0.9)
    for flow in trace.flows:
        if flow.name == "SGI" and counts["sgi_arrows"] < MAX_SGI_ARROWS:
            arrow("sgi", flow, "#7b3294", 0.6, 0.5)

    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(lo * scale, hi * scale)
    ax.set_yticks(range(n))
    ax.set_yticklabels([lane.label for lane in reversed(lanes)],
                       fontsize=8 if n <= LABELS_UP_TO else 5)
    ax.set_xlabel("trace time (s)")
    ax.set_title(title or ("pCPUs and the vCPUs they run" if trace.hyp else "CPUs"), fontsize=10)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    legend = [Patch(color=POWER_COLOURS[s], label=s) for s in ("OFF", "ON_PENDING")]
    legend += [Patch(color=HYP_COLOUR, label="in the hypervisor" if trace.hyp else "ON (guest)"),
               Patch(color=POWER_COLOURS["STANDBY"], label="suspended (standby)"),
               Patch(color=POWER_COLOURS["POWERDOWN"], label="suspended (power-down)"),
               Patch(color=IDLE_COLOUR, label="WFI / idle"),
               Patch(color=FIRMWARE_COLOUR, label="in firmware (PSCI)")]
    legend += [Patch(color=vm_colour[vm], label=f"VM {vm}") for vm in trace.vms]
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7,
              frameon=False)
    fig.tight_layout()
    try:
        if suffix == ".html":
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            Path(path).write_text(_html(buffer.getvalue(), tips, title or "armvisor timeline"),
                                  encoding="utf-8")
        else:
            fig.savefig(path, dpi=130 if suffix == ".png" else None)
    except OSError as exc:
        raise ArmvisorError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return counts


# Zoom (wheel), pan (drag), reset (double click) by moving the SVG's viewBox,
# and a tip for every element whose id the `tips` table names.
_SCRIPT = """
const svg = document.querySelector('#timeline svg');
const tips = JSON.parse(document.getElementById('tips').textContent);
const tip = document.getElementById('tip');
const full = svg.viewBox.baseVal;
const home = [full.x, full.y, full.width, full.height];
let box = home.slice(), drag = null;
svg.removeAttribute('width'); svg.removeAttribute('height');
function show() { svg.setAttribute('viewBox', box.join(' ')); }
svg.addEventListener('wheel', e => {
  e.preventDefault();
  const r = svg.getBoundingClientRect(), f = e.deltaY < 0 ? 0.8 : 1.25;
  const x = box[0] + (e.clientX - r.left) / r.width * box[2];
  box[0] = x - (x - box[0]) * f; box[2] *= f; show();
});
svg.addEventListener('mousedown', e => { drag = [e.clientX, box[0]]; });
window.addEventListener('mouseup', () => { drag = null; });
svg.addEventListener('mousemove', e => {
  if (drag) { const r = svg.getBoundingClientRect();
    box[0] = drag[1] - (e.clientX - drag[0]) / r.width * box[2]; show(); }
  let el = e.target;
  while (el && el !== svg && !(el.id && tips[el.id])) el = el.parentNode;
  if (el && el !== svg) { tip.textContent = tips[el.id]; tip.style.display = 'block';
    tip.style.left = (e.pageX + 12) + 'px'; tip.style.top = (e.pageY + 12) + 'px'; }
  else tip.style.display = 'none';
});
svg.addEventListener('dblclick', () => { box = home.slice(); show(); });
// What the browser drew, for a headless check: lanes with an area on the page.
const drawn = Array.from(svg.querySelectorAll('[id^="lane-"]')).filter(el => {
  const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
document.getElementById('timeline').dataset.lanesDrawn = drawn.length;
"""


def _html(svg: str, tips: Dict[str, str], title: str) -> str:
    svg = svg[svg.index("<svg"):]                   # drop the XML prolog and doctype
    data = json.dumps(tips).replace("</", "<\\/")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n"
            "<style>body{font-family:sans-serif;margin:8px}#timeline svg{width:100%;"
            "height:auto;cursor:grab}#tip{position:absolute;display:none;background:#ffffe0;"
            "border:1px solid #999;padding:2px 6px;font-size:12px;pointer-events:none}</style>"
            "</head><body>\n"
            f"<p>{title}: wheel to zoom, drag to pan, double-click to reset, hover for details."
            "</p>\n"
            f"<div id=\"timeline\">{svg}</div><div id=\"tip\"></div>\n"
            f"<script type=\"application/json\" id=\"tips\">{data}</script>\n"
            f"<script>{_SCRIPT}</script>\n</body></html>\n")
