"""gic_prio: PMR masking, nested preemption, EOImode 1 with DIR, SPI routing."""

import pytest

ROUTE_ROUNDS = 4
ANY_ROUNDS = 20


@pytest.mark.guest
@pytest.mark.parametrize("smp", [2, 4])
def test_gic_prio(run_guest, smp):
    run = run_guest("gic_prio", smp)
    run.assert_passed()
    run.assert_lines([
        "pmr: SGI pending: ok",
        "pmr: HPPIR1 names the masked SGI: got 8 expect 8 ok",
        "pmr: IAR1 with priority 0xa0 >= PMR 0x80: got 1023 expect 1023 ok",
        "pmr: IAR1 with priority 0xa0 = PMR 0xa0: got 1023 expect 1023 ok",
        "pmr: handler runs while masked by PMR: got 0 expect 0 ok",
        "pmr: delivered after PMR 0xf0: ok",
        # Entry/exit trace: the high SGI nests inside the low handler, the
        # equal and lower ones wait until it is done, in priority order.
        "preempt: trace: LHhlEeWw (expect LHhlEeWw) ok",
        "preempt: RPR in low handler: got 192 expect 192 ok",
        "preempt: RPR in nested high handler: got 64 expect 64 ok",
        "preempt: RPR when idle: got 255 expect 255 ok",
        "eoimode1: SGI active after EOIR (GICR_ISACTIVER0): got 1 expect 1 ok",
        "eoimode1: RPR after EOIR (priority dropped): got 255 expect 255 ok",
        "eoimode1: IAR1 while active and pending: got 1023 expect 1023 ok",
        "eoimode1: SGI active after DIR: got 0 expect 0 ok",
        "eoimode1: IAR1 after DIR takes the resent SGI: got 13 expect 13 ok",
        "eoimode1: SPI active after EOIR (GICD_ISACTIVER): got 1 expect 1 ok",
        "eoimode1: SPI active after DIR: got 0 expect 0 ok",
        "eoimode1: dispatched SGI deactivated: got 0 expect 0 ok",
        f"spi: routed SPIs taken: got {ROUTE_ROUNDS * smp} expect {ROUTE_ROUNDS * smp} ok",
        "spi: routed SPIs on the wrong cpu or not exactly once: got 0 expect 0 ok",
        f"spi: IRM=1 SPIs taken: got {ANY_ROUNDS} expect {ANY_ROUNDS} ok",
        f"secondaries powered off: got {smp - 1} expect {smp - 1} ok",
    ])
    per_cpu = run.line_starting("spi: IRM=1 deliveries per cpu:").split(":")[2].split()
    assert len(per_cpu) == smp and sum(map(int, per_cpu)) == ANY_ROUNDS, run.describe()
