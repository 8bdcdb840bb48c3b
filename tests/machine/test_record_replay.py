"""Deterministic runs with console input: typed input is seen while the guest waits
for it, and --record/--replay repeat an interactive session byte for byte."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.machine.test_cli import armvisor, assert_one_line_error

UART_RX = Path(__file__).resolve().parents[2] / "guests" / "build" / "uart_rx.elf"
MODES = {"bare": [], "hyp": ["--hyp"]}


@pytest.fixture(params=list(MODES))
def mode(request):
    return MODES[request.param]


def typed_run(args, chunks, pause=0.6):
    """`armvisor run args`, typing `chunks` through a pipe with pauses between them, as a
    person would: each arrives while the guest sleeps in WFI."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "armvisor", "run", *map(str, args)],
                                stdin=subprocess.PIPE, stdout=out, stderr=err)
        # Not communicate(): it would close stdin at once, and a closed input is
        # one nobody types on.
        try:
            for chunk in chunks:
                time.sleep(pause)
                proc.stdin.write(chunk)
                proc.stdin.flush()
            time.sleep(pause)
            proc.stdin.close()
        except BrokenPipeError:             # it ended early: the checks say how
            pass
        proc.wait(timeout=120)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read().decode(errors="replace")


@pytest.mark.guest
def test_typed_input_reaches_a_deterministic_guest_that_waits_for_it(mode):
    """Without pacing, idle virtual time jumped to the guest's 30 s watchdog before
    the first byte was read, and the guest gave up (FAIL: no input)."""
    status, out, err = typed_run(["--kernel", UART_RX, "--deterministic", "--timeout", "60",
                                  *mode], [b"hello\n", b"quit\n"])
    text = out.decode()
    assert status == 0, text + err
    assert "rx: hello" in text and "rx: quit" in text and "RESULT: PASS" in text, text


@pytest.mark.guest
def test_replay_repeats_console_and_trace_byte_for_byte(tmp_path, mode):
    log, first, second = tmp_path / "session.log", tmp_path / "a.json", tmp_path / "b.json"
    common = ["--kernel", UART_RX, "--deterministic", "--timeout", "60", *mode]
    status, out, err = typed_run(common + ["--record", log, "--trace", first],
                                 [b"hello\n", b"wor", b"ld\n", b"quit\n"], pause=0.4)
    assert status == 0 and b"rx: world" in out, err
    replay = subprocess.run([sys.executable, "-m", "armvisor", "run", *map(str, common),
                             "--replay", log, "--trace", second],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert replay.returncode == 0, replay.stderr.decode()
    assert replay.stdout == out
    assert second.read_bytes() == first.read_bytes()


def test_replay_refuses_a_recording_of_another_machine(tmp_path):
    log = tmp_path / "session.log"
    status, _, err = typed_run(["--kernel", UART_RX, "--deterministic", "--timeout", "60",
                                "--record", log], [b"quit\n"], pause=0.2)
    assert status == 0, err
    other = armvisor("run", "--kernel", UART_RX, "--deterministic", "--smp", "2",
                     "--replay", log)
    assert_one_line_error(other, 2, "recorded on another machine")


@pytest.mark.parametrize("args, words", [
    (["--record", "x.log"], ["--record needs --deterministic"]),
    (["--deterministic", "--record", "x.log", "--replay", "y.log"], ["either --record"]),
    (["--deterministic", "--replay", "/nonexistent.log"], ["cannot read recording"]),
])
def test_bad_record_replay_options(args, words):
    assert_one_line_error(armvisor("run", "--kernel", UART_RX, *args), 2, *words)
