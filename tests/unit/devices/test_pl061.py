import msgpack
import pytest

from armvisor.devices import pl061 as g
from armvisor.devices.pl061 import Pl061
from armvisor.trace.bus import TraceBus

DIR, IS, IBE, IEV, IE, RIS, MIS, IC, AFSEL = (
    0x400, 0x404, 0x408, 0x40C, 0x410, 0x414, 0x418, 0x41C, 0x420)
ALL = 0x3FC                                             # GPIODATA through the full mask


def data(mask: int) -> int:
    """The GPIODATA address that reads or writes the lines in `mask`."""
    return mask << 2


class Gpio:
    def __init__(self, **kw):
        self.outputs: list[tuple[int, bool]] = []
        self.levels: list[bool] = []
        self.dev = Pl061(on_output=lambda line, level: self.outputs.append((line, level)),
                         on_irq_change=self.levels.append, **kw)

    def r(self, off, size=4):
        return self.dev.read(off, size)

    def w(self, off, value, size=4):
        self.dev.write(off, size, value)


def traced(**kw):
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    return Gpio(trace=bus, **kw), events


# ------------------------------------------------------------------ registers

def test_reset_values_and_no_report_on_construction():
    u = Gpio()
    for off in (ALL, DIR, IS, IBE, IEV, IE, RIS, MIS, AFSEL):
        assert u.r(off) == 0
    assert u.outputs == [] and u.levels == [] and not u.dev.irq_level
    assert [u.dev.output_level(line) for line in range(8)] == [False] * 8


def test_config_registers_hold_eight_bits():
    u = Gpio()
    for off in (DIR, IS, IBE, IEV, IE, AFSEL):
        u.w(off, 0xFFFF_FF5A)
        assert u.r(off) == 0x5A


def test_primecell_ids_as_linux_reads_them():
    u = Gpio()
    ids = [u.r(0xFE0 + 4 * i) for i in range(8)]
    assert ids == [0x61, 0x10, 0x04, 0x00, 0x0D, 0xF0, 0x05, 0xB1]
    periph = ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24
    assert periph & 0x000F_FFFF == 0x0004_1061          # Linux amba id table mask
    assert u.r(0xFE0, 1) == 0x61


# ------------------------------------------------------------------ GPIODATA

def test_data_writes_only_masked_output_lines():
    u = Gpio()
    u.w(DIR, 0x0F)
    u.w(ALL, 0xFF)
    assert u.dev.data == 0x0F                           # inputs do not take the write
    u.w(data(0x03), 0x00)                               # clears lines 0-1 only
    assert u.dev.data == 0x0C
    u.w(data(0x00), 0x00)                               # empty mask: no effect
    assert u.dev.data == 0x0C
    u.w(data(0x01), 0xFE)                               # bit 0 of the value is 0
    assert u.dev.data == 0x0C
    u.w(data(0x30), 0xFF)                               # lines 4-5 are inputs
    assert u.dev.data == 0x0C


def test_data_reads_mask_and_mix_outputs_and_inputs():
    u = Gpio()
    u.w(DIR, 0x0F)
    u.w(ALL, 0x05)
    for line in (4, 6, 7):
        u.dev.set_input(line, True)
    assert u.r(ALL) == 0xD5
    assert u.r(data(0x01)) == 0x01 and u.r(data(0x02)) == 0x00
    assert u.r(data(0x40)) == 0x40 and u.r(data(0x30)) == 0x10
    assert u.r(data(0x00)) == 0x00
    assert u.r(data(0xFF), 1) == 0xD5


def test_input_level_on_an_output_line_reads_back_when_it_turns_input():
    u = Gpio()
    u.w(DIR, 0x01)
    u.w(ALL, 0x00)
    u.dev.set_input(0, True)
    assert u.r(ALL) == 0x00                             # output: the driven level
    u.w(DIR, 0x00)
    assert u.r(ALL) == 0x01                             # input: the far end's level


def test_direction_switch_drives_the_data_register():
    u = Gpio()
    u.w(DIR, 0x01)
    u.w(data(0x01), 0x01)
    assert u.outputs == [(0, True)]
    u.w(DIR, 0x00)                                      # input again: pulled down
    assert u.outputs == [(0, True), (0, False)]
    u.w(DIR, 0x01)                                      # GPIODATA kept its bit
    assert u.outputs[-1] == (0, True) and u.r(ALL) == 0x01


