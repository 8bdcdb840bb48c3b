"""Causal traces of real runs: valid trace-event JSON, and a flow for every cause seen."""

import json
from pathlib import Path

import pytest

from armvisor.api import VM
from armvisor.trace.schema import problems
from tests.machine.traced import BUILD, run_to_trace


def traced_run(path, **machine):
    assert b"RESULT: PASS" in run_to_trace(path, **machine)
    return json.loads(Path(path).read_text())


def instants(records, name):
    return [r for r in records if r["ph"] == "i" and r["name"] == name]


def flows(records, name):
    """id -> (s record, f record) for the flows called `name`."""
    ends = {}
    for r in records:
        if r["ph"] in "sf" and r["name"] == name:
            ends.setdefault(r["id"], {})[r["ph"]] = r
    return {i: (e["s"], e["f"]) for i, e in ends.items()}


def slice_at(records, pid, tid, ts):
    return [r for r in records if r["ph"] == "X" and (r["pid"], r["tid"]) == (pid, tid)
            and r["ts"] <= ts <= r["ts"] + r["dur"]]


def check_cpu_on_flows(records):
    """Every CPU_ON SUCCESS (a psci.call or vpsci.call with a target) has one flow,
    from the caller's track to the target's first instruction."""
    calls = [r for r in records if r["ph"] == "i" and r["name"] in ("psci.call", "vpsci.call")
             and r["args"]["function"].startswith("CPU_ON") and r["args"]["result"] == 0]
    found = flows(records, "CPU_ON")
    assert calls and len(found) == len(calls)
    firsts = {(r["pid"], r["tid"]) for r in instants(records, "cpu.first_insn")}
    for call in calls:
        pid = call["pid"]
        target_tid = int(str(call["args"]["target"]), 0) + 1
        match = [(s, f) for s, f in found.values() if (s["pid"], s["tid"]) == (pid, call["tid"])
                 and (f["pid"], f["tid"]) == (pid, target_tid)]
        assert len(match) == 1, call
        assert (pid, target_tid) in firsts
        assert any(x["name"] == "first instruction"
                   for x in slice_at(records, pid, target_tid, match[0][1]["ts"]))


def check_sgi_flows(records):
    """Every SGI reaches each target's acknowledge: one flow per (SGI, target), ending on
    that target's handling of the same INTID."""
    sent = sum(len(r["args"]["targets"]) for r in instants(records, "gic.sgi"))
    found = flows(records, "SGI")
    assert sent and len(found) == sent
    for s, f in found.values():
        assert any(x["name"].startswith("SGI") for x in slice_at(records, s["pid"], s["tid"], s["ts"]))
        handled = slice_at(records, f["pid"], f["tid"], f["ts"])
        assert any(x["name"].startswith("IRQ ") and int(x["name"].split()[1]) < 16 for x in handled)


def test_bare_smp_and_sgi_flows(tmp_path):
    records = traced_run(tmp_path / "ipi.json", kernel=str(BUILD / "gic_ipi.elf"), smp=4)
    assert problems(records) == []
    check_cpu_on_flows(records)
    check_sgi_flows(records)
    # PSCI calls have durations on the caller's track, not only instants.
    assert [r for r in records if r["ph"] == "X" and r["name"] == "CPU_ON"]
    assert [r for r in records if r["ph"] == "C"]


@pytest.mark.parametrize("guest", ["wfi_wake", "timer"])
def test_hyp_flows_kick_and_injection(tmp_path, guest):
    records = traced_run(tmp_path / "hyp.json", pcpus=2, vms=[
        VM(str(BUILD / f"{guest}.elf"), smp=2, memory=128 << 20, name="vm0")])
    assert problems(records) == []
    check_cpu_on_flows(records)                   # the pCPU's and the vCPU's
    check_sgi_flows(records)                      # physical kicks and the VM's own SGIs
    # vpsci calls sit on the calling vCPU's track, in the VM's process.
    vm_pid = next(r["pid"] for r in records if r["name"] == "process_name"
                  and r["args"]["name"] == "vm0")
    assert {r["pid"] for r in instants(records, "vpsci.call")} == {vm_pid}
    runs = [r for r in records if r["ph"] == "X" and r["cat"] == "vcpu"]
    assert {r["name"] for r in runs} == {"vm0/vcpu0", "vm0/vcpu1"}
    if guest == "timer":
        injected = flows(records, "inject")
        assert len(injected) > 100
        for s, f in injected.values():
            assert s["pid"] == 1 and f["pid"] == vm_pid
