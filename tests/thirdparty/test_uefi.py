"""Debian's EDK2 for QEMU virt (package qemu-efi-aarch64), run unmodified, against QEMU 7.2.

`-bios QEMU_EFI.fd` boots through SEC, PEI (run in place from flash0), DXE and
the boot manager to the UEFI shell on the PL011, with the variable store in
flash1, PSCI over HVC for `reset -s`, and the DTB at the RAM base as its
hardware description (armvisor's fw_cfg has no ACPI tables, so EDK2 hands
the guest the DTB; QEMU's has them). The AAVMF_CODE/AAVMF_VARS pair is the
same firmware as two 64 MiB pflash files, the way libvirt runs it; the
variables a first boot stores in the file are there at the next boot, and
QEMU reads them from the file armvisor wrote.

QEMU runs with `-nic none` (see devtools/qemu.py). Timeouts have room for a
loaded 2-core machine: armvisor reaches the shell in about 12 s on a quiet
one, QEMU in about 11 s, 5 of which are the shell's startup.nsh countdown.
With --kernel, EDK2 boots Debian's kernel, whose init is ready after about
6 s (`-s` shows the times).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from armvisor.devtools import qemu
from tests.thirdparty.console_session import ConsoleSession

REPO = Path(__file__).resolve().parents[2]
QEMU_EFI = Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")

MEMORY = "512M"
BOOT_SECONDS = 300               # to the shell prompt, with room for a loaded machine
COMMAND_SECONDS = 60
PROMPT = b"Shell> "
COUNTDOWN = b"startup.nsh"       # "Press ESC in 5 seconds to skip startup.nsh or any other key"

VENDOR = "5e2d3f8a-1c4b-4e8a-9f0d-2a6b7c8d9e0f"     # a GUID of our own for a test variable

# The numbered fw_cfg items EDK2 selects on its way to the shell, on QEMU and here
# (docs/specs/fw_cfg.rst keys); the file directory (0x19) it reads to look files up by name.
EDK2_FW_CFG_ITEMS = {0x00: "signature", 0x01: "id", 0x19: "file_dir", 0x08: "kernel_size",
                     0x0B: "initrd_size", 0x14: "cmdline_size", 0x17: "setup_size",
                     0x0E: "boot_menu"}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing: install Debian's qemu-efi-aarch64 (scripts/setup)")
    return path


def need_qemu() -> None:
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed (Debian package qemu-system-arm)")


def armvisor_command(*args) -> list:
    return [sys.executable, "-m", "armvisor", "run", "-m", MEMORY, "--no-reboot", "--quiet",
            "--timeout", str(BOOT_SECONDS + 4 * COMMAND_SECONDS), *map(str, args)]


def qemu_command(*args, machine: str = "virt,gic-version=3") -> list:
    return qemu.virt_command(machine=machine, memory=MEMORY, extra=[str(a) for a in args])


def environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


def shell_session(command: list, commands: list, skip_countdown: bool = False):
    """Boot to the shell, type each command at a prompt, then `reset -s` (PSCI SYSTEM_OFF).

    Returns (transcript, seconds to the first prompt, exit code).
    """
    with ConsoleSession(command, env=environment(), cwd=REPO) as session:
        if skip_countdown:           # any key but ESC (which TerminalDxe holds back)
            session.expect(COUNTDOWN, BOOT_SECONDS)
            session.send(b"\r")
        to_prompt = session.expect(PROMPT, BOOT_SECONDS)
        for line in commands + ["reset -s"]:
            session.send(line.encode() + b"\r")
            if line != "reset -s":
                session.expect(PROMPT, COMMAND_SECONDS)
        status = session.finish(COMMAND_SECONDS)
        return bytes(session.output), to_prompt, status


def plain(transcript: bytes) -> str:
    """The transcript without the terminal's escape sequences and carriage returns."""
    text = transcript.decode("latin-1")
    return re.sub(r"\x1b\[[0-9;=]*[A-Za-z]", "", text).replace("\r", "")


def answers(transcript: bytes) -> dict:
    """What each command printed, by command line (the shell echoes what is typed)."""
    found = {}
    parts = plain(transcript).split("Shell> ")
    for part in parts[1:]:
        command, _, reply = part.partition("\n")
        found[command] = reply
    return found


