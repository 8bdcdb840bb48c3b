"""--virtualization: bare-metal programs that own EL2, as on QEMU's virt with virtualization=on.

Each program starts at EL2h, uses the GIC's virtualization interface or the
EL2 timer, and prints what it sees on the UART; PSCI SYSTEM_OFF goes over
SMC from EL2 to armvisor's EL3 firmware.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from armvisor.devtools.cross import PRINT_HEX
from tests.machine.tinyguest import build, enable_ppi


def armvisor(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "armvisor", "run", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def run_el2(tmp_path, body: str, name: str, *extra) -> list:
    elf = build(tmp_path, body + PRINT_HEX, name)
    proc = armvisor("--kernel", elf, "--virtualization", "--timeout", "30", *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


# ERET to EL1h at el1_entry (the code that follows), DAIF masked.
ENTER_EL1 = """
    adr x0, el1_entry
    msr elr_el2, x0
    mov x0, #0x3c5
    msr spsr_el2, x0
    isb
    eret
el1_entry:
"""
# EL2's vectors (VBAR_EL2 = el2_vectors): a synchronous exception from EL1 prints
# ESR_EL2 and powers off.
REPORT_EL2_SYNC = """
el2_sync_lower:
    mrs x0, esr_el2
    bl print_hex
    system_off

    .balign 2048
el2_vectors:
    .skip 0x400
    b el2_sync_lower
"""


def test_starts_at_el2_with_the_registers_el2_code_reads(tmp_path):
    lines = run_el2(tmp_path, """
    mrs x0, CurrentEL
    bl print_hex
    mrs x0, mpidr_el1
    bl print_hex
    mrs x0, s3_4_c12_c11_1        // ICH_VTR_EL2
    bl print_hex
    mrs x0, s3_4_c12_c9_5         // ICC_SRE_EL2
    bl print_hex
    mrs x0, id_aa64mmfr1_el1
    ubfx x0, x0, #8, #4           // VH
    bl print_hex
    mrs x0, id_aa64pfr0_el1
    ubfx x0, x0, #8, #8           // EL2, EL3
    bl print_hex
    system_off                    // SMC from EL2
""", "at_el2", "--smp", "2")
    assert [int(x, 16) for x in lines] == [2 << 2, 1 << 31, 0x90A8_0003, 0xF, 0, 0x11]


ICV_PROGRAM = """
    adr x0, el2_vectors
    msr vbar_el2, x0
    adr x0, el1_vectors
    msr vbar_el1, x0
    ldr x0, =0x80000018           // HCR_EL2: RW, IMO, FMO
    msr hcr_el2, x0
    mov x0, #1
    msr s3_4_c12_c11_0, x0        // ICH_HCR_EL2.En
    ldr x0, =0x508000000000002a   // LR: pending, group 1, priority 0x80, vINTID 42
    msr s3_4_c12_c12_0, x0        // ICH_LR0_EL2
    adr x0, el1_entry
    msr elr_el2, x0
    mov x0, #0x3c5                // EL1h, DAIF masked
    msr spsr_el2, x0
    ldr x0, =0x40200000
    msr sp_el1, x0
    isb
    eret
el1_entry:
    mov x0, #0xff
    msr s3_0_c4_c6_0, x0          // ICV_PMR_EL1
    mov x0, #1
    msr s3_0_c12_c12_7, x0        // ICV_IGRPEN1_EL1
    isb
    msr daifclr, #2
1:  b 1b

el1_irq:
    mrs x0, s3_0_c12_c12_0        // ICV_IAR1_EL1
    mov x19, x0
    bl print_hex
    msr s3_0_c12_c12_1, x19       // ICV_EOIR1_EL1
    hvc #0x33

el2_sync_lower:
    mrs x0, esr_el2
    bl print_hex
    mrs x0, s3_4_c12_c12_0        // ICH_LR0_EL2
    bl print_hex
    mrs x0, s3_4_c12_c11_5        // ICH_ELRSR_EL2
    bl print_hex
    mov x0, #3                    // ICH_HCR_EL2: En, UIE
    msr s3_4_c12_c11_0, x0
    mrs x0, s3_4_c12_c11_2        // ICH_MISR_EL2
    bl print_hex
    ldr x1, =0x080b0200           // GICR_ISPENDR0 of CPU 0
    ldr w0, [x1]
    ubfx x0, x0, #25, #1          // the maintenance interrupt, PPI 25
    bl print_hex
    system_off
