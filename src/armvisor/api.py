"""armvisor's Python API: build a machine (bare or with the hypervisor), run it
until something happens, look at it and change it, step one CPU.

    import armvisor
    m = armvisor.Machine(kernel="guests/build/smp_demo.elf", smp=4)
    m.run(until=armvisor.Event("psci.call", function="CPU_ON"), timeout=30)
    print(m.cpus[0].regs.pc, m.cpus[1].power_state)
    m.run(timeout=30)                       # on to SYSTEM_OFF: returns 0

The command line (`armvisor run`) is a caller of this module. A machine runs
in the calling thread; `run` returns when the guest powers off (its exit
status), when the `until` condition holds (None), or raises GuestTimeout,
GuestError (the guest stopped the machine) or ArmvisorError (bad input).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

from unicorn import arm64_const as A

from armvisor.cpu import stepping
from armvisor.cpu.core import Core, Stop
from armvisor.cpu.sysregs import SysReg
from armvisor.errors import ArmvisorError
from armvisor.errors import GuestError
from armvisor.hypervisor.config import VmConfig, validate
from armvisor.machine.config import (SLICE_DEFAULT, DriveSpec, MachineConfig, PflashSpec,
                                     parse_drive, parse_size, split_drives)
from armvisor.machine.planted import check_planted
from armvisor.machine.runloop import HostIO
from armvisor.trace import TraceBus
from armvisor.trace.bus import Event as TraceEvent

Size = Union[int, str]


def _size(value: Size) -> int:
    return parse_size(value) if isinstance(value, str) else int(value)


def _drive(value: Union[str, DriveSpec]) -> DriveSpec:
    if isinstance(value, DriveSpec):
        return value
    return parse_drive(value) if "=" in value else DriveSpec(value)


# -- what to build ---------------------------------------------------------------------------


@dataclass
class VM:
    """One VM for the hypervisor: the same keys as `--vm` and the TOML file."""

    kernel: str
    smp: int = 1
    memory: Size = "512M"
    initrd: Optional[str] = None
    append: str = ""
    drives: Sequence[Union[str, DriveSpec]] = ()
    placement: str = "pinned"
    pcpus: Optional[Sequence[int]] = None
    name: Optional[str] = None
    cpu: str = "cortex-a57"
    psci_conduit: str = "hvc"
    dtb: Optional[str] = None
    virtio_console: bool = False

    def config(self, index: int) -> VmConfig:
        drives = [_drive(d) for d in self.drives]
        return VmConfig(
            name=self.name or f"vm{index}", kernel=self.kernel, smp=self.smp,
            memory=_size(self.memory), initrd=self.initrd, append=self.append,
            drives=tuple(d.path for d in drives), placement=self.placement,
            pcpus=tuple(self.pcpus) if self.pcpus is not None else None, cpu=self.cpu,
            psci_conduit=self.psci_conduit, dtb=self.dtb, virtio_console=self.virtio_console,
            readonly_drives=tuple(d.path for d in drives if d.read_only))


# -- stop conditions -----------------------------------------------------------------------


class Condition:
    """Something `Machine.run(until=...)` waits for; combine with `|`."""

    def attach(self, machine: "Machine") -> None:
        """Called when a run starts."""

    def detach(self) -> None:
        """Called when the run ends."""

    def clip(self, lane: int, budget: int) -> int:
        return budget

    def met(self) -> bool:
        raise NotImplementedError

    def breakpoint_hit(self, cpu: int, address: int) -> None:
        """CPU `cpu` stopped on a code breakpoint at `address` (any condition's)."""

    def __or__(self, other: "Condition") -> "Condition":
        return AnyOf([self, other])


class AnyOf(Condition):
    def __init__(self, conditions: List[Condition]):
        self.conditions = []
        for condition in conditions:
            self.conditions += condition.conditions if isinstance(condition, AnyOf) else [condition]

    def attach(self, machine):
        for c in self.conditions:
            c.attach(machine)

    def detach(self):
        for c in self.conditions:
            c.detach()

    def clip(self, lane, budget):
        for c in self.conditions:
            budget = c.clip(lane, budget)
        return budget

    def met(self):
        return any(c.met() for c in self.conditions)

    def __repr__(self):
        return " | ".join(repr(c) for c in self.conditions)


class Console(Condition):
    """The console has printed `text` since the run started (checked after each slice)."""

    def __init__(self, text: Union[str, bytes]):
        self.text = text.encode() if isinstance(text, str) else text
        self._log: Optional["ConsoleLog"] = None
        self._start = 0

    def attach(self, machine):
        self._log = machine.console
        self._start = max(0, len(machine.console.output) - len(self.text) + 1)

    def met(self):
        return self._log is not None and self._log.output.find(self.text, self._start) >= 0

    def __repr__(self):
        return f"Console({self.text!r})"


class Event(Condition):
    """A trace event named `name` whose fields include `fields` (e.g. function="CPU_ON").

    The running slice ends at once, so the machine stops right after the event.
    """

    def __init__(self, name: str, **fields):
        self.name, self.fields = name, fields
        self.seen: Optional[TraceEvent] = None
        self._machine: Optional["Machine"] = None

    def attach(self, machine):
        self.seen = None
        self._machine = machine
        machine._event_watchers.append(self._on_event)

    def detach(self):
        if self._machine is not None:
            self._machine._event_watchers.remove(self._on_event)
            self._machine = None

    def _on_event(self, event: TraceEvent) -> None:
        if self.seen is None and event.kind == self.name and all(
                event.fields.get(k) == v for k, v in self.fields.items()):
            self.seen = event
            self._machine._interrupt_slice()

    def met(self):
        return self.seen is not None

    def __repr__(self):
        return f"Event({self.name!r}, {self.fields})"


class Pc(Condition):
    """A CPU is about to execute the instruction at `address` (any CPU, or `cpu`)."""

    def __init__(self, address: int, cpu: Optional[int] = None):
        self.address, self.cpu = address, cpu
        self.hit: Optional[int] = None            # the CPU that reached it

    def attach(self, machine):
        self.hit = None
        cpus = machine.cpus if self.cpu is None else [machine.cpus[self.cpu]]
        self._points = [(cpu, cpu._breakpoints()) for cpu in cpus]
        for cpu, points in self._points:
            points.add(self.address)

    def detach(self):
        for cpu, points in self._points:
            points.remove(self.address)
            if self.hit == cpu.index:
                points.resume_from(self.address)

    def breakpoint_hit(self, cpu, address):
        if address == self.address and self.cpu in (None, cpu) and self.hit is None:
            self.hit = cpu

    def met(self):
        return self.hit is not None

    def __repr__(self):
        return f"Pc({self.address:#x})"


class Instructions(Condition):
    """The machine has run `count` more instructions (all CPUs together), at the next
    slice boundary at or after that count."""

    def __init__(self, count: int):
        self.count = count
        self._machine: Optional["Machine"] = None

    def attach(self, machine):
        self._machine = machine
        self._target = machine.instructions + self.count

    def clip(self, lane, budget):
        return max(1, min(budget, self._target - self._machine.instructions))

    def met(self):
        return self._machine.instructions >= self._target

    def __repr__(self):
        return f"Instructions({self.count})"


def parse_condition(text: str) -> Condition:
    """A condition written on a command line:

        console:TEXT                  the console printed TEXT
        event:KIND[,FIELD=VALUE...]   a trace event (VALUE: a number or a word)
        insn:N                        N more instructions, all CPUs together

    Conditions joined by `|` hold when any does: `console:login:|insn:10000000`.
    """
    parts = [_parse_one(part) for part in text.split("|")] if text else []
    if not parts:
        raise ArmvisorError("an empty condition (console:TEXT, event:KIND[,F=V] or insn:N)")
    return parts[0] if len(parts) == 1 else AnyOf(parts)


def _parse_one(text: str) -> Condition:
    kind, colon, rest = text.partition(":")
    if not colon or not rest:
        raise ArmvisorError(f"condition {text!r}: use console:TEXT, event:KIND[,F=V] or insn:N")
    if kind == "console":
        return Console(rest)
    if kind == "event":
        name, *pairs = rest.split(",")
        fields = {}
        for pair in pairs:
            key, equals, value = pair.partition("=")
            if not equals or not key:
                raise ArmvisorError(f"condition {text!r}: {pair!r} is not FIELD=VALUE")
            fields[key] = _field_value(value)
        return Event(name, **fields)
    if kind in ("insn", "instructions"):
        try:
            count = int(rest, 0)
        except ValueError:
            count = -1
        if count < 1:
            raise ArmvisorError(f"condition {text!r}: the count must be a positive integer")
        return Instructions(count)
    raise ArmvisorError(f"condition {text!r}: unknown kind {kind!r} (console, event or insn)")


def _field_value(text: str):
    try:
        return int(text, 0)
    except ValueError:
        return {"true": True, "false": False}.get(text, text)


# -- what to look at -----------------------------------------------------------------------


class ConsoleLog:
    """Everything the guest printed on its console(s), and where else it goes."""

    def __init__(self, echo: Optional[Callable[[bytes], None]] = None):
        self.output = bytearray()
        self._echo = echo
        self.muted = False          # a debugger replaying the past: it was printed already

    def write(self, data: bytes) -> None:
        if self.muted:
            return
        self.output += data
        if self._echo is not None:
            self._echo(data)

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


class TraceLog:
    """The machine's trace events, kept in memory when `keep_trace` is set."""

    def __init__(self, bus: TraceBus, keep: bool):
        self.bus = bus
        self._events: List[TraceEvent] = []
        if keep:
            bus.subscribe(self._events.append)

    def events(self, name: Optional[str] = None, **fields) -> List[TraceEvent]:
        return [e for e in self._events if (name is None or e.kind == name)
                and all(e.fields.get(k) == v for k, v in fields.items())]

    def subscribe(self, callback: Callable[[TraceEvent], None]) -> None:
        self.bus.subscribe(callback)


class Registers:
    """A CPU's registers: `pc`, `sp`, `pstate`, `x[0..30]` (read and write), `sysreg(...)`."""

    def __init__(self, core: Core):
        self._core = core
        self.x = _Gprs(core)

    @property
    def pc(self) -> int:
        core = self._core
        return core._next_pc if core._next_pc is not None else core.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self._core.set_pc(value)
        self._core._next_pc = value

    @property
    def sp(self) -> int:
        return self._core.read_reg(A.UC_ARM64_REG_SP)

    @sp.setter
    def sp(self, value: int) -> None:
        self._core.write_reg(A.UC_ARM64_REG_SP, value)

    @property
    def pstate(self) -> int:
        return self._core.pstate

    def sysreg(self, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
        return self._core.read_sysreg(SysReg(op0, op1, crn, crm, op2))


class _Gprs:
    def __init__(self, core: Core):
        self._core = core

    def __getitem__(self, n: int) -> int:
        if not 0 <= n <= 30:
            raise IndexError("x0..x30")
        return self._core.read_x(n)

    def __setitem__(self, n: int, value: int) -> None:
        if not 0 <= n <= 30:
            raise IndexError("x0..x30")
        self._core.write_x(n, value)

    def __len__(self) -> int:
        return 31

    def __iter__(self):
        return (self[n] for n in range(31))


class Memory:
    """Guest physical memory (RAM) of the board or of one VM."""

    def __init__(self, ram, cores: Callable[[], List[Core]]):
        self._ram = ram
        self._cores = cores

    def read(self, address: int, size: int) -> bytes:
        if not self._ram.contains(address, size):
            raise ArmvisorError(f"{size} bytes at {address:#x} are not in RAM")
        return self._ram.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        self._ram.write(address, bytes(data))
        for core in self._cores():        # the bytes may be code some core has translated
            core.flush_code()


class Cpu:
    """One guest CPU (a bare board's CPU, or a VM's vCPU)."""

    def __init__(self, machine: "Machine", index: int, name: str, core: Core,
                 power: Callable[[], str], runnable: Callable[[], bool]):
        self._machine = machine
        self.index = index
        self.name = name
        self.core = core
        self.regs = Registers(core)
        self._power = power
        self._runnable = runnable
        self._points: Optional[stepping.Breakpoints] = None

    @property
    def el(self) -> int:
        return self.core.el

    @property
    def power_state(self) -> str:
        """The PSCI state armvisor's EL3 firmware keeps for this CPU ("ON", "OFF", ...);
        "FIRMWARE" with --secure, where the guest's own firmware keeps it."""
        return self._power()

    @property
    def runnable(self) -> bool:
        """Powered on and not waiting (WFI, suspend): a step or a slice would run its code."""
        return self._runnable()

    def read_virtual(self, va: int, size: int) -> bytes:
        """Memory through this CPU's current translation (its MMU, as the guest sees it)."""
        data = self.core.read_virtual(va, size)
        if data is None:
            raise ArmvisorError(f"{va:#x} does not translate on {self.name}")
        return data

    def translate(self, va: int) -> Optional[int]:
        return self.core.translate(va)

    def _breakpoints(self) -> stepping.Breakpoints:
        if self._points is None:
            self._points = stepping.Breakpoints(self.core, self._machine._breakpoint_hit)
        return self._points

    def __repr__(self):
        return f"<Cpu {self.name} el={self.el} pc={self.regs.pc:#x} {self.power_state}>"


# -- the machine ----------------------------------------------------------------------------


# --virtualization gives EL2 to the guest; --hyp puts armvisor's own hypervisor there.
VIRTUALIZATION_WITH_HYP = ("--virtualization gives EL2 to the guest's own hypervisor; --hyp "
                           "runs armvisor's there: choose one")


# A CPU's power state under --secure: the guest's firmware keeps it, not armvisor.
GUEST_FIRMWARE_POWER = "FIRMWARE"
# --secure gives EL3 to the guest's firmware; --hyp needs armvisor's EL3 under its EL2.
SECURE_WITH_HYP = ("--secure runs the guest's own firmware at EL3; --hyp runs armvisor's "
                   "hypervisor on armvisor's EL3: choose one")


class Machine:
    """A virt board running `kernel` on `smp` CPUs, or, with `vms`, the hypervisor."""

    def __init__(self, kernel: Optional[str] = None, *, smp: int = 1, memory: Size = "512M",
                 initrd: Optional[str] = None, append: str = "", dtb: Optional[str] = None,
                 psci_conduit: Optional[str] = None, cpu: str = "cortex-a57",
                 drives: Sequence[Union[str, DriveSpec, PflashSpec]] = (),
                 virtio_console: bool = False,
                 deterministic: bool = False, slice: int = SLICE_DEFAULT,
                 no_reboot: bool = False, vms: Optional[Sequence[Union[VM, VmConfig]]] = None,
                 pcpus: Optional[int] = None, trace: Optional[TraceBus] = None,
                 console: Optional[Callable[[bytes], None]] = None, keep_trace: bool = True,
                 symbols: Optional[str] = None, disk_snapshot: bool = False,
                 plant: Sequence[str] = (), bios: Optional[str] = None,
                 chr_testdev: bool = False, virtualization: bool = False,
                 secure: bool = False):
        self._spec = _spec(locals())
        self.console = ConsoleLog(console)
        bus = trace or TraceBus()
        self.trace = TraceLog(bus, keep_trace)
        self._event_watchers: List[Callable[[TraceEvent], None]] = []
        bus.subscribe(self._on_event)
        self._condition: Optional[Condition] = None
        if vms is None:
            if pcpus is not None:
                raise ArmvisorError("pcpus is for the hypervisor (give vms)")
            disks, banks = split_drives(drives)
            if not kernel and not bios and not any(bank.unit == 0 for bank in banks):
                raise ArmvisorError("a kernel is required (or bios, a pflash unit 0, or vms "
                                    "for the hypervisor)")
            from armvisor.machine.board import BareBoard
            config = MachineConfig(
                kernel=kernel, smp=smp, memory=_size(memory), initrd=initrd, append=append,
                dtb=dtb, psci_conduit=psci_conduit, cpu=cpu, slice_budget=slice,
                no_reboot=no_reboot, drives=disks, pflash=banks,
                virtio_console=virtio_console, deterministic=deterministic,
                disk_snapshot=disk_snapshot, plant=check_planted(plant), bios=bios,
                chr_testdev=chr_testdev, virtualization=virtualization, secure=secure)
            self.board = BareBoard(config, trace=bus, console=self.console.write)
            self.hypervisor = None
            self.cpus = [Cpu(self, lane.index, f"cpu{lane.index}", lane.core,
                             self._bare_power(lane), self._bare_runnable(lane))
                         for lane in self.board.lanes]
            self.memory = Memory(self.board.ram, lambda: [c.core for c in self.cpus])
            self.vms: List[_VmView] = []
        else:
            if kernel is not None:
                raise ArmvisorError("give either kernel (bare) or vms (hypervisor), not both")
            if chr_testdev:
                raise ArmvisorError("chr_testdev is the bare board's (QEMU's -chardev testdev)")
            if bios is not None:
                raise ArmvisorError("bios runs firmware on the bare board, not with vms")
            if virtualization:
                raise ArmvisorError(VIRTUALIZATION_WITH_HYP)
            if secure:
                raise ArmvisorError(SECURE_WITH_HYP)
            from armvisor.hypervisor.hyp import Hypervisor
            configs = [vm.config(i) if isinstance(vm, VM) else vm for i, vm in enumerate(vms)]
            if not configs:
                raise ArmvisorError("vms is empty")
            if pcpus is None:
                pcpus = max(max(c.smp for c in configs),
                            max((max(c.pcpus) + 1 for c in configs if c.pcpus), default=1))
            validate(configs, pcpus)
            self.hypervisor = Hypervisor(pcpus, configs, bus, self.console.write,
                                         slice_budget=slice, deterministic=deterministic,
                                         no_reboot=no_reboot, disk_snapshot=disk_snapshot,
                                         plant=check_planted(plant))
            self.board = self.hypervisor
            self.vms = [_VmView(self, vm) for vm in self.hypervisor.vms]
            self.cpus = [cpu for view in self.vms for cpu in view.cpus]
            self.memory = self.vms[0].memory
        if symbols:
            self._use_symbols(symbols)
        self.clock = self.board.clock

    def _use_symbols(self, path: str) -> None:
        """An ELF or System.map naming the guest's addresses in reports (a Linux Image
        has none of its own); under the hypervisor, for each VM whose kernel has none."""
        from armvisor.machine.symbols import KernelSymbols
        given = KernelSymbols(None, path)
        if self.hypervisor is None:
            self.board.symbols = given
            return
        for vm in self.hypervisor.vms:
            if not len(vm.symbols.table):
                vm.symbols = given

    def symbols(self, vm: Optional[str] = None):
        """The SymbolTable naming guest addresses: the kernel's ELF symbols or --symbols;
        under the hypervisor, VM `vm`'s (by name)."""
        if self.hypervisor is None:
            return self.board.symbols.table
        return self.hypervisor.symbols_of(vm)

    def symbols_of(self, cpu: "Cpu"):
        """The SymbolTable for the code `cpu` runs (its VM's under the hypervisor)."""
        vm, slash, _ = cpu.name.rpartition("/")
        return self.symbols(vm if slash else None)

    # -- running ------------------------------------------------------------------------

    def run(self, until: Optional[Condition] = None, timeout: Optional[float] = None,
            host: Optional[HostIO] = None) -> Optional[int]:
        """Run until the guest powers off (its exit status) or `until` holds (None)."""
        self._condition = until
        if until is not None:
            until.attach(self)
        try:
            return self.board.run(timeout=timeout, host=host, until=until)
        finally:
            if until is not None:
                until.detach()
            self._condition = None

    def boot(self) -> None:
        """Put the machine at its first instruction without running it (a debugger's -S)."""
        self._boot()

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self, path: str) -> int:
        """Save the whole machine to `path` (between runs); returns the file's size.

        A machine with a writable disk or flash file must use
        `disk_snapshot=True` (QEMU's -snapshot): its writes stay in memory and
        go into the snapshot, so the file is still the one the snapshot
        continues from.
        """
        from armvisor.machine import snapshot
        writable = [f"the disk {d.path}" for d in self._drives() if not d.read_only] + \
            [f"the flash file {b.path}" for b in self._flash_files() if not b.read_only]
        if writable and not self._spec["disk_snapshot"]:
            raise ArmvisorError(f"a snapshot needs {writable[0]} in snapshot mode "
                                "(--snapshot, disk_snapshot=True), or read-only")
        self._boot()
        state = {"board": self.board.save_state(), "clock": self.clock.save_state(),
                 "loop": self.board.loop.save_state()}
        header = {"mode": "bare" if self.hypervisor is None else "hyp", "spec": self._spec,
                  "instructions": self.instructions, "counter": self.clock.counter()}
        return snapshot.write(path, header, state)

    @classmethod
    def restore(cls, path: str, *, console: Optional[Callable[[bytes], None]] = None,
                trace: Optional[TraceBus] = None, keep_trace: bool = True,
                expect: Optional[dict] = None, **changes) -> "Machine":
        """A machine that goes on from snapshot `path` (a deterministic one exactly as the
        original did).

        `expect` lists build arguments the caller asked for (smp, memory, ...):
        a snapshot of another shape is refused. `changes` replaces arguments
        that do not change the machine's state (slice, no_reboot, symbols).
        """
        from armvisor.machine import snapshot
        header, state = snapshot.read(path)
        spec = header.get("spec")
        if not isinstance(spec, dict):
            raise ArmvisorError(f"{path}: corrupt snapshot (no machine description)")
        for key, value in (expect or {}).items():
            if key in spec and _normal(key, value) != spec[key]:
                raise ArmvisorError(f"{path} is a snapshot of a machine with {key}="
                                    f"{_shown(key, spec[key])}, not {_shown(key, value)}")
        unknown = set(changes) - {"slice", "no_reboot", "symbols"}
        if unknown:
            raise ArmvisorError(f"cannot change {', '.join(sorted(unknown))} of a snapshot")
        arguments = _arguments(dict(spec, **changes))
        machine = cls(**arguments, console=console, trace=trace, keep_trace=keep_trace)
        try:
            machine.board.restore_state(state["board"])
            machine.clock.restore_state(state["clock"])
            machine.board.loop.restore_state(state["loop"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            machine.close()
            raise ArmvisorError(f"{path}: the snapshot does not fit this machine ({exc})") from None
        return machine

    def _flash_files(self) -> List[PflashSpec]:
        return [] if self.hypervisor is not None else list(self.board.config.pflash)

    def _drives(self) -> List[DriveSpec]:
        if self.hypervisor is None:
            return list(self.board.config.drives)
        return [DriveSpec(path, path in vm.config.readonly_drives)
                for vm in self.hypervisor.vms for path in vm.config.drives]

    def step(self, cpu: int = 0, instructions: int = 1) -> None:
        """Run exactly `instructions` instructions on one CPU; the others stay stopped."""
        self._boot()
        target = self.cpus[cpu]
        self.clock.enter(target.core)
        try:
            reason = stepping.step(target.core, instructions)
        finally:
            self.clock.leave(target.core)
        if reason is Stop.FAULT or (reason is Stop.MACHINE and target.core.error is not None):
            error, target.core.error = target.core.error, None
            raise GuestError(f"{target.name}: {error}", self.board.report())

    @property
    def instructions(self) -> int:
        """Instructions run so far, all CPUs together."""
        return sum(cpu.core.executed for cpu in self.cpus)

    def close(self) -> None:
        self.board.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _boot(self) -> None:
        if self.hypervisor is None:
            if not self.board.boots:
                self.board.boot()
        elif not self.hypervisor.booted:
            self.hypervisor.boot()

    def _bare_power(self, lane) -> Callable[[], str]:
        if self.board.config.secure:
            return lambda: GUEST_FIRMWARE_POWER
        return lambda: self.board.firmware.state_of(lane.index).name

    @staticmethod
    def _bare_runnable(lane) -> Callable[[], bool]:
        from armvisor.machine.lanes import LaneState
        return lambda: lane.state is LaneState.RUNNING

    def _on_event(self, event: TraceEvent) -> None:
        for watcher in list(self._event_watchers):
            watcher(event)

    def _interrupt_slice(self) -> None:
        """End the running slice at the next safe point (a condition was met)."""
        running = self.clock.running
        if running is not None:
            running.shorten_slice(0)

    def _breakpoint_hit(self, core: Core, address: int) -> None:
        condition = self._condition
        targets = condition.conditions if isinstance(condition, AnyOf) else [condition]
        if condition is None:
            return                      # a step ran onto a breakpoint: nobody waits for it
        index = next(c.index for c in self.cpus if c.core is core)
        for target in targets:
            target.breakpoint_hit(index, address)


def _spec(arguments: dict) -> dict:
    """Machine's build arguments as plain data (a snapshot's header), paths made absolute."""
    def path(value):
        return None if value is None else os.path.abspath(value)

    vms = arguments["vms"]
    configs = None
    if vms is not None:
        configs = []
        for i, vm in enumerate(vms):
            config = vm.config(i) if isinstance(vm, VM) else vm
            data = dataclasses.asdict(config)
            for key in ("kernel", "initrd", "dtb"):
                data[key] = path(data[key])
            data["drives"] = [path(d) for d in data["drives"]]
            data["readonly_drives"] = [path(d) for d in data["readonly_drives"]]
            data["pcpus"] = None if data["pcpus"] is None else list(data["pcpus"])
            configs.append(data)
    drives, banks = split_drives(arguments["drives"])
    return {
        "kernel": path(arguments["kernel"]), "smp": arguments["smp"],
        "memory": _size(arguments["memory"]), "initrd": path(arguments["initrd"]),
        "append": arguments["append"], "dtb": path(arguments["dtb"]),
        "psci_conduit": arguments["psci_conduit"], "cpu": arguments["cpu"],
        "drives": [[path(d.path), d.read_only] for d in drives],
        "virtio_console": arguments["virtio_console"],
        "deterministic": arguments["deterministic"], "slice": arguments["slice"],
        "no_reboot": arguments["no_reboot"], "vms": configs, "pcpus": arguments["pcpus"],
        "symbols": path(arguments["symbols"]), "disk_snapshot": arguments["disk_snapshot"],
        "plant": list(arguments["plant"]), "bios": path(arguments["bios"]),
        "pflash": [[path(b.path), b.unit, b.read_only] for b in banks],
        "chr_testdev": arguments["chr_testdev"],
        **({"virtualization": True} if arguments.get("virtualization") else {}),
        **({"secure": True} if arguments.get("secure") else {}),
    }


def _arguments(spec: dict) -> dict:
    """The inverse of _spec: Machine's keyword arguments."""
    arguments = dict(spec)
    arguments["drives"] = [DriveSpec(p, bool(ro)) for p, ro in spec["drives"]] + \
        [PflashSpec(p, unit, bool(ro)) for p, unit, ro in arguments.pop("pflash", [])]
    if spec["vms"] is not None:
        arguments["vms"] = [VmConfig(**dict(
            vm, drives=tuple(vm["drives"]), readonly_drives=tuple(vm["readonly_drives"]),
            pcpus=None if vm["pcpus"] is None else tuple(vm["pcpus"]))) for vm in spec["vms"]]
    return arguments


def _normal(key: str, value):
    return _size(value) if key == "memory" else value


def _shown(key: str, value) -> str:
    from armvisor.machine.config import format_size
    return format_size(value) if key == "memory" and isinstance(value, int) else repr(value)


class _VmView:
    """One VM as the API shows it: name, vCPUs, memory, console."""

    def __init__(self, machine: Machine, vm):
        self.name = vm.name
        self._vm = vm
        base = sum(len(v.vcpus) for v in machine.hypervisor.vms[:vm.index])
        from armvisor.hypervisor.vcpu import VcpuState
        self.cpus = [Cpu(machine, base + vcpu.index, vcpu.name, vcpu.core,
                         lambda vcpu=vcpu: vcpu.state.value.upper(),
                         lambda vcpu=vcpu: vcpu.state is VcpuState.RUNNABLE)
                     for vcpu in vm.vcpus]
        self.memory = Memory(vm.ram, lambda: [v.core for v in vm.vcpus])

    def __repr__(self):
        return f"<VM {self.name} vcpus={len(self.cpus)}>"


__all__ = ["Machine", "VM", "Cpu", "Memory", "Condition", "Console", "Event", "Pc",
           "Instructions", "ConsoleLog", "TraceLog"]
