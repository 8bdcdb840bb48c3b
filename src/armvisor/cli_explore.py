"""`armvisor explore ...`: run a guest under many schedules until one fails; and
`armvisor run --schedule FILE`, which replays what explore saved.

Exit codes: 0 a failing schedule was found (saved, shrunk, its replay
command printed), 1 the budget ran out (or the systematic search ended)
without one, 2 bad input (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Optional

import click

from armvisor.cli_errors import one_line_errors
from armvisor.errors import ArmvisorError
from armvisor.machine.config import SLICE_DEFAULT
from armvisor.machine.planted import PLANTED_BUGS
from armvisor.machine.schedule import Schedule

# Hangs found by the instruction budget spin forever in a plain run: the
# replay command bounds it.
REPLAY_TIMEOUT = 60


# -- armvisor run --schedule -------------------------------------------------------------


class ScheduledRun:
    """`machine.run` under the schedule file `options["schedule_path"]`, armed where the
    file's `start` says (loaded and checked when built: a bad file is an ArmvisorError)."""

    def __init__(self, machine, options: dict):
        if not options["deterministic"]:
            raise ArmvisorError("--schedule replays a deterministic run: add --deterministic")
        if options["gdb_spec"] or options["gdb_default"]:
            raise ArmvisorError("--schedule cannot be combined with --gdb or -s")
        path = options["schedule_path"]
        self.machine, self.schedule = machine, Schedule.load(path)
        start = self.schedule.start
        self.start = 0
        if start is not None:
            if "snapshot" in start:
                raise ArmvisorError(f"{path} starts from the snapshot {start['snapshot']}: "
                                    "replay it with the Python API (armvisor.explore.replay)")
            count = start.get("instructions")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0 or \
                    set(start) != {"instructions"}:
                raise ArmvisorError(f"{path}: 'start' must be {{\"instructions\": N}}, "
                                    f"not {start!r}")
            self.start = count
        machine.board.use_schedule(self.schedule)
        if self.schedule.watch_sync:          # the exclusives explore counted as sync points
            from armvisor.explore import exclusives
            exclusives.watch(machine)

    def __call__(self, timeout: Optional[float] = None, host=None) -> Optional[int]:
        from armvisor.api import Instructions
        if self.schedule.armed:
            return self.machine.run(timeout=timeout, host=host)
        began = time.monotonic()
        status = self.machine.run(until=Instructions(self.start), timeout=timeout, host=host)
        if status is not None:
            return status
        self.schedule.arm()
        left = None if timeout is None else max(0.001, timeout - (time.monotonic() - began))
        return self.machine.run(timeout=left, host=host)


# -- armvisor explore -------------------------------------------------------------------

# The machine options explore shares with `run`: (flag, option key, default).
MACHINE_FLAGS = [("--kernel", "kernel", None), ("--smp", "smp", 1),
                 ("--memory", "memory", 512 << 20), ("--initrd", "initrd", None),
                 ("--append", "append", ""), ("--dtb", "dtb", None),
                 ("--psci-conduit", "psci_conduit", None), ("--cpu", "cpu_model", "cortex-a57"),
                 ("--hyp", "hyp", False), ("--pcpus", "pcpus", None), ("--vm", "vm_specs", ()),
                 ("--config", "vm_file", None), ("--slice", "slice_budget", SLICE_DEFAULT),
                 ("--no-reboot", "no_reboot", False), ("--symbols", "symbols", None),
                 ("--plant-bug", "plant", ())]


def replay_command(options: dict, schedule_path: str, hang: bool = False) -> str:
    """The `armvisor run` command line that replays `schedule_path` on the same machine."""
    words = ["armvisor", "run", "--deterministic"]
    for flag, key, default in MACHINE_FLAGS:
        value = options.get(key, default)
        if value == default or value is None:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    if hang:
        words += ["--timeout", str(REPLAY_TIMEOUT)]
    words += ["--schedule", schedule_path]
    return " ".join(shlex.quote(w) for w in words)


def _size(ctx, param, value):
    from armvisor.machine.config import parse_size
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_size(value)
    except ArmvisorError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--kernel", "-kernel", type=click.Path(dir_okay=False),
              help="ELF, Linux arm64 Image or raw binary to boot.")
@click.option("--smp", default=1, show_default=True, type=int, help="Number of CPUs.")
@click.option("--memory", "-m", default="512M", show_default=True, callback=_size,
              help="RAM size.")
@click.option("--initrd", type=click.Path(dir_okay=False), help="Initial ramdisk.")
@click.option("--append", default="", help="Kernel command line.")
@click.option("--dtb", type=click.Path(dir_okay=False), help="Use this DTB.")
@click.option("--psci-conduit", type=click.Choice(["smc", "hvc"]), help="PSCI conduit.")
@click.option("--cpu", "cpu_model", type=click.Choice(["cortex-a57", "max"]), default="cortex-a57",
              show_default=True, help="CPU model the guest sees.")
