"""Debian's U-Boot for QEMU virt (package u-boot-qemu), run unmodified, against QEMU.

Issue 2 is done when a program nobody on the team wrote, built for QEMU's
virt machine with PSCI over SMC, prints the same on armvisor as on
`qemu-system-aarch64 -M virt,virtualization=on`. U-Boot's qemu_arm64 build is
that program: it finds everything through the DTB, prints on the PL011 and
powers off with PSCI SYSTEM_OFF over the conduit the DTB names ("smc" when EL2
is emulated). scripts/fetch-thirdparty gets it by package name.

QEMU runs with `-nic none`: its default NIC is a virtio-net PCI card, which
U-Boot would report ("Net: eth0: virtio-net#32") and armvisor has no PCI
devices. Input goes in at once: the first key stops the autoboot countdown
(U-Boot takes a key already waiting), the rest are commands.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from armvisor.devtools import qemu

REPO = Path(__file__).resolve().parents[2]
FETCH = REPO / "scripts" / "fetch-thirdparty"

SMP = 2
MEMORY = "512M"
QEMU_ARGS = qemu.virt_command(machine="virt,virtualization=on,gic-version=3", smp=SMP,
                              memory=MEMORY)[1:]

# Key to stop autoboot, two commands; poweroff is PSCI SYSTEM_OFF, so both exit 0.
CONSOLE_INPUT = b"\nversion\rpoweroff\r"
RUN_SECONDS = 60                 # armvisor boots U-Boot to the prompt in about a second
HANG_SECONDS = 4                 # for runs that print then spin forever, on both machines

# Where the in-RAM copy of uboot.elf goes: 2 MiB into RAM, leaving the start of
# RAM free, which is where QEMU (and armvisor) put the DTB for an ELF kernel
# and where U-Boot's qemu-arm board code looks for it.
RAM_BASE = 0x4000_0000
IN_RAM_LOAD = RAM_BASE + 0x20_0000

# ELF64 header and program header layout (System V gABI, "ELF Header", "Program Header").
E_ENTRY, E_PHOFF, E_PHENTSIZE = 24, 32, 54
P_VADDR = 16
PT_LOAD = 1

@pytest.fixture(scope="module")
def uboot() -> Path:
    """The directory with qemu_arm64/uboot.elf and u-boot.bin, fetched once into the cache."""
    if not os.access(FETCH, os.X_OK):
        pytest.skip(f"{FETCH} is missing")
    try:
        done = subprocess.run([str(FETCH), "u-boot-qemu"], capture_output=True, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("fetching Debian's u-boot-qemu took over 5 minutes")
    if done.returncode != 0:
        pytest.skip("Debian's u-boot-qemu cannot be had here: "
                    + (done.stderr.strip().splitlines() or ["no reason given"])[-1])
    return Path(done.stdout.strip().splitlines()[-1])


def moved_elf(data: bytes, offset: int) -> bytes:
    """The same ELF with every PT_LOAD segment and the entry `offset` bytes higher.

    Not one byte of the program changes, only where the ELF header says it
    goes: U-Boot's qemu_arm64 build is position independent (it relocates
    itself from wherever it starts), which lets QEMU and armvisor run it from
    RAM instead of flash.
    """
    out = bytearray(data)
    (entry,) = struct.unpack_from("<Q", out, E_ENTRY)
    (phoff,) = struct.unpack_from("<Q", out, E_PHOFF)
    phentsize, phnum = struct.unpack_from("<HH", out, E_PHENTSIZE)
    struct.pack_into("<Q", out, E_ENTRY, entry + offset)
    for index in range(phnum):
        header = phoff + index * phentsize
        (p_type,) = struct.unpack_from("<I", out, header)
        if p_type == PT_LOAD:
            vaddr, paddr = struct.unpack_from("<QQ", out, header + P_VADDR)
            struct.pack_into("<QQ", out, header + P_VADDR, vaddr + offset, paddr + offset)
    return bytes(out)


def uboot_banner(binary: Path) -> bytes:
    """U-Boot's version line, as the program itself spells it."""
    data = binary.read_bytes()
    start = data.index(b"U-Boot 20")
    return data[start:data.index(b"\0", start)]


def run_armvisor(kernel: Path, console_input: bytes, timeout_s: int) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "armvisor", "run", "--kernel", str(kernel),
                           "--smp", str(SMP), "-m", MEMORY, "--no-reboot",
                           "--timeout", str(timeout_s)],
                          input=console_input, capture_output=True, env=env, cwd=REPO,
                          timeout=timeout_s + 30)


def run_qemu(kernel: Path, console_input: bytes, hang_s: float | None = None) -> bytes:
    """QEMU's console output; a run expected to hang is stopped after `hang_s`."""
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed (Debian package qemu-system-arm): nothing to compare with")
    command = [qemu.QEMU, *QEMU_ARGS, "-kernel", str(kernel)]
    if hang_s is None:
        done = subprocess.run(command, input=console_input, capture_output=True,
                              timeout=RUN_SECONDS)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        out, _ = process.communicate(console_input, timeout=hang_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def text(data: bytes) -> str:
    """Bytes as a string that keeps every control character, for pytest's diff."""
    return data.decode("latin-1")


def test_raw_image_finds_no_dtb_at_ram_base_like_qemu(uboot: Path):
    """u-boot.bin as a raw -kernel: Linux placement, so the DTB is not where U-Boot looks.

    Both machines run U-Boot's position-independent start-up from 0x40080000
    at their boot EL, print the same complaint and stop; this pins the raw
    loader's placement and the early console.
    """
    kernel = uboot / "qemu_arm64" / "u-boot.bin"
    ours = run_armvisor(kernel, b"", HANG_SECONDS)
    assert ours.returncode == 4, ours.stderr.decode(errors="replace")   # our timeout: it spins
    assert b"timeout" in ours.stderr
    theirs = run_qemu(kernel, b"", hang_s=HANG_SECONDS)
    assert theirs, "QEMU printed nothing"
    assert text(ours.stdout) == text(theirs)


def test_uboot_from_ram_boots_to_prompt_like_qemu(uboot: Path, tmp_path: Path):
    """uboot.elf moved to RAM: banner, device probe, prompt, `version`, PSCI poweroff."""
    elf = uboot / "qemu_arm64" / "uboot.elf"
    kernel = tmp_path / "uboot-in-ram.elf"
    kernel.write_bytes(moved_elf(elf.read_bytes(), IN_RAM_LOAD))
    ours = run_armvisor(kernel, CONSOLE_INPUT, RUN_SECONDS)
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert uboot_banner(elf) in ours.stdout
    assert text(ours.stdout) == text(run_qemu(kernel, CONSOLE_INPUT))


def test_unmodified_uboot_elf_runs_from_flash_like_qemu(uboot: Path):
    """uboot.elf exactly as Debian ships it: QEMU puts it in flash0 and starts at 0."""
    elf = uboot / "qemu_arm64" / "uboot.elf"
    ours = run_armvisor(elf, CONSOLE_INPUT, RUN_SECONDS)
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert uboot_banner(elf) in ours.stdout
    assert text(ours.stdout) == text(run_qemu(elf, CONSOLE_INPUT))
