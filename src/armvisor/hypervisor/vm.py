"""A virtual machine: its own RAM, devices, virtual GIC, DTB, vCPUs and virtual PSCI.

Isolation comes from the memory map itself: the VM's RAM buffer is mapped
only into its own vCPUs' cores, so no guest address reaches another VM.
The VM is the host of its vCPU cores: their trapped SMC/HVC go to its
virtual PSCI, their timer and GIC CPU-interface registers to its models,
their MMIO to its devices. Scheduling decisions belong to the hypervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional, Protocol, Sequence

from armvisor.cpu import sysregs as sr
from armvisor.cpu.core import Core, Stop
from armvisor.cpu.models import CPU_MODELS
from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic import GicV3
from armvisor.devices.pmu import PMU_INTID, Pmu
from armvisor.devices.timer import GenericTimer
from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.vcpu import Vcpu, VcpuState
from armvisor.hypervisor.vpsci import VirtualPsci
from armvisor.machine import memmap
from armvisor.machine.clock import Clock
from armvisor.machine.dtb import BoardDescription, build_dtb
from armvisor.machine.loader import (place_images, read_dtb_file, read_initrd_file,
                                     read_kernel_file)
from armvisor.machine.memory import Ram
from armvisor.machine.config import DriveSpec
from armvisor.machine.sysreg_router import SysregRouter
from armvisor.machine.virt import VirtDevices, Wiring
from armvisor.machine.symbols import KernelSymbols
from armvisor.trace import TraceBus

if TYPE_CHECKING:
    from armvisor.hypervisor.pcpu import PerCpu


class VmHost(Protocol):
    """What a VM asks of the hypervisor that schedules it (hyp.Hypervisor).

    A VM never decides where or when a vCPU runs: it reports what changed.
    """

    clock: Clock
    disk_snapshot: bool                 # disk writes stay in memory (QEMU's -snapshot)
    plant: tuple                        # planted bugs (machine/planted.py), tests only

    def defer_cpu_on(self, vm: "Vm", caller: int, target: int, entry: int,
                     context_id: int) -> bool: ...

    def vcpu_started(self, vcpu: Vcpu) -> None: ...
    def vcpu_stopped(self, vcpu: Vcpu) -> None: ...
    def virtual_interrupt_changed(self, vcpu: Vcpu) -> None: ...
    def vcpu_timer_changed(self, vcpu: Vcpu) -> None: ...
    def vm_off(self, vm: "Vm", reset: bool) -> None: ...


class Vm:
    def __init__(self, index: int, config: VmConfig, hyp: VmHost, trace: TraceBus,
                 console: Callable[[bytes], None]):
        self.index = index
        self.config = config
        self.name = config.name
        self.hyp = hyp
        # Its models' events carry vm=name, and their `cpu` is a vCPU index.
        self.trace = trace = trace.scoped(vm=config.name)
        self.model = CPU_MODELS[config.cpu]
        self.kernel_data = read_kernel_file(config.kernel, config.memory)
        self.initrd_data = read_initrd_file(config.initrd, config.memory) if config.initrd else None
        self.user_dtb = read_dtb_file(config.dtb, config.memory) if config.dtb else None
        self.symbols = KernelSymbols(config.kernel)     # the API replaces it for --symbols
        self.ram = Ram(memmap.RAM_BASE, config.memory)
        self.vgic = GicV3(config.smp, memmap.mpidr_affinity, trace,
                          on_change=lambda vcpu: hyp.virtual_interrupt_changed(self.vcpus[vcpu]),
                          memory=self.ram)
        # Device interrupts go straight to the VM's distributor state: no
        # device-layer lock is taken again (the deadlock this design avoids).
        drives = tuple(DriveSpec(path, read_only=path in config.readonly_drives)
                       for path in config.drives)
        self.devices = VirtDevices.build(Wiring(
            gic=self.vgic, ram=self.ram, clock=hyp.clock, console=console, trace=trace,
            cpu_count=config.smp, prefix=f"{self.name}/", drives=drives,
            virtio_console=config.virtio_console, disk_snapshot=hyp.disk_snapshot),
            physical=False)
        self.uart, self.rtc, self.virtio = self.devices.uart, self.devices.rtc, self.devices.virtio
        self.disks = self.devices.disks
        self.virtio_console = self.devices.virtio_console
        self.windows = self.devices.windows
        self.vcpus: List[Vcpu] = []
        for index_ in range(config.smp):
            # HCR_EL2.TSC: the guest's SMC traps to us, as under KVM.
            core = Core(index_, memmap.mpidr_affinity(index_), self.model,
                        (self.ram.base, self.ram.size, self.ram.pointer), self.windows, self,
                        trace=trace, tcg_buffer_size=64 << 20, extra_hcr=sr.HCR_TSC)
            timer = GenericTimer(self._ppi_setter(index_), counter=hyp.clock.counter)
            self.vcpus.append(Vcpu(self, index_, core, timer))
        # Each vCPU has its own core, so its PMU counts only its own instructions.
        self.pmus = [Pmu(self._pmu_line(index_), trace=trace, cpu=index_)
                     for index_ in range(config.smp)]
        self.sysregs = SysregRouter(self.vgic, [vcpu.timer for vcpu in self.vcpus],
                                    lambda core: hyp.vcpu_timer_changed(self.vcpus[core.index]),
                                    self.pmus)
        unlocked = self._unlocked_cpu_on if "vpsci-unlocked" in hyp.plant else None
        self.vpsci = VirtualPsci(config.smp, memmap.mpidr_affinity, self,
                                 entry_valid=self._entry_valid,
                                 trace=trace, vm=self.name, unlocked_cpu_on=unlocked)
        self.boots = 0
        self.ended = False
        self.dtb_address = 0

    def _unlocked_cpu_on(self, caller: int, target: int, entry: int, context_id: int) -> bool:
        return self.hyp.defer_cpu_on(self, caller, target, entry, context_id)

    def _entry_valid(self, entry: int) -> bool:
        """A CPU_ON entry point: an A64 instruction (4-byte aligned) in this VM's RAM."""
        return entry % 4 == 0 and self.ram.contains(entry, 4)

    def _pmu_line(self, vcpu: int) -> Callable[[bool], None]:
        return lambda level: self.vgic.set_ppi_level(vcpu, PMU_INTID, level)

    def _ppi_setter(self, vcpu: int) -> Callable[[int, bool], None]:
        return lambda intid, level: self.vgic.set_ppi_level(vcpu, intid, level)

    # -- boot -----------------------------------------------------------------------

    def dtb(self, initrd: Optional[tuple] = None) -> bytes:
        """What a guest of this VM sees: its vCPUs, PSCI over HVC, its GIC and devices."""
        return build_dtb(BoardDescription(
            cpu_count=self.config.smp, ram_base=self.ram.base, ram_size=self.ram.size,
            psci_conduit=self.config.psci_conduit, cpu_compatible=self.model.compatible, bootargs=self.config.append,
            initrd=initrd, **self.devices.dtb_nodes()))

    def boot(self) -> None:
        if self.boots:
            self.ram.clear()
        self.boots += 1
        image, self.dtb_address = place_images(
            self.ram, self.kernel_data, self.initrd_data,
            lambda initrd: self.user_dtb if self.user_dtb is not None else self.dtb(initrd))
        self.devices.reset()
        self.vgic.reset()
        for vcpu, pmu in zip(self.vcpus, self.pmus):
            vcpu.timer.reset()
            pmu.reset(now=vcpu.core.executed)
            vcpu.state = VcpuState.OFF
        self.vpsci.reset()
        boot = self.vcpus[0]
        boot.core.reset(image.entry, x0=self.dtb_address)
        self.trace.emit("vm.boot", None, vm=self.name, entry=image.entry, vcpus=self.config.smp,
                        kernel=self.config.kernel)
        self.hyp.vcpu_started(boot)

    def close(self) -> None:
        self.devices.close()

    # -- snapshots ----------------------------------------------------------------

    def save_state(self) -> dict:
        """What the guest built up; the images, DTB source and symbols are
        configuration, read again by the VM the restore builds."""
        return {"name": self.name,
                "boots": self.boots,
                "ended": self.ended,
                "dtb_address": self.dtb_address,
                "ram": self.ram.save_state(),
                "vgic": self.vgic.save_state(),
                "devices": self.devices.save_state(),
                "vcpus": [vcpu.save_state() for vcpu in self.vcpus],
                "pmus": [pmu.save_state() for pmu in self.pmus],
                "vpsci": self.vpsci.save_state()}

    def restore_state(self, state: dict, pcpus: Sequence["PerCpu"]) -> None:
        """`pcpus` are the restored hypervisor's, for each vCPU's placement."""
        if state["name"] != self.name:
            raise ValueError(f"the snapshot's VM {self.index} is {state['name']}, "
                             f"this machine's {self.name}")
        if len(state["vcpus"]) != len(self.vcpus):
            raise ValueError(f"the snapshot's VM {self.name} has {len(state['vcpus'])} vCPUs, "
                             f"this machine's {len(self.vcpus)}")
        self.boots = state["boots"]
        self.ended = state["ended"]
        self.dtb_address = state["dtb_address"]
        self.ram.restore_state(state["ram"])
        self.vgic.restore_state(state["vgic"])
        self.devices.restore_state(state["devices"])
        for vcpu, saved in zip(self.vcpus, state["vcpus"]):
            vcpu.restore_state(saved, pcpus)
        for pmu, saved in zip(self.pmus, state["pmus"]):
            pmu.restore_state(saved)
        self.vpsci.restore_state(state["vpsci"])

    # -- what the vCPU cores ask (CoreHost) -----------------------------------------

    def smc(self, core: Core, imm: int) -> None:
        self._psci(core)

    def hvc(self, core: Core, imm: int) -> bool:
        self._psci(core)
        return True

    def _psci(self, core: Core) -> None:
        results = self.vpsci.call(core.index, core.read_args())
        if results is not None:
            core.write_results(results)

    def sysreg_handler(self, reg: SysReg):
        return self.sysregs.handler(reg)

    # -- what virtual PSCI asks (VpsciActions) --------------------------------------

    def start_vcpu(self, vcpu: int, entry: int, context_id: int) -> None:
        target = self.vcpus[vcpu]
        target.core.reset(entry, x0=context_id)
        self.trace.emit("vcpu.start", vcpu, vcpu=vcpu, entry=entry)
        self.hyp.vcpu_started(target)

    def stop_vcpu(self, vcpu: int) -> None:
        target = self.vcpus[vcpu]
        target.core.stop(Stop.POWER)
        self.hyp.vcpu_stopped(target)

    def wait_for_interrupt(self, vcpu: int) -> None:
        target = self.vcpus[vcpu]
        target.core.stop(Stop.WFI)

    def system_off(self) -> None:
        self.hyp.vm_off(self, reset=False)

    def system_reset(self) -> None:
        self.hyp.vm_off(self, reset=True)