hang:
    b hang

    .balign 2048
el1_vectors:
    .skip 0x280
    b el1_irq
    .balign 2048
el2_vectors:
    .skip 0x400
    b el2_sync_lower
"""


def test_a_list_register_interrupts_el1_through_the_icv_registers(tmp_path):
    """EL2 puts vINTID 42 in LR0 and routes IRQs to itself (HCR_EL2.IMO); EL1 takes the
    virtual IRQ, acknowledges and ends it through ICC_* (ICV_* now), then HVCs to EL2,
    which sees the LR consumed and raises the underflow maintenance interrupt (PPI 25)."""
    lines = run_el2(tmp_path, ICV_PROGRAM, "icv")
    assert [int(x, 16) for x in lines] == [
        42,                                   # ICV_IAR1_EL1
        (0x16 << 26) | (1 << 25) | 0x33,      # ESR_EL2: HVC #0x33 from EL1, taken natively
        0x1080_0000_0000_002A,                # LR0: invalid now (group and priority kept)
        0xF,                                  # every LR free
        0x2,                                  # MISR.U
        1]


def test_the_trace_says_what_el2_code_did(tmp_path):
    """List register writes, exceptions taken to EL2, the SMC's calling EL."""
    import json
    trace = tmp_path / "icv.json"
    elf = build(tmp_path, ICV_PROGRAM + PRINT_HEX, "icv_traced")
    proc = armvisor("--kernel", elf, "--virtualization", "--trace", trace)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(trace.read_text())
    events = [(e["name"], e["args"]) for e in (data["traceEvents"] if isinstance(data, dict)
                                                else data) if e.get("ph") == "i"]
    # (The trace file writes addresses, INTIDs and priorities in hex.)
    assert ("gic.ich_lr", {"lr": 0, "vintid": "0x2a", "state": "pending", "priority": "0x80",
                           "group": 1}) in events
    assert ("gic.vack", {"intid": "0x2a", "lr": 0}) in events
    assert ("gic.maintenance", {"level": True, "misr": 2}) in events
    taken = [a for n, a in events if n == "exception" and a.get("el") == 2]
    assert [a["ec"] for a in taken] == ["0x16"]
    assert ("smc", {"el": 2, "imm": 0}) in events
    assert ("cpu.start", {"pc": hex(0x4008_0000), "reason": "cold boot", "el": 2}) in events


def test_the_el2_timer_interrupts_el2(tmp_path):
    """CNTHP_* (PPI 26) with HCR_EL2.IMO: the physical IRQ is taken at EL2 after a WFI."""
    lines = run_el2(tmp_path, f"""
    adr x0, el2_vectors
    msr vbar_el2, x0
    ldr x0, =0x80000010           // HCR_EL2: RW, IMO
    msr hcr_el2, x0
    {enable_ppi(26)}
    mov x0, #0x100000             // about 17 ms of the 62.5 MHz counter
    msr s3_4_c14_c2_0, x0         // CNTHP_TVAL_EL2
    mov x0, #1
    msr s3_4_c14_c2_1, x0         // CNTHP_CTL_EL2: enabled
    mrs x0, s3_4_c14_c2_1
    bl print_hex                  // ISTATUS not yet
    msr daifclr, #2
1:  wfi
    b 1b

el2_irq:
    mrs x0, s3_0_c12_c12_0        // ICC_IAR1_EL1 (physical at EL2)
    bl print_hex
    mrs x0, s3_4_c14_c2_1         // CNTHP_CTL_EL2
    bl print_hex
    system_off

    .balign 2048
el2_vectors:
    .skip 0x280
    b el2_irq
""", "cnthp")
    assert [int(x, 16) for x in lines] == [1, 26, 0b101]


