"""Firmware at EL3 (--secure, QEMU's `-M virt,secure=on`) with tiny flat binaries.

Each program runs from flash0 at 0 on every CPU at once, as QEMU starts them
all with secure=on, prints what it finds on the PL011 and powers the machine
off through the secure PL061's line 0 (what TF-A's qemu_system_off does).
Where QEMU is installed the same binary runs there too and must print the
same bytes. TF-A itself is tests/thirdparty/test_tfa.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import armvisor
from armvisor.devtools import qemu
from armvisor.devtools.cross import FLASH0_ADDRESS, PRINT_HEX, build_program, flat_binary, \
    have_cross_tools
from tests.machine.test_cli import armvisor as run_cli
from tests.machine.test_cli import assert_one_line_error

SECURE_RAM = 0x0E00_0000
SECURE_GPIO = 0x090B_0000
GPIODIR = 0x400

# The secure GPIO's line 0 high: QEMU's gpio-pwr powers the machine off.
POWER_OFF = f"""
power_off:
    ldr x1, ={SECURE_GPIO:#x}
    mov w2, #1
    strb w2, [x1, #{GPIODIR:#x}]
    strb w2, [x1, #4]           // GPIODATA through address mask bit 0 (line 0)
    b .
"""

# Every CPU but 0 writes its number into its slot of the secure RAM and waits
# there (a holding pen, as TF-A's BL1 keeps its secondaries); CPU 0 goes on at `primary`.
HOLDING_PEN = f"""
    mrs x1, mpidr_el1
    and x1, x1, #0xff
    cbz x1, primary
    ldr x2, ={SECURE_RAM:#x}
    str x1, [x2, x1, lsl #3]
    dsb sy
    sev
1:  wfe
    b 1b
primary:
"""

# CPU 0: its EL and EL3's reset state, then how many CPUs reached the pen.
RESET_STATE = f"""
    mrs x0, CurrentEL
    lsr x0, x0, #2
    bl print_hex
    mrs x0, scr_el3
    bl print_hex
    mrs x0, id_aa64pfr0_el1
    ubfx x0, x0, #8, #8         // EL2 and EL3: implemented (1) or not (0)
    bl print_hex
    mrs x0, sctlr_el3
    and x0, x0, #1
    bl print_hex
    ldr x2, ={SECURE_RAM:#x}
2:  mov x0, #0                  // the sum of the CPU numbers in the pen
    mov x3, #1
3:  ldr x4, [x2, x3, lsl #3]
    add x0, x0, x4
    add x3, x3, #1
    cmp x3, #4
    b.lt 3b
    cmp x0, #6                  // 1 + 2 + 3
    b.eq 4f
    wfe
    b 2b
4:  bl print_hex
    b power_off
"""

# EL3 installs its vectors and drops to the lower EL at `lower` (EL2 with
# virtualization=on, EL1 without); there an SMC comes back to EL3's own
# handler, which prints its syndrome and the caller's x0 and answers in x0.
# The Non-secure code runs from a copy in RAM: QEMU keeps flash0 in the Secure
# address space, where a Non-secure fetch takes an external abort.
NS_RAM = 0x4000_0000
SMC_ROUND_TRIP = f"""
    adr x1, lower               // copy `lower` to the end of the program into RAM
    adr x2, program_end
    ldr x3, ={NS_RAM:#x}
5:  ldr x4, [x1], #8
    str x4, [x3], #8
    cmp x1, x2
    b.lo 5b
    dsb sy
    ic iallu
    isb
    adr x1, el3_vectors
    msr vbar_el3, x1
    mov x1, #0x501              // SCR_EL3: NS, HCE, RW (SMD clear: SMC enabled)
    msr scr_el3, x1
    mrs x1, id_aa64pfr0_el1
    ubfx x1, x1, #8, #4
    mov x2, #0x3c5              // EL1h, DAIF masked
    mov x3, #0x3c9              // EL2h, DAIF masked
    cmp x1, #0
    csel x1, x2, x3, eq
    msr spsr_el3, x1
    ldr x1, ={NS_RAM:#x}
    msr elr_el3, x1
    isb
    eret
lower:
    mrs x0, CurrentEL
    lsr x0, x0, #2
    bl print_hex
    ldr x0, =0x84000000         // PSCI_VERSION, as firmware is asked
    smc #0x12
    bl print_hex                // what EL3 answered
    mov x0, #0
    smc #0x34                   // "power off, please"
    b .

    .balign 0x800
el3_vectors:
    .skip 0x400                 // current-EL vectors: none expected
    mov x19, x0                 // lower EL, AArch64, synchronous
    mrs x0, esr_el3
    bl print_hex
    mrs x0, elr_el3
    ldr x1, ={NS_RAM:#x}
    sub x0, x0, x1              // where the SMC was, relative to `lower`: ELR = SMC + 4
    bl print_hex
    mov x0, x19
    bl print_hex
    mrs x0, esr_el3
    and x0, x0, #0xffff
    cmp x0, #0x34
    b.eq power_off
    ldr x0, =0x10001            // PSCI 1.1
    eret
"""
PROGRAM_END = """
    .ltorg
    .balign 8
program_end:
"""


def firmware(tmp_path: Path, body: str, name: str, end: str = "") -> Path:
    if not have_cross_tools():
        pytest.skip("needs Debian's binutils-aarch64-linux-gnu")
    elf = build_program(tmp_path, body + POWER_OFF + PRINT_HEX + end, name,
                        load_address=FLASH0_ADDRESS)
    return flat_binary(elf)


def qemu_output(machine: str, smp: int, fw: Path, timeout=60) -> str:
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed: nothing to compare with")
    done = subprocess.run(qemu.virt_command(machine=machine, cpu="max", smp=smp,
                                            extra=["-bios", str(fw)]),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def hexlines(*values: int) -> str:
    return "".join(f"{value:016x}\n" for value in values)


@pytest.mark.parametrize("virtualization", [False, True])
def test_every_cpu_starts_in_the_firmware_at_el3(tmp_path, virtualization):
    fw = firmware(tmp_path, HOLDING_PEN + RESET_STATE, "reset")
    flags = ["--virtualization"] if virtualization else []
    proc = run_cli("run", "--secure", *flags, "-bios", fw, "--smp", "4", "--cpu", "max",
                   "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    # EL3; SCR_EL3 at reset (RES1 bits 5:4); EL2 only with virtualization=on (`max`
    # has AArch32 at EL2 and EL3 too); MMU off; CPUs 1-3 in the pen.
    expected = hexlines(3, 0x30, 0x22 if virtualization else 0x20, 0, 6)
    assert proc.stdout == expected
    machine = "virt,gic-version=3,secure=on" + (",virtualization=on" if virtualization else "")
    assert qemu_output(machine, 4, fw) == expected


@pytest.mark.parametrize("virtualization", [False, True])
def test_an_smc_is_taken_by_the_firmwares_own_el3_vector(tmp_path, virtualization):
    fw = firmware(tmp_path, HOLDING_PEN + SMC_ROUND_TRIP, "smc", PROGRAM_END)
    flags = ["--virtualization"] if virtualization else []
    proc = run_cli("run", "--secure", *flags, "-bios", fw, "--smp", "2", "--cpu", "max",
                   "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    smc = 0x17 << 26 | 1 << 25         # EC SMC from AArch64, IL
    expected = hexlines(2 if virtualization else 1,
                        smc | 0x12, 0x14, 0x8400_0000, 0x10001,
                        smc | 0x34, 0x20, 0)
    assert proc.stdout == expected
    machine = "virt,gic-version=3,secure=on" + (",virtualization=on" if virtualization else "")
    assert qemu_output(machine, 2, fw) == expected


def test_the_trace_shows_the_smc_taken_to_el3(tmp_path):
    fw = firmware(tmp_path, HOLDING_PEN + SMC_ROUND_TRIP, "smc", PROGRAM_END)
    with armvisor.Machine(bios=str(fw), smp=2, cpu="max", secure=True) as machine:
        assert machine.run(timeout=60) == 0
        smcs = machine.trace.events("exception", ec=0x17)
        calls = machine.trace.events("smc")
    assert [(e.cpu, e.fields["el"], e.fields["esr"] & 0xFFFF) for e in smcs] == \
        [(0, 3, 0x12), (0, 3, 0x34)]
    # The call each made, named as SMCCC and PSCI name them.
    assert [(e.cpu, e.fields["el"], e.fields["imm"], e.fields["fid"], e.fields["function"])
            for e in calls] == [(0, 3, 0x12, 0x8400_0000, "PSCI_VERSION"),
                                (0, 3, 0x34, 0, "yielding 0x00000000")]


def test_the_secure_gpio_reset_line_restarts_the_machine(tmp_path):
    reset = f"""
    ldr x2, ={SECURE_RAM + 0x100:#x}
    ldr x0, [x2]                // boots so far: the secure RAM starts at zero each time
    add x0, x0, #1
    str x0, [x2]
    bl print_hex
    ldr x1, ={SECURE_GPIO:#x}
    mov w2, #2
    strb w2, [x1, #{GPIODIR:#x}]
    strb w2, [x1, #8]           // line 1 high: reset
    b .
"""
    fw = firmware(tmp_path, HOLDING_PEN + reset, "reset_line")
    proc = run_cli("run", "--secure", "-bios", fw, "--smp", "2", "--cpu", "max", "--no-reboot",
                   "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == hexlines(1)
    assert qemu_output("virt,gic-version=3,secure=on", 2, fw) == hexlines(1)


@pytest.mark.parametrize("args, words", [
    (["--secure", "--kernel", "Image"], ["--secure", "-bios"]),
    (["--secure", "--hyp", "--vm", "kernel=Image,smp=1,memory=64M"], ["--secure", "--hyp"]),
])
def test_secure_needs_firmware_and_no_hypervisor(tmp_path, args, words):
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"\0" * 4096)
    args = [str(kernel) if a == "Image" else a.replace("kernel=Image", f"kernel={kernel}")
            for a in args]
    assert_one_line_error(run_cli("run", *args), 2, *words)


def test_a_snapshot_keeps_the_secure_world(tmp_path):
    """The secure RAM and the firmware's EL3 state go into a snapshot and come back."""
    count = f"""
    ldr x2, ={SECURE_RAM + 0x100:#x}
    mov x3, #0
6:  ldr x0, [x2]                // a counter kept in the secure RAM
    add x0, x0, #1
    str x0, [x2]
    bl print_hex
    mov x5, #20000
7:  subs x5, x5, #1
    b.ne 7b
    add x3, x3, #1
    cmp x3, #8
    b.lt 6b
    b power_off
"""
    fw = firmware(tmp_path, HOLDING_PEN + count, "count")
    machine = armvisor.Machine(bios=str(fw), smp=2, cpu="max", secure=True, deterministic=True)
    machine.run(until=armvisor.Instructions(150_000), timeout=60)
    printed = len(machine.console.text)
    assert 0 < printed < len(hexlines(*range(1, 9)))
    machine.snapshot(str(tmp_path / "secure.avs"))
    assert machine.run(timeout=60) == 0
    assert machine.console.text == hexlines(*range(1, 9))
    again = armvisor.Machine.restore(str(tmp_path / "secure.avs"))
    assert again.run(timeout=60) == 0
    assert again.console.text == machine.console.text[printed:]
    again.close()
    machine.close()


def test_reports_leave_power_states_to_the_guests_firmware(tmp_path):
    """armvisor's PSCI state machine is not in charge under --secure: the API and the crash
    report say the firmware's is, instead of armvisor's idle OFF."""
    fw = firmware(tmp_path, HOLDING_PEN + "    b .\n", "spin")
    with armvisor.Machine(bios=str(fw), smp=2, cpu="max", secure=True) as machine:
        machine.run(until=armvisor.Instructions(10_000), timeout=60)
        assert [cpu.power_state for cpu in machine.cpus] == ["FIRMWARE", "FIRMWARE"]
        report = machine.board.report()
    assert "psci=firmware" in report and "psci=OFF" not in report


def test_the_secure_uart_is_there_and_writes_nowhere(tmp_path):
    """QEMU gives the secure UART a second -serial, which a plain run lacks: the device
    answers (PL011 identification) and what the firmware writes there is not seen."""
    uart = f"""
    ldr x1, =0x09040000
    mov w2, #'S'
    str w2, [x1]                // UARTDR of the secure UART: goes nowhere
    ldr w0, [x1, #0xfe0]        // UARTPeriphID0: 0x11
    bl print_hex
    b power_off
"""
    fw = firmware(tmp_path, HOLDING_PEN + uart, "secure_uart")
    proc = run_cli("run", "--secure", "-bios", fw, "--smp", "2", "--cpu", "max",
                   "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == hexlines(0x11)
    assert qemu_output("virt,gic-version=3,secure=on", 2, fw) == hexlines(0x11)