@click.option("--hyp", is_flag=True, help="Run the guest(s) as VMs under the hypervisor.")
@click.option("--pcpus", type=int, help="Physical CPUs for --hyp.")
@click.option("--vm", "vm_specs", multiple=True, help="A VM for --hyp (as for `run`).")
@click.option("--config", "vm_file", type=click.Path(dir_okay=False), help="VMs for --hyp (TOML).")
@click.option("--slice", "slice_budget", default=SLICE_DEFAULT, show_default=True, type=int,
              help="Instructions per scheduling slice (the default schedule's).")
@click.option("--no-reboot", is_flag=True, help="End a run on SYSTEM_RESET.")
@click.option("--symbols", type=click.Path(dir_okay=False), help="ELF or System.map for reports.")
@click.option("--plant-bug", "plant", multiple=True, hidden=True,
              type=click.Choice(sorted(PLANTED_BUGS)),
              help="Test only: remove a lock from a model (machine/planted.py).")
@click.option("--until-console", "until_console", multiple=True, metavar="REGEX",
              help="Fail when the console prints a line matching REGEX (repeatable).")
@click.option("--until-crash", is_flag=True,
              help="Fail when the guest stops the machine (a fault, an exception loop).")
@click.option("--until-hang", is_flag=True,
              help="Fail when every CPU waits forever, or the run passes --max-instructions.")
@click.option("--until-event", metavar="'NAME field=value ...'",
              help="Fail on a trace event, e.g. 'psci.call function=CPU_ON result=SUCCESS'.")
@click.option("--count", default=1, show_default=True, type=int,
              help="With --until-event: fail on this many matching events.")
@click.option("--same", metavar="FIELD",
              help="With --until-event: the events must share this field's value (e.g. target).")
@click.option("--max-instructions", type=int,
              help="Instructions per run, all CPUs together [default: 20 x the default run's, "
                   "at least 10M].")
@click.option("--runs", default=1000, show_default=True, type=int,
              help="Runs at most (the default schedule's included).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the strategy.")
@click.option("--strategy", type=click.Choice(["random", "pct", "systematic"]), default="random",
              show_default=True, help="How runs pick their schedules.")
@click.option("--depth", default=3, show_default=True, type=int,
              help="pct: the bug depth (depth - 1 priority changes per run).")
@click.option("--preemptions", default=2, show_default=True, type=int,
              help="systematic: changes per schedule at most.")
@click.option("--sync-points", default=64, show_default=True, type=int,
              help="systematic: how many of the default run's sync points to try.")
@click.option("--start-at", default=0, show_default=True, type=int, metavar="N",
              help="Explore from instruction N on (the default schedule up to there; "
                   "runs start from a snapshot of it when one can be made).")
@click.option("--jobs", "-j", type=int, help="Local worker processes [default: the host's cores].")
@click.option("--dask", "dask_address", metavar="tcp://HOST:PORT",
              help="Run on this Dask scheduler's workers instead of local processes.")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False),
              help="Where to save the failing schedule [default: KERNEL.schedule.json here].")
@click.option("--no-shrink", is_flag=True, help="Save the failing schedule as found.")
@click.option("--shrink-runs", default=200, show_default=True, type=int,
              help="Runs shrinking may take at most.")
@click.option("--run-timeout", default=300.0, show_default=True, type=float,
              help="Host seconds per run (a safety net: runs are bounded by instructions).")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@one_line_errors
def explore(**options) -> int:
    """Run KERNEL under many schedules until one fails, shrink that schedule, save it
    and print the `armvisor run --schedule` command that replays it."""
    return _explore(options)


def _predicates(options: dict) -> list:
    from armvisor.explore import predicates as p
    found = [p.ConsoleMatch(pattern) for pattern in options["until_console"]]
    if options["until_crash"]:
        found.append(p.Crash())
    if options["until_hang"]:
        found.append(p.Hang())
    if options["until_event"]:
        found.append(p.EventCount(p.parse_event(options["until_event"]), options["count"],
                                  options["same"]))
    elif options["count"] != 1 or options["same"]:
        raise ArmvisorError("--count and --same go with --until-event")
    if not found:
        raise ArmvisorError("say what a failure is: --until-console, --until-crash, "
                            "--until-hang or --until-event")
    return found


