"""Durations, power spans, flows and counters the Chrome writer derives from instants."""

import json

from armvisor.trace.bus import TraceBus
from armvisor.trace.chrome import ChromeTraceWriter
from armvisor.trace.schema import problems


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def write(path, steps):
    """steps: (seconds, kind, cpu, fields); fields may hold vm=name for a VM's models."""
    clock = FakeClock()
    bus = TraceBus(clock=clock)
    with ChromeTraceWriter(str(path)) as writer:
        bus.subscribe(writer.on_event)
        for t, kind, cpu, fields in steps:
            clock.t = t
            bus.emit(kind, cpu, **fields)
    records = json.loads(path.read_text())
    assert problems(records) == []
    return records


def slices(records, name=None):
    return [r for r in records if r["ph"] == "X" and (name is None or r["name"] == name)]


def test_psci_call_is_a_slice_from_entry_to_return_and_cpu_on_flows_to_first_insn(tmp_path):
    records = write(tmp_path / "t.json", [
        (0.000010, "psci.enter", 0, {"function": "CPU_ON"}),
        (0.000011, "power.state", 1, {"old": "off", "new": "on_pending"}),
        (0.000012, "psci.call", 0, {"function": "CPU_ON", "args": (1, 0x40000000, 0),
                                    "result": 0, "target": 1}),
        (0.000030, "cpu.first_insn", 1, {"pc": 0x40000000}),
        (0.000030, "power.state", 1, {"old": "on_pending", "new": "on"}),
        (0.000040, "psci.enter", 1, {"function": "CPU_OFF"}),
        (0.000041, "power.state", 1, {"old": "on", "new": "off"}),
        (0.000041, "psci.call", 1, {"function": "CPU_OFF", "args": (), "result": None}),
    ])
    on, = slices(records, "CPU_ON")
    assert (on["tid"], on["ts"], on["dur"], on["args"]) == (1, 10.0, 2.0, {"result": 0})
    off, = slices(records, "CPU_OFF")
    assert off["tid"] == 2 and off["dur"] == 1.0
    first, = slices(records, "first instruction")
    assert first["tid"] == 2 and first["ts"] == 30.0
    s, = [r for r in records if r["ph"] == "s"]
    f, = [r for r in records if r["ph"] == "f"]
    assert (s["name"], s["tid"], s["ts"]) == ("CPU_ON", 1, 10.0)
    assert (f["tid"], f["ts"], f["id"]) == (2, 30.0, s["id"])
    power = [(r["ph"], r["name"]) for r in records if r["ph"] in "BE" and r["tid"] == 1002]
    assert power == [("B", "ON_PENDING"), ("E", "ON_PENDING"), ("B", "ON"), ("E", "ON"),
                     ("B", "OFF"), ("E", "OFF")]


def test_a_failed_cpu_on_has_no_flow(tmp_path):
    records = write(tmp_path / "t.json", [
        (0.00001, "psci.enter", 0, {"function": "CPU_ON"}),
        (0.00002, "psci.call", 0, {"function": "CPU_ON", "result": -4}),
        (0.00003, "cpu.first_insn", 1, {"pc": 0}),
    ])
    assert not [r for r in records if r["ph"] in "sf"]


def test_sgi_flows_to_the_acknowledge_on_each_target_and_irq_is_ack_to_eoi(tmp_path):
    records = write(tmp_path / "t.json", [
        (0.000010, "gic.sgi", 0, {"sender": 0, "targets": [1, 2], "intid": 3}),
        (0.000020, "gic.ack", 1, {"intid": 3}),
        (0.000022, "gic.ack", 1, {"intid": 27}),          # nested: a higher priority
        (0.000023, "gic.eoi", 1, {"intid": 27}),
        (0.000025, "gic.eoi", 1, {"intid": 3}),
        (0.000030, "gic.ack", 2, {"intid": 3}),
        (0.000031, "gic.eoi", 2, {"intid": 3}),
        (0.000040, "gic.sgi", 0, {"sender": 0, "targets": [3], "intid": 1}),   # never acked
    ])
    irqs = sorted((r["tid"], r["name"], r["ts"], r["dur"]) for r in slices(records)
                  if r["cat"] == "irq")
    assert irqs == [(2, "IRQ 27", 22.0, 1.0), (2, "IRQ 3", 20.0, 5.0), (3, "IRQ 3", 30.0, 1.0)]
    flows = [r for r in records if r["ph"] in "sf"]
    ends = sorted((r["id"], r["ph"], r["tid"], r["ts"]) for r in flows)
    # Two flows, one per target that acknowledged; the unacknowledged SGI leaves none.
    assert [(ph, tid, ts) for _, ph, tid, ts in ends] == [
        ("f", 2, 20.0), ("s", 1, 10.0), ("f", 3, 30.0), ("s", 1, 10.0)]