def test_a_hardware_list_register_forwards_the_timer_as_kvm_does(tmp_path):
    """EL1's virtual timer (PPI 27) fires at EL2 (HCR_EL2.IMO); EL2 drops its priority
    (split EOI) and forwards it in a list register with HW = 1; EL1 takes it through
    ICV_IAR1_EL1, and its ICV_EOIR1_EL1 also deactivates the physical PPI."""
    lines = run_el2(tmp_path, f"""
    adr x0, el2_vectors
    msr vbar_el2, x0
    adr x0, el1_vectors
    msr vbar_el1, x0
    ldr x0, =0x80000018           // HCR_EL2: RW, IMO, FMO
    msr hcr_el2, x0
    {enable_ppi(27)}
    mov x0, #2
    msr s3_0_c12_c12_4, x0        // ICC_CTLR_EL1.EOImode: EOIR drops priority only
    mov x0, #1
    msr s3_4_c12_c11_0, x0        // ICH_HCR_EL2.En
    mov x0, #100
    msr cntv_tval_el0, x0
    mov x0, #1
    msr cntv_ctl_el0, x0
    msr daifclr, #2
1:  wfi
    b 1b

el2_irq:
    mrs x0, s3_0_c12_c12_0        // ICC_IAR1_EL1: the physical PPI
    mov x19, x0
    bl print_hex
    msr s3_0_c12_c12_1, x19       // ICC_EOIR1_EL1: priority drop, still active
    ldr x0, =0x7080001b0000001b   // LR: pending, HW, group 1, priority 0x80, pINTID = vINTID 27
    msr s3_4_c12_c12_0, x0
    adr x0, el1_entry
    msr elr_el2, x0
    mov x0, #0x3c5
    msr spsr_el2, x0
    ldr x0, =0x40200000
    msr sp_el1, x0
    isb
    eret
el1_entry:
    mov x0, #0xff
    msr s3_0_c4_c6_0, x0          // ICV_PMR_EL1
    mov x0, #1
    msr s3_0_c12_c12_7, x0        // ICV_IGRPEN1_EL1
    isb
    msr daifclr, #2
2:  b 2b

el1_irq:
    mrs x0, s3_0_c12_c12_0        // ICV_IAR1_EL1
    mov x19, x0
    bl print_hex
    msr cntv_ctl_el0, xzr         // the timer's line falls
    msr s3_0_c12_c12_1, x19       // ICV_EOIR1_EL1: the LR and the physical PPI deactivated
    hvc #0

el2_sync_lower:
    ldr x1, =0x080b0300           // GICR_ISACTIVER0 of CPU 0
    ldr w0, [x1]
    ubfx x0, x0, #27, #1
    bl print_hex
    mrs x0, s3_4_c12_c12_0        // ICH_LR0_EL2
    bl print_hex
    system_off

    .balign 2048
el1_vectors:
    .skip 0x280
    b el1_irq
    .balign 2048
el2_vectors:
    .skip 0x280
    b el2_irq
    .skip 0x400 - 0x284
    b el2_sync_lower
""", "hw_lr")
    assert [int(x, 16) for x in lines] == [27, 27, 0, 0x3080_001B_0000_001B]


def test_cnthctl_el2_traps_el1s_physical_timer_to_el2(tmp_path):
    """With CNTHCTL_EL2.EL1PCEN clear (KVM's setting around a guest), EL1's CNTP_CTL_EL0
    read is a trapped system register access taken at EL2 (EC 0x18)."""
    lines = run_el2(tmp_path, """
    adr x0, el2_vectors
    msr vbar_el2, x0
    ldr x0, =0x80000000           // HCR_EL2: RW
    msr hcr_el2, x0
    mov x0, #1                    // EL1PCTEN only
    msr cnthctl_el2, x0
""" + ENTER_EL1 + """
    mrs x3, cntp_ctl_el0
    b .
""" + REPORT_EL2_SYNC, "cnthctl")
    iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (3 << 5) | (2 << 1) | 1
    assert [int(x, 16) for x in lines] == [(0x18 << 26) | (1 << 25) | iss]


def test_el1_sgis_trap_to_el2_under_imo(tmp_path):
    """ICC_SGI1R_EL1 written at EL1 with HCR_EL2.IMO set is taken at EL2 (EC 0x18), where
    KVM emulates the vCPU's SGI; the ERET goes back after it."""
    lines = run_el2(tmp_path, """
    adr x0, el2_vectors
    msr vbar_el2, x0
    ldr x0, =0x80000010           // HCR_EL2: RW, IMO
    msr hcr_el2, x0
""" + ENTER_EL1 + """
    mov x5, #1
sgi:
    msr s3_0_c12_c11_5, x5        // ICC_SGI1R_EL1
    hvc #0
    b .

el2_sync_lower:
    mrs x0, esr_el2
    lsr x1, x0, #26
    cmp x1, #0x16                 // the HVC: done
    b.eq done
    bl print_hex
    mrs x0, elr_el2
    adr x1, sgi
    sub x0, x0, x1
    bl print_hex
    mrs x0, spsr_el2
    bl print_hex
    mrs x0, CurrentEL
    bl print_hex
    mrs x0, elr_el2
    add x0, x0, #4
    msr elr_el2, x0
    eret
done:
    mov w0, #'d'
    putc w0
    system_off

    .balign 2048
el2_vectors:
    .skip 0x400
    b el2_sync_lower
""", "sgi_trap")
    iss = (3 << 20) | (5 << 17) | (0 << 14) | (12 << 10) | (5 << 5) | (11 << 1) | 0
    assert [int(x, 16) for x in lines[:4]] == [(0x18 << 26) | (1 << 25) | iss, 0, 0x3c5, 8]
    assert lines[4] == "d"


