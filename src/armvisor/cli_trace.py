"""`armvisor trace ...`: read a trace written by `armvisor run --trace`.

    armvisor trace report TRACE [--json]
    armvisor trace filter TRACE [--cpu N|VM/N ...] [--name GLOB ...] [--from S] [--to S] -o OUT
    armvisor trace timeline TRACE -o OUT.png|.svg|.html [--from S] [--to S] [--bring-up]

Errors become click exceptions: `main()` prints them on one line, exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Optional

import click

from armvisor.cli_errors import one_line_errors
from armvisor.errors import ArmvisorError

TRACE_PATH = click.Path(dir_okay=False)


@click.group("trace")
def trace_group() -> None:
    """Report on, cut down or draw a trace written by `armvisor run --trace`."""


def print_report(path: str, as_json: bool = False, symbols: Optional[str] = None) -> None:
    """The report of the trace at `path`, as JSON, rich tables on a terminal, or text."""
    from armvisor.trace import model, report
    data = report.build(model.load(path), symbols)
    if as_json:
        click.echo(json.dumps(data, indent=1))
    elif sys.stdout.isatty():
        report.render_rich(data)
    else:
        click.echo(report.render_text(data), nl=False)


def write_timeline(path: str, out: str, start: Optional[float] = None,
                   end: Optional[float] = None, bring_up: bool = False) -> dict:
    from armvisor.trace import model, timeline
    trace = model.load(path)
    if bring_up and (start is not None or end is not None):
        raise ArmvisorError("give either --bring-up or --from/--to")
    if bring_up:
        lo, hi = timeline.bring_up_window(trace)
    else:
        lo = None if start is None else start * 1e6
        hi = None if end is None else end * 1e6
        if lo is not None and hi is not None and lo >= hi:
            raise ArmvisorError("--from must be before --to")
    return timeline.draw(trace, out, lo, hi)


@trace_group.command("report")
@click.argument("trace", type=TRACE_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--symbols", type=click.Path(dir_okay=False),
              help="ELF or System.map naming PCs (default: the traced kernel, if an ELF).")
@one_line_errors
def report_command(trace: str, as_json: bool, symbols: Optional[str]) -> None:
    """Bring-up per CPU, PSCI calls, the IPI matrix, interrupts, exits, time per CPU."""
    print_report(trace, as_json, symbols)


@trace_group.command("filter")
@click.argument("trace", type=TRACE_PATH)
@click.option("--cpu", "cpus", multiple=True, metavar="N|VM/N",
              help="Keep this CPU (pCPU) or VM/vCPU (repeatable).")
@click.option("--name", "names", multiple=True, metavar="GLOB",
              help="Keep events whose name matches, e.g. 'psci.*' (repeatable).")
@click.option("--from", "start", type=float, help="From this trace time (s).")
@click.option("--to", "end", type=float, help="Up to this trace time (s).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the smaller trace.")
@one_line_errors
def filter_command(trace, cpus, names, start, end, output) -> None:
    """Write the part of TRACE the options select, as a valid trace."""
    from armvisor.trace import filter as trace_filter
    from armvisor.trace.model import read_records
    kept = trace_filter.select(read_records(trace), cpus, names, start, end)
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(kept, handle, separators=(",", ":"))
        handle.write("\n")
    click.echo(f"{len([r for r in kept if r.get('ph') != 'M'])} events -> {output}", err=True)


@trace_group.command("timeline")
@click.argument("trace", type=TRACE_PATH)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture: .png, .svg or .html (zoom and hover, no network).")
@click.option("--from", "start", type=float, help="From this trace time (s).")
@click.option("--to", "end", type=float, help="Up to this trace time (s).")
@click.option("--bring-up", is_flag=True, help="From the first CPU_ON to the last CPU online.")
@one_line_errors
def timeline_command(trace, output, start, end, bring_up) -> None:
    """Draw TRACE: a lane per CPU, power states, PSCI calls, CPU_ON and SGI arrows."""
    counts = write_timeline(trace, output, start, end, bring_up)
    click.echo(f"{counts['lanes']} lanes, {counts['cpu_on_arrows']} CPU_ON and "
               f"{counts['sgi_arrows']} SGI arrows -> {output}", err=True)


# -- the shortcuts at the end of `armvisor run` (--timeline, --report) -------------------

def run_trace_path(trace_path: Optional[str], timeline_path: Optional[str]) -> str:
    """Where `run` writes its trace: --trace, or a temporary file for the shortcuts.
    A timeline name that cannot be drawn is refused now, before the guest runs."""
    if timeline_path is not None:
        from armvisor.trace.timeline import FORMATS
        if os.path.splitext(timeline_path)[1].lower() not in FORMATS:
            raise ArmvisorError(f"--timeline {timeline_path!r}: give a .png, .svg or .html name")
    if trace_path:
        return trace_path
    handle, path = tempfile.mkstemp(prefix="armvisor-", suffix=".json")
    os.close(handle)
    return path


def after_run(trace_path: str, timeline_path: Optional[str], report: bool, keep: bool) -> None:
    """Draw and/or report the trace of the run that just ended (on stderr: stdout is the
    guest's console); a problem here is one line, and the run's exit code stands."""
    try:
        if timeline_path:
            counts = write_timeline(trace_path, timeline_path)
            click.echo(f"armvisor: timeline ({counts['lanes']} lanes) -> {timeline_path}",
                       err=True)
        if report:
            from armvisor.trace import model
            from armvisor.trace import report as trace_report
            text = trace_report.render_text(trace_report.build(model.load(trace_path)))
            click.echo(text, err=True, nl=False)
    except ArmvisorError as exc:
        click.echo(f"armvisor: error: {exc}", err=True)
    finally:
        if not keep:
            os.unlink(trace_path)
