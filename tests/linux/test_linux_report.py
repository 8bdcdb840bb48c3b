"""`armvisor trace report` and `trace timeline --bring-up` on Debian's Linux booting 4 CPUs.

One deterministic boot (bare) writes the trace; the report must list the 4 CPUs
with who started them and the latencies, and the bring-up timeline must show
4 lanes and the 3 CPU_ON arrows. Like every Linux test, a missing image is a
failure in CI (conftest.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.linux.test_linux import BOOT_TIMEOUT, armvisor_cmd, script_initramfs


def armvisor(*args):
    return subprocess.run([sys.executable, "-m", "armvisor", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_linux_report_lists_four_cpus_with_latencies(debian_images, tmp_path):
    initrd, hook = script_initramfs(debian_images, tmp_path, "echo booted\n", "booted")
    trace = tmp_path / "boot.json"
    proc = subprocess.run(armvisor_cmd(debian_images, initrd, 4, hook,
                                       "--deterministic", "--trace", str(trace)),
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smp: Brought up 1 node, 4 CPUs" in proc.stdout

    report = armvisor("trace", "report", trace, "--json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["bring_up"]
    assert [row["cpu"] for row in rows] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert rows[0]["requested_by"] == "reset"
    for row in rows[1:]:
        assert row["requested_by"] == "cpu0", row
        assert 0 < row["requested_at"] < row["first_insn_at"] <= row["online_at"], row
        assert 0 < row["to_first_insn_us"] <= row["to_online_us"], row
    text = armvisor("trace", "report", trace).stdout
    assert re.search(r"^\s+cpu3\s+cpu0\s", text, re.M), text

    svg = tmp_path / "bring-up.svg"
    proc = armvisor("trace", "timeline", trace, "--bring-up", "-o", svg)
    assert proc.returncode == 0, proc.stderr
    ids = re.findall(r'<g id="([^"]+)"', svg.read_text())
    assert sum(i.startswith("lane-") for i in ids) == 4
    assert sum(i.startswith("arrow-cpu_on-") for i in ids) == 3