def test_ich_hcr_tall1_traps_el1s_group1_icv_accesses(tmp_path):
    lines = run_el2(tmp_path, """
    adr x0, el2_vectors
    msr vbar_el2, x0
    ldr x0, =0x80000010           // HCR_EL2: RW, IMO
    msr hcr_el2, x0
    ldr x0, =0x1001               // ICH_HCR_EL2: En, TALL1
    msr s3_4_c12_c11_0, x0
""" + ENTER_EL1 + """
    mrs x7, s3_0_c12_c12_0        // ICV_IAR1_EL1
    b .
""" + REPORT_EL2_SYNC, "tall1")
    iss = (3 << 20) | (0 << 17) | (0 << 14) | (12 << 10) | (7 << 5) | (12 << 1) | 1
    assert [int(x, 16) for x in lines] == [(0x18 << 26) | (1 << 25) | iss]


@pytest.mark.parametrize("clock", [[], ["--deterministic"]])
def test_cntvoff_el2_offsets_the_virtual_count(tmp_path, clock):
    lines = run_el2(tmp_path, """
    ldr x0, =0x100000
    msr cntvoff_el2, x0
    isb
    mrs x1, cntpct_el0
    mrs x2, cntvct_el0
    sub x0, x1, x2
    bl print_hex
    system_off
""", "cntvoff", *clock)
    assert 0x100000 - 1000 <= int(lines[0], 16) <= 0x100000


STAGE2_48_BIT_IPA = """
    adr x0, el2_vectors
    msr vbar_el2, x0
    // Stage 2, 4 KiB granule, 48-bit IPA (T0SZ 16, the walk starts at level 0): the
    // level-0 table's entry 0 -> a level-1 table mapping 0-1 GiB as device memory (the
    // UART) and 1-2 GiB as normal memory, read/write, access flag set.
    ldr x1, =0x40400000           // level 0
    ldr x2, =0x40401000           // level 1
    orr x3, x2, #3                // table descriptor
    str x3, [x1]
    ldr x3, =0x7c5                // block at 0: AF, SH inner, S2AP RW, MemAttr device
    str x3, [x2]
    ldr x3, =0x0000000040000000 + 0x7fd
    str x3, [x2, #8]              // block at 1 GiB: AF, SH inner, S2AP RW, MemAttr normal WB
    dsb sy
    ldr x0, =(16 | (2 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16))
    msr vtcr_el2, x0              // T0SZ 16, SL0 level 0, WB, inner shareable, PS 48 bits
    msr vttbr_el2, x1
    ldr x0, =0x80000001           // HCR_EL2: RW, VM
    msr hcr_el2, x0
    mrs x0, id_aa64mmfr0_el1
    and x0, x0, #0xf              // PARange
    bl print_hex
""" + ENTER_EL1 + """
    mov w1, #'s'                  // through stage 2 to the UART
    putc w1
    mov w1, #'\\n'
    putc w1
    hvc #1
""" + REPORT_EL2_SYNC


def test_max_has_48_bit_physical_addresses_for_a_48_bit_stage_2(tmp_path):
    """Unicorn's max reports (and enforces) 44 bits; with --virtualization it is corrected
    to QEMU 5.0's widest, 48 bits, in what MRS reads and in what stage 2 allows."""
    lines = run_el2(tmp_path, STAGE2_48_BIT_IPA, "stage2", "--cpu", "max")
    assert lines == ["0000000000000005", "s", f"{(0x16 << 26) | (1 << 25) | 1:016x}"]


