"""`armvisor trace report|filter|timeline` and `run --timeline/--report` on real runs."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from armvisor.api import VM
from armvisor.trace import filter as trace_filter
from armvisor.trace import model, report, timeline
from armvisor.trace.schema import problems
from tests.machine.traced import BUILD, run_to_trace



def traced(path, **machine):
    run_to_trace(path, **machine)
    return str(path)


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    where = tmp_path_factory.mktemp("traces")
    smp_demo = str(BUILD / "smp_demo.elf")
    return {
        "smp4": traced(where / "smp4.json", kernel=smp_demo, smp=4),
        "smp64": traced(where / "smp64.json", kernel=smp_demo, smp=64),
        "hyp2": traced(where / "hyp2.json", pcpus=2, vms=[
            VM(smp_demo, smp=2, memory=128 << 20, placement="shared", name="a"),
            VM(str(BUILD / "gic_ipi.elf"), smp=2, memory=128 << 20, placement="shared",
               name="b")]),
    }


def test_bring_up_table_matches_the_events(traces):
    trace = model.load(traces["smp4"])
    rows = {row["cpu"]: row for row in report.bring_up(trace, report.kernel_symbols(trace))}
    assert list(rows) == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert rows["cpu0"]["requested_by"] == "reset"
    enters = [e for e in trace.instants if e.kind == "psci.enter"
              and str(e.args["function"]).startswith("CPU_ON")]
    calls = [e for e in trace.events("psci.call") if str(e.args["function"]).startswith("CPU_ON")]
    assert len(calls) == 3 and all(c.args["result"] == 0 for c in calls)
    for enter, call in zip(enters, calls):
        target = f"cpu{call.args['target']}"
        row = rows[target]
        assert row["requested_by"] == call.lane.label == "cpu0"
        assert row["requested_at"] == round(enter.ts / 1e6, 9)
        first, = [e for e in trace.events("cpu.first_insn") if e.lane.label == target]
        assert row["first_insn_at"] == round(first.ts / 1e6, 9)
        assert row["pc"] == first.args["pc"]
        assert row["symbol"] == "secondary_entry"          # from the ELF the trace names
        online, = [e for e in trace.events("power.state")
                   if e.lane.label == target and e.args["new"] == "ON"]
        assert row["online_at"] == round(online.ts / 1e6, 9)
        assert row["to_first_insn_us"] == pytest.approx(first.ts - enter.ts, abs=1e-3)
        assert row["to_online_us"] == pytest.approx(online.ts - enter.ts, abs=1e-3)
    psci = {(r["function"], r["result"]): r["count"] for r in report.psci_calls(trace)}
    assert psci[("CPU_ON", "SUCCESS")] == 3 and psci[("CPU_OFF", "no return")] == 3


def test_report_of_a_vm_run_lists_vcpus_and_the_ipi_matrix(traces):
    data = report.build(model.load(traces["hyp2"]))
    assert data["mode"] == "hyp"
    cpus = [row["cpu"] for row in data["bring_up"]]
    assert cpus == ["cpu0", "cpu1", "a/vcpu0", "a/vcpu1", "b/vcpu0", "b/vcpu1"]
    assert all(row["first_insn_at"] is not None for row in data["bring_up"])
    pairs = {(r["from"], r["to"]): r for r in data["ipi"]}
    assert pairs[("b/vcpu0", "b/vcpu1")]["acknowledged"] > 0
    assert {row["cpu"] for row in data["time"] if "running" in row} == {
        "a/vcpu0", "a/vcpu1", "b/vcpu0", "b/vcpu1"}
    text = report.render_text(data)
    assert "time per vCPU" in text and "vpsci (b)" in text
    json.dumps(data)                                        # what --json prints


def test_filter_keeps_a_valid_subset(traces, tmp_path):
    records = model.read_records(traces["hyp2"])
    kept = trace_filter.select(records, cpus=["b/1"], names=["gic.*", "IRQ*", "SGI*"])
    assert problems(kept) == []
    data = [r for r in kept if r["ph"] != "M"]
    assert data and all(re.match(r"gic\.|IRQ|SGI", r["name"]) for r in data)
    b_pid = next(r["pid"] for r in records if r["name"] == "process_name"
                 and r["args"]["name"] == "b")
    assert {(r["pid"], r["tid"]) for r in data} == {(b_pid, 2)}
    window = trace_filter.select(records, start_s=0.005, end_s=0.02)
    assert problems(window) == []
    assert all(5000 <= r["ts"] <= 20000 for r in window if r["ph"] != "M")
    with pytest.raises(Exception, match="--cpu"):
        trace_filter.select(records, cpus=["x"])


class Lanes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = []
        self.scripts = 0
        self.remote = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if attrs.get(key, "").startswith(("http:", "https:", "//")):
                self.remote.append(attrs[key])


def count(ids, prefix):
    return sum(1 for i in ids if i.startswith(prefix))


@pytest.mark.parametrize("name,lanes,cpu_on", [("smp4", 4, 3), ("smp64", 64, 63), ("hyp2", 2, 3)])
def test_timelines_png_svg_html(traces, tmp_path, name, lanes, cpu_on):
    trace = model.load(traces[name])
    png, svg, html = (tmp_path / f"{name}.{ext}" for ext in ("png", "svg", "html"))
    counts = timeline.draw(trace, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert counts["lanes"] == lanes and counts["cpu_on_arrows"] == cpu_on
    timeline.draw(trace, str(svg))
    ids = re.findall(r'<g id="([^"]+)"', svg.read_text())
    assert count(ids, "lane-") == lanes
    assert count(ids, "arrow-cpu_on-") == cpu_on
    assert count(ids, "arrow-sgi-") == counts["sgi_arrows"]
    if name == "hyp2":
        assert counts["sgi_arrows"] > 0                    # VM b's SGIs, on the pCPUs
    timeline.draw(trace, str(html))
    parser = Lanes()
    parser.feed(html.read_text())
    assert count(parser.ids, "lane-") == lanes
    assert count(parser.ids, "arrow-cpu_on-") == cpu_on
    assert parser.scripts == 2 and parser.remote == []       # tips and code, all inline
    assert "cdn" not in html.read_text().lower()


def test_bring_up_window(traces):
    trace = model.load(traces["smp4"])
    lo, hi = timeline.bring_up_window(trace)
    rows = report.bring_up(trace)
    assert lo < min(r["requested_at"] for r in rows[1:]) * 1e6
    assert hi > max(r["online_at"] for r in rows) * 1e6


def armvisor(*args):
    return subprocess.run([sys.executable, "-m", "armvisor", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_trace_commands(traces, tmp_path):
    proc = armvisor("trace", "report", traces["smp4"])
    assert proc.returncode == 0 and "bring-up" in proc.stdout and "cpu3  cpu0" in proc.stdout
    proc = armvisor("trace", "report", traces["smp4"], "--json")
    assert json.loads(proc.stdout)["bring_up"][1]["requested_by"] == "cpu0"
    small = tmp_path / "small.json"
    proc = armvisor("trace", "filter", traces["smp4"], "--cpu", "2", "--name", "psci.*",
                    "-o", small)
    assert proc.returncode == 0
    names = {r["name"] for r in json.loads(small.read_text()) if r["ph"] != "M"}
    assert names == {"psci.enter", "psci.call"}
    out = tmp_path / "boot.svg"
    proc = armvisor("trace", "timeline", traces["smp4"], "--bring-up", "-o", out)
    assert proc.returncode == 0 and out.exists()
    for bad in (["trace", "timeline", traces["smp4"], "-o", tmp_path / "x.gif"],
                ["trace", "report", tmp_path / "missing.json"],
                ["trace", "timeline", traces["smp4"], "--bring-up", "--from", "0", "-o", out]):
        proc = armvisor(*bad)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_timeline_and_report_shortcuts(tmp_path):
    out = tmp_path / "run.html"
    proc = armvisor("run", "--smp", "4", "--kernel", BUILD / "smp_demo.elf",
                    "--timeline", out, "--report")
    assert proc.returncode == 0, proc.stderr
    assert "all 4 cpus done" in proc.stdout and "bring-up" not in proc.stdout
    assert "bring-up" in proc.stderr and "timeline (4 lanes)" in proc.stderr
    assert out.read_text().count('id="lane-') == 4
    proc = armvisor("run", "--kernel", BUILD / "smp_demo.elf", "--timeline", tmp_path / "x.jpg")
    assert proc.returncode == 2 and "--timeline" in proc.stderr