def report(who: str, seconds: float, what: str = "UEFI shell prompt") -> None:
    sys.stderr.write(f"\n{who}: {what} after {seconds:.1f} s\n")


def test_edk2_bios_boots_to_the_uefi_shell_like_qemu():
    """Every byte the same, the shell's countdown included, then `ver` and `reset -s`."""
    firmware = need(QEMU_EFI)
    ours, seconds, status = shell_session(armvisor_command("-bios", firmware), ["ver"])
    report("armvisor", seconds)
    assert status == 0
    text = plain(ours)
    assert "UEFI Interactive Shell v2.2" in text and "map: No mapping found." in text
    assert text.count("Shell> ") == 2                      # at boot (ver), after ver (reset)
    need_qemu()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"armvisor-qemu-fw_cfg-{os.getpid()}.log"
    trace = ["-trace", "fw_cfg_select", "-trace", "fw_cfg_add_file", "-D", log]
    try:
        theirs, seconds, status = shell_session(qemu_command("-bios", firmware, *trace),
                                                ["ver"])
        qemu_fw_cfg = log.read_text() if log.exists() else ""
    finally:
        log.unlink(missing_ok=True)
    report("qemu", seconds)
    assert status == 0
    assert ours.decode("latin-1") == theirs.decode("latin-1")
    if qemu_fw_cfg:               # QEMU built with its log trace backend, as Debian's
        # QEMU's virt offers ACPI tables, which EDK2 reads there (files: keys from 0x20),
        # and asks for the same numbered items as here (test_edk2_deterministic_...).
        assert "etc/table-loader" in qemu_fw_cfg and "etc/smbios/smbios-tables" in qemu_fw_cfg
        numbered = {int(key, 16) for key in
                    re.findall(r"fw_cfg_select \S+ key (0x00[01][0-9a-f])", qemu_fw_cfg)}
        assert numbered == set(EDK2_FW_CFG_ITEMS)
        assert re.search(r"fw_cfg_select \S+ key 0x002[0-9a-f]", qemu_fw_cfg)


def test_edk2_on_pflash_keeps_its_variables_in_the_file(tmp_path):
    """AAVMF_CODE (read-only) + a copy of AAVMF_VARS: a variable set in one boot is read
    back in the next, by armvisor and by QEMU from the file armvisor wrote."""
    code, template = need(AAVMF_CODE), need(AAVMF_VARS)
    variables = tmp_path / "vars.fd"
    shutil.copyfile(template, variables)

    def drives(store: Path) -> list:
        return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={store}"]

    setvar = f'setvar ArmvisorTest -guid {VENDOR} -nv -bs =L"hello"'
    _, seconds, status = shell_session(armvisor_command(*drives(variables)), [setvar],
                                       skip_countdown=True)
    report("armvisor (pflash)", seconds)
    assert status == 0
    data = variables.read_bytes()
    assert data != template.read_bytes() and "ArmvisorTest".encode("utf-16-le") in data

    dmpstore = f"dmpstore ArmvisorTest -guid {VENDOR}"
    commands = [dmpstore, "pci"]
    ours, _, status = shell_session(armvisor_command(*drives(variables)), commands,
                                    skip_countdown=True)
    assert status == 0
    replies = answers(ours)
    assert "'5E2D3F8A-1C4B-4E8A-9F0D-2A6B7C8D9E0F:ArmvisorTest' DataSize = 0x0A" in \
        replies[dmpstore]
    assert "*h.e.l.l.o.*" in replies[dmpstore]
    assert "Vendor 1B36 Device 0008" in replies["pci"]       # the gpex host bridge

    need_qemu()
    copy = tmp_path / "vars-for-qemu.fd"
    shutil.copyfile(variables, copy)
    theirs, _, status = shell_session(qemu_command(*drives(copy)), commands,
                                      skip_countdown=True)
    assert status == 0
    assert {c: answers(theirs)[c] for c in commands} == {c: replies[c] for c in commands}