# -------------------------------------------------------------------- outputs

def test_output_callback_only_on_change():
    u = Gpio()
    u.w(DIR, 0x03)
    u.w(ALL, 0x00)
    assert u.outputs == []                              # already low (pulled down)
    u.w(ALL, 0x03)
    assert u.outputs == [(0, True), (1, True)]
    u.w(ALL, 0x03)
    u.w(data(0x01), 0x01)
    assert u.outputs == [(0, True), (1, True)]
    u.w(data(0x02), 0x00)
    assert u.outputs[-1] == (1, False) and len(u.outputs) == 3
    assert u.dev.output_level(0) and not u.dev.output_level(1)


def test_tf_a_qemu_system_off_sequence():
    """plat/qemu qemu_system_off: gpio_set_direction(0, OUT); gpio_set_value(0, LOW);
    gpio_set_value(0, HIGH), through drivers/arm/pl061 (byte accesses, GPIODIR
    read-modify-write, GPIODATA at BIT(gpio + 2))."""
    u, events = traced(name="secure-gpio")
    u.w(DIR, u.r(DIR, 1) | 1 << 0, 1)
    u.w(1 << (0 + 2), 0, 1)
    u.w(1 << (0 + 2), 1 << 0, 1)
    assert u.outputs == [(0, True)]                     # one rising edge on line 0
    assert [(e.kind, e.fields) for e in events] == [
        ("gpio.output", {"device": "secure-gpio", "line": 0, "level": True})]
    assert u.r(1 << 2, 1) == 0x01                       # gpio_get_value reads it back


def test_tf_a_qemu_system_reset_sequence():
    u = Gpio()
    u.w(DIR, u.r(DIR, 1) | 1 << 1, 1)
    u.w(1 << (1 + 2), 0, 1)
    u.w(1 << (1 + 2), 1 << 1, 1)
    assert u.outputs == [(1, True)]


def test_pulled_up_lines_need_the_low_write_first():
    # QEMU's bare device default: a pulled-up input reads as high on the wire, so TF-A's
    # LOW write is what makes the HIGH write an edge.
    u = Gpio(pullups=0xFF, pulldowns=0x00)
    assert u.dev.output_level(0) and u.outputs == []
    u.w(DIR, 0x01, 1)                                   # drives GPIODATA's 0
    u.w(data(0x01), 0x00, 1)
    u.w(data(0x01), 0x01, 1)
    assert u.outputs == [(0, False), (0, True)]


def test_floating_line_keeps_its_level_when_it_turns_input():
    u = Gpio(pullups=0x00, pulldowns=0x00)
    u.w(DIR, 0x01)
    u.w(data(0x01), 0x01)
    u.w(DIR, 0x00)
    assert u.outputs == [(0, True)] and u.dev.output_level(0)


def test_pull_configuration_is_checked():
    with pytest.raises(ValueError):
        Pl061(pullups=0x01, pulldowns=0x01)
    with pytest.raises(ValueError):
        Pl061(pullups=0x100, pulldowns=0)


def test_reset_reports_lines_that_fall_back_to_their_pull():
    u = Gpio()
    u.w(DIR, 0x03)
    u.w(ALL, 0x02)
    u.w(IE, 0xFF)
    u.dev.reset()
    assert u.outputs == [(1, True), (1, False)]
    assert u.r(DIR) == 0 and u.r(ALL) == 0 and u.r(IE) == 0


def test_listener_may_reset_the_model_from_inside_the_call():
    u = Gpio()

    def on_output(line, level):
        u.outputs.append((line, level))
        if level:
            u.dev.reset()                               # the board resets the machine

    u.dev._on_output = on_output
    u.w(DIR, 0x03)
    u.w(ALL, 0x03)
    # Line 0 rises, the reset pulls both lines down again: line 1 never rose.
    assert u.outputs == [(0, True), (0, False)]
    assert u.r(DIR) == 0 and not u.dev.output_level(1)


