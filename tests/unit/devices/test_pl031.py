from armvisor.devices.pl031 import Pl031
from armvisor.trace.bus import TraceBus

DR, MR, LR, CR, IMSC, RIS, MIS, ICR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(now=1_700_000_000.25, **kw):
    clock = Clock(now)
    levels: list[bool] = []
    rtc = Pl031(clock=clock, on_irq_change=levels.append, **kw)
    return rtc, clock, levels


def test_counter_follows_host_clock():
    rtc, clock, _ = make()
    assert rtc.read(DR, 4) == 1_700_000_000
    clock.now += 2.9
    assert rtc.read(DR, 4) == 1_700_000_003


def test_load_register_sets_counter_and_keeps_ticking():
    rtc, clock, _ = make()
    rtc.write(LR, 4, 1000)
    assert rtc.read(DR, 4) == 1000
    assert rtc.read(LR, 4) == 1000
    clock.now += 5
    assert rtc.read(DR, 4) == 1005


def test_counter_wraps_at_32_bits():
    rtc, clock, _ = make()
    rtc.write(LR, 4, 0xFFFF_FFFF)
    clock.now += 2
    assert rtc.read(DR, 4) == 1


def test_control_register_always_enabled():
    rtc, _, _ = make()
    assert rtc.read(CR, 4) == 1
    rtc.write(CR, 4, 0)
    assert rtc.read(CR, 4) == 1


def test_match_interrupt_via_tick_and_deadline():
    rtc, clock, levels = make(now=100.5)
    rtc.write(LR, 4, 50)
    rtc.write(IMSC, 4, 1)
    rtc.write(MR, 4, 53)
    assert rtc.read(MR, 4) == 53
    assert rtc.next_deadline() == 103.0
    rtc.tick()
    assert rtc.read(RIS, 4) == 0 and levels == []
    clock.now = 102.99
    rtc.tick()
    assert rtc.read(RIS, 4) == 0
    clock.now = 103.0
    rtc.tick()
    assert rtc.read(RIS, 4) == 1 and rtc.read(MIS, 4) == 1
    assert rtc.irq_level and levels == [True]
    assert rtc.next_deadline() is None
    rtc.write(ICR, 4, 1)
    assert rtc.read(RIS, 4) == 0 and levels == [True, False]


def test_match_detected_on_register_access_without_tick():
    rtc, clock, _ = make(now=10.0)
    rtc.write(MR, 4, 12)                                # counter starts at 10
    clock.now = 12.5
    assert rtc.read(RIS, 4) == 1
    assert rtc.read(MIS, 4) == 0                        # masked


def test_match_now_fires_immediately():
    rtc, _, levels = make(now=10.0)
    rtc.write(IMSC, 4, 1)
    rtc.write(MR, 4, 10)
    assert levels == [True] and rtc.next_deadline() is None


def test_match_wraps_around():
    rtc, clock, _ = make(now=10.0)
    rtc.write(LR, 4, 0xFFFF_FFFE)
    rtc.write(MR, 4, 1)
    assert rtc.next_deadline() == 13.0
    clock.now = 13.0
    rtc.tick()
    assert rtc.read(RIS, 4) == 1


def test_imsc_masks_to_one_bit_and_ids():
    rtc, _, _ = make()
    rtc.write(IMSC, 4, 0xFF)
    assert rtc.read(IMSC, 4) == 1
    ids = [rtc.read(0xFE0 + 4 * i, 4) for i in range(8)]
    periph = ids[0] | ids[1] << 8 | ids[2] << 16 | ids[3] << 24
    cell = ids[4] | ids[5] << 8 | ids[6] << 16 | ids[7] << 24
    assert periph & 0x000F_FFFF == 0x0004_1031 and cell == 0xB105_F00D


def test_bad_access_traced():
    bus = TraceBus()
    events = []
    bus.subscribe(events.append)
    rtc, _, _ = make(trace=bus)
    assert rtc.read(0x20, 4) == 0
    rtc.write(0x2, 1, 1)
    assert [e.kind for e in events] == ["device.bad_access", "device.bad_access"]