def test_edk2_snapshot_leaves_the_variable_store_alone(tmp_path):
    code, template = need(AAVMF_CODE), need(AAVMF_VARS)
    variables = tmp_path / "vars.fd"
    shutil.copyfile(template, variables)
    _, _, status = shell_session(armvisor_command(
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}", "--snapshot"),
        [f'setvar ArmvisorTest -guid {VENDOR} -nv -bs =L"hello"'], skip_countdown=True)
    assert status == 0
    assert variables.read_bytes() == template.read_bytes()


@pytest.fixture(scope="module")
def debian_images():
    """Debian's kernel and the BusyBox initramfs, as tests/linux fetches them (cached)."""
    from armvisor.errors import ArmvisorError
    from armvisor.images.debian import Fetcher
    try:
        return Fetcher(log=lambda message: None).fetch()
    except (ArmvisorError, OSError) as exc:
        pytest.skip(f"Debian arm64 kernel and BusyBox unavailable: {exc}")


def test_edk2_boots_debians_kernel_from_fw_cfg(debian_images):
    """`-bios QEMU_EFI.fd --kernel Image --initrd ...`: as on QEMU, the kernel, initrd and
    command line reach EDK2 through fw_cfg, and EDK2 starts the kernel's EFI stub; Linux
    then runs on the DTB EDK2 hands on (ours: no ACPI here) and brings CPU 1 up with PSCI
    over HVC. QEMU's boot of the same differs from here on (it gives EDK2 ACPI tables)."""
    firmware = need(QEMU_EFI)
    command = armvisor_command("-bios", firmware, "--kernel", debian_images.kernel,
                               "--initrd", debian_images.initramfs, "--smp", "2",
                               "--append", "console=ttyAMA0")
    with ConsoleSession(command, env=environment(), cwd=REPO) as session:
        session.expect(b"EFI stub: Booting Linux Kernel...", BOOT_SECONDS)
        session.expect(b"EFI stub: Using DTB from configuration table", COMMAND_SECONDS)
        session.expect(b"efi: EFI v2.70 by EDK II", COMMAND_SECONDS)
        session.expect(b"psci: probing for conduit method from DT.", COMMAND_SECONDS)
        session.expect(b"smp: Brought up 1 node, 2 CPUs", BOOT_SECONDS)
        seconds = session.expect(b"armvisor-init: ready on 2 CPUs", BOOT_SECONDS)
        report("armvisor", seconds, "EDK2, then Linux's init on 2 CPUs,")
        session.send(b"poweroff -f\r")
        assert session.finish(COMMAND_SECONDS) == 0


def test_edk2_deterministic_snapshot_at_the_prompt(tmp_path):
    """--deterministic: the shell's countdown passes in virtual time; a snapshot taken at
    the prompt (flash banks, fw_cfg and all) answers `ver` exactly as the original."""
    import armvisor
    firmware = need(QEMU_EFI)
    with armvisor.Machine(bios=str(firmware), deterministic=True) as machine:
        machine.run(until=armvisor.Console(PROMPT), timeout=BOOT_SECONDS)
        # What EDK2 asked fw_cfg for: only the items every QEMU machine has (no files
        # here, so no ACPI tables: it hands the OS the DTB instead).
        selected = machine.trace.events("fw_cfg.select")
        assert {e.fields["key"]: e.fields["item"] for e in selected} == EDK2_FW_CFG_ITEMS
        assert {e.fields["item"] for e in selected if e.fields["present"]} == \
            {"signature", "id", "file_dir"}
        # flash1, the variable store, is read as memory again after EDK2's writes to it:
        # tens of thousands of exits instead of about 1.5 million.
        assert machine.board.exit_counts()["mmio:flash1"] < 100_000
        machine.snapshot(str(tmp_path / "shell.snap"))
        machine.board.uart.receive(b"ver\r")
        machine.run(until=armvisor.Console(PROMPT), timeout=COMMAND_SECONDS)
        expected = (machine.instructions, machine.console.text)
    with armvisor.Machine.restore(str(tmp_path / "shell.snap"), keep_trace=False) as restored:
        restored.board.uart.receive(b"ver\r")
        restored.run(until=armvisor.Console(PROMPT), timeout=COMMAND_SECONDS)
        assert restored.instructions == expected[0]
        assert expected[1].endswith(restored.console.text)
        assert "UEFI Interactive Shell v2.2" in plain(restored.console.text.encode("latin-1"))