def test_set_input_checks_the_line():
    u = Gpio()
    with pytest.raises(ValueError):
        u.dev.set_input(8, True)
    with pytest.raises(ValueError):
        u.dev.output_level(-1)


# ----------------------------------------------------------------- interrupts

def test_rising_edge_interrupt_and_clear():
    u = Gpio()
    u.w(IEV, 0x01)                                      # rising
    u.w(IE, 0x01)
    u.dev.set_input(0, True)
    assert u.r(RIS) == 0x01 and u.r(MIS) == 0x01
    assert u.levels == [True]
    u.dev.set_input(0, False)                           # falling: ignored, still latched
    assert u.r(RIS) == 0x01
    u.w(IC, 0x01)
    assert u.r(RIS) == 0 and u.levels == [True, False]
    u.dev.set_input(0, False)                           # no change, no edge
    assert u.r(RIS) == 0


def test_falling_edge_interrupt():
    u = Gpio()
    u.w(IE, 0x04)                                       # IEV 0: falling
    u.dev.set_input(2, True)
    assert u.r(RIS) == 0
    u.dev.set_input(2, False)
    assert u.r(RIS) == 0x04 and u.levels == [True]


def test_both_edges_ignore_iev():
    u = Gpio()
    u.w(IBE, 0x08)
    u.w(IEV, 0x08)
    u.dev.set_input(3, True)
    assert u.r(RIS) == 0x08
    u.w(IC, 0x08)
    u.dev.set_input(3, False)
    assert u.r(RIS) == 0x08


def test_masked_edge_latches_and_unmasking_raises_the_line():
    u = Gpio()
    u.w(IBE, 0xFF)
    u.dev.set_input(5, True)
    assert u.r(RIS) == 0x20 and u.r(MIS) == 0 and u.levels == []
    u.w(IE, 0x20)
    assert u.r(MIS) == 0x20 and u.levels == [True]
    u.w(IE, 0x00)
    assert u.levels == [True, False] and u.r(RIS) == 0x20


def test_level_interrupt_follows_the_input_and_ignores_clear():
    u = Gpio()
    u.w(IS, 0x02)
    u.w(IEV, 0x02)                                      # high level
    u.w(IE, 0x02)
    assert u.r(RIS) == 0
    u.dev.set_input(1, True)
    assert u.r(RIS) == 0x02 and u.levels == [True]
    u.w(IC, 0x02)                                       # clears edge logic only
    assert u.r(RIS) == 0x02 and u.dev.irq_level
    u.dev.set_input(1, False)
    assert u.r(RIS) == 0 and u.levels == [True, False]


def test_low_level_interrupt_is_active_as_soon_as_configured():
    u = Gpio()
    u.w(IE, 0x01)
    u.w(IS, 0x01)                                       # IEV 0: low level; input is low
    assert u.r(RIS) == 0x01 and u.levels == [True]
    u.dev.set_input(0, True)
    assert u.r(RIS) == 0 and u.levels == [True, False]


def test_output_lines_are_not_sensed():
    u = Gpio()
    u.w(DIR, 0x03)
    u.w(IBE, 0x01)
    u.w(IS, 0x02)
    u.w(IEV, 0x02)
    u.w(IE, 0xFF)
    u.w(ALL, 0x03)                                      # driving high is not an edge or level
    u.dev.set_input(0, True)                            # the far end of an output line
    assert u.r(RIS) == 0 and u.levels == []


def test_edge_latch_clears_only_the_written_bits():
    u = Gpio()
    u.w(IBE, 0xFF)
    for line in (0, 1, 2):
        u.dev.set_input(line, True)
    u.w(IC, 0x05)
    assert u.r(RIS) == 0x02


# -------------------------------------------------------------- bad accesses

@pytest.mark.parametrize("off,size", [
    (0x424, 4), (0x800, 4), (0xFD0, 4), (0x1000, 4), (-4, 4), (0x402, 1), (0x001, 1),
    (0x400, 8), (0x400, 3)])
def test_bad_reads_are_traced_and_read_zero(off, size):
    u, events = traced()
    assert u.r(off, size) == 0
    assert [e.kind for e in events] == ["device.bad_access"]
    assert events[0].fields == {"device": "gpio", "op": "read", "offset": off, "size": size}


