"""sort_stop: every way a slice ends becomes one SliceEnd, the same for both modes."""

import pytest

from armvisor.cpu.host import SliceEnd, Stop, sort_stop


@pytest.mark.parametrize("reason,error,end", [
    (Stop.BUDGET, None, SliceEnd.GO_ON),
    (Stop.POWER, None, SliceEnd.GO_ON),
    (Stop.MACHINE, None, SliceEnd.GO_ON),            # system off/reset, a condition, a breakpoint
    (Stop.WFI, None, SliceEnd.WAIT),
    (Stop.FAULT, RuntimeError("write protect"), SliceEnd.REFUSED),
    (Stop.MACHINE, RuntimeError("exception loop"), SliceEnd.FAILED),
])
def test_each_stop_has_one_meaning(reason, error, end):
    assert sort_stop(reason, error) is end
