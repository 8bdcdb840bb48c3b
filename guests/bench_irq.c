/* Interrupt-path benchmark, timed with the guest's own counter (CNTVCT_EL0,
 * which on both armvisor and QEMU follows the host clock):
 *   1. the cost of one ICC_IAR1_EL1 read + ICC_EOIR1_EL1 write (nothing pending),
 *   2. an SGI round trip: CPU 0 sends SGI 1 to CPU 1, whose handler answers
 *      with SGI 2, and CPU 0 waits for it in WFI,
 *   3. virtual timer latency: from CNTV_CVAL to the handler's first counter read.
 * Prints one "bench: name=value unit" line per figure for benchmarks/machine.py. */
#include "guest.h"

#define PAIRS 20000
#define ROUND_TRIPS 2000
#define TIMER_SHOTS 500
#define SGI_PING 1
#define SGI_PONG 2
#define VTIMER_INTID 27
#define TIMEOUT_MS 20000

static volatile u32 pongs;
static volatile u32 stop_pinging;
static volatile u64 fired_at;

static u64 ticks_to_ns(u64 ticks) { return ticks * 1000000000ULL / read_cntfrq(); }

static void on_ping(u32 intid, struct exc_frame *f) { gic_send_sgi(SGI_PONG, 0); }
static void on_pong(u32 intid, struct exc_frame *f) { atomic_add32(&pongs, 1); }

static void on_vtimer(u32 intid, struct exc_frame *f)
{
    fired_at = read_cntvct();
    WRITE_SYSREG("cntv_ctl_el0", 0);          /* disable: the level interrupt drops */
}

static void responder(unsigned cpu, void *arg)
{
    gic_cpu_init();
    irq_enable();
    while (!load_acquire32(&stop_pinging))
        wfi();
    irq_disable();
}

static void bench_icc_pair(void)
{
    u64 start = read_cntvct();
    for (int i = 0; i < PAIRS; i++) {
        u64 intid = READ_SYSREG(ICC_IAR1_EL1);
        WRITE_SYSREG(ICC_EOIR1_EL1, intid);
    }
    u64 ns = ticks_to_ns(read_cntvct() - start);
    printf("bench: icc_iar_eoir_pair=%lu ns\n", ns / PAIRS);
}

static void bench_sgi_round_trip(void)
{
    gic_set_handler(SGI_PING, on_ping);
    gic_set_handler(SGI_PONG, on_pong);
    if (smp_boot_cpu(1, responder, 0, TIMEOUT_MS))
        fail("cpu 1 did not come online");
    irq_enable();
    u64 start = read_cntvct();
    for (u32 i = 1; i <= ROUND_TRIPS; i++) {
        gic_send_sgi(SGI_PING, 1);
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&pongs) != i) {
            wfi();
            if (past(dl))
                fail("no answer to ping %u", i);
        }
    }
    u64 ns = ticks_to_ns(read_cntvct() - start);
    irq_disable();
    store_release32(&stop_pinging, 1);
    gic_send_sgi(SGI_PING, 1);               /* wake it to see the flag */
    printf("bench: sgi_round_trip=%lu ns\n", ns / ROUND_TRIPS);
    smp_wait_off(1, TIMEOUT_MS);
}

static void bench_timer_latency(void)
{
    gic_set_handler(VTIMER_INTID, on_vtimer);
    gic_enable_irq(VTIMER_INTID);
    u64 total = 0, worst = 0;
    irq_enable();
    for (int i = 0; i < TIMER_SHOTS; i++) {
        fired_at = 0;
        u64 cval = read_cntvct() + 50 * read_cntfrq() / 1000000;     /* 50 us ahead */
        WRITE_SYSREG("cntv_cval_el0", cval);
        WRITE_SYSREG("cntv_ctl_el0", 1);
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (!fired_at) {
            wfi();
            if (past(dl))
                fail("virtual timer shot %d never fired", i);
        }
        u64 late = fired_at - cval;
        total += late;
        worst = late > worst ? late : worst;
    }
    irq_disable();
    printf("bench: timer_latency=%lu ns\n", ticks_to_ns(total / TIMER_SHOTS));
    printf("bench: timer_latency_max=%lu ns\n", ticks_to_ns(worst));
}

int main(void)
{
    if (plat.ncpus < 2)
        fail("bench_irq needs 2 cpus");
    gic_dist_init();
    gic_cpu_init();
    bench_icc_pair();
    bench_sgi_round_trip();
    bench_timer_latency();
    pass();
}
