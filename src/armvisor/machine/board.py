"""The virt board: RAM, devices, one core per CPU, the EL3 firmware, and the run loop."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from unicorn import UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ

from armvisor.cpu.core import Core, Stop
from armvisor.cpu.host import SliceEnd, sort_stop
from armvisor.cpu.store_emulation import plain_store_writes
from armvisor.cpu.models import CPU_MODELS
from armvisor.cpu import sysregs as sr
from armvisor.cpu.sysregs import SysReg
from armvisor.devices.gic import GicV3
from armvisor.devices.pflash import CfiFlash
from armvisor.devices.pmu import PMU_INTID, Pmu
from armvisor.devices.timer import GenericTimer
from armvisor.errors import GuestError
from armvisor.firmware import Firmware
from armvisor.firmware.smccc import describe_call
from armvisor.machine import memmap
from armvisor.machine.config import MachineConfig
from armvisor.machine.dtb import BoardDescription, build_dtb
from armvisor.machine.clock import Clock
from armvisor.machine.lanes import Lane, LaneState
from armvisor.machine.maintenance import broadcast_maintenance
from armvisor.machine.memory import Ram
from armvisor.machine.mmio import MmioWindow, watched
from armvisor.machine.firmware_boot import (FIRMWARE_BOOT_X0, fw_cfg_boot_items,
                                            read_bios_file)
from armvisor.machine.flash_files import map_flash_file
from armvisor.machine.loader import (LoadedImage, place_images, read_dtb_file, read_initrd_file,
                                     read_kernel_file)
from armvisor.machine.report import machine_report
from armvisor.machine.symbols import KernelSymbols
from armvisor.machine.sysreg_router import SysregRouter
from armvisor.machine.el2_registers import El2Registers
from armvisor.devices.gic.virtual_interface import VirtualInterfaces
from armvisor.machine.virt import VirtDevices, Wiring
from armvisor.machine.runloop import Condition, HostIO, RunLoop
from armvisor.machine.planted import UnlockedWindows
from armvisor.machine.schedule import Schedule
from armvisor.firmware.psci.state import PowerState
from armvisor.trace import TraceBus

# A CPU whose timers will not fire (board._cpu_deadlines): after any count.
NO_DEADLINE = 1 << 64
# Instructions the caller of CPU_ON runs before the target's first instruction.
POWER_ON_LATENCY = 1000
PAGE_SIZE = 0x1000                # Unicorn maps whole pages
# A bank left as MMIO becomes memory again after this many reads of its array
# with no write between: EDK2 reads its variable store (flash1) as memory,
# about 1.5 million reads to the UEFI shell, each a Python exit while the
# bank stays MMIO. U-Boot's probing, which flips modes with only a few reads
# between writes, never gets there.
ARRAY_READS_BEFORE_REMAP = 1024


class FlashBank:
    """A CFI flash bank and how the cores see it: memory in read-array mode, MMIO otherwise.

    Mapped as read/execute memory, the guest reads and runs code from it at
    full speed (as QEMU's "romd" mode); its first write faults (write
    protection) and turns the bank into MMIO, so the store reaches the model.
    `array_reads` counts reads of the array in a row while it is MMIO;
    `on_many_array_reads(cpu)` is called when they reach ARRAY_READS_BEFORE_REMAP.
    """

    def __init__(self, base: int, device: CfiFlash,
                 on_many_array_reads: Callable[[int], None] = lambda cpu: None):
        self.base, self.size, self.device = base, device.size, device
        self.window = MmioWindow(device.name, base, device.size, self._read, self._write)
        self.mapped_as_memory = True
        self.array_reads = 0
        self._on_many_array_reads = on_many_array_reads

    def _read(self, offset: int, size: int, cpu: int) -> int:
        value = self.device.read(offset, size)
        if not self.device.mode_is_read_array:
            self.array_reads = 0
            return value
        self.array_reads += 1
        if self.array_reads == ARRAY_READS_BEFORE_REMAP:
            self._on_many_array_reads(cpu)
        return value

    def _write(self, offset: int, size: int, value: int, cpu: int) -> None:
        self.array_reads = 0
        self.device.write(offset, size, value)

    @property
    def wants_memory(self) -> bool:
        """MMIO, back in read-array mode, and read as an array long enough to map it again."""
        return not self.mapped_as_memory and self.device.mode_is_read_array and \
            self.array_reads >= ARRAY_READS_BEFORE_REMAP

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size

    def map_into(self, core: Core) -> None:
        if self.mapped_as_memory:
            core.map_memory(self.base, self.size, self.device.pointer, UC_PROT_READ | UC_PROT_EXEC)
        else:
            core.map_mmio(self.window)


class BareBoard:
    """A QEMU-virt-compatible board running `config.kernel` on `config.smp` CPUs."""

    def __init__(self, config: MachineConfig, trace: Optional[TraceBus] = None,
                 console: Callable[[bytes], None] = lambda data: None):
        self.config = config
        self.clock = Clock(config.deterministic)
        self.trace = trace or TraceBus()
        if config.deterministic:
            self.trace.use_clock(self.clock.seconds)
        self.model = CPU_MODELS[config.cpu]
        self.kernel_data = read_kernel_file(config.kernel, config.memory) if config.kernel else None
        self.initrd_data = read_initrd_file(config.initrd, config.memory) if config.initrd else None
        self.bios_data = read_bios_file(config.bios, memmap.FLASH_BANK_SIZE) \
            if config.bios else None
        self.user_dtb = read_dtb_file(config.dtb, config.memory) if config.dtb else None
        self.symbols = KernelSymbols(config.kernel)     # the API replaces it for --symbols
        self.ram = Ram(memmap.RAM_BASE, config.memory)
        # --secure: the Secure world's RAM (virt.c VIRT_SECURE_MEM), where TF-A runs
        # BL1's data, BL2 and BL31. Unicorn has one address space, so Non-secure code
        # could reach it too (QEMU's is in the secure address space only).
        self.secure_ram = Ram(memmap.SECURE_RAM_BASE, memmap.SECURE_RAM_SIZE) \
            if config.secure else None
        self.current: Optional[Lane] = None
        self.lanes: List[Lane] = []
        # --secure: the GIC has two Security states (GICD_CTLR.DS = 0) as QEMU's secure=on,
        # and asks each access's PE for its Exception level and SCR_EL3.
        self.gic = GicV3(config.smp, memmap.mpidr_affinity, self.trace, on_change=self._gic_changed,
                         memory=self.ram, pe_state=self._pe_state if config.secure else None)
        self.devices = VirtDevices.build(Wiring(
            gic=self.gic, ram=self.ram, clock=self.clock, console=console, trace=self.trace,
            cpu_count=config.smp, drives=config.drives, virtio_console=config.virtio_console,
            testdev_exit=self._testdev_exit if config.chr_testdev else None,
            disk_snapshot=config.disk_snapshot, secure=config.secure,
            power_off=lambda: self._end(0, reset=False),
            reset=lambda: self._end(0, reset=True)),
            physical=True)
        self.uart, self.rtc, self.virtio = self.devices.uart, self.devices.rtc, self.devices.virtio
        self.disks = self.devices.disks
        self.virtio_console = self.devices.virtio_console
        if config.runs_firmware:
            for key, data in fw_cfg_boot_items(self.kernel_data, self.initrd_data,
                                               config.append).items():
                self.devices.fw_cfg.add_item(key, data)
        files = {bank.unit: map_flash_file(bank, memmap.FLASH_BANK_SIZE, config.disk_snapshot)
                 for bank in config.pflash}
        self.flash = [FlashBank(memmap.FLASH_BASE + i * memmap.FLASH_BANK_SIZE,
                                CfiFlash(f"flash{i}", size=memmap.FLASH_BANK_SIZE,
                                         sector_size=memmap.FLASH_SECTOR_SIZE, trace=self.trace,
                                         read_only=i in files and config.pflash_read_only(i),
                                         contents=files.get(i)),
                                on_many_array_reads=self._end_slice_for_flash)
                      for i in range(2)]
        self.timers = [GenericTimer(self._timer_setter(cpu), counter=self.clock.counter)
                       for cpu in range(config.smp)]
        self._timer_deadline: Optional[int] = None
        # Each CPU's next timer deadline (NO_DEADLINE: none), so that a timer
        # write looks at one CPU's timers, not all of them (64 CPUs: the boot
        # spent 40% of its time in that scan).
        self._cpu_deadlines: List[int] = [NO_DEADLINE] * config.smp
        self.pmus = [Pmu(self._pmu_line(cpu), trace=self.trace, cpu=cpu)
                     for cpu in range(config.smp)]
        # --virtualization: the guest owns EL2; its GIC virtualization interface
        # and EL2 registers (machine/el2_registers.py). --secure: it owns EL3, and
        # EL2 too (which its ID registers hide without --virtualization).
        self.vifs: Optional[VirtualInterfaces] = None
        el2 = None
        if config.virtualization or config.secure:
            self.vifs = VirtualInterfaces(config.smp, self.gic.set_ppi_level,
                                          self.gic.deactivate, self._virtual_lines_changed,
                                          trace=self.trace)
            el2 = El2Registers(self.model, self.vifs, self.timers, self._timer_written,
                               memmap.mpidr_affinity, el2=config.virtualization)
        self.sysregs = SysregRouter(self.gic, self.timers, self._timer_written, self.pmus, el2=el2)
        self.windows = [watched(w, lambda cpu: self.schedule.at_sync(self.lanes[cpu].core, "mmio"))
                        for w in self.devices.windows]
        self.firmware = Firmware(self, self.trace)
        tcg_buffer = 0 if config.smp <= 8 else 128 << 20
        for index in range(config.smp):
            core = Core(index, memmap.mpidr_affinity(index), self.model,
                        (self.ram.base, self.ram.size, self.ram.pointer), self.windows, self,
                        trace=self.trace, tcg_buffer_size=tcg_buffer,
                        virtualization=config.virtualization, secure=config.secure,
                        describe_call=describe_call)
            for bank in self.flash:
                bank.map_into(core)
            if self.secure_ram is not None:
                core.map_memory(self.secure_ram.base, self.secure_ram.size,
                                self.secure_ram.pointer, UC_PROT_ALL)
            self.lanes.append(Lane(index, core))
        self.exit_status: Optional[int] = None        # set by SYSTEM_OFF / SYSTEM_RESET
        self._testdev_ended = False                   # chr-testdev's 'q' ended the run
        self._reset_requested = False
        self.boots = 0
        self.image: Optional[LoadedImage] = None
        self.dtb_address = 0
        self.schedule = Schedule(trace=self.trace)
        self.loop = RunLoop(self, self.clock, config.slice_budget, self.schedule)
        self.unlocked = UnlockedWindows()          # planted bugs only (machine/planted.py)

    def use_schedule(self, schedule: Schedule) -> None:
        """Answer the run's decision points from `schedule` from now on (see schedule.py)."""
        schedule.trace = self.trace
        self.schedule = self.loop.schedule = schedule

    def close(self) -> None:
        """Release the disk images and flash files (their data is already written through)."""
        self.devices.close()
        for bank in self.flash:
            bank.device.flush()

    # -- boot ---------------------------------------------------------------------

    def generated_dtb(self, initrd: Optional[tuple] = None) -> bytes:
        return build_dtb(BoardDescription(
            cpu_count=self.config.smp, ram_base=self.ram.base, ram_size=self.ram.size,
            psci_conduit=self.config.psci_conduit, cpu_compatible=self.model.compatible,
            bootargs=self.config.append, initrd=initrd,
            gic_maintenance_irq=self.config.virtualization, secure=self.config.secure,
            **self.devices.dtb_nodes()))

    def load(self) -> None:
        """Put the kernel, initrd and DTB in RAM as QEMU's hw/arm/boot.c does."""
        if self.boots:                    # a fresh mapping is already zero
            self.ram.clear()
            if self.secure_ram is not None:
                self.secure_ram.clear()
        for bank in self.flash:
            bank.device.reset()
        if self.config.runs_firmware:
            self._load_firmware()
            return
        self.image, self.dtb_address = place_images(
            self.ram, self.kernel_data, self.initrd_data,
            lambda initrd: self.user_dtb if self.user_dtb is not None else self.generated_dtb(initrd),
            flash_write=self.flash[0].device.load)

    def _load_firmware(self) -> None:
        """A firmware boot (machine/firmware_boot.py): -bios into flash0, the DTB at RAM base."""
        if self.bios_data is not None:
            self.flash[0].device.load(0, self.bios_data)
        dtb = self.user_dtb if self.user_dtb is not None else self.generated_dtb()
        self.ram.write(self.ram.base, dtb)
        self.image = LoadedImage(entry=memmap.FLASH_BASE, kind="firmware",
                                 ram_base=self.ram.base)
        self.dtb_address = self.ram.base

    @property
    def boot_x0(self) -> int:
        """What the boot CPU finds in x0, as QEMU: the DTB for a kernel booted with the Linux
        protocol (Image, raw), 0 for firmware and for an ELF whose DTB is at RAM base (QEMU
        enters an ELF at its entry with the registers as reset left them, the DTB at RAM
        base). An ELF covering RAM base, which QEMU gives no DTB, gets ours in x0."""
        if self.image.kind == "firmware":
            return FIRMWARE_BOOT_X0
        if self.image.kind == "elf" and self.dtb_address == self.ram.base:
            return FIRMWARE_BOOT_X0
        return self.dtb_address

    def boot(self) -> None:
        """Cold boot: the boot CPU starts at the kernel entry, every other CPU is off."""
        self.load()
        self.boots += 1
        self.exit_status = None
        self._reset_requested = False
        self.devices.reset()
        for timer in self.timers:
            timer.reset()
        self._cpu_deadlines = [NO_DEADLINE] * len(self.timers)
        self.gic.reset()
        if self.vifs is not None:
            self.vifs.reset()
        for lane, pmu in zip(self.lanes, self.pmus):
            pmu.reset(now=lane.core.executed)
        self._timer_deadline = None
        for bank in self.flash:              # a reset puts the banks back in read-array mode
            if not bank.mapped_as_memory:
                self._remap_flash(bank, as_memory=True)
        for lane in self.lanes:
            lane.power_off()
        firmware = {"bios": self.config.bios} if self.config.bios else {}
        if self.config.secure:
            firmware["secure"] = True
        self.trace.emit("machine.boot", None, entry=self.image.entry, dtb=self.dtb_address,
                        kind=self.image.kind, cpus=self.config.smp, kernel=self.config.kernel,
                        **firmware)
        if self.config.secure:
            # The firmware owns EL3 and power: every CPU leaves reset at its reset
            # vector (TF-A's BL1 sends the secondaries to its holding pen), as
            # QEMU's secure=on starts them all.
            for lane in self.lanes:
                lane.core.reset(self.image.entry, x0=self.boot_x0)
                lane.start(warm=False)
                self.trace.emit("cpu.start", lane.index, pc=self.image.entry,
                                reason="cold boot", el=3)
            return
        self.firmware.cold_boot(0)
        boot = self.lanes[0]
        boot.core.reset(self.image.entry, x0=self.boot_x0)
        boot.start(warm=False)
        self.trace.emit("cpu.start", 0, pc=self.image.entry, reason="cold boot",
                        **({"el": 2} if self.vifs is not None else {}))

    # -- snapshots (machine/snapshot.py) ---------------------------------------------

    def save_state(self) -> dict:
        """The whole board between slices: RAM, devices, cores, firmware (the caller saves
        the clock and the run loop, which both modes share)."""
        if self.current is not None:
            raise RuntimeError("a snapshot is taken between slices, not inside one")
        image = None if self.image is None else {
            "entry": self.image.entry, "kind": self.image.kind,
            "segments": [list(s) for s in self.image.segments]}
        return {
            "boots": self.boots, "exit_status": self.exit_status,
            "reset_requested": self._reset_requested, "image": image,
            "dtb_address": self.dtb_address,
            "ram": self.ram.save_state(),
            **({} if self.secure_ram is None else {"secure_ram": self.secure_ram.save_state()}),
            "devices": self.devices.save_state(),
            "gic": self.gic.save_state(),
            **({} if self.vifs is None else {"vifs": self.vifs.save_state()}),
            "flash": [{"device": bank.device.save_state(),
                       "mapped_as_memory": bank.mapped_as_memory,
                       "array_reads": bank.array_reads} for bank in self.flash],
            "timers": [timer.save_state() for timer in self.timers],
            "timer_deadline": self._timer_deadline,
            "pmus": [pmu.save_state() for pmu in self.pmus],
            "firmware": self.firmware.save_state(),
            "unlocked": self.unlocked.save_state(),
            "lanes": [{"state": lane.state.value, "warm_boot_pending": lane.warm_boot_pending,
                       "resume": None if lane.resume is None else list(lane.resume),
                       "core": lane.core.save_state()} for lane in self.lanes],
        }

    def restore_state(self, state: dict) -> None:
        """Become the board `save_state` saw (on a board built from the same configuration)."""
        if len(state["lanes"]) != len(self.lanes):
            raise ValueError(f"the snapshot has {len(state['lanes'])} CPUs, this machine "
                             f"{len(self.lanes)}")
        self.boots, self.exit_status = state["boots"], state["exit_status"]
        self._reset_requested = state["reset_requested"]
        image = state["image"]
        self.image = None if image is None else LoadedImage(
            entry=image["entry"], kind=image["kind"],
            segments=[tuple(s) for s in image["segments"]])
        self.dtb_address = state["dtb_address"]
        self.ram.restore_state(state["ram"])
        if self.secure_ram is not None:
            self.secure_ram.restore_state(state["secure_ram"])
        self.devices.restore_state(state["devices"])
        self.gic.restore_state(state["gic"])
        if self.vifs is not None and "vifs" in state:
            self.vifs.restore_state(state["vifs"])
        for bank, saved in zip(self.flash, state["flash"]):
            bank.device.restore_state(saved["device"])
            bank.array_reads = saved.get("array_reads", 0)
            if bank.mapped_as_memory != saved["mapped_as_memory"]:
                bank.mapped_as_memory = saved["mapped_as_memory"]
                for lane in self.lanes:
                    lane.core.unmap(bank.base, bank.size)
                    bank.map_into(lane.core)
        for timer, saved in zip(self.timers, state["timers"]):
            timer.restore_state(saved)
        self._rearm_timers()
        self._timer_deadline = state["timer_deadline"]     # as it was, even if stale
        for pmu, saved in zip(self.pmus, state["pmus"]):
            pmu.restore_state(saved)
        self.firmware.restore_state(state["firmware"])
        self.unlocked.restore_state(state["unlocked"])
        for lane, saved in zip(self.lanes, state["lanes"]):
            lane.state = LaneState(saved["state"])
            lane.warm_boot_pending = saved["warm_boot_pending"]
            lane.resume = None if saved["resume"] is None else tuple(saved["resume"])
            lane.core.restore_state(saved["core"])

    # -- what the run loop asks (runloop.Driver) ----------------------------------

    @property
    def lane_count(self) -> int:
        return len(self.lanes)

    def run(self, timeout: Optional[float] = None, host: Optional[HostIO] = None,
            until: Optional[Condition] = None) -> Optional[int]:
        """Boot if needed, then run until SYSTEM_OFF (its status), `until` (None) or an error.

        SYSTEM_RESET reboots the machine (or ends the run with --no-reboot).
        """
        if not self.boots:
            self.boot()
        return self.loop.run(timeout=timeout, until=until, host=host)

    def finished(self) -> Optional[int]:
        if self.exit_status is None:
            return None
        if not self._reset_requested or self.config.no_reboot:
            return self.exit_status
        self.trace.emit("machine.reset", None)
        self.boot()
        return None

    def has_work(self) -> bool:
        return any(lane.state is LaneState.RUNNING for lane in self.lanes)

    def wants_turn(self, index: int) -> bool:
        return self.lanes[index].state is LaneState.RUNNING or self.unlocked.has(index)

    def others_can_run(self, index: int) -> bool:
        return self._others_running(index) or self.unlocked.has_other(index)

    def _others_running(self, index: int) -> bool:
        # Asked twice a turn: with 64 CPUs mostly waiting, a call per lane adds up.
        return any(lane.state is LaneState.RUNNING for lane in self.lanes if lane.index != index)

    def next_deadline(self) -> Optional[int]:
        deadlines = [] if self._timer_deadline is None else [self._timer_deadline]
        rtc_at = self.rtc.next_deadline()
        if rtc_at is not None:
            deadlines.append(self.clock.wall_to_counter(rtc_at))
        return min(deadlines) if deadlines else None

    def tick(self) -> None:
        self.rtc.tick()

    def report(self, culprit: Optional[Lane] = None) -> str:
        return machine_report(self, culprit)

    def run_turn(self, index: int, budget: int) -> bool:
        lane = self.lanes[index]
        for action in self.unlocked.take(index):
            self._close_window(lane, action)
        if lane.state is not LaneState.RUNNING:
            return False
        core = lane.core
        if lane.warm_boot_pending:
            lane.warm_boot_pending = False
            self.trace.emit("cpu.first_insn", index, pc=core.pc)
            self.firmware.warm_boot_finished(index)
        # Interrupt lines are raised only here, between slices (a safe point).
        core.set_irq_lines(self.gic.irq_pending(index), self.gic.fiq_pending(index))
        if self.vifs is not None:
            vif = self.vifs[index]
            core.set_virtual_lines(vif.virq(), vif.vfiq())
        self.current = lane
        core.yield_to_others(self._others_running(index))
        self.clock.enter(core)
        reason = core.run(self.sysregs.slice_budget(core, budget))
        self.clock.leave(core)
        self.current = None
        self.sysregs.after_slice(core)
        self._broadcast_maintenance(lane)
        end = sort_stop(reason, core.error)
        if end is SliceEnd.REFUSED and not self._flash_fault(core):
            raise GuestError(f"cpu{index}: {core.error} (the board refused the access)",
                             machine_report(self, lane))
        if end is SliceEnd.FAILED:
            raise GuestError(f"cpu{index}: {core.error}", machine_report(self, lane))
        for bank in self.flash:
            if bank.wants_memory:
                self._remap_flash(bank, as_memory=True)
        if end is SliceEnd.WAIT and lane.state is LaneState.RUNNING:
            self._park(lane)
        return True

    def _park(self, lane: Lane) -> None:
        """WFI: the lane sleeps until an interrupt is pending for it (one may be already)."""
        if self.gic.wake_pending(lane.index):
            return
        if self.vifs is not None and (self.vifs[lane.index].virq() or self.vifs[lane.index].vfiq()):
            return                   # a virtual interrupt wakes a WFI at EL1 too
        lane.state = LaneState.WFI
        self.trace.emit("cpu.wfi", lane.index)

    def _broadcast_maintenance(self, source: Lane) -> None:
        # A generator: most slices broadcast nothing, and 64 lanes are many to list.
        broadcast_maintenance(source.core, (lane.core for lane in self.lanes
                                            if lane.state is not LaneState.OFF))

    # -- flash -------------------------------------------------------------------------

    def _flash_fault(self, core: Core) -> bool:
        """Switch a flash bank's mapping after a fault that only the mapping caused.

        A store to a bank mapped as memory makes it MMIO (the store then runs
        again and reaches the model). A bank stays MMIO after it returns to
        read-array mode, since remapping costs milliseconds and U-Boot flips
        modes a thousand times while probing; it becomes memory again only
        when the guest executes from it.
        """
        address = core.write_protect_fault()
        if address is not None:
            bank = self._flash_bank(self._physical(core, address))
            if bank is None or not bank.mapped_as_memory:
                return False
            if bank.contains(self._physical(core, core.pc)):
                # The store runs from the bank it writes to (EDK2's PEI modules
                # write their globals in place): Unicorn cannot fetch from
                # MMIO, so the store is carried out here.
                return self._store_into_running_flash(core, bank)
            self._remap_flash(bank, as_memory=False)
        else:
            bank = self._flash_bank(core.pc)
            if bank is None or bank.mapped_as_memory or not bank.device.mode_is_read_array:
                return False
            self._remap_flash(bank, as_memory=True)
        core.error = None
        return True

    def _end_slice_for_flash(self, cpu: int) -> None:
        # Called from inside an MMIO read: the mapping changes between slices.
        if self.current is not None:
            self.current.core.shorten_slice(0)

    @staticmethod
    def _physical(core: Core, va: int) -> int:
        pa = core.translate(va) if core.mmu_enabled else va
        return va if pa is None else pa

    def _store_into_running_flash(self, core: Core, bank: FlashBank) -> bool:
        """Hand a store's writes to the bank's device and step past it (store_emulation.py).

        The bank stays mapped as memory if the writes leave it in read-array
        mode (what QEMU does with a store that is no flash command); if they
        start a command, it becomes MMIO, and the next instruction fetch from
        it is refused as before (QEMU would run the status bytes as code).
        """
        writes = plain_store_writes(core)
        if writes is None:
            return False
        for va, size, value in writes:
            pa = self._physical(core, va)
            if not bank.contains(pa) or not bank.contains(pa + size - 1):
                return False
        for va, size, value in writes:
            bank.device.write(self._physical(core, va) - bank.base, size, value)
        core.count_exit("flash:store-in-place")
        core.set_pc(core.pc + 4)
        core.error = None
        if not bank.device.mode_is_read_array:
            self._remap_flash(bank, as_memory=False)
        return True

    def _flash_bank(self, address: int) -> Optional[FlashBank]:
        return next((bank for bank in self.flash if bank.contains(address)), None)

    def _remap_flash(self, bank: FlashBank, as_memory: bool) -> None:
        bank.mapped_as_memory = as_memory
        bank.array_reads = 0
        for lane in self.lanes:
            lane.core.unmap(bank.base, bank.size)
            bank.map_into(lane.core)
            if as_memory:
                lane.core.flush_code()        # the contents may have been programmed
        self.trace.emit("flash.map", None, bank=bank.device.name,
                        mode="memory" if as_memory else "mmio")

    # -- interrupts ---------------------------------------------------------------------

    def _pe_state(self, cpu: int) -> Tuple[int, int]:
        """(Exception level, SCR_EL3) of `cpu`, for the GIC's Security states (--secure)."""
        core = self.lanes[cpu].core
        return core.el, core.read_sysreg(sr.SCR_EL3)

    def _gic_changed(self, cpu: int) -> None:
        """The GIC's output to `cpu` may have changed (called from inside device models)."""
        lane = self.lanes[cpu]
        irq, fiq = self.gic.irq_pending(cpu), self.gic.fiq_pending(cpu)
        if lane is self.current:
            lane.core.irq_lines_changed_in_slice(irq, fiq)     # raised at its block's end
            return
        if (irq or fiq) and lane.state in (LaneState.WFI, LaneState.POWERDOWN):
            self._wake(lane)
        if (irq or fiq) and self.current is not None and lane.core.irq_lines != (irq, fiq):
            # An interrupt for another CPU (an IPI, a device's SPI routed there):
            # the sender's slice ends at its next block, so the target runs
            # now rather than after the rest of a long slice (the sender
            # often spins waiting for the answer).
            self.current.core.shorten_slice(
                self.schedule.decide("kick", 0, cpu=self.current.index, target=cpu))

    def _virtual_lines_changed(self, cpu: int) -> None:
        """The virtualization interface's virtual IRQ/FIQ for `cpu` may have changed (from
        inside the core's own ICH/ICV accesses, or between slices)."""
        lane = self.lanes[cpu]
        vif = self.vifs[cpu]
        virq, vfiq = vif.virq(), vif.vfiq()
        if lane is self.current:
            lane.core.virtual_lines_changed_in_slice(virq, vfiq)
        elif not (virq or vfiq):
            lane.core.set_virtual_lines(False, False)

    def _wake(self, lane: Lane) -> None:
        cpu = lane.index
        if lane.state is LaneState.POWERDOWN:
            entry, context_id = lane.resume
            lane.core.reset(entry, x0=context_id)
            lane.start(warm=True)
        else:
            lane.state = LaneState.RUNNING
            self.firmware.wake(cpu)
        self.trace.emit("cpu.wake", cpu)

    def _pmu_line(self, cpu: int) -> Callable[[bool], None]:
        return lambda level: self.gic.set_ppi_level(cpu, PMU_INTID, level)

    def _timer_setter(self, cpu: int) -> Callable[[int, bool], None]:
        return lambda intid, level: self.gic.set_ppi_level(cpu, intid, level)

    def expire_timers(self) -> None:
        now = self.clock.counter()
        if self._timer_deadline is None or now < self._timer_deadline:
            return
        # Only a timer whose deadline has passed can change here (the counter only
        # rises; a guest's write updates its own timer at once): updating every
        # CPU's on every expiry was a fifth of a 64-CPU boot.
        due = [index for index, deadline in enumerate(self._cpu_deadlines) if deadline <= now]
        for index in due:
            self.timers[index].update(now)
        self._rearm_timers(due)

    def _rearm_timers(self, cpus: Optional[Sequence[int]] = None) -> None:
        """The next deadline of all timers, after those of `cpus` changed (None: any may
        have)."""
        for index in range(len(self.timers)) if cpus is None else cpus:
            deadline = self.timers[index].next_deadline()
            self._cpu_deadlines[index] = NO_DEADLINE if deadline is None else deadline
        soonest = min(self._cpu_deadlines)
        self._timer_deadline = None if soonest == NO_DEADLINE else soonest

    # -- what the cores ask (CoreHost) ----------------------------------------------

    def exit_counts(self) -> dict:
        """Every core's exits by kind, added up (for the benchmarks)."""
        total: dict = {}
        for lane in self.lanes:
            for kind, count in lane.core.exit_counts().items():
                total[kind] = total.get(kind, 0) + count
        return total

    def smc(self, core: Core, imm: int) -> None:
        if self.vifs is not None:
            # The guest owns EL2: say which of its levels called the firmware.
            self.trace.emit("smc", core.index, el=core.el, imm=imm)
        results = self.firmware.smc(core.index, core.read_args())
        if results is not None:
            core.write_results(results)
        self.schedule.at_sync(core, "psci")

    def hvc(self, core: Core, imm: int) -> bool:
        if self.config.psci_conduit != "hvc":
            return False                         # no EL2 on this board: HVC is UNDEFINED
        self.smc(core, imm)
        return True

    def sysreg_handler(self, reg: SysReg):
        return self.sysregs.handler(reg)

    def _timer_written(self, core: Core) -> None:
        self._rearm_timers((core.index,))
        if self.clock.deterministic and self._timer_deadline is not None:
            # Deterministic: stop this slice when virtual time reaches the new deadline.
            core.shorten_slice(max(0, self._timer_deadline - core.virtual_now()))

    # -- the PSCI platform (what the firmware asks) --------------------------------

    @property
    def cpu_count(self) -> int:
        return self.config.smp

    def mpidr_of(self, cpu: int) -> int:
        return memmap.mpidr_affinity(cpu)

    def cpu_of_mpidr(self, mpidr: int) -> Optional[int]:
        affinity = mpidr & 0xFF_00FF_FFFF
        aff0, aff1 = affinity & 0xFF, (affinity >> 8) & 0xFF
        if affinity >> 16 or aff0 >= memmap.GICV3_CPUS_PER_CLUSTER:
            return None
        cpu = aff1 * memmap.GICV3_CPUS_PER_CLUSTER + aff0
        return cpu if cpu < self.config.smp else None

    def entry_point_valid(self, entry: int) -> bool:
        return self.ram.contains(entry, 4)

    def power_on(self, cpu: int, entry: int, context_id: int) -> bool:
        lane = self.lanes[cpu]
        if self.vifs is not None:
            self.vifs.reset_cpu(cpu)         # the CPU interface resets with the CPU
        lane.core.reset(entry, x0=context_id)
        lane.start(warm=True)
        caller = None if self.current is None else self.current.index
        self.trace.emit("cpu.start", cpu, pc=entry, context_id=context_id, reason="CPU_ON",
                        caller=caller, **({"el": 2} if self.vifs is not None else {}))
        if self.current is not None:
            # The new CPU starts once the caller has run POWER_ON_LATENCY more
            # instructions, not after the rest of a long slice: a short,
            # deterministic power-up window in which the caller still sees
            # ON_PENDING, as on hardware under TF-A.
            self.current.core.shorten_slice(self.schedule.decide(
                "power_on", POWER_ON_LATENCY, cpu=self.current.index, target=cpu))
        return True

    def power_off(self, cpu: int) -> None:
        lane = self.lanes[cpu]
        lane.core.stop(Stop.POWER)
        if "psci-off-unlocked" in self.config.plant and \
                self.schedule.decide("window", 0, cpu=cpu):
            # Planted bug: OFF is published, the core goes down at this lane's
            # next turn; a CPU_ON in between starts a core about to power off.
            lane.state = LaneState.OFF
            self.unlocked.defer(cpu, "power_off")
            self.trace.emit("planted.window", cpu, bug="psci-off-unlocked", action="power_off")
            return
        lane.power_off()
        self.trace.emit("cpu.off", cpu)

    def _close_window(self, lane: Lane, action: list) -> None:
        """The late half of a planted bug's window (see power_off)."""
        if action[0] != "power_off":
            raise ValueError(f"unknown unlocked-window action {action!r}")
        lane.power_off()
        power = self.firmware.power
        if power.state_of(lane.index) is not PowerState.OFF:
            power.transition(lane.index, PowerState.OFF)     # the lost update
        self.trace.emit("cpu.off", lane.index)

    def suspend_standby(self, cpu: int) -> None:
        lane = self.lanes[cpu]
        lane.core.stop(Stop.WFI)
        if self.gic.wake_pending(cpu):
            self.firmware.wake(cpu)          # a wake-up event is already there
            return
        lane.state = LaneState.WFI
        self.trace.emit("cpu.standby", cpu)

    def suspend_powerdown(self, cpu: int, entry: int, context_id: int) -> None:
        lane = self.lanes[cpu]
        lane.core.stop(Stop.POWER)
        lane.suspend(entry, context_id)
        self.trace.emit("cpu.powerdown", cpu, entry=entry)
        if self.gic.wake_pending(cpu):
            self._wake(lane)

    def system_off(self) -> None:
        self._end(0, reset=False)

    def system_reset(self) -> None:
        self._end(0, reset=True)

    def _testdev_exit(self, status: int) -> None:
        """chr-testdev's 'q': the machine ends with that status, as QEMU exits with it.
        Called from a device inside a slice: the slice ends at its next block."""
        self.exit_status = status
        self._reset_requested = False
        self._testdev_ended = True
        if self.current is not None:
            self.current.core.shorten_slice(0)
        self.trace.emit("machine.testdev_exit", None, status=status)

    def _end(self, status: int, reset: bool) -> None:
        if self._testdev_ended:
            return              # QEMU's process is gone by then: the testdev's status stands
        self.exit_status = status
        self._reset_requested = reset
        if self.current is not None:
            self.current.core.stop(Stop.MACHINE)
        self.trace.emit("machine.reset_requested" if reset else "machine.off", None)