@pytest.mark.parametrize("cpu", ["max", "cortex-a57"])
def test_pfr0_says_the_gicv3_system_registers_are_there(tmp_path, cpu):
    """ID_AA64PFR0_EL1.GIC = 1, as QEMU's with gic-version=3 (the seed hypervisor falls back
    to GICv2 on 0); Unicorn's `max` says 0."""
    lines = run_el2(tmp_path, """
    mrs x0, id_aa64pfr0_el1
    ubfx x0, x0, #24, #4          // GIC
    bl print_hex
    system_off
""", "pfr0_gic", "--cpu", cpu)
    assert [int(x, 16) for x in lines] == [1]


def test_an_elf_finds_x0_zero_and_the_dtb_at_ram_base(tmp_path):
    """QEMU enters an ELF (not the Linux protocol) with x0 = 0 and its DTB at RAM base, so
    the seed hypervisor prints "Parsing host DTB at 0x0...": so does armvisor."""
    lines = run_el2(tmp_path, """
    mov x19, x0
    bl print_hex
    mov x0, x19
    ldr x1, =0x40000000
    ldr w0, [x1]                  // the DTB's magic, big-endian
    rev w0, w0
    bl print_hex
    system_off
""", "elf_x0")
    assert [int(x, 16) for x in lines] == [0, 0xD00DFEED]


def test_virtualization_and_hyp_exclude_each_other(tmp_path):
    elf = build(tmp_path, "    system_off\n", "off")
    proc = armvisor("--kernel", elf, "--virtualization", "--hyp")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--virtualization" in lines[0] and "--hyp" in lines[0], proc.stderr


def test_psci_over_hvc_is_refused_with_virtualization(tmp_path):
    elf = build(tmp_path, "    system_off\n", "off")
    proc = armvisor("--kernel", elf, "--virtualization", "--psci-conduit", "hvc")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "SMC" in proc.stderr


def test_the_dtb_is_qemus_for_virtualization_on(tmp_path):
    """PSCI over SMC and the GIC's maintenance interrupt (PPI 9), as QEMU 7.2 dumps it
    (tests/unit/machine/test_dtb.py compares the whole description with QEMU's)."""
    import fdt
    elf = build(tmp_path, "    system_off\n", "off")
    plain, virt = tmp_path / "plain.dtb", tmp_path / "virt.dtb"
    assert armvisor("--kernel", elf, "--dumpdtb", plain).returncode == 0
    assert armvisor("--kernel", elf, "--dumpdtb", virt, "--virtualization").returncode == 0
    ours, theirs = (fdt.parse_dtb(p.read_bytes()) for p in (virt, plain))
    assert list(ours.get_property("interrupts", "/intc@8000000").data) == [1, 9, 4]
    assert theirs.get_property("interrupts", "/intc@8000000") is None
    assert list(ours.get_property("method", "/psci").data) == ["smc"]


@pytest.mark.guest
def test_a_snapshot_at_el2_restores_and_goes_on_the_same(tmp_path):
    """The guest's EL2 state is in Unicorn's context; the CPU's interrupt inputs and the
    virtualization interfaces come back with the machine."""
    import armvisor
    from tests.machine.test_snapshots import SMP_DEMO
    if not SMP_DEMO.is_file():
        pytest.skip("guests not built (make -C guests)")
    machine = armvisor.Machine(str(SMP_DEMO), smp=4, deterministic=True, virtualization=True)
    machine.run(until=armvisor.Instructions(250_000), timeout=60)
    printed = len(machine.console.text)
    machine.snapshot(str(tmp_path / "el2.avs"))
    assert machine.run(timeout=60) == 0
    tail = machine.console.text[printed:]
    again = armvisor.Machine.restore(str(tmp_path / "el2.avs"))
    assert again.board.vifs is not None and again.board.config.virtualization
    assert again.run(timeout=60) == 0
    assert again.console.text == tail and "RESULT: PASS" in tail
    again.close()
    machine.close()


@pytest.mark.guest
def test_deterministic_runs_at_el2_repeat_exactly(tmp_path):
    from tests.machine.test_snapshots import SMP_DEMO
    if not SMP_DEMO.is_file():
        pytest.skip("guests not built (make -C guests)")
    runs = []
    for name in ("a", "b"):
        trace = tmp_path / f"{name}.json"
        proc = armvisor("--kernel", SMP_DEMO, "--smp", 4, "--virtualization", "--deterministic",
                        "--trace", trace)
        assert proc.returncode == 0, proc.stderr
        runs.append((proc.stdout, trace.read_bytes()))
    assert "RESULT: PASS" in runs[0][0] and runs[0] == runs[1]
