"""The core and the board with tiny programs: exception entry, preemption, maintenance, faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from armvisor.errors import GuestError
from armvisor.machine.board import BareBoard
from armvisor.machine.config import MachineConfig
from armvisor.devtools.cross import PRINT_HEX
from tests.machine.tinyguest import build


def run_machine(elf, smp=1, **kw):
    out = bytearray()
    machine = BareBoard(MachineConfig(kernel=str(elf), smp=smp, **kw), console=out.extend)
    status = machine.run(timeout=30)
    return status, out.decode(), machine


VECTORS = """
    .balign 2048
vectors:
    .skip 0x200
    // current EL with SP_ELx, synchronous: x5 = ESR, x6 = ELR, x7 = FAR; skip the instruction
    mrs x5, esr_el1
    mrs x6, elr_el1
    mrs x7, far_el1
    mrs x8, spsr_el1
    lsr x9, x5, #26
    cmp x9, #0x15          // SVC returns to the next instruction already
    b.eq 1f
    add x6, x6, #4
    msr elr_el1, x6
1:  eret
"""

INSTALL_VECTORS = """
    adr x0, vectors
    msr vbar_el1, x0
    isb
"""


def test_svc_from_el1_builds_esr_and_returns(tmp_path):
    elf = build(tmp_path, INSTALL_VECTORS + """
    svc #0x1234
    // print 'S' if ESR == EC 0x15, IL, imm 0x1234
    ldr x1, =((0x15 << 26) | (1 << 25) | 0x1234)
    cmp x5, x1
    mov w2, #'S'
    mov w3, #'x'
    csel w2, w2, w3, eq
    putc w2
    system_off
""" + VECTORS)
    status, out, _ = run_machine(elf)
    assert status == 0
    assert out == "S"


def test_brk_udf_and_data_abort_syndromes(tmp_path):
    elf = build(tmp_path, INSTALL_VECTORS + """
    brk #0x77
    mov x10, x5
    udf #0
    mov x11, x5
    ldr x12, =0x7000000000     // beyond the 40-bit-ish RAM window: MMU off -> translation? no: PA out of range
    ldr x12, =0x40000000
    mov x13, #0
    // report: x10 ESR(BRK), x11 ESR(UDF)
    ldr x1, =((0x3c << 26) | (1 << 25) | 0x77)
    cmp x10, x1
    mov w2, #'B'
    mov w3, #'x'
    csel w2, w2, w3, eq
    putc w2
    ldr x1, =(1 << 25)
    cmp x11, x1
    mov w2, #'U'
    csel w2, w2, w3, eq
    putc w2
    system_off
""" + VECTORS)
    status, out, _ = run_machine(elf)
    assert (status, out) == (0, "BU")


def test_hvc_is_undefined_with_smc_conduit_and_psci_with_hvc_conduit(tmp_path):
    body = INSTALL_VECTORS + """
    mov x5, #0
    ldr x0, =0x84000000      // PSCI_VERSION
    hvc #0
    lsr x9, x5, #26          // EC of whatever exception was taken (0 if none)
    add w9, w9, #'0'
    putc w9
    lsr x0, x0, #16           // major version (if PSCI answered)
    add w0, w0, #'0'
    putc w0
    system_off
""" + VECTORS
    elf = build(tmp_path, body)
    # smc conduit: HVC UNDEFINED -> EC 0 taken, x0 untouched (0x84000000 >> 16 = 0x8400)
    status, out, _ = run_machine(elf)
    assert status == 0 and out[0] == "0" and out[1] != "1"
    # the hvc conduit would not reach SYSTEM_OFF through smc in this program, so give it smc too
    status, out, _ = run_machine(elf, psci_conduit="hvc")
    assert status == 0 and out == "01"


COUNTER_LOOP = """
    // cpu0 starts cpu1..N-1 at `worker`, then works too; each adds 1 to `counter` ITER times
    // with LDXR/STXR, then bumps `done`. cpu0 waits for all and prints the total in hex.
    mov x19, #1
start_next:
    cmp x19, #{cpus}
    b.ge work
    ldr x0, =0xC4000003     // CPU_ON64
    mov x1, x19             // MPIDR Aff0 = index (< 16 CPUs)
    adr x2, worker
    mov x3, #0
    smc #0
    add x19, x19, #1
    b start_next
worker:
work:
    ldr x4, =counter
    ldr x5, ={iters}
1:  ldxr x6, [x4]
    add x6, x6, #1
    stxr w7, x6, [x4]
    cbnz w7, 1b
    subs x5, x5, #1
    b.ne 1b
    ldr x4, =done
2:  ldaxr x6, [x4]
    add x6, x6, #1
    stlxr w7, x6, [x4]
    cbnz w7, 2b
    mrs x8, mpidr_el1
    and x8, x8, #0xff
    cbz x8, wait_all
    ldr x0, =0x84000002     // CPU_OFF
    smc #0
    b .
wait_all:
    ldr x4, =done
3:  ldar x6, [x4]
    cmp x6, #{cpus}
    b.ne 3b
    ldr x4, =counter
    ldr x0, [x4]
    bl print_hex
    system_off
    .balign 64
counter: .quad 0
    .balign 64
