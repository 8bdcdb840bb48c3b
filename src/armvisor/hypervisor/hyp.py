"""The EL2 hypervisor: owns the physical machine and runs VMs on its pCPUs.

Bring-up, as a multi-pCPU type-1 hypervisor does it:
1. only pCPU 0 runs at reset; the hypervisor starts there;
2. it powers every secondary pCPU on with a real PSCI CPU_ON (SMC64
   0xC4000003) to the EL3 firmware, whose OFF -> ON_PENDING -> ON machine runs;
3. each secondary runs the named init steps (vectors, stage-2 root, HCR_EL2,
   CPTR_EL2, its GIC redistributor woken, its CPU interface enabled);
4. each pCPU has its own PerCpu context; there is no global current vCPU.
Then, per guest entry, the physical state the hypervisor relies on (the
virtual timer PPI in the pCPU's redistributor) is re-armed (5); device
interrupts go straight into the VM's distributor state (6); and a pCPU that
makes an interrupt pending for a vCPU living on another pCPU wakes that pCPU
with a physical SGI 0, whose handler there does the injection (7).
"""

from __future__ import annotations

from typing import Callable, List, Optional

from armvisor.cpu.core import Stop
from armvisor.cpu.host import SliceEnd, sort_stop
from armvisor.devices.gic import GicV3
from armvisor.devices.timer import COUNTER_HZ, GenericTimer, TimerChannel, VIRT_TIMER_INTID
from armvisor.errors import GuestError
from armvisor.firmware import Firmware
from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.pcpu import PcpuState, PerCpu
from armvisor.hypervisor.placement import Placement, Policy, VcpuRef
from armvisor.hypervisor.vcpu import Vcpu, VcpuState
from armvisor.hypervisor.vm import Vm
from armvisor.machine import memmap
from armvisor.machine.clock import Clock
from armvisor.machine.config import SLICE_DEFAULT
from armvisor.machine.maintenance import broadcast_maintenance
from armvisor.machine.report import core_location, crash_header, recent_events
from armvisor.machine.runloop import Condition, HostIO, RunLoop
from armvisor.machine.planted import UnlockedWindows
from armvisor.machine.schedule import Schedule
from armvisor.machine.symbols import EMPTY, SymbolTable
from armvisor.trace import TraceBus

# The hypervisor's own interrupts on each pCPU (physical GIC).
SGI_KICK = 0                                    # "look at your vCPUs' interrupts"
HYP_TIMER_INTID = 16 + memmap.TIMER_HYP_PHYS_PPI  # 26: CNTHP, the scheduling quantum
PCPU_VTIMER_INTID = VIRT_TIMER_INTID            # 27: the loaded vCPU's virtual timer

# GIC register offsets the bring-up writes (IHI0069 12.10, 12.11).
GICD_CTLR = 0x0000
GICD_CTLR_ENABLE_GRP1 = 1 << 1
GICD_CTLR_ARE = 1 << 4
GICR_WAKER = 0x0014
GICR_SGI_FRAME = 0x1_0000
GICR_ISENABLER0 = GICR_SGI_FRAME + 0x100
GICR_ICENABLER0 = GICR_SGI_FRAME + 0x180
ICC_PMR_EL1 = (3, 0, 4, 6, 0)
ICC_IAR1_EL1 = (3, 0, 12, 12, 0)
ICC_EOIR1_EL1 = (3, 0, 12, 12, 1)
ICC_SGI1R_EL1 = (3, 0, 12, 11, 5)
ICC_SRE_EL1 = (3, 0, 12, 12, 5)
ICC_IGRPEN1_EL1 = (3, 0, 12, 12, 7)
SPURIOUS = 1023

PSCI_CPU_ON_64 = 0xC400_0003
# Where the firmware "starts" a secondary pCPU: the hypervisor's secondary entry.
HYP_SECONDARY_ENTRY = memmap.RAM_BASE
QUANTUM_TICKS = COUNTER_HZ // 1000 * 4          # 4 ms slices for shared pCPUs


