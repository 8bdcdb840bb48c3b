"""Debian's kernel and the time machine: a snapshot at the shell prompt goes on in a
new process exactly as the original did, and an interactive shell session recorded
with --record replays byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import armvisor
from armvisor.images.initramfs import INIT_MARKER
from tests.linux.test_linux import BOOT_TIMEOUT, armvisor_cmd
from tests.terminal import Terminal

PROMPT = "/ # "
TYPED = b"echo $((6 * 7))-answer; head -3 /proc/interrupts; poweroff -f\n"

# Run in a new process: restore, type what the original was given, run to the end.
RESTORE_SCRIPT = """
import sys, armvisor
machine = armvisor.Machine.restore(sys.argv[1])
uart = machine.board.uart if machine.hypervisor is None else machine.hypervisor.vms[0].uart
uart.receive(bytes.fromhex(sys.argv[2]))
status = machine.run(timeout=float(sys.argv[3]))
sys.stdout.write(machine.console.text)
sys.exit(status)
"""


def build(images, mode: str) -> armvisor.Machine:
    common = dict(initrd=str(images.initramfs), append="console=ttyAMA0", smp=4)
    if mode == "hyp":
        return armvisor.Machine(vms=[armvisor.VM(str(images.kernel), **common)],
                                deterministic=True)
    return armvisor.Machine(str(images.kernel), deterministic=True, **common)


@pytest.mark.parametrize("mode", ["bare", "hyp"])
def test_a_snapshot_at_the_shell_prompt_goes_on_in_a_new_process(debian_images, tmp_path, mode):
    original = build(debian_images, mode)
    assert original.run(until=armvisor.Console(PROMPT), timeout=BOOT_TIMEOUT) is None
    snap = tmp_path / "prompt.avs"
    original.snapshot(str(snap))
    printed = len(original.console.text)
    uart = original.board.uart if mode == "bare" else original.hypervisor.vms[0].uart
    uart.receive(TYPED)
    assert original.run(timeout=BOOT_TIMEOUT) == 0
    after = original.console.text[printed:]
    assert "42-answer" in after and "reboot: Power down" in after, after[-2000:]

    restored = subprocess.run([sys.executable, "-c", RESTORE_SCRIPT, str(snap), TYPED.hex(),
                               str(BOOT_TIMEOUT)], capture_output=True,
                              timeout=BOOT_TIMEOUT + 60)
    assert restored.returncode == 0, restored.stderr[-3000:].decode(errors="replace")
    # Kernel timestamps and interrupt counts included (bytes: no newline translation).
    assert restored.stdout.decode(errors="replace") == after


@pytest.mark.parametrize("mode", [[], ["--hyp"]], ids=["bare", "hyp"])
def test_an_interactive_shell_session_replays_byte_for_byte(debian_images, tmp_path, mode):
    log, first, second = tmp_path / "shell.log", tmp_path / "a.json", tmp_path / "b.json"
    command = armvisor_cmd(debian_images, debian_images.initramfs, 2, "", *mode,
                           "--deterministic", "--quiet")
    term = Terminal(command + ["--record", str(log), "--trace", str(first)],
                    timeout=BOOT_TIMEOUT)
    term.expect(INIT_MARKER)
    time.sleep(1.0)                          # typed while the shell waits, as a person would
    term.send(b"echo $((6 * 7))-answer\r")
    term.expect("42-answer")
    time.sleep(0.5)
    term.send(b"ls /proc | head -3; poweroff -f\r")
    term.expect("reboot: Power down", timeout=120)
    assert term.close() == 0
    shown = term.seen

    replay = subprocess.run(command + ["--replay", str(log), "--trace", str(second)],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=BOOT_TIMEOUT + 60)
    assert replay.returncode == 0, replay.stderr[-3000:]
    # On the terminal, stdout and stderr were one stream; armvisor wrote nothing to stderr.
    assert replay.stdout == shown and b"42-answer" in replay.stdout
    assert second.read_bytes() == first.read_bytes()
    typed = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert sum(1 for entry in typed if "input" in entry) >= 2