def test_wfi_and_idle_are_slices(tmp_path):
    records = write(tmp_path / "t.json", [
        (0.00001, "cpu.wfi", 0, {}),
        (0.00005, "cpu.wake", 0, {}),
        (0.00006, "cpu.powerdown", 0, {"entry": 0}),
        (0.00009, "cpu.wake", 0, {}),
    ])
    assert [(r["name"], r["ts"], r["dur"]) for r in slices(records)] == [
        ("WFI", 10.0, 40.0), ("suspended", 60.0, 30.0)]


def test_vcpu_tracks_runs_and_injections(tmp_path):
    records = write(tmp_path / "t.json", [
        (0.00001, "vcpu.load", 0, {"vcpu": "a/vcpu0"}),
        (0.00002, "vpsci.enter", 0, {"vm": "a", "function": "CPU_ON"}),
        (0.00002, "vcpu.power", 1, {"vm": "a", "vcpu": 1, "old": "off", "new": "on"}),
        (0.00002, "vpsci.call", 0, {"vm": "a", "vcpu": 0, "function": "CPU_ON", "result": 0,
                                    "target": 1}),
        (0.00003, "pcpu.idle", 0, {}),
        (0.00004, "vcpu.load", 0, {"vcpu": "a/vcpu1"}),
        (0.00004, "cpu.first_insn", 1, {"vm": "a", "pc": 0x40001000, "pcpu": 0}),
        (0.00005, "vcpu.inject", 0, {"vcpu": "a/vcpu1", "intid": 27}),
        (0.00006, "gic.ack", 1, {"vm": "a", "intid": 27}),
        (0.00007, "gic.eoi", 1, {"vm": "a", "intid": 27}),
        (0.00008, "placement", 0, {"vm": 0, "vcpu": 0, "pcpu": 0}),   # vm=index: a pCPU event
    ])
    threads = {(r["pid"], r["tid"]): r["args"]["name"] for r in records
               if r["ph"] == "M" and r["name"] == "thread_name"}
    assert threads[(2, 1)] == "vcpu0" and threads[(2, 2)] == "vcpu1"
    assert threads[(2, 1002)] == "vcpu1 power"
    processes = {r["pid"]: r["args"]["name"] for r in records if r["name"] == "process_name"}
    assert processes == {1: "armvisor", 2: "a"}
    placement, = [r for r in records if r["name"] == "placement"]
    assert (placement["pid"], placement["tid"]) == (1, 1)
    call, = slices(records, "CPU_ON")
    assert (call["pid"], call["tid"]) == (2, 1)          # the calling vCPU's track
    runs = [(r["pid"], r["tid"], r["name"], r["ts"], r["dur"]) for r in slices(records)
            if r["cat"] in ("vcpu", "run", "idle")]
    assert (1, 1, "a/vcpu0", 10.0, 20.0) in runs and (2, 1, "on pCPU 0", 10.0, 20.0) in runs
    assert (1, 1, "idle", 30.0, 10.0) in runs
    assert (1, 1, "a/vcpu1", 40.0, 40.0) in runs          # closed at the end of the trace
    flows = {(r["name"], r["ph"], r["pid"], r["tid"]) for r in records if r["ph"] in "sf"}
    assert flows == {("CPU_ON", "s", 2, 1), ("CPU_ON", "f", 2, 2),
                     ("inject", "s", 1, 1), ("inject", "f", 2, 2)}


def test_interrupt_rate_counters(tmp_path):
    steps = []
    for i in range(5):                                  # 5 in the first 10 ms bucket
        steps += [(0.001 * i, "gic.ack", 0, {"intid": 30}), (0.001 * i, "gic.eoi", 0, {"intid": 30})]
    steps += [(0.035, "gic.ack", 1, {"intid": 30}), (0.035, "gic.eoi", 1, {"intid": 30})]
    records = write(tmp_path / "t.json", steps)
    counters = [(r["ts"], r["args"]) for r in records if r["ph"] == "C"]
    assert counters == [(0.0, {"cpu0": 5}), (10000.0, {"cpu0": 0}),
                        (30000.0, {"cpu0": 0, "cpu1": 1})]


def test_schema_finds_what_viewers_drop():
    bad = [
        {"name": "a", "ph": "B", "ts": 1, "pid": 1, "tid": 1},
        {"name": "b", "ph": "X", "ts": 1, "pid": 1, "tid": 2},               # no dur
        {"name": "c", "ph": "s", "id": 7, "ts": 1, "pid": 1, "tid": 3},      # no f, no slice
        {"name": "d", "ph": "C", "ts": 1, "pid": 1, "args": {"x": "1"}},
    ]
    found = "\n".join(problems(bad))
    assert "without dur" in found and "'B' without 'E'" in found
    assert "flow id 7 has only ['s']" in found and "not a number" in found