done: .quad 0
""" + PRINT_HEX.replace("{", "{{").replace("}", "}}")


@pytest.mark.parametrize("budget", [1, 7, 1000])
def test_exclusives_stay_exact_under_any_slice_budget(tmp_path, budget):
    cpus, iters = 4, 3000
    elf = build(tmp_path, COUNTER_LOOP.format(cpus=cpus, iters=iters))
    status, out, machine = run_machine(elf, smp=cpus, slice_budget=budget)
    assert status == 0
    assert int(out, 16) == cpus * iters
    # every CPU really ran, and the budget really preempted them
    assert all(lane.core.executed > iters * 4 for lane in machine.lanes)


def test_same_output_and_instruction_counts_on_every_run(tmp_path):
    elf = build(tmp_path, COUNTER_LOOP.format(cpus=3, iters=500))
    runs = [run_machine(elf, smp=3, slice_budget=97) for _ in range(2)]
    assert runs[0][1] == runs[1][1]
    assert [l.core.executed for l in runs[0][2].lanes] == [l.core.executed for l in runs[1][2].lanes]


def test_ic_ivau_and_tlbi_is_reach_the_other_cores(tmp_path):
    elf = build(tmp_path, """
    adr x6, _start
    ic ivau, x6
    tlbi vmalle1is
    dsb ish
    system_off
""")
    machine = BareBoard(MachineConfig(kernel=str(elf), smp=2), console=lambda d: None)
    seen = []
    original = machine._broadcast_maintenance

    def spy(lane):
        seen.append((lane.index, lane.core._budget.tlbi_broadcast, lane.core._budget.ic_used,
                     lane.core._budget.ic_start[0], lane.core._budget.ic_end[0]))
        original(lane)

    machine._broadcast_maintenance = spy
    assert machine.run(timeout=10) == 0
    assert (0, 1, 1, 0x4008_0000, 0x4008_0040) in seen


def test_jump_to_nowhere_without_vectors_is_an_exception_loop(tmp_path):
    """The fetch from nothing is an instruction abort; with VBAR_EL1 = 0 its vector
    (in erased flash) faults again and again, which ends the machine."""
    elf = build(tmp_path, """
    ldr x0, =0x20000000      // between flash and the devices: nothing there
    br x0
""")
    with pytest.raises(GuestError) as info:
        run_machine(elf)
    message = str(info.value)
    assert message.startswith("cpu0: exception loop")
    assert "the first exception: EC 0x21 (ESR 0x86000010) ELR 0x20000000 FAR 0x20000000" in message
    assert "cpu0" in info.value.report and "pc=" in info.value.report


OUTSIDE_VECTORS = """
    .balign 2048
vectors:
    .skip 0x200
    // current EL, SP_ELx, synchronous: print EC, then return to LR (fetch) or skip (data)
    mrs x5, esr_el1
    mrs x6, elr_el1
    mrs x7, far_el1
    lsr x9, x5, #26
    cmp x9, #0x21
    b.eq 1f
    add x8, x6, #4
    msr elr_el1, x8
    eret
1:  msr elr_el1, x30
    eret
"""


def test_accesses_to_nothing_are_external_aborts_in_the_guest(tmp_path):
    elf = build(tmp_path, INSTALL_VECTORS + """
    ldr x0, =0x0a100008      // a hole in the virt map
    add x1, x1, #1
load: ldr x2, [x0]
    ldr x1, =((0x25 << 26) | (1 << 25) | 0x10)
    cmp x5, x1
    adr x1, load
    ccmp x6, x1, #0, eq
    ccmp x7, x0, #0, eq
    mov w2, #'L'
    mov w3, #'x'
    csel w2, w2, w3, eq
    putc w2
store: str w2, [x0, #4]
    ldr x1, =((0x25 << 26) | (1 << 25) | (1 << 6) | 0x10)
    cmp x5, x1
    adr x1, store
    ccmp x6, x1, #0, eq
    add x1, x0, #4
    ccmp x7, x1, #0, eq
    mov w2, #'S'
    mov w3, #'x'
    csel w2, w2, w3, eq
    putc w2
    blr x0                   // fetch from the hole: back here through LR
    ldr x1, =((0x21 << 26) | (1 << 25) | 0x10)
    cmp x5, x1
    ccmp x6, x0, #0, eq
    ccmp x7, x0, #0, eq
    mov w2, #'F'
    mov w3, #'x'
    csel w2, w2, w3, eq
    putc w2
    system_off
""" + OUTSIDE_VECTORS)
    status, out, machine = run_machine(elf)
    assert (status, out) == (0, "LSF")
    assert machine.lanes[0].core.exit_counts()["abort:outside"] == 3


def test_exception_loop_is_reported(tmp_path):
    elf = build(tmp_path, """
    adr x0, zeros
    msr vbar_el1, x0
    isb
    udf #1
    .balign 2048
zeros: .skip 0x800
""")
    with pytest.raises(GuestError, match="exception loop"):
        run_machine(elf)


@pytest.mark.parametrize("mode, culprit", [((), "cpu0"), (("--hyp",), "vm0/vcpu0")],
                         ids=["bare", "vm"])
def test_cli_reports_an_exception_loop_after_a_jump_to_nowhere_with_exit_3(tmp_path, mode,
                                                                            culprit):
    elf = build(tmp_path, """
    ldr x0, =0x20000000
    br x0
""")
    proc = subprocess.run([sys.executable, "-m", "armvisor", "run", *mode, "--kernel", str(elf),
                           "--timeout", "20"], capture_output=True, text=True)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"armvisor: error: {culprit}: exception loop")
    assert "ELR 0x20000000 FAR 0x20000000" in proc.stderr.splitlines()[0]
    assert "el=1" in proc.stderr and "pc=0x0000000000000200" in proc.stderr
