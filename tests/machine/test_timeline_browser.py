"""The HTML timeline in a real browser: Debian's headless chromium, no network.

The page's own script counts the lanes that have an area on the laid-out page
and writes the count on `#timeline` (data-lanes-drawn); `--dump-dom` gives the
DOM after the script ran. Without chromium the test is skipped, except in CI
(CI=true), where scripts/setup installs it and a skip would hide a failure.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from armvisor.api import Machine
from armvisor.trace import TraceBus, model, timeline
from armvisor.trace.chrome import ChromeTraceWriter

DEMO = Path(__file__).resolve().parents[2] / "guests" / "build" / "smp_demo.elf"
CHROMIUM = shutil.which("chromium")
# Every request fails at once: the page must need nothing from the network.
NO_NETWORK = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        reason = "needs Debian's chromium (scripts/setup installs it)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


def smp_demo_html(tmp_path: Path, cpus: int) -> Path:
    bus = TraceBus()
    with ChromeTraceWriter(str(tmp_path / "demo.json")) as writer:
        bus.subscribe(writer.on_event)
        m = Machine(kernel=str(DEMO), smp=cpus, trace=bus, console=lambda data: None,
                    deterministic=True)
        try:
            assert m.run(timeout=60) == 0
        finally:
            m.close()
    html = tmp_path / "demo.html"
    timeline.draw(model.load(str(tmp_path / "demo.json")), str(html))
    return html


def test_html_timeline_shows_a_lane_per_cpu_in_chromium(chromium, tmp_path):
    html = smp_demo_html(tmp_path, 4)
    proc = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", *NO_NETWORK,
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    drawn = re.search(r'<div id="timeline" data-lanes-drawn="(\d+)"', proc.stdout)
    assert drawn, "the page's script did not run: " + proc.stdout[:500]
    assert int(drawn.group(1)) == 4
    assert len(re.findall(r'<g id="arrow-cpu_on-\d+"', proc.stdout)) == 3
