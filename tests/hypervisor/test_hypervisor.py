"""The EL2 hypervisor (`armvisor run --hyp`): bring-up, the seven multi-pCPU problems, VMs.

Guest programs come from guests/ (built once per session by tests/guest's
fixture logic, repeated here through `make -C guests`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.hyp import Hypervisor
from armvisor.trace import TraceBus

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "guests" / "build"


@pytest.fixture(scope="module", autouse=True)
def guests_built():
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("needs Debian's gcc-aarch64-linux-gnu to build the guest programs")
    subprocess.run(["make", "-s", "-C", str(REPO / "guests")], check=True)


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "armvisor", "run", "--hyp", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def run_hyp(vms, pcpus, timeout=60):
    """In process, keeping the hypervisor and every event for inspection."""
    trace = TraceBus(ring_size=64)
    events = []
    trace.subscribe(events.append)
    out = bytearray()
    hyp = Hypervisor(pcpus, vms, trace, out.extend)
    status = hyp.run(timeout=timeout)
    hyp.close()
    return status, out.decode(), events, hyp


def vm(program, smp, **kw):
    return VmConfig(name=kw.pop("name", "vm0"), kernel=str(BUILD / f"{program}.elf"), smp=smp,
                    memory=kw.pop("memory", 256 << 20), **kw)


# -- the guest programs of the earlier issues, unchanged, as VMs (PSCI over HVC) ---------

@pytest.mark.parametrize("program, smp", [
    ("smp_demo", 4), ("smp_demo", 8), ("psci_codes", 4), ("hotplug", 4), ("exceptions", 1),
    ("smc_tlb", 4), ("gic_ipi", 4), ("gic_prio", 4), ("timer", 2), ("wfi_wake", 2),
    ("cpu_suspend", 2),
])
def test_guest_program_runs_unchanged_as_a_vm(program, smp):
    proc = run_cli("--smp", smp, "--kernel", BUILD / f"{program}.elf", "--timeout", 100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "psci hvc" in proc.stdout            # the VM's DTB names HVC
    assert "RESULT: PASS" in proc.stdout, proc.stdout[-3000:]


def test_uart_receive_interrupt_reaches_the_vm():
    proc = subprocess.run([sys.executable, "-m", "armvisor", "run", "--hyp", "--smp", "1",
                           "--kernel", str(BUILD / "uart_rx.elf"), "--timeout", "60"],
                          input="hello\nquit\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rx: hello" in proc.stdout and "RESULT: PASS" in proc.stdout


# -- problems 1-4: bring-up ---------------------------------------------------------------

def test_1_2_3_secondaries_start_through_the_firmware_and_run_their_init_steps():
    status, out, events, hyp = run_hyp([vm("smp_demo", 4)], pcpus=4)
    assert status == 0 and "RESULT: PASS" in out
    # 1: until the first CPU_ON, only pCPU 0 runs hypervisor code.
    first_on = next(i for i, e in enumerate(events)
                    if e.kind == "psci.call" and e.fields["function"] == "CPU_ON")
    assert {e.cpu for e in events[:first_on] if e.kind == "hyp.init"} == {0}
    # 2: a real PSCI CPU_ON (SMC64) per secondary, through the firmware's state machine.
    calls = [e for e in events if e.kind == "psci.call" and e.fields["function"] == "CPU_ON"]
    assert [(e.cpu, e.fields["fid"], e.fields["result"]) for e in calls] == \
        [(0, 0xC4000003, 0)] * 3
    for pcpu in (1, 2, 3):
        states = [(e.fields["old"], e.fields["new"]) for e in events
                  if e.kind == "power.state" and e.cpu == pcpu]
        assert states[:2] == [("OFF", "ON_PENDING"), ("ON_PENDING", "ON")]
    # 3: each secondary's named init steps, in order, and the GIC really set up.
    for pcpu in (1, 2, 3):
        steps = [e.fields["step"] for e in events if e.kind == "hyp.init" and e.cpu == pcpu]
        assert steps == ["exception vectors (VBAR_EL2)",
                         "stage-2 root (VTTBR_EL2: per VM, each VM's RAM mapped only to it)",
                         "HCR_EL2", "CPTR_EL2", "GIC redistributor awake",
                         "GIC CPU interface enabled"]
        assert hyp.gic.redistributor_read(pcpu * 0x20000 + 0x14, 4, pcpu) & 0b110 == 0
        assert hyp.gic.icc_read(pcpu, (3, 0, 12, 12, 7)) == 1          # ICC_IGRPEN1_EL1


def test_4_every_pcpu_has_its_own_context():
    status, _, _, hyp = run_hyp([vm("smp_demo", 4)], pcpus=4)
    assert status == 0
    contexts = {id(p) for p in hyp.pcpus}
    assert len(contexts) == 4
    for pcpu in hyp.pcpus:
        assert pcpu.counters.get("entries", 0) > 0            # each ran its own vCPU
        assert pcpu.init_steps[-1] == "GIC CPU interface enabled"
    assert not hasattr(hyp, "current_vcpu")


# -- problems 5-7 ---------------------------------------------------------------------------

def test_5_the_timer_ppi_is_rearmed_on_every_entry():
    """The vCPU's timer reaches it through the pCPU's PPI 27, which the hypervisor masks
    after each expiry and re-arms on the next guest entry (timer.c needs hundreds)."""
    status, out, events, hyp = run_hyp([vm("timer", 2)], pcpus=2)
    assert status == 0 and "RESULT: PASS" in out
    injections = [e for e in events if e.kind == "vcpu.inject" and e.fields["intid"] == 27]
    assert len(injections) >= 200
    assert all(p.counters.get("irq:27", 0) > 50 for p in hyp.pcpus)


def test_6_device_interrupts_go_straight_to_the_vms_distributor():
    """SPIs made pending from inside MMIO handlers (GICD_ISPENDR writes, the PL011), routed
    by GICD_IROUTER to chosen vCPUs on other pCPUs, and to any (IRM=1)."""
    status, out, events, hyp = run_hyp([vm("gic_prio", 4)], pcpus=4)
    assert status == 0 and "RESULT: PASS" in out
    # SPIs were acknowledged by several vCPUs (each on its own pCPU): the
    # routing came straight from the VM's GICD_IROUTER state.
    acked_by = {e.cpu for e in events if e.kind == "gic.ack" and e.fields["intid"] >= 32}
    assert len(acked_by) >= 2


def test_7_a_pcpu_wakes_another_with_a_physical_sgi():
    status, out, events, hyp = run_hyp([vm("wfi_wake", 2)], pcpus=2)
    assert status == 0 and "RESULT: PASS" in out
    kicks = [e for e in events if e.kind == "hyp.kick"]
    assert kicks and all(e.cpu != e.fields["target"] for e in kicks)
    assert hyp.pcpus[1].counters.get("irq:0", 0) >= len([k for k in kicks
                                                         if k.fields["target"] == 1])
    wakes = [e for e in events if e.kind == "vcpu.wake"]
    assert wakes and {e.cpu for e in wakes} == {1}


# -- virtual PSCI, isolation, placement -----------------------------------------------------

def test_three_vcpus_racing_cpu_on_get_exactly_one_success_100_times():
    proc = run_cli("--smp", 5, "--kernel", BUILD / "psci_race.elf", "--timeout", 100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rounds with exactly one SUCCESS: got 100 expect 100 ok" in proc.stdout
    assert "ON_PENDING answers: got 0 expect 0 ok" in proc.stdout


def test_a_vm_cannot_reach_another_vms_memory():
    vms = [vm("vm_isolation", 1, name="intruder"), vm("smp_demo", 2, name="victim")]
    status, out, events, hyp = run_hyp(vms, pcpus=3)
    assert status == 0
    assert "[intruder] aborts taken: got 10 expect 10 ok" in out
    assert "[victim] RESULT: PASS" in out
    mark = (0xBADC0FFEE0DDF00D).to_bytes(8, "little")
    victim = hyp.vms[1].ram
    assert victim.read(victim.base, victim.size).find(mark) == -1


def test_two_vms_share_two_pcpus():
    vms = [vm("smp_demo", 2, name="a", placement="shared"),
           vm("smp_demo", 2, name="b", placement="shared")]
    status, out, events, hyp = run_hyp(vms, pcpus=2)
    assert status == 0
    assert "[a] RESULT: PASS" in out and "[b] RESULT: PASS" in out
    placed = {(e.fields["vm"], e.fields["vcpu"]): e.fields["pcpu"] for e in events
              if e.kind == "placement"}
    assert sorted(set(placed.values())) == [0, 1]
    assert any(e.kind == "vcpu.switch" for e in events)


def test_one_vm_off_leaves_the_other_running():
    vms = [vm("exceptions", 1, name="short"), vm("hotplug", 4, name="long")]
    status, out, events, hyp = run_hyp(vms, pcpus=5)
    assert status == 0
    offs = [e.fields["vm"] for e in events if e.kind == "vm.off"]
    assert offs == ["short", "long"]
    assert "[long] RESULT: PASS" in out


def test_system_reset_restarts_only_that_vm(tmp_path):
    from armvisor.devtools.cross import build_program
    from armvisor.errors import GuestTimeout
    resetter = build_program(tmp_path, """
    mov w1, #'R'
    putc w1
    ldr x0, =0x84000009      // PSCI SYSTEM_RESET over the VM's conduit (HVC)
    hvc #0
    b .