STARTUP_NSH = "fs0:\r\n\\linux.efi initrd=\\initrd.img console=ttyAMA0\r\n"
COUNTDOWN_LINE = re.compile(r"Press ESC in \d seconds to skip startup\.nsh or any other key "
                            r"to continue\.")


def make_esp(tmp_path: Path, images) -> Path:
    """A 64 MiB FAT volume (no partition table: EDK2 takes the whole disk) holding the
    kernel as an EFI program, the initramfs and a startup.nsh that runs the one with the
    other. Built with mtools, as no root is needed."""
    if not (shutil.which("mformat") and shutil.which("mcopy")):
        pytest.skip("needs Debian's mtools (scripts/setup)")
    import subprocess
    esp = tmp_path / "esp.img"
    with open(esp, "wb") as handle:
        handle.truncate(64 << 20)
    script = tmp_path / "startup.nsh"
    script.write_text(STARTUP_NSH)
    subprocess.run(["mformat", "-i", str(esp), "-F", "-v", "ESP", "::"], check=True)
    for source, name in ((images.kernel, "linux.efi"), (images.initramfs, "initrd.img"),
                         (script, "startup.nsh")):
        subprocess.run(["mcopy", "-i", str(esp), str(source), f"::/{name}"], check=True)
    return esp


def esp_boot(command: list, follow) -> str:
    """Boot to the shell's countdown (cut short), let startup.nsh start Linux from the
    ESP; `follow(session)` then takes over. Returns the transcript up to the initrd."""
    with ConsoleSession(command, env=environment(), cwd=REPO) as session:
        session.expect(COUNTDOWN, BOOT_SECONDS)
        session.send(b"\r")                         # any key: run startup.nsh now
        session.expect(b"EFI stub: Loaded initrd from command line option", BOOT_SECONDS)
        text = COUNTDOWN_LINE.sub("", plain(session.matched))
        follow(session)
        return text


def test_edk2_boots_debian_from_an_esp_on_a_virtio_disk(tmp_path, debian_images):
    """The ESP on a virtio-blk disk (virtio-mmio, the last slot as on QEMU): EDK2's
    shell runs startup.nsh from it, which starts the kernel's EFI stub with the
    initramfs read from the same FAT volume; Linux reaches its init on 2 CPUs. Up to the
    initrd the console is QEMU's, countdown aside."""
    firmware = need(QEMU_EFI)
    esp = make_esp(tmp_path, debian_images)

    def linux_runs(session):
        session.expect(b"EFI stub: Using DTB from configuration table", COMMAND_SECONDS)
        seconds = session.expect(b"armvisor-init: ready on 2 CPUs", BOOT_SECONDS)
        report("armvisor", seconds, "EDK2, the ESP, then Linux's init on 2 CPUs,")
        session.send(b"poweroff -f\r")
        assert session.finish(COMMAND_SECONDS) == 0

    ours = esp_boot(armvisor_command("-bios", firmware, "--drive", f"file={esp},format=raw",
                                     "--snapshot", "--smp", "2"), linux_runs)
    assert "FS0: Alias(s):F0:;BLK0:" in ours and "Shell> fs0:" in ours
    need_qemu()
    theirs = esp_boot(qemu_command(
        "-bios", firmware, "-smp", "2",
        "-drive", f"if=none,id=esp,file={esp},format=raw,snapshot=on",
        "-device", "virtio-blk-device,drive=esp"), lambda session: None)
    assert ours == theirs


def test_edk2_variable_store_reads_are_exits_without_the_remap(monkeypatch):
    """Why flash1 is mapped as memory again: left as MMIO after EDK2's first write to
    it, every read of the variable store on the way to the shell is an exit."""
    import armvisor
    from armvisor.machine import board
    firmware = need(QEMU_EFI)
    monkeypatch.setattr(board, "ARRAY_READS_BEFORE_REMAP", 1 << 62)
    with armvisor.Machine(bios=str(firmware), deterministic=True, keep_trace=False) as machine:
        machine.run(until=armvisor.Console(PROMPT), timeout=BOOT_SECONDS)
        assert machine.board.exit_counts()["mmio:flash1"] > 1_000_000
