"""`armvisor run ...`: QEMU-like options, one-line errors, exit codes.

Exit codes: 0 the guest powered off (PSCI SYSTEM_OFF), 2 bad input,
3 the guest crashed the machine (report on stderr), 4 timeout, 130 quit by the user.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from armvisor.api import VM, Machine
from armvisor.console import HostConsole
from armvisor.console_monitor import ConsoleMonitor
from armvisor.errors import ArmvisorError, GuestError, GuestTimeout
from armvisor.hypervisor.config import load_vm_file, parse_vm_option
from armvisor.machine.config import SLICE_DEFAULT, parse_drive, parse_size, split_drives
from armvisor.machine.planted import PLANTED_BUGS
from armvisor.machine.replay import ReplayFinished
from armvisor.trace import TraceBus


def _print_version(ctx: click.Context) -> None:
    from armvisor import __version__
    click.echo(f"armvisor {__version__}, {_unicorn_build()}")
    ctx.exit()


def _unicorn_build() -> str:
    """Which Unicorn library runs the cores: armvisor's patched build or a stock one."""
    from armvisor.cpu.native import native
    patches = native().patches
    if patches is None:
        return "stock Unicorn 2.1.4 (slower: run scripts/setup to build the patched one)"
    return f"Unicorn 2.1.4 with {patches}"