""", "resetter")
    vms = [VmConfig(name="resetter", kernel=str(resetter), smp=1, memory=64 << 20),
           vm("smp_demo", 2, name="steady")]
    trace = TraceBus()
    events = []
    trace.subscribe(events.append)
    out = bytearray()
    hyp = Hypervisor(3, vms, trace, out.extend)
    with pytest.raises(GuestTimeout):
        hyp.run(timeout=3)
    hyp.close()
    text = out.decode()
    resets = [e.fields["vm"] for e in events if e.kind == "vm.reset"]
    assert len(resets) >= 3 and set(resets) == {"resetter"}     # it keeps rebooting...
    assert text.count("R") > len(resets)
    assert "[steady] RESULT: PASS" in text                 # ...while the other VM runs to its end
    assert [e.fields["vm"] for e in events if e.kind == "vm.off"] == ["steady"]


def test_vm_options_and_errors_on_the_command_line(tmp_path):
    elf = BUILD / "smp_demo.elf"
    proc = run_cli("--pcpus", 4, "--vm", f"kernel={elf},smp=2,memory=128M,name=x",
                   "--vm", f"kernel={elf},smp=2,memory=128M,name=y,pcpus=2-3", "--timeout", 60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("RESULT: PASS") == 2
    bad = run_cli("--vm", f"kernel={elf},smp=2,bogus=1")
    assert bad.returncode == 2 and "bogus" in bad.stderr and "Traceback" not in bad.stderr
    config = tmp_path / "vms.toml"
    config.write_text(f'pcpus = 2\n[[vm]]\nname = "t"\nkernel = "{elf}"\nsmp = 2\n'
                      f'memory = 128\n')
    proc = run_cli("--config", config, "--timeout", 60)
    assert proc.returncode == 0 and "RESULT: PASS" in proc.stdout, proc.stderr
