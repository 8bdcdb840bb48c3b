import json

import pytest

from armvisor.trace.bus import TraceBus
from armvisor.trace.chrome import ChromeTraceWriter


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run_bus(path, steps):
    clock = FakeClock()
    bus = TraceBus(clock=clock)
    writer = ChromeTraceWriter(str(path))
    bus.subscribe(writer.on_event)
    try:
        for t, kind, cpu, fields in steps:
            clock.t = t
            bus.emit(kind, cpu, **fields)
    finally:
        writer.close()
    return json.loads(path.read_text())


def test_tracks_instants_and_power_spans(tmp_path):
    events = run_bus(tmp_path / "t.json", [
        (0.000001, "machine.start", None, {"cpus": 2}),
        (0.000010, "power.state", 0, {"old": "OFF", "new": "ON"}),
        (0.000020, "psci.call", 0, {"fn": 0xC4000003, "target": 1}),
        (0.000030, "power.state", 1, {"old": "OFF", "new": "ON_PENDING"}),
        (0.000040, "power.state", 1, {"old": "ON_PENDING", "new": "ON"}),
        (0.000050, "power.state", 1, {"old": "ON", "new": "OFF"}),
        (0.000060, "machine.stop", None, {}),
    ])
    names = {(e["tid"], e["args"]["name"]) for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {(0, "machine"), (1, "cpu0"), (2, "cpu1"), (1001, "cpu0 power"),
                     (1002, "cpu1 power")}

    instants = [e for e in events if e["ph"] == "i"]
    assert [e["name"] for e in instants] == ["machine.start", "power.state", "psci.call",
                                             "power.state", "power.state", "power.state",
                                             "machine.stop"]
    psci = instants[2]
    assert psci["tid"] == 1 and psci["ts"] == pytest.approx(20.0)
    assert psci["args"] == {"fn": "0xc4000003", "target": 1}
    assert instants[0]["tid"] == 0

    spans = [(e["tid"], e["ph"], e["name"], e["ts"]) for e in events if e["ph"] in "BE"]
    cpu1 = [s for s in spans if s[0] == 1002]          # power states: their own thread
    assert [(ph, name) for _, ph, name, _ in cpu1] == [
        ("B", "ON_PENDING"), ("E", "ON_PENDING"), ("B", "ON"), ("E", "ON"), ("B", "OFF"),
        ("E", "OFF")]
    assert cpu1[-1][3] == pytest.approx(60.0)          # open span closed at the last event
    cpu0 = [s for s in spans if s[0] == 1001]
    assert [(ph, name) for _, ph, name, _ in cpu0] == [("B", "ON"), ("E", "ON")]
    # Begin/end pairs balance on every track.
    for tid in (1001, 1002):
        assert sum(1 if s[1] == "B" else -1 for s in spans if s[0] == tid) == 0


def test_unterminated_file_still_parses_as_array_prefix(tmp_path):
    path = tmp_path / "crash.json"
    writer = ChromeTraceWriter(str(path))
    bus = TraceBus()
    bus.subscribe(writer.on_event)
    bus.emit("power.state", 0, old="OFF", new="ON")
    writer._drain()                                     # what a full batch does
    writer._file.flush()
    # A run that died before close(): viewers accept the array without "]".
    text = path.read_text()
    assert not text.rstrip().endswith("]")
    assert len(json.loads(text.rstrip().rstrip(",") + "]")) >= 4
    writer.close()
    writer.close()                                      # idempotent
    assert json.loads(path.read_text())[-1]["ph"] == "E"


def test_close_from_finally_after_error(tmp_path):
    path = tmp_path / "err.json"
    with pytest.raises(RuntimeError):
        run_bus_with_error(path)
    data = json.loads(path.read_text())
    assert any(e.get("name") == "guest.fault" for e in data)


def run_bus_with_error(path):
    bus = TraceBus()
    writer = ChromeTraceWriter(str(path))
    bus.subscribe(writer.on_event)
    try:
        bus.emit("guest.fault", 3, pc=0x40080000, data=b"\x01\x02", obj=object())
        raise RuntimeError("guest died")
    finally:
        writer.close()


def test_events_after_close_ignored(tmp_path):
    path = tmp_path / "late.json"
    writer = ChromeTraceWriter(str(path))
    writer.close()
    bus = TraceBus()
    bus.subscribe(writer.on_event)
    bus.emit("late", 0)
    assert all(e["ph"] == "M" for e in json.loads(path.read_text()))
