"""A virtual machine: its own RAM, devices, virtual GIC, DTB, vCPUs and virtual PSCI.

Isolation comes from the memory map itself: the VM's RAM buffer is mapped
only into its own vCPUs' cores, so no guest address reaches another VM.
The VM is the host of its vCPU cores: their trapped SMC/HVC go to its
virtual PSCI, their timer and GIC CPU-interface registers to its models,
their MMIO to its devices. Scheduling decisions belong to the hypervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional

from armvisor.cpu import sysregs as sr
from armvisor.cpu.core import Core, Stop
from armvisor.cpu.models import CPU_MODELS
from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic import GicV3
from armvisor.devices.pl011 import Pl011
from armvisor.devices.pl031 import Pl031
from armvisor.devices.timer import GenericTimer
from armvisor.devices.virtio.blk import VirtioBlk
from armvisor.devices.virtio.mmio import VirtioMmio, VirtioMmioBank
from armvisor.hypervisor.config import VmConfig
from armvisor.hypervisor.vcpu import Vcpu, VcpuState
from armvisor.hypervisor.vpsci import VirtualPsci
from armvisor.machine import memmap
from armvisor.machine.dtb import BoardDescription, build_dtb
from armvisor.machine.loader import place_images, read_initrd_file, read_kernel_file
from armvisor.machine.memory import Ram
from armvisor.machine.mmio import MmioWindow, gic_windows, per_device
from armvisor.trace import TraceBus

if TYPE_CHECKING:
    from armvisor.hypervisor.hyp import Hypervisor


class Vm:
    def __init__(self, index: int, config: VmConfig, hyp: "Hypervisor", trace: TraceBus,
                 console: Callable[[bytes], None]):
        self.index = index
        self.config = config
        self.name = config.name
        self.hyp = hyp
        self.trace = trace
        self.model = CPU_MODELS[config.cpu]
        self.kernel_data = read_kernel_file(config.kernel, config.memory)
        self.initrd_data = read_initrd_file(config.initrd, config.memory) if config.initrd else None
        self.ram = Ram(memmap.RAM_BASE, config.memory)
        self.vgic = GicV3(config.smp, memmap.mpidr_affinity, trace,
                          on_change=lambda vcpu: hyp.virtual_interrupt_changed(self.vcpus[vcpu]))
        self.uart = Pl011(console, trace=trace, name=f"{self.name}/uart0",
                          on_irq_change=self._spi_setter(32 + memmap.UART0_SPI))
        self.rtc = Pl031(trace=trace, name=f"{self.name}/rtc",
                         on_irq_change=self._spi_setter(32 + memmap.RTC_SPI))
        self.virtio = VirtioMmioBank.empty(memmap.VIRTIO_MMIO_SLOTS, trace=trace)
        self.disks: List[VirtioBlk] = []
        for number, path in enumerate(config.drives):
            slot = memmap.VIRTIO_MMIO_SLOTS - 1 - number
            disk = VirtioBlk(self.ram, path, serial=f"{self.name}-vd{number}",
                             name=f"{self.name}/virtio-blk{number}", trace=trace)
            self.disks.append(disk)
            self.virtio.slots[slot] = VirtioMmio(
                disk, legacy=False, name=f"{self.name}/virtio-mmio{slot}", trace=trace,
                on_irq_change=self._spi_setter(32 + memmap.VIRTIO_MMIO_FIRST_SPI + slot))
        self.windows = gic_windows(self.vgic, config.smp) + [
            MmioWindow("pl011", memmap.UART0_BASE, memmap.UART0_SIZE, *per_device(self.uart)),
            MmioWindow("pl031", memmap.RTC_BASE, memmap.RTC_SIZE, *per_device(self.rtc)),
            MmioWindow("virtio-mmio", memmap.VIRTIO_MMIO_BASE, self.virtio.size,
                       *per_device(self.virtio)),
        ]
        self.vcpus: List[Vcpu] = []
        for index_ in range(config.smp):
            # HCR_EL2.TSC: the guest's SMC traps to us, as under KVM.
            core = Core(index_, memmap.mpidr_affinity(index_), self.model,
                        (self.ram.base, self.ram.size, self.ram.pointer), self.windows, self,
                        trace=trace, tcg_buffer_size=64 << 20, extra_hcr=sr.HCR_TSC)
            timer = GenericTimer(self._ppi_setter(index_))
            self.vcpus.append(Vcpu(self, index_, core, timer))
        self.vpsci = VirtualPsci(config.smp, memmap.mpidr_affinity, self,
                                 entry_valid=self._entry_valid,
                                 trace=trace, vm=self.name)
        self.boots = 0
        self.ended = False
        self.dtb_address = 0

    def _entry_valid(self, entry: int) -> bool:
        """A CPU_ON entry point: an A64 instruction (4-byte aligned) in this VM's RAM."""
        return entry % 4 == 0 and self.ram.contains(entry, 4)

    def _spi_setter(self, intid: int) -> Callable[[bool], None]:
        # Device interrupts go straight to the VM's distributor state: no
        # device-layer lock is taken again (the deadlock this design avoids).
        return lambda level: self.vgic.set_spi_level(intid, level)

    def _ppi_setter(self, vcpu: int) -> Callable[[int, bool], None]:
        return lambda intid, level: self.vgic.set_ppi_level(vcpu, intid, level)

    # -- boot -----------------------------------------------------------------------

    def dtb(self, initrd: Optional[tuple] = None) -> bytes:
        """What a guest of this VM sees: its vCPUs, PSCI over HVC, its GIC and devices."""
        return build_dtb(BoardDescription(
            cpu_count=self.config.smp, ram_base=self.ram.base, ram_size=self.ram.size,
            psci_conduit="hvc", cpu_compatible=self.model.compatible, bootargs=self.config.append,
            initrd=initrd, flash=False, pcie=False, fw_cfg=False, platform_bus=False))

    def boot(self) -> None:
        if self.boots:
            self.ram.clear()
        self.boots += 1
        image, self.dtb_address = place_images(self.ram, self.kernel_data, self.initrd_data,
                                               self.dtb)
        for device in (self.uart, self.rtc, self.virtio, self.vgic):
            device.reset()
        for vcpu in self.vcpus:
            vcpu.timer.reset()
            vcpu.state = VcpuState.OFF
        self.vpsci.reset()
        boot = self.vcpus[0]
        boot.core.reset(image.entry, x0=self.dtb_address)
        self.trace.emit("vm.boot", None, vm=self.name, entry=image.entry, vcpus=self.config.smp)
        self.hyp.vcpu_started(boot)

    def close(self) -> None:
        for disk in self.disks:
            disk.close()

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

    def sysreg(self, core: Core, reg: SysReg, el: int, is_write: bool,
               value: int) -> Optional[int]:
        if el == 0:
            return None
        vcpu = self.vcpus[core.index]
        if GenericTimer.is_timer_register(reg):
            if is_write:
                vcpu.timer.write(reg, value)
                self.hyp.vcpu_timer_changed(vcpu)
                return 0
            return vcpu.timer.read(reg)
        if is_write:
            return 0 if self.vgic.icc_write(core.index, reg, value) else None
        return self.vgic.icc_read(core.index, reg)

    # -- what virtual PSCI asks (VpsciActions) --------------------------------------

    def start_vcpu(self, vcpu: int, entry: int, context_id: int) -> None:
        target = self.vcpus[vcpu]
        target.core.reset(entry, x0=context_id)
        self.trace.emit("vcpu.start", None, vm=self.name, vcpu=vcpu, entry=entry)
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