def test_gpioic_is_write_only_and_status_read_only():
    u, events = traced()
    u.w(IBE, 0x01)
    u.dev.set_input(0, True)
    assert u.r(IC) == 0
    assert [e.kind for e in events][-1] == "device.bad_access"
    count = len(events)
    u.w(RIS, 0)                                          # ignored, as pl011/pl031 do
    u.w(MIS, 0)
    assert u.r(RIS) == 0x01 and len(events) == count


def test_bad_writes_are_traced_and_change_nothing():
    u, events = traced()
    before = u.dev.save_state()
    for off, size in ((0x424, 4), (0xFE0, 4), (0x1000, 4), (0x401, 1), (0x400, 8)):
        u.w(off, 0xFF, size)
    assert [e.kind for e in events] == ["device.bad_access"] * 5
    assert u.dev.save_state() == before


def test_narrow_accesses_see_the_low_bits():
    u = Gpio()
    u.w(DIR, 0xA5, 2)
    assert u.r(DIR, 1) == 0xA5 and u.r(DIR, 2) == 0xA5


def test_input_changes_and_irq_are_traced():
    u, events = traced()
    u.w(IBE, 0x01)
    u.w(IE, 0x01)
    u.dev.set_input(0, True)
    u.dev.set_input(0, True)                            # no change: no event
    assert [(e.kind, e.fields) for e in events] == [
        ("gpio.input", {"device": "gpio", "line": 0, "level": True}),
        ("irq.line", {"device": "gpio", "level": True})]


# ------------------------------------------------------------------ snapshots

def drive(u: Gpio) -> None:
    u.w(DIR, 0x0F)
    u.w(ALL, 0x0A)
    u.w(AFSEL, 0x80)
    u.w(IBE, 0x10)
    u.w(IS, 0x20)
    u.w(IEV, 0x60)
    u.w(IE, 0x70)
    u.dev.set_input(4, True)                            # both edges: latched
    u.dev.set_input(5, True)                            # high level: active
    u.dev.set_input(6, True)                            # rising, masked
    u.dev.set_input(1, True)                            # far end of an output line


def behaviour(u: Gpio):
    seen = [u.r(off) for off in (ALL, DIR, IS, IBE, IEV, IE, RIS, MIS, AFSEL)]
    seen.append(u.dev.irq_level)
    u.w(IC, 0xFF)
    u.dev.set_input(5, False)
    u.w(ALL, 0x05)
    u.w(DIR, 0x00)
    seen += [u.r(RIS), u.r(ALL), list(u.outputs), list(u.levels)]
    return seen


@pytest.mark.parametrize("via_msgpack", [False, True])
def test_snapshot_round_trip(via_msgpack):
    original = Gpio(pullups=0x40, pulldowns=0x0F)
    drive(original)
    state = original.dev.save_state()
    if via_msgpack:
        state = msgpack.unpackb(msgpack.packb(state, use_bin_type=True), raw=False)
    assert all(isinstance(v, (bool, int)) for v in state.values())
    copy = Gpio(pullups=0x40, pulldowns=0x0F)
    copy.outputs.clear()
    copy.dev.restore_state(state)
    assert copy.outputs == [] and copy.levels == []     # restoring calls no listener
    assert copy.dev.save_state() == state == original.dev.save_state()
    original.outputs.clear()
    original.levels.clear()
    expected = behaviour(original)
    assert behaviour(copy) == expected
    # After the restore: lines 0 and 2 rise, 1 and 3 fall; then as inputs 0 and 2
    # fall to their pull-down and 3's pull-down keeps it low; the edge on 5 was cleared.
    assert expected[-2] == [(0, True), (1, False), (2, True), (3, False),
                            (0, False), (2, False)]
    assert expected[-4] == 0x00 and expected[-1] == [False]


def test_module_constants_match_the_register_map():
    assert (g.GPIODIR, g.GPIOIS, g.GPIOIBE, g.GPIOIEV, g.GPIOIE, g.GPIORIS, g.GPIOMIS,
            g.GPIOIC, g.GPIOAFSEL) == (DIR, IS, IBE, IEV, IE, RIS, MIS, IC, AFSEL)