class Hypervisor:
    def __init__(self, pcpu_count: int, vm_configs: List[VmConfig], trace: TraceBus,
                 console: Callable[[bytes], None], *, slice_budget: int = SLICE_DEFAULT,
                 deterministic: bool = False, no_reboot: bool = False,
                 disk_snapshot: bool = False, plant: tuple = ()):
        self.trace = trace
        self.disk_snapshot = disk_snapshot
        self.plant = plant                       # planted bugs (machine/planted.py), tests only
        self.unlocked = UnlockedWindows()
        self.clock = Clock(deterministic)
        if deterministic:
            trace.use_clock(self.clock.seconds)
        self.slice_budget = slice_budget
        self.no_reboot = no_reboot
        self.booted = False
        self._timers_known = False           # expire_timers' cache (see there)
        self._earliest: Optional[int] = None
        self.pcpus = [PerCpu(i, memmap.mpidr_affinity(i)) for i in range(pcpu_count)]
        self.gic = GicV3(pcpu_count, memmap.mpidr_affinity, trace)
        # The pCPU timers the hypervisor uses: the loaded vCPU's virtual timer
        # (PPI 27) and the EL2 physical timer for the quantum (PPI 26).
        self.pcpu_vtimers = [GenericTimer(self._pcpu_ppi(i), counter=self.clock.counter)
                             for i in range(pcpu_count)]
        self.hyp_timers = [TimerChannel(HYP_TIMER_INTID, self._pcpu_line(i, HYP_TIMER_INTID))
                           for i in range(pcpu_count)]
        self.firmware = Firmware(self, trace)
        self.placement = Placement(pcpu_count, trace)
        # With several VMs each console line starts with the VM's name.
        self._consoles = [_PrefixedConsole(console, config.name) for config in vm_configs] \
            if len(vm_configs) > 1 else []
        self.vms = [Vm(i, config, self, trace, self._consoles[i] if self._consoles else console)
                    for i, config in enumerate(vm_configs)]
        self.running: Optional[Vcpu] = None
        self.on_pcpu: Optional[PerCpu] = None     # the pCPU whose hypervisor code runs now
        self.exit_status: Optional[int] = None
        self.failures: List[tuple] = []          # (message, report) of VMs that failed
        self.schedule = Schedule(trace=trace)
        self.loop = RunLoop(self, self.clock, slice_budget, self.schedule)

    def use_schedule(self, schedule: Schedule) -> None:
        """Answer the run's decision points from `schedule` from now on (see schedule.py)."""
        schedule.trace = self.trace
        self.schedule = self.loop.schedule = schedule

    # -- 1-4: bring-up ------------------------------------------------------------------

    def _step(self, pcpu: PerCpu, name: str, **fields) -> None:
        pcpu.init_steps.append(name)
        self.trace.emit("hyp.init", pcpu.index, step=name, **fields)

    def boot(self) -> None:
        """pCPU 0 only: global init, then CPU_ON to the firmware for every other pCPU."""
        self.booted = True
        self.firmware.cold_boot(0)
        boot = self.pcpus[0]
        boot.state = PcpuState.BOOTING
        self._step(boot, "hyp entry at EL2")
        self.gic.distributor_write(GICD_CTLR, 4, GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1, 0)
        self._step(boot, "GIC distributor enabled")
        self._cpu_init(boot)
        for pcpu in self.pcpus[1:]:
            results = self.firmware.smc(0, [PSCI_CPU_ON_64, pcpu.mpidr, HYP_SECONDARY_ENTRY,
                                            pcpu.index, 0, 0, 0, 0])
            status = _signed(results[0])
            self.trace.emit("hyp.cpu_on", 0, target=pcpu.index, result=status)
            if status != 0:
                raise GuestError(f"the firmware refused CPU_ON for pCPU {pcpu.index}: {status}")
        for vm in self.vms:
            self.placement.add_vm(vm.index, vm.config.smp, Policy(vm.config.placement),
                                  vm.config.pcpus, name=vm.name)
            for vcpu in vm.vcpus:
                vcpu.pcpu = self.pcpus[self.placement.pcpu_of(VcpuRef(vm.index, vcpu.index))]
            vm.boot()

    def _cpu_init(self, pcpu: PerCpu) -> None:
        """The per-pCPU init every pCPU runs (the secondaries from their CPU_ON entry)."""
        i = pcpu.index
        self._step(pcpu, "exception vectors (VBAR_EL2)")
        self._step(pcpu, "stage-2 root (VTTBR_EL2: per VM, each VM's RAM mapped only to it)")
        self._step(pcpu, "HCR_EL2", bits="VM|RW|IMO|FMO|AMO|TWI|TSC|TID3")
        self._step(pcpu, "CPTR_EL2")
        frame = i * memmap.GICR_STRIDE
        self.gic.redistributor_write(frame + GICR_WAKER, 4, 0, i)       # ProcessorSleep = 0
        self._step(pcpu, "GIC redistributor awake")
        self.gic.icc_write(i, ICC_SRE_EL1, 1)
        self.gic.icc_write(i, ICC_PMR_EL1, 0xFF)
        self.gic.icc_write(i, ICC_IGRPEN1_EL1, 1)
        enable = (1 << SGI_KICK) | (1 << HYP_TIMER_INTID) | (1 << PCPU_VTIMER_INTID)
        self.gic.redistributor_write(frame + GICR_ISENABLER0, 4, enable, i)
        self._step(pcpu, "GIC CPU interface enabled")
        pcpu.state = PcpuState.ONLINE
        if i:                            # a secondary: its warm boot is done (ON_PENDING -> ON)
            self.trace.emit("cpu.first_insn", i, pc=HYP_SECONDARY_ENTRY)
            self.firmware.warm_boot_finished(i)

    # -- the PSCI platform for the pCPUs (what the EL3 firmware asks) ----------------

    @property
    def cpu_count(self) -> int:
        return len(self.pcpus)

    def mpidr_of(self, cpu: int) -> int:
        return self.pcpus[cpu].mpidr

    def cpu_of_mpidr(self, mpidr: int) -> Optional[int]:
        affinity = mpidr & 0xFF_00FF_FFFF
        for pcpu in self.pcpus:
            if pcpu.mpidr == affinity:
                return pcpu.index
        return None

    def entry_point_valid(self, entry: int) -> bool:
        return entry == HYP_SECONDARY_ENTRY

    def power_on(self, cpu: int, entry: int, context_id: int) -> bool:
        self.pcpus[cpu].state = PcpuState.BOOTING     # its init runs when it is scheduled
        return True

    def power_off(self, cpu: int) -> None:
        self.pcpus[cpu].state = PcpuState.OFF

    def suspend_standby(self, cpu: int) -> None:
        pass

    def suspend_powerdown(self, cpu: int, entry: int, context_id: int) -> None:
        pass

    def system_off(self) -> None:
        self.exit_status = 0

    def system_reset(self) -> None:
        self.exit_status = 0

    # -- snapshots ------------------------------------------------------------------------

    def save_state(self) -> dict:
        """The hypervisor, its physical parts and every VM, between pCPU turns.

        The Clock is not in it: whoever made the hypervisor saves it beside.
        """
        if self.running is not None or self.on_pcpu is not None:
            raise RuntimeError("a hypervisor snapshot is taken between pCPU turns, "
                               "not during one")
        return {
            "pcpu_count": len(self.pcpus),
            "booted": self.booted,
            "pcpus": [pcpu.save_state() for pcpu in self.pcpus],
            "gic": self.gic.save_state(),
            "pcpu_vtimers": [timer.save_state() for timer in self.pcpu_vtimers],
            "hyp_timers": [timer.save_state() for timer in self.hyp_timers],
            "firmware": self.firmware.save_state(),
            "placement": self.placement.save_state(),
            "vms": [vm.save_state() for vm in self.vms],
            "console_line_start": [each.line_start for each in self._consoles],
            "exit_status": self.exit_status,
            "failures": [[message, report] for message, report in self.failures],
            # expire_timers' cache: saved rather than dropped, so that a
            # restored machine skips (or does) exactly the work the saved one would.
            "timers_known": self._timers_known,
            "earliest": self._earliest,
            "unlocked": self.unlocked.save_state(),
        }

    def restore_state(self, state: dict) -> None:
        """Into a hypervisor built with the same pCPUs and VMs and never booted."""
        if state["pcpu_count"] != len(self.pcpus):
            raise ValueError(f"the snapshot's hypervisor has {state['pcpu_count']} pCPUs, "
                             f"this one {len(self.pcpus)}")
        names = [vm["name"] for vm in state["vms"]]
        if names != [vm.name for vm in self.vms]:
            raise ValueError(f"the snapshot's VMs are {names}, "
                             f"this machine's {[vm.name for vm in self.vms]}")
        self.booted = state["booted"]
        self.gic.restore_state(state["gic"])
        for timer, saved in zip(self.pcpu_vtimers, state["pcpu_vtimers"]):
            timer.restore_state(saved)
        for timer, saved in zip(self.hyp_timers, state["hyp_timers"]):
            timer.restore_state(saved)
        self.firmware.restore_state(state["firmware"])
        self.placement.restore_state(state["placement"])
        for vm, saved in zip(self.vms, state["vms"]):
            vm.restore_state(saved, self.pcpus)
        for pcpu, saved in zip(self.pcpus, state["pcpus"]):
            pcpu.restore_state(saved, lambda vm, vcpu: self.vms[vm].vcpus[vcpu])
        for each, line_start in zip(self._consoles, state["console_line_start"]):
            each.line_start = line_start
        self.running = None
        self.on_pcpu = None
        self.exit_status = state["exit_status"]
        self.failures = [(message, report) for message, report in state["failures"]]
        self._timers_known = state["timers_known"]
        self._earliest = state["earliest"]
        self.unlocked.restore_state(state["unlocked"])

    # -- what the run loop asks (runloop.Driver) ----------------------------------

    @property
    def lane_count(self) -> int:
        return len(self.pcpus)

    def run(self, timeout: Optional[float] = None, host: Optional[HostIO] = None,
            until: Optional[Condition] = None) -> Optional[int]:
        """Bring up if needed, then run until every VM has ended (0), `until` (None) or an error."""
        if not self.booted:
            self.boot()
        return self.loop.run(timeout=timeout, until=until, host=host)

    def finished(self) -> Optional[int]:
        if not all(vm.ended for vm in self.vms):
            return None
        if self.failures:
            message, report = self.failures[0]
            raise GuestError(message, report)
        return 0

    def run_turn(self, lane: int, budget: int) -> bool:
        return self._run_pcpu(self.pcpus[lane], budget)

    def wants_turn(self, lane: int) -> bool:
        return self.pcpus[lane].state is not PcpuState.OFF or self.unlocked.has(lane)

    def defer_cpu_on(self, vm: Vm, caller: int, target: int, entry: int,
                     context_id: int) -> bool:
        """Planted bug "vpsci-unlocked": whether the checked CPU_ON lands only at the
        caller's pCPU's next turn (the schedule's `window`), every other pCPU
        running meanwhile; True if so (the caller's slice then ends)."""
        pcpu = self.on_pcpu
        if pcpu is None or not self.schedule.decide("window", 0, cpu=pcpu.index):
            return False
        self.unlocked.defer(pcpu.index, "cpu_on", vm.index, target, entry, context_id)
        self.trace.emit("planted.window", pcpu.index, bug="vpsci-unlocked", action="cpu_on",
                        vm=vm.name, caller=caller, target=target)
        if self.running is not None:
            self.running.core.shorten_slice(0)
        return True

    def has_work(self) -> bool:
        """A physical interrupt waits for its handler, or a pCPU has a vCPU to run."""
        return any(self._pcpu_has_work(p) for p in self.pcpus)

    def others_can_run(self, lane: int) -> bool:
        # Not wants_turn: a pCPU whose vCPUs all wait takes its turns (to go idle, to
        # see its interrupts) without running guest code.
        return any(self._pcpu_has_work(p) for p in self.pcpus if p.index != lane) \
            or self.unlocked.has_other(lane)

    def _pcpu_has_work(self, pcpu: PerCpu) -> bool:
        return pcpu.state is not PcpuState.OFF and (
            pcpu.state is PcpuState.BOOTING or self.gic.wake_pending(pcpu.index)
            or self.placement.has_runnable(pcpu.index))

    def tick(self) -> None:
        for vm in self.vms:
            vm.rtc.tick()

    def _run_pcpu(self, pcpu: PerCpu, budget: int) -> bool:
        """One turn of a pCPU: its hypervisor code, then a slice of one vCPU. True if it ran."""
        for action, vm, target, entry, context_id in self.unlocked.take(pcpu.index):
            if action != "cpu_on":
                raise ValueError(f"unknown unlocked-window action {action!r}")
            self.vms[vm].vpsci.finish_cpu_on(target, entry, context_id)
        if pcpu.state is PcpuState.OFF:
            return False
        self.on_pcpu = pcpu
        if pcpu.state is PcpuState.BOOTING:
            self._cpu_init(pcpu)
        if self.gic.irq_pending(pcpu.index):
            self._physical_irq(pcpu)
        ref = self.placement.pick(pcpu.index)
        if ref is None:
            if pcpu.state is not PcpuState.IDLE:
                pcpu.state = PcpuState.IDLE
                self.trace.emit("pcpu.idle", pcpu.index)
            self.on_pcpu = None
            return False
        resumed = pcpu.state is PcpuState.IDLE
        pcpu.state = PcpuState.ONLINE
        vcpu = self.vms[ref.vm].vcpus[ref.vcpu]
        self._enter(pcpu, vcpu, resumed)
        # A vCPU that spins (WFE, YIELD) gives its pCPU's turn up while another
        # pCPU has a vCPU to run (KVM: a WFE trap, kvm_vcpu_on_spin).
        vcpu.core.yield_to_others(any(other is not pcpu and other.state is PcpuState.ONLINE
                                      for other in self.pcpus))
        self.clock.enter(vcpu.core)
        reason = vcpu.core.run(vcpu.vm.sysregs.slice_budget(vcpu.core, budget))
        self.clock.leave(vcpu.core)
        self._exit(pcpu, vcpu, reason)
        vcpu.vm.sysregs.after_slice(vcpu.core)
        self.on_pcpu = None
        return True

    def _enter(self, pcpu: PerCpu, vcpu: Vcpu, resumed: bool = False) -> None:
        if pcpu.current is not vcpu or resumed:
            # After idle too, though the vCPU stayed loaded: a trace reader
            # sees the pCPU's run of it start again here.
            self.trace.emit("vcpu.load", pcpu.index, vcpu=vcpu.name)
            pcpu.current = vcpu
        if vcpu.first_run_pending:
            vcpu.first_run_pending = False
            vcpu.vm.trace.emit("cpu.first_insn", vcpu.index, pc=vcpu.core.pc, pcpu=pcpu.index)
        pcpu.count("entries")
        self._load_vtimer(pcpu, vcpu)
        # 5: re-arm the physical state this pCPU needs for its vCPU: the timer
        # PPI may have been masked by the last timer exit. (Read first: a
        # write makes the GIC recompute every output, on every entry.)
        enable = pcpu.index * memmap.GICR_STRIDE + GICR_ISENABLER0
        if not self.gic.redistributor_read(enable, 4, pcpu.index) & (1 << PCPU_VTIMER_INTID):
            self.gic.redistributor_write(enable, 4, 1 << PCPU_VTIMER_INTID, pcpu.index)
        vm = vcpu.vm
        vcpu.core.set_irq_lines(vm.vgic.irq_pending(vcpu.index), vm.vgic.fiq_pending(vcpu.index))
        if self.placement.needs_quantum(pcpu.index) and pcpu.quantum_deadline is None:
            pcpu.quantum_deadline = self.clock.counter() + QUANTUM_TICKS
            self.hyp_timers[pcpu.index].write(2, pcpu.quantum_deadline, self.clock.counter())
            self.hyp_timers[pcpu.index].write(1, 1, self.clock.counter())
            self._timers_changed()
        self.running = vcpu

    def _exit(self, pcpu: PerCpu, vcpu: Vcpu, reason: Stop) -> None:
        self.running = None
        vm = vcpu.vm
        broadcast_maintenance(vcpu.core, [v.core for v in vm.vcpus
                                          if v.state is not VcpuState.OFF or v is vcpu])
        pcpu.count(f"exit:{reason.value}")
        if reason is not Stop.BUDGET:         # slice ends are counted, not traced
            self.trace.emit("vcpu.exit", pcpu.index, vcpu=vcpu.name, reason=reason.value)
        end = sort_stop(reason, vcpu.core.error)
        if end in (SliceEnd.REFUSED, SliceEnd.FAILED):
            self._vm_failed(vm, f"{vcpu.name}: {vcpu.core.error}", vcpu)
            return
        if end is SliceEnd.WAIT and vcpu.state is VcpuState.RUNNABLE:
            if not vm.vgic.wake_pending(vcpu.index):
                self._set_state(vcpu, VcpuState.BLOCKED)

    def _vm_failed(self, vm: Vm, message: str, culprit: Optional[Vcpu] = None) -> None:
        """A VM that cannot go on ends alone; the others keep running."""
        self.failures.append((message, self.report(culprit)))
        self.trace.emit("vm.failed", None, vm=vm.name, error=message)
        self.vm_off(vm, reset=False)

    def _load_vtimer(self, pcpu: PerCpu, vcpu: Vcpu) -> None:
        """Put the vCPU's virtual timer into the pCPU's (as KVM's timer load does)."""
        mine, theirs = self.pcpu_vtimers[pcpu.index].virt, vcpu.timer.virt
        if (mine.cval, mine.ctl) == (theirs.cval, theirs.ctl):
            return                       # loaded already: the common case, every entry
        now = self.clock.counter()
        mine.write(2, theirs.cval, now)
        mine.write(1, theirs.ctl, now)
        self._timers_changed()

    # -- interrupts ----------------------------------------------------------------------

    def _physical_irq(self, pcpu: PerCpu) -> None:
        """The hypervisor's IRQ handler on `pcpu` (physical GIC, EL2)."""
        i = pcpu.index
        while True:
            intid = self.gic.icc_read(i, ICC_IAR1_EL1)
            if intid == SPURIOUS:
                return
            pcpu.count(f"irq:{intid}")
            if intid == SGI_KICK:
                self._kicked(pcpu)
            elif intid == PCPU_VTIMER_INTID:
                self._vtimer_fired(pcpu)
            elif intid == HYP_TIMER_INTID:
                self.hyp_timers[i].write(1, 0, self.clock.counter())
                self._timers_changed()
                pcpu.quantum_deadline = None
                self.placement.quantum_expired(i)
            self.gic.icc_write(i, ICC_EOIR1_EL1, intid)

    def _kicked(self, pcpu: PerCpu) -> None:
        """7, receiving side: wake the vCPUs here that have a virtual interrupt pending."""
        for vm in self.vms:
            for vcpu in vm.vcpus:
                if vcpu.pcpu is pcpu and vcpu.state is VcpuState.BLOCKED and \
                        vm.vgic.wake_pending(vcpu.index):
                    self._set_state(vcpu, VcpuState.RUNNABLE)
                    self.trace.emit("vcpu.wake", pcpu.index, vcpu=vcpu.name)

    def _vtimer_fired(self, pcpu: PerCpu) -> None:
        """The loaded vCPU's timer fired: inject its PPI; mask ours until the next entry."""
        vcpu = pcpu.current
        self.gic.redistributor_write(pcpu.index * memmap.GICR_STRIDE + GICR_ICENABLER0, 4,
                                     1 << PCPU_VTIMER_INTID, pcpu.index)
        if vcpu is not None:
            vcpu.timer.update(self.clock.counter())
            self.trace.emit("vcpu.inject", pcpu.index, vcpu=vcpu.name, intid=VIRT_TIMER_INTID)

    def virtual_interrupt_changed(self, vcpu: Vcpu) -> None:
        """A VM's vGIC output to `vcpu` may have changed (from a device, SGI or timer)."""
        vm = vcpu.vm
        irq, fiq = vm.vgic.irq_pending(vcpu.index), vm.vgic.fiq_pending(vcpu.index)
        if vcpu is self.running:
            vcpu.core.irq_lines_changed_in_slice(irq, fiq)     # raised at its block's end
            return
        if vcpu.state is VcpuState.BLOCKED and (irq or fiq):
            self._kick(vcpu.pcpu)
        if (irq or fiq) and self.running is not None and vcpu.core.irq_lines != (irq, fiq):
            # As on the bare board: the sender's slice ends at its next block so
            # the target vCPU gets its interrupt now, not after a long slice.
            self.running.core.shorten_slice(self.schedule.decide(
                "kick", 0, cpu=self.on_pcpu.index if self.on_pcpu else None, target=vcpu.name))

    def _kick(self, target: PerCpu) -> None:
        """7, sending side: a physical SGI 0 to the pCPU where the vCPU lives."""
        sender = self.on_pcpu if self.on_pcpu is not None else self.pcpus[0]
        aff = target.mpidr
        value = ((aff >> 8) & 0xFF) << 16 | (1 << (aff & 0xF)) | (SGI_KICK << 24)
        self.gic.icc_write(sender.index, ICC_SGI1R_EL1, value)
        self.trace.emit("hyp.kick", sender.index, target=target.index)

    def vcpu_timer_changed(self, vcpu: Vcpu) -> None:
        self._timers_changed()
        if vcpu is self.running:
            self._load_vtimer(vcpu.pcpu, vcpu)
            if self.clock.deterministic:
                deadline = self.next_deadline()
                if deadline is not None:
                    # Stop this slice when virtual time reaches the new deadline.
                    vcpu.core.shorten_slice(max(0, deadline - vcpu.core.virtual_now()))

    def _pcpu_ppi(self, pcpu: int) -> Callable[[int, bool], None]:
        return lambda intid, level: self.gic.set_ppi_level(pcpu, intid, level)

    def _pcpu_line(self, pcpu: int, intid: int) -> Callable[[bool], None]:
        return lambda level: self.gic.set_ppi_level(pcpu, intid, level)

    def _timers_changed(self) -> None:
        """A timer was written or a vCPU changed state: expire_timers must look again."""
        self._timers_known = False

    def expire_timers(self) -> None:
        now = self.clock.counter()
        # Called after every slice: while no deadline has passed and no timer
        # changed since the last look, there is nothing to do.
        if self._timers_known and (self._earliest is None or now < self._earliest):
            return
        for i, timer in enumerate(self.pcpu_vtimers):
            timer.update(now)
            self.hyp_timers[i].update(now)
        # The virtual timer of a vCPU that is not running on its pCPU is kept in
        # software (KVM's background timer); a loaded one fires through the
        # pCPU's PPI 27. The EL1 physical timer is always software.
        for vm in self.vms:
            for vcpu in vm.vcpus:
                if vcpu.state is VcpuState.OFF:
                    continue
                vcpu.timer.phys.update(now)
                if not (vcpu.pcpu.current is vcpu and vcpu.state is VcpuState.RUNNABLE):
                    vcpu.timer.virt.update(now)
        self._earliest = self._timer_deadline()
        self._timers_known = True

    def _timer_deadline(self) -> Optional[int]:
        """The nearest deadline of any timer (pCPU, EL2 quantum, every vCPU's)."""
        deadlines = [t.next_deadline() for t in self.pcpu_vtimers]
        deadlines += [t.cval for t in self.hyp_timers if t.deadline() is not None]
        for vm in self.vms:
            for vcpu in vm.vcpus:
                if vcpu.state is not VcpuState.OFF:
                    deadlines.append(vcpu.timer.next_deadline())
        deadlines = [d for d in deadlines if d is not None]
        return min(deadlines) if deadlines else None

    def next_deadline(self) -> Optional[int]:
        deadlines = [self._timer_deadline()]
        for vm in self.vms:
            rtc_at = vm.rtc.next_deadline()
            if rtc_at is not None:
                deadlines.append(self.clock.wall_to_counter(rtc_at))
        deadlines = [d for d in deadlines if d is not None]
        return min(deadlines) if deadlines else None

    # -- vCPU and VM life cycle (called by the VMs) ------------------------------------

    def _set_state(self, vcpu: Vcpu, state: VcpuState) -> None:
        old, vcpu.state = vcpu.state, state
        # The vCPU's own track shows its WFI as a bare CPU's is shown.
        if state is VcpuState.BLOCKED and old is not state:
            vcpu.vm.trace.emit("cpu.wfi", vcpu.index)
        elif old is VcpuState.BLOCKED and state is not old:
            vcpu.vm.trace.emit("cpu.wake", vcpu.index)
        self._timers_changed()
        self.placement.set_runnable(VcpuRef(vcpu.vm.index, vcpu.index),
                                    state is VcpuState.RUNNABLE)

    def vcpu_started(self, vcpu: Vcpu) -> None:
        vcpu.first_run_pending = True
        self._set_state(vcpu, VcpuState.RUNNABLE)
        if self.running is not None:
            self.schedule.at_sync(self.running.core, "psci")

    def vcpu_stopped(self, vcpu: Vcpu) -> None:
        self._set_state(vcpu, VcpuState.OFF)
        if vcpu.pcpu.current is vcpu:
            vcpu.pcpu.current = None

    def vm_off(self, vm: Vm, reset: bool) -> None:
        for vcpu in vm.vcpus:
            if vcpu is self.running:
                vcpu.core.stop(Stop.MACHINE)
            self._set_state(vcpu, VcpuState.OFF)
            if vcpu.pcpu.current is vcpu:
                vcpu.pcpu.current = None
        if reset and not self.no_reboot:
            self.trace.emit("vm.reset", None, vm=vm.name)
            vm.boot()
        else:
            vm.ended = True
            self.trace.emit("vm.off", None, vm=vm.name)

    def close(self) -> None:
        for vm in self.vms:
            vm.close()

    def report(self, culprit: Optional[Vcpu] = None) -> str:
        lines = crash_header([(v.name, v.core, vm.symbols.table) for vm in self.vms
                              for v in vm.vcpus], culprit.core if culprit else None)
        for pcpu in self.pcpus:
            current = pcpu.current.name if pcpu.current else "-"
            lines.append(f" pcpu{pcpu.index}: {pcpu.state.value:8s} vcpu={current}")
        for vm in self.vms:
            for vcpu in vm.vcpus:
                where = core_location(vcpu.core, disassemble=vcpu.state is not VcpuState.OFF,
                                      symbols=vm.symbols.table)
                lines.append(f"{'*' if vcpu is culprit else ' '}{vcpu.name}: "
                             f"{vcpu.state.value:9s} {where}")
        return "\n".join(lines + recent_events(self.trace, self.symbols_of))

    def symbols_of(self, vm: Optional[str]) -> SymbolTable:
        """The symbols of the VM named `vm` (None, the hypervisor's own events: none)."""
        for each in self.vms:
            if each.name == vm:
                return each.symbols.table
        return EMPTY


def _signed(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


class _PrefixedConsole:
    """A VM's console on a machine of several VMs: each line starts with the VM's name.

    An object, not a closure, so that a snapshot can save where a line stands.
    """

    def __init__(self, console: Callable[[bytes], None], name: str):
        self._console = console
        self._tag = f"[{name}] ".encode()
        self.line_start = True

    def __call__(self, data: bytes) -> None:
        out = bytearray()
        for byte in data:
            if self.line_start:
                out += self._tag
                self.line_start = False
            out.append(byte)
            if byte == 0x0A:
                self.line_start = True
        self._console(bytes(out))