def _explore(options: dict) -> int:
    from armvisor.cli import machine_arguments
    from armvisor.explore import executors, explorer, runner, strategies

    for key in ("runs", "slice_budget", "sync_points", "shrink_runs"):
        if options[key] < 1:
            raise ArmvisorError(f"--{key.replace('_budget', '').replace('_', '-')} must be 1 "
                                f"or more, not {options[key]}")
    if options["start_at"] < 0 or options["depth"] < 1 or options["preemptions"] < 1:
        raise ArmvisorError("--start-at must be 0 or more, --depth and --preemptions 1 or more")
    if options["jobs"] is not None and options["dask_address"]:
        raise ArmvisorError("give either --jobs or --dask, not both")
    if options["max_instructions"] is not None and options["max_instructions"] < 1:
        raise ArmvisorError("--max-instructions must be 1 or more")
    predicates = _predicates(options)
    machine = machine_arguments(dict(options, deterministic=True, drives=(),
                                     virtio_console=False))
    for path in [machine.get("kernel"), machine.get("initrd"), machine.get("dtb")]:
        if path and not os.path.isfile(path):
            raise ArmvisorError(f"cannot read {path}: no such file")
    lanes = machine.get("pcpus") or max(
        [machine.get("smp", 1)] + [vm.smp for vm in machine.get("vms") or []])
    strategy = strategies.make(options["strategy"], seed=options["seed"],
                               slice_budget=options["slice_budget"], lanes=lanes,
                               depth=options["depth"], preemptions=options["preemptions"],
                               points=options["sync_points"])
    budget = options["max_instructions"]
    target = runner.Target(machine, tuple(predicates), start=options["start_at"],
                           max_instructions=budget or runner.DEFAULT_BUDGET,
                           timeout=options["run_timeout"])
    out = options["out"] or _default_out(options)
    display = _Display(options["runs"], quiet=options["quiet"])
    try:
        with executors.make(options["jobs"], options["dask_address"]) as executor:
            display.start(f"{strategy.describe()} on {executor.describe()}")
            result = explorer.explore(target, strategy, options["runs"], executor,
                                      shrink=not options["no_shrink"],
                                      shrink_runs=options["shrink_runs"],
                                      size_budget=budget is None, progress=display.update)
    except KeyboardInterrupt:
        display.stop()
        click.echo("armvisor: explore: interrupted", err=True)
        return 130
    display.stop()
    return _report(result, options, out)


def _default_out(options: dict) -> str:
    kernel = options["kernel"]
    stem = os.path.splitext(os.path.basename(kernel))[0] if kernel else "explore"
    return f"{stem}.schedule.json"


def _report(result, options: dict, out: str) -> int:
    summary = (f"{result.runs} runs in {result.seconds:.1f} s "
               f"({result.runs / max(result.seconds, 1e-9):.1f} runs/s)")
    ends = ", ".join(f"{count} {status}" for status, count in sorted(result.statuses.items()))
    start = (f"  runs start at instruction {options['start_at']}: {result.snapshot_note}"
             if options["start_at"] else None)
    if result.found is None:
        why = "the systematic search is complete" if result.exhausted else "the budget ran out"
        click.echo(f"no failure found: {why} ({result.strategy}): {summary}: {ends}")
        if start:
            click.echo(start)
        return 1
    from armvisor.explore.predicates import Hang
    found, confirmed = result.found, result.confirmed
    hang = isinstance(result.target.predicates[confirmed.predicate], Hang)
    result.save(out, replay=replay_command(options, out, hang))
    if found.run == 0:
        click.echo(f"the default schedule fails already (run 0): {found.reason}")
    else:
        click.echo(f"found a failure at run {found.run} ({result.strategy}): {found.reason}")
    shrunk = (f"; shrunk {len(found.decisions)} decisions to {len(result.decisions)} "
              f"in {result.shrink_runs} runs" if found.decisions else "")
    click.echo(f"  {summary}, {result.failures} failing{shrunk}")
    if start:
        click.echo(start)
    if confirmed.reason != found.reason:
        click.echo(f"  the saved schedule: {confirmed.reason}")
    tail = [line for line in confirmed.console.splitlines() if line.strip()][-3:]
    for line in tail:
        click.echo(f"  | {line}")
    click.echo(f"  schedule: {out}")
    click.echo(f"  replay:   {replay_command(options, out, hang)}")
    return 0


class _Display:
    """The progress line (rich, on stderr, only on a terminal): runs done, runs per
    second, failures found."""

    def __init__(self, total: int, quiet: bool):
        self.total = total
        self.enabled = not quiet and sys.stderr.isatty()
        self.progress = self.task = None

    def start(self, what: str) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        self.progress = Progress(
            TextColumn("[bold]explore[/] {task.description}"), BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TextColumn("{task.fields[rate]:.1f} runs/s"),
            TextColumn("[red]{task.fields[failures]} failing[/]"),
            TextColumn("{task.fields[shrink]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(what, total=self.total, rate=0.0, failures=0,
                                           shrink="")
        self.progress.start()

    def update(self, result) -> None:
        if self.progress is None:
            return
        shrink = f"shrinking: {result.shrink_runs} runs" if result.shrink_runs else ""
        self.progress.update(self.task, completed=result.runs, rate=result.rate,
                             failures=result.failures, shrink=shrink)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
