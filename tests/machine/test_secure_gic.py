"""--secure: the GIC's two Security states seen by a tiny firmware that owns EL3,
against QEMU 7.2's `-M virt,secure=on`.

The firmware runs from flash0 at EL3 as TF-A does: it configures the GIC from
the Secure side (SGI 8 Secure Group 1, the rest Non-secure Group 1), makes a
Non-secure Group 1 SGI pending from EL3 and ERETs to Non-secure EL1 with
interrupts unmasked. The Non-secure side then looks at the GIC through its
view and sends SGIs; each IRQ it takes prints its INTID, an FIQ would print
0xf1f1 (none may come: Linux cannot take FIQs). Then it calls EL3 with an SMC:
EL3 routes FIQs to itself and sends a Secure Group 1 SGI, which it takes as
an FIQ once back in Non-secure EL1, reads through ICC_IAR0 (1020) and
ICC_IAR1 and powers off through the Secure GPIO as TF-A's qemu_system_off.
The Non-secure part runs from Non-secure RAM, where the firmware copies it
(QEMU's flash0 is Secure-only with secure=on). Both machines have EL2 (virtualization=on, --virtualization), whose HCR_EL2.RW
the firmware sets for an AArch64 EL1, as with TF-A.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from armvisor.devtools import qemu
from armvisor.devtools.cross import FLASH0_ADDRESS, PRINT_HEX, build_program, flat_binary, \
    have_cross_tools

GICD = 0x0800_0000
SGI_BASE = 0x080A_0000 + 0x1_0000          # CPU 0's redistributor SGI/PPI frame
SECURE_GPIO = 0x090B_0000
NS_RAM = 0x4000_0000

FIRMWARE = f"""
    adr x0, el3_vectors
    msr vbar_el3, x0
    // The Non-secure part into Non-secure RAM (QEMU's flash0 is Secure-only).
    adr x5, ns_begin
    adr x6, ns_end
    ldr x7, ={NS_RAM:#x}
1:  ldr x8, [x5], #8
    str x8, [x7], #8
    cmp x5, x6
    b.lo 1b
    // The Distributor: Group 0, Non-secure Group 1, Secure Group 1 on (Secure view).
    ldr x1, ={GICD:#x}
    mov w2, #7
    str w2, [x1]
    ldr w0, [x1, #4]                // GICD_TYPER.SecurityExtn
    ubfx x0, x0, #10, #1
    bl print_hex
    ldr x3, ={SGI_BASE:#x}
    ldr w2, =0xfffffeff
    str w2, [x3, #0x80]             // GICR_IGROUPR0: all Non-secure Group 1 but SGI 8
    mov w2, #0x100
    str w2, [x3, #0xd00]            // GICR_IGRPMODR0: SGI 8 Secure Group 1
    mov w2, #0x102
    str w2, [x3, #0x100]            // GICR_ISENABLER0: SGIs 1 and 8
    mov w2, #0x80
    strb w2, [x3, #0x401]
    strb w2, [x3, #0x408]
    mov x2, #0xf8
    msr s3_0_c4_c6_0, x2            // ICC_PMR_EL1
    mov x2, #3
    msr s3_6_c12_c12_7, x2          // ICC_IGRPEN1_EL3: EnableGrp1NS | EnableGrp1S
    mov x2, #1
    msr s3_0_c12_c12_6, x2          // ICC_IGRPEN0_EL1
    // The Non-secure world: AArch64 EL1 (HCR_EL2.RW), no interrupt routed to EL3 (as
    // TF-A without a Secure payload).
    mov x2, #(1 << 31)
    msr hcr_el2, x2
    mov x2, #0x401                  // SCR_EL3: RW | NS
    msr scr_el3, x2
    isb
    // ASGI1R from Secure state: SGI 1 in Non-secure Group 1, to this CPU, pending
    // before the ERET; Non-secure EL1 takes it as an IRQ at its first instruction.
    ldr x2, =((1 << 24) | 1)
    msr s3_0_c12_c11_6, x2
    isb
    ldr x0, ={NS_RAM:#x}            // el1_vectors is ns_begin
    msr vbar_el1, x0
    adr x1, el1_entry
    adr x2, ns_begin
    sub x1, x1, x2
    add x0, x0, x1
    msr elr_el3, x0
    mov x0, #0x5                    // EL1h, DAIF clear
    msr spsr_el3, x0
    eret

el3_lower_sync:
    // Route FIQs to EL3 (SCR_EL3.FIQ, as TF-A with a Secure payload does for the
    // Non-secure world) and send SGI 8 to this CPU from Secure state (SGI1R: Secure
    // Group 1). Back in Non-secure EL1 it is an FIQ, which comes here.
    mov x2, #0x405                  // SCR_EL3: RW | FIQ | NS
    msr scr_el3, x2
    ldr x2, =((8 << 24) | 1)
    msr s3_0_c12_c11_5, x2          // ICC_SGI1R_EL1
    isb
    eret

el3_lower_fiq:
    mrs x0, s3_0_c12_c8_0           // ICC_IAR0_EL1 at EL3: 1020, a Secure Group 1 HPPI
    bl print_hex
    mrs x0, s3_0_c12_c12_0          // ICC_IAR1_EL1 at EL3 acknowledges it
    msr s3_0_c12_c12_1, x0          // ICC_EOIR1_EL1
    bl print_hex
    ldr x1, ={SECURE_GPIO:#x}
    mov w2, #1
    str w2, [x1, #0x400]            // GPIODIR: line 0 an output
    str w2, [x1, #4]                // GPIODATA[0] = 1: power off
    b .

    .balign 2048
el3_vectors:
    .skip 0x400
    b el3_lower_sync                // synchronous, lower EL using AArch64
    .balign 0x80
    .skip 0x80
    b el3_lower_fiq                 // FIQ, lower EL using AArch64

    .balign 2048
ns_begin:
el1_vectors:
    .skip 0x280
    b el1_irq                       // IRQ, current EL with SP_EL1
    .balign 0x80
    b el1_fiq                       // FIQ
    .balign 2048

el1_entry:
    ldr x1, ={GICD:#x}
    ldr w0, [x1]                    // GICD_CTLR, Non-secure view: ARE_NS | EnableGrp1A
    bl print_hex
    ldr x3, ={SGI_BASE:#x}
    ldr w0, [x3, #0x80]             // GICR_IGROUPR0: Secure-only, RAZ
    bl print_hex
    ldr w0, [x3, #0x100]            // GICR_ISENABLER0: SGI 8's bit RAZ
    bl print_hex
    ldr w0, [x3, #0x408]            // GICR_IPRIORITYR8..11: SGI 8's byte RAZ
    bl print_hex
    ldr w0, [x3, #0x400]            // SGI 1's priority 0x80 in the Non-secure view: 0x00
    bl print_hex
    // SGI 8 from Non-secure state: SGI1R asks for Non-secure Group 1, ASGI1R for
    // Secure Group 1 without GICR_NSACR's leave: neither is delivered.
    ldr x2, =((8 << 24) | 1)
    msr s3_0_c12_c11_5, x2
    msr s3_0_c12_c11_6, x2
    // SGI 1 from Non-secure state: an IRQ.
    ldr x2, =((1 << 24) | 1)
    msr s3_0_c12_c11_5, x2
    isb
    mov x4, #0x10000
1:  subs x4, x4, #1
    b.ne 1b
    smc #0                          // to EL3, which sends a Secure Group 1 SGI
1:  b 1b                            // ... that EL3 takes as an FIQ from here

el1_irq:
    mov x19, x30
    mrs x0, s3_0_c12_c12_0          // ICC_IAR1_EL1
    msr s3_0_c12_c12_1, x0          // ICC_EOIR1_EL1
    bl print_hex
    mov x30, x19
    eret

el1_fiq:
    mov x0, #0xf1f1
    bl print_hex
    smc #0
{PRINT_HEX}
    .ltorg
    .balign 8
ns_end:
"""

EXPECTED = [
    "0000000000000001",             # GICD_TYPER.SecurityExtn
    "0000000000000001",             # the IRQ taken as EL3's ERET lands: SGI 1
    "0000000000000012",             # GICD_CTLR: ARE_NS | EnableGrp1A
    "0000000000000000",             # GICR_IGROUPR0
    "0000000000000002",             # GICR_ISENABLER0: SGI 1 only
    "0000000000000000",             # SGI 8's priority
    "0000000000000000",             # SGI 1's: 0x80 << 1, Non-secure view, 8 bits
    "0000000000000001",             # the IRQ of the Non-secure SGI 1
    "00000000000003fc",             # EL3's ICC_IAR0_EL1 for the Secure Group 1 SGI 8
    "0000000000000008",             # EL3's ICC_IAR1_EL1
]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    if not have_cross_tools():
        pytest.skip("needs Debian's binutils-aarch64-linux-gnu")
    elf = build_program(tmp_path_factory.mktemp("secure_gic"), FIRMWARE,
                        "secure_gic", load_address=FLASH0_ADDRESS)
    return flat_binary(elf)


def test_armvisor_gic_security_states(firmware):
    done = subprocess.run([sys.executable, "-m", "armvisor", "run", "--secure",
                           "--virtualization", "-bios",
                           str(firmware), "--timeout", "30", "--quiet"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == EXPECTED, done.stdout


def test_qemu_gic_security_states(firmware):
    """The reference: QEMU 7.2 with secure=on prints the same."""
    if not qemu.available():
        pytest.skip(f"{qemu.QEMU} is not installed: nothing to compare with")
    done = subprocess.run(qemu.virt_command(
        machine="virt,secure=on,virtualization=on,gic-version=3",
        extra=["-bios", str(firmware)]),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == EXPECTED, done.stdout


def test_a_snapshot_restores_the_security_state(firmware, tmp_path):
    """Snapshot once the Non-secure side runs, restore in a new process: the GIC's
    groups and the Non-secure world's state come back and the rest runs alike."""
    snap = tmp_path / "secure.avs"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "armvisor", "run", *map(str, args),
                               "--timeout", "30", "--quiet"], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    original = run("--secure", "--virtualization", "-bios", firmware, "--deterministic",
                   "--snapshot-at", "console:0000000000000012", "--snapshot-out", snap)
    assert original.returncode == 0, original.stderr
    assert original.stdout.split() == EXPECTED
    restored = run("--restore", snap)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout and original.stdout.endswith(restored.stdout), restored.stdout
