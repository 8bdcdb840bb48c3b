"""Code addresses in events (pc, elr, entry, vector) as symbol+offset: in a timeout
report's last events and in `armvisor trace report`'s exits."""

import subprocess
import sys

from tests.machine.test_core import INSTALL_VECTORS, VECTORS
from tests.machine.tinyguest import build

SVC_LOOP = INSTALL_VECTORS + """
    mov x20, #{count}
caller:
    svc #1
    subs x20, x20, #1
    b.ne caller
    {end}
""" + VECTORS


def armvisor(*args):
    return subprocess.run([sys.executable, "-m", "armvisor", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_timeout_report_names_the_events_addresses(tmp_path):
    elf = build(tmp_path, SVC_LOOP.format(count=0, end=""))      # 2^64 SVCs: never ends
    proc = armvisor("run", "--kernel", elf, "--timeout", "1")
    assert proc.returncode == 4, proc.stderr
    events = proc.stderr.split("last events:")[1]
    # SVC's ELR is the next instruction; the vector is VBAR_EL1 + 0x200 (current EL, SPx).
    assert "elr=0x" in events and "<caller+0x4>" in events, events
    assert "<vectors+0x200>" in events


def test_trace_report_says_where_exceptions_were_taken(tmp_path):
    elf = build(tmp_path, SVC_LOOP.format(count=5, end="system_off"))
    trace = tmp_path / "t.json"
    assert armvisor("run", "--kernel", elf, "--trace", trace).returncode == 0
    proc = armvisor("trace", "report", trace)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "exception ec=0x15" in line)
    assert line.split()[2:] == ["5", "caller+0x4", "x5"], line