class SizeType(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ArmvisorError as exc:
            self.fail(str(exc), param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _param, value: _print_version(ctx) if value else None,
              help="Show the version and which Unicorn build runs the cores.")
def cli() -> None:
    """armvisor: a multi-core ARMv8-A machine (QEMU virt board, PSCI firmware)."""


def _register_subcommands() -> None:
    from armvisor.cli_explore import explore
    from armvisor.cli_images import images
    from armvisor.cli_trace import trace_group
    cli.add_command(explore)
    cli.add_command(images)
    cli.add_command(trace_group)


_register_subcommands()


def main(argv: Optional[list] = None) -> None:
    """Entry point: option errors become one line on stderr and exit code 2."""
    try:
        status = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        _error("interrupted")
        status = 130
    except click.ClickException as exc:
        _error(exc.format_message())
        status = 2
    sys.exit(status or 0)


@cli.command()
@click.option("--kernel", "-kernel", type=click.Path(dir_okay=False),
              help="ELF, Linux arm64 Image or raw binary to boot.")
@click.option("--bios", "-bios", type=click.Path(dir_okay=False),
              help="Firmware image to run from flash0 (e.g. EDK2's QEMU_EFI.fd), as QEMU's -bios.")
@click.option("--smp", "-smp", default=1, show_default=True, type=int, help="Number of CPUs (1-64).")
@click.option("--memory", "-m", default="512M", show_default=True, type=SizeType(),
              help="RAM size, e.g. 512M or 1G.")
@click.option("--initrd", type=click.Path(dir_okay=False), help="Initial ramdisk.")
@click.option("--append", default="", help="Kernel command line (DTB /chosen/bootargs).")
@click.option("--dtb", type=click.Path(dir_okay=False), help="Use this DTB instead of the generated one.")
@click.option("--dumpdtb", type=click.Path(dir_okay=False), help="Write the generated DTB here and exit.")
@click.option("--psci-conduit", type=click.Choice(["smc", "hvc"]),
              help="How the guest calls PSCI, as its DTB says [default: smc bare, hvc in a VM "
                   "and for firmware (-bios), as QEMU's virt].")
@click.option("--cpu", "cpu_model", type=click.Choice(["cortex-a57", "max"]), default="cortex-a57",
              show_default=True, help="CPU model the guest sees.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False),
              help="Write a Chrome/Perfetto trace (JSON) of every event.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False),
              help="At the end, draw the run's timeline here (.png, .svg or .html).")
@click.option("--report", "trace_report", is_flag=True,
              help="At the end, print the trace report (bring-up, PSCI, IPIs) on stderr.")
@click.option("--symbols", "symbols", type=click.Path(dir_okay=False),
              help="ELF or System.map: PCs in crash reports as symbol+offset.")
@click.option("--quiet", "-q", "quiet", is_flag=True,
              help="No status line on stderr while the guest is silent.")
@click.option("--timeout", type=float, help="Stop with an error after this many seconds.")
@click.option("--no-reboot", is_flag=True, help="Exit on SYSTEM_RESET instead of rebooting.")
@click.option("--drive", "-drive", "drives", multiple=True,
              metavar="file=PATH[,format=raw][,if=virtio|pflash][,unit=N][,readonly=on]",
              help="A disk image on a virtio-blk device (repeatable; the first is /dev/vda), "
                   "or with if=pflash the file behind flash bank N (0 code, 1 variables).")
@click.option("--virtio-console", is_flag=True,
              help="Add a virtio-console (Linux's hvc0); its output goes to stdout.")
@click.option("--deterministic", is_flag=True,
              help="Run the generic counter on instructions, not the host clock: runs repeat exactly.")
@click.option("--virtualization", "virtualization", is_flag=True,
              help="Start the CPUs at EL2 for the guest's own hypervisor (KVM), with the GIC "
                   "virtualization interface and EL2 timers, as QEMU's virtualization=on.")
@click.option("--secure", "secure", is_flag=True,
              help="Run the -bios firmware at EL3 from the reset vector on every CPU, with the "
                   "Secure world's RAM, UART and GPIO, as QEMU's secure=on (e.g. TF-A's BL1).")
@click.option("--hyp", is_flag=True,
              help="Run the EL2 hypervisor: the guest(s) become VMs (PSCI over HVC).")
@click.option("--pcpus", type=int, help="Physical CPUs for --hyp (default: what the VMs need).")
@click.option("--vm", "vm_specs", multiple=True,
              metavar="kernel=FILE,smp=N,memory=SIZE[,initrd=F][,append=S][,drive=F][,placement=pinned|shared][,pcpus=0-3]",
              help="A VM for --hyp (repeatable).")
@click.option("--config", "vm_file", type=click.Path(dir_okay=False),
              help="A TOML file describing the VMs for --hyp.")
@click.option("--slice", "slice_budget", default=SLICE_DEFAULT, show_default=True, type=int,
              help="Instructions per scheduling slice.")
@click.option("--gdb", "-gdb", "gdb_spec", metavar="tcp::PORT|tcp:HOST:PORT|unix:PATH",
              help="Serve the GDB remote protocol there (one thread per CPU or vCPU).")
@click.option("-s", "gdb_default", is_flag=True, help="Shorthand for --gdb tcp::1234.")
@click.option("-S", "gdb_wait", is_flag=True,
              help="Wait for the debugger before the first instruction (with -s or --gdb).")
@click.option("--reverse", "reverse", is_flag=True,
              help="With --gdb/-s and --deterministic: keep a history for reverse-stepi and "
                   "reverse-continue (every instruction is counted: the guest runs slower).")
@click.option("--snapshot", "-snapshot", "disk_snapshot", is_flag=True,
              help="Keep disk writes in memory: the image files stay untouched (as QEMU's).")
@click.option("--snapshot-at", "snapshot_at", metavar="console:TEXT|event:KIND[,F=V]|insn:N",
              help="Save the whole machine when this happens, then go on (needs --snapshot-out; "
                   "implies --snapshot).")
@click.option("--snapshot-out", "snapshot_out", type=click.Path(dir_okay=False),
              help="Where --snapshot-at writes the snapshot.")
@click.option("--restore", "restore_path", type=click.Path(dir_okay=False),
              help="Go on from a snapshot instead of booting (the snapshot names the machine).")
@click.option("--record", "record_path", type=click.Path(dir_okay=False),
              help="With --deterministic: log what is typed, and when, for --replay.")
@click.option("--replay", "replay_path", type=click.Path(dir_okay=False),
              help="With --deterministic: take the console input from a --record log "
                   "(the console and the trace repeat byte for byte).")
@click.option("--plant-bug", "plant", multiple=True, hidden=True,
              type=click.Choice(sorted(PLANTED_BUGS)),
              help="Test only: remove a lock from a model (machine/planted.py).")
@click.option("--chr-testdev", "chr_testdev", is_flag=True, hidden=True,
              help="QEMU's chr-testdev behind the virtio console: the guest's '%dq' sets the "
                   "exit status (armvisor-qemu, for kvm-unit-tests' runner).")
@click.option("--schedule", "schedule_path", type=click.Path(dir_okay=False),
              help="Replay this schedule file (from `armvisor explore`; needs --deterministic).")
def run(kernel, bios, smp, memory, initrd, append, dtb, dumpdtb, psci_conduit, cpu_model, trace_path,
        timeline_path, trace_report, symbols, quiet, timeout, no_reboot, drives, virtio_console, deterministic, hyp, pcpus, vm_specs, vm_file,
        slice_budget, gdb_spec, gdb_default, gdb_wait, disk_snapshot, snapshot_at, snapshot_out,
        restore_path, record_path, replay_path, plant, schedule_path, chr_testdev,
        reverse, virtualization, secure) -> None:
    """Boot KERNEL (or firmware from flash0) on the virt board; CPUs other than 0 wait for
    PSCI CPU_ON."""
    context = click.get_current_context()
    given = {name for name in context.params
             if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    return _run(dict(locals(), given=given))


def _run(options: dict) -> int:
    from armvisor.console import QuitRequested

    writer = gate = None
    try:
        trace = TraceBus()
        if options["trace_path"] or options["timeline_path"] or options["trace_report"]:
            from armvisor.cli_trace import run_trace_path
            from armvisor.trace.chrome import ChromeTraceWriter
            from armvisor.trace.gate import TraceGate
            writer = ChromeTraceWriter(run_trace_path(options["trace_path"],
                                                      options["timeline_path"]))
            gate = TraceGate(writer.on_event)
            trace.subscribe(gate)
        status = progress = None
        if sys.stdout.isatty() and not options["quiet"]:
            from armvisor.trace.progress import BootProgress
            progress = BootProgress()
            trace.subscribe(progress.on_event)
            status = progress.text
        console = HostConsole(status=status)
        endpoint = _gdb_endpoint(options)
        _check_time_machine_options(options)
        machine = _restore(options, trace, console) if options["restore_path"] else \
            _build(options, trace, console)
        if progress is not None:
            progress.instructions = lambda: machine.instructions
        try:
            if options["dumpdtb"]:
                _write(options["dumpdtb"], _generated_dtb(machine))
                return 0
            run_machine = machine.run
            if options["schedule_path"]:
                from armvisor.cli_explore import ScheduledRun
                run_machine = ScheduledRun(machine, options)
            receiver = machine.board.uart if machine.hypervisor is None else \
                machine.hypervisor.vms[0].uart
            console.receive = receiver.receive
            console.monitor = ConsoleMonitor(machine, gate)
            if endpoint is not None:
                from armvisor.debug.gdbstub import GdbStub
                from armvisor.debug.transport import Listener
                stub = GdbStub(machine, Listener(endpoint), host=console,
                               reverse=options["reverse"])
                with console:
                    return stub.serve(wait=options["gdb_wait"], timeout=options["timeout"])
            host = _host_io(options, machine, console, receiver.receive)
            try:
                with console:
                    return _go(machine, options, host, run_machine)
            finally:
                if hasattr(host, "close"):
                    host.close()
        finally:
            machine.close()
    except ArmvisorError as exc:
        _error(str(exc))
        return exc.exit_code
    except (GuestError, GuestTimeout) as exc:
        _error(str(exc), exc.report)
        return exc.exit_code
    except ReplayFinished:
        sys.stdout.flush()
        click.echo("armvisor: the replay reached the end of the recording", err=True)
        return 0
    except QuitRequested as how:
        # What the user asked for is no error; 130 still tells a script it was cut short.
        sys.stdout.flush()
        click.echo(f"armvisor: quit ({how})", err=True)
        return 130
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    finally:
        if writer is not None:
            writer.close()
            if options["timeline_path"] or options["trace_report"]:
                from armvisor.cli_trace import after_run
                after_run(writer.path, options["timeline_path"], options["trace_report"],
                          keep=bool(options["trace_path"]))


# Options that describe the one guest: under --hyp they describe its VM, and
# with --vm/--config each VM has keys of its own instead.
_GUEST_OPTIONS = {"kernel": "--kernel", "bios": "-bios", "initrd": "--initrd", "append": "--append",
                  "dtb": "--dtb", "drives": "--drive", "virtio_console": "--virtio-console"}
_GUEST_DEFAULTS = {"smp": ("--smp", 1), "memory": ("--memory", 512 << 20),
                   "psci_conduit": ("--psci-conduit", None), "cpu_model": ("--cpu", "cortex-a57")}


# -- snapshots, record and replay ---------------------------------------------------------

# What a snapshot already says: with --restore these may only repeat it.
_SNAPSHOT_SHAPE = {"smp": "--smp", "memory": "--memory", "kernel": "--kernel",
                   "deterministic": "--deterministic"}
_NOT_WITH_RESTORE = {"bios": "-bios", "initrd": "--initrd", "append": "--append", "dtb": "--dtb",
                     "drives": "--drive", "virtio_console": "--virtio-console", "hyp": "--hyp",
                     "pcpus": "--pcpus", "vm_specs": "--vm", "vm_file": "--config",
                     "psci_conduit": "--psci-conduit", "cpu_model": "--cpu",
                     "dumpdtb": "--dumpdtb", "disk_snapshot": "--snapshot",
                     "virtualization": "--virtualization", "secure": "--secure",
                     "plant": "--plant-bug"}


def _check_time_machine_options(options: dict) -> None:
    if options["reverse"] and not (options["gdb_spec"] or options["gdb_default"]):
        raise ArmvisorError("--reverse is for the debugger: give -s or --gdb as well")
    if options["reverse"] and not options["deterministic"] and not options["restore_path"]:
        raise ArmvisorError("--reverse needs --deterministic (the past is rebuilt by replay)")
    if options["snapshot_at"] and not options["snapshot_out"]:
        raise ArmvisorError("--snapshot-at needs --snapshot-out FILE")
    if options["snapshot_out"] and not options["snapshot_at"]:
        raise ArmvisorError("--snapshot-out needs --snapshot-at (when to take it)")
    if options["record_path"] and options["replay_path"]:
        raise ArmvisorError("give either --record or --replay, not both")
    for key, flag in (("record_path", "--record"), ("replay_path", "--replay")):
        if options[key] and not options["deterministic"] and not options["restore_path"]:
            raise ArmvisorError(f"{flag} needs --deterministic (input is the only thing "
                                "that differs between deterministic runs)")
    if options["restore_path"]:
        for key, flag in _NOT_WITH_RESTORE.items():
            if key in options["given"]:
                raise ArmvisorError(f"{flag} cannot be changed on --restore: the snapshot "
                                    "describes the machine")
    if options["snapshot_at"]:
        from armvisor.api import parse_condition
        options["snapshot_condition"] = parse_condition(options["snapshot_at"])


def _restore(options: dict, trace: TraceBus, console: HostConsole) -> Machine:
    import os
    expect = {key: options[key] for key in _SNAPSHOT_SHAPE if key in options["given"]}
    if "kernel" in expect:
        expect["kernel"] = os.path.abspath(expect["kernel"])
    changes = {name: options[key] for key, name in
               (("slice_budget", "slice"), ("no_reboot", "no_reboot"), ("symbols", "symbols"))
               if key in options["given"]}
    machine = Machine.restore(options["restore_path"], console=console.write, trace=trace,
                              expect=expect, **changes)
    if (options["record_path"] or options["replay_path"]) and not machine.clock.deterministic:
        machine.close()
        raise ArmvisorError("--record and --replay need a deterministic snapshot")
    return machine


def _host_io(options: dict, machine: Machine, console: HostConsole, receiver):
    """Where the run loop gets its input: the terminal, a recorder around it, or a log."""
    from armvisor.machine.replay import Recorder, Replayer, disk_identity
    header = {"machine": machine._spec, "disks": disk_identity(
        [d.path for d in machine._drives()] + [b.path for b in machine._flash_files()]),
        "restored": options["restore_path"]}
    if options["record_path"]:
        return Recorder(console, options["record_path"], header, machine.clock.counter)
    if options["replay_path"]:
        replayer = Replayer(options["replay_path"], receiver)
        for key in ("machine", "disks", "restored"):
            if replayer.header.get(key) != header[key]:
                raise ArmvisorError(f"{options['replay_path']} was recorded on another "
                                    f"machine ({key} differ): replay it with the same options")
        return replayer
    return console


def _go(machine: Machine, options: dict, host, run_machine) -> Optional[int]:
    """Run to the end (with `run_machine`: machine.run, or under --schedule), stopping once
    on the way for --snapshot-at."""
    import time
    timeout = options["timeout"]
    condition = options.get("snapshot_condition")
    if condition is not None:
        started = time.monotonic()
        status = machine.run(until=condition, timeout=timeout, host=host)
        if status is not None:
            raise ArmvisorError(f"the guest ended (status {status}) before --snapshot-at "
                                f"{options['snapshot_at']}: no snapshot written")
        size = machine.snapshot(options["snapshot_out"])
        sys.stdout.flush()
        click.echo(f"armvisor: snapshot of {machine.instructions} instructions written to "
                   f"{options['snapshot_out']} ({size / 1e6:.1f} MB)", err=True)
        if timeout is not None:
            timeout = max(timeout - (time.monotonic() - started), 0.001)
    return run_machine(timeout=timeout, host=host)


def _build(options: dict, trace: TraceBus, console: HostConsole) -> Machine:
    """The machine the options describe; an option that does not apply is an error."""
    return Machine(**machine_arguments(options), trace=trace, console=console.write)


def machine_arguments(options: dict) -> dict:
    """armvisor.Machine's keyword arguments for `run`'s options (`explore` shares them)."""
    common = dict(deterministic=options["deterministic"], slice=options["slice_budget"],
                  no_reboot=options["no_reboot"], symbols=options["symbols"],
                  disk_snapshot=options.get("disk_snapshot") or bool(options.get("snapshot_at")),
                  plant=options.get("plant", ()))
    hyp = options["hyp"] or options["vm_specs"] or options["vm_file"]
    if hyp and options.get("virtualization"):
        from armvisor.api import VIRTUALIZATION_WITH_HYP
        raise ArmvisorError(VIRTUALIZATION_WITH_HYP)
    if hyp and options.get("secure"):
        from armvisor.api import SECURE_WITH_HYP
        raise ArmvisorError(SECURE_WITH_HYP)
    if hyp and options.get("chr_testdev"):
        raise ArmvisorError("--chr-testdev is for the bare board")
    if not hyp:
        if options["pcpus"] is not None:
            raise ArmvisorError("--pcpus needs --hyp (the physical CPUs the hypervisor runs on)")
        for text in options["drives"]:
            if "=" not in text:           # the API takes a bare path; QEMU's -drive does not
                raise ArmvisorError(f"--drive {text}: give file=PATH (QEMU's -drive syntax)")
        disks, banks = split_drives(options["drives"])
        if not options["kernel"] and not options.get("bios") and \
                not any(bank.unit == 0 for bank in banks):
            raise ArmvisorError("--kernel is required (or -bios, -drive if=pflash,unit=0, "
                                "or --hyp with --vm/--config)")
        return dict(
            kernel=options["kernel"], smp=options["smp"], memory=options["memory"],
            initrd=options["initrd"], append=options["append"], dtb=options["dtb"],
            psci_conduit=options["psci_conduit"], cpu=options["cpu_model"],
            drives=disks + banks, bios=options.get("bios"),
            virtio_console=options["virtio_console"],
            chr_testdev=options.get("chr_testdev", False),
            virtualization=options.get("virtualization", False),
            secure=options.get("secure", False), **common)
    if options.get("bios"):
        raise ArmvisorError("-bios runs firmware on the bare board, not under --hyp")
    pcpus = options["pcpus"]
    vms = [parse_vm_option(spec, i) for i, spec in enumerate(options["vm_specs"])]
    if options["vm_file"]:
        file_pcpus, file_vms = load_vm_file(options["vm_file"])
        pcpus = file_pcpus if pcpus is None else pcpus      # --pcpus 0 must not mean "unset"
        vms += file_vms
    if vms:
        for key, flag in _GUEST_OPTIONS.items():
            if options.get(key):
                raise ArmvisorError(f"{flag} describes a single guest: with --vm/--config "
                                    "give it as a key of each VM")
        for key, (flag, default) in _GUEST_DEFAULTS.items():
            if options[key] != default:
                raise ArmvisorError(f"{flag} describes a single guest: with --vm/--config "
                                    "give it as a key of each VM")
    else:
        if not options["kernel"]:
            raise ArmvisorError("--hyp needs --kernel, --vm or --config")
        # Shorthand: one VM with N vCPUs pinned on N pCPUs.
        vms = [VM(options["kernel"], smp=options["smp"], memory=options["memory"],
                  initrd=options["initrd"], append=options["append"], dtb=options["dtb"],
                  drives=[parse_drive(d) for d in options["drives"]],
                  cpu=options["cpu_model"], psci_conduit=options["psci_conduit"] or "hvc",
                  virtio_console=options["virtio_console"], name="vm0")]
    return dict(vms=vms, pcpus=pcpus, **common)


def _gdb_endpoint(options: dict):
    """Where the GDB stub listens (None: no stub), from --gdb, -s and -S."""
    from armvisor.debug.transport import DEFAULT_PORT, parse_endpoint
    spec = options["gdb_spec"]
    if spec is not None and options["gdb_default"]:
        raise ArmvisorError("give either -s or --gdb, not both")
    if options["gdb_default"]:
        spec = f"tcp::{DEFAULT_PORT}"
    if spec is None:
        if options["gdb_wait"]:
            raise ArmvisorError("-S waits for a debugger: give -s or --gdb as well")
        return None
    return parse_endpoint(spec)


def _generated_dtb(machine: Machine) -> bytes:
    if machine.hypervisor is None:
        return machine.board.generated_dtb()
    return machine.hypervisor.vms[0].dtb()


def _write(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise ArmvisorError(f"cannot write {path!r}: {exc.strerror}") from None


def _error(message: str, report: Optional[str] = None) -> None:
    sys.stdout.flush()
    click.echo(f"armvisor: error: {message}", err=True)
    if report:
        click.echo(report, err=True)


if __name__ == "__main__":
    main()
