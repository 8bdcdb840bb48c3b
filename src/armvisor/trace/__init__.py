"""The trace event bus that every model publishes to, and the tools that read traces back.

    from armvisor.trace import model, report, timeline, filter
    trace = model.load("boot.json")
    report.render_text(report.build(trace))          # what `armvisor trace report` prints
    timeline.draw(trace, "boot.png", *timeline.bring_up_window(trace))
    filter.select(model.read_records("boot.json"), cpus=["2"], names=["psci.*"])
"""

from armvisor.trace.bus import Event, TraceBus

__all__ = ["Event", "TraceBus"]
