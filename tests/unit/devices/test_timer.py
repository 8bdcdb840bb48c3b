"""The generic timer model: the output line follows what the guest can read."""

from __future__ import annotations

from armvisor.devices.timer import (CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTV_TVAL_EL0, CTL_ENABLE,
                                    CTL_IMASK, CTL_ISTATUS, VIRT_TIMER_INTID, GenericTimer)


def timer_at(clock):
    lines = []
    timer = GenericTimer(lambda intid, level: lines.append((intid, level)),
                         counter=lambda: clock[0])
    return timer, lines


def test_reading_istatus_raises_the_line_it_reports():
    clock = [100]
    timer, lines = timer_at(clock)
    timer.write(CNTV_CVAL_EL0, 150)
    timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    assert lines == []
    clock[0] = 150                       # the deadline passes between two machine looks
    assert timer.read(CNTV_CTL_EL0) == CTL_ENABLE | CTL_ISTATUS
    assert lines == [(VIRT_TIMER_INTID, True)]


def test_a_tval_read_past_the_deadline_raises_it_too():
    clock = [0]
    timer, lines = timer_at(clock)
    timer.write(CNTV_TVAL_EL0, 10)
    timer.write(CNTV_CTL_EL0, CTL_ENABLE)
    clock[0] = 12
    assert timer.read(CNTV_TVAL_EL0) == (10 - 12) & 0xFFFF_FFFF
    assert lines == [(VIRT_TIMER_INTID, True)]


def test_a_masked_timer_reports_istatus_with_its_line_low():
    clock = [0]
    timer, lines = timer_at(clock)
    timer.write(CNTV_CVAL_EL0, 5)
    timer.write(CNTV_CTL_EL0, CTL_ENABLE | CTL_IMASK)
    clock[0] = 5
    assert timer.read(CNTV_CTL_EL0) == CTL_ENABLE | CTL_IMASK | CTL_ISTATUS
    assert lines == []
