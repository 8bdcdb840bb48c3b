/* WFI wake-up by an SGI (Arm ARM D1.6.2 "Wait for Interrupt": a pending
 * physical IRQ is a wake-up event whether or not PSTATE.I masks it).
 * CPU 1 parks in WFI ROUNDS times with IRQs unmasked (the handler runs out
 * of the WFI) and ROUNDS times with PSTATE.I set (WFI returns, the SGI is
 * still pending in ICC_HPPIR1_EL1, and the handler runs only once CPU 1
 * unmasks). CPU 0 sends the SGI after CPU 1 says it is about to sleep. */
#include "guest.h"

#define ROUNDS 50
#define SGI_WAKE 5
#define TIMEOUT_MS 10000
/* Time CPU 0 leaves CPU 1 to reach its WFI before sending. */
#define SETTLE_US 200

struct wake_state {
    volatile u32 armed;          /* round number CPU 1 is sleeping in */
    volatile u32 woken;          /* round number CPU 1 finished */
    volatile u32 handled;        /* handler runs on CPU 1 */
    u32 unmasked_ok, masked_ok;
    u32 wfi_returns;             /* WFIs executed across all rounds */
    u32 slept_rounds;            /* rounds with at least one WFI */
    u32 pending_seen;            /* masked: SGI in HPPIR1 after WFI */
    u32 handled_early;           /* masked: handler ran before unmasking */
    u32 handled_after_unmask;
    u32 wrong_cpu;
};
static struct wake_state st;

static void on_sgi(u32 intid, struct exc_frame *f)
{
    if (this_cpu() != 1)
        st.wrong_cpu++;
    atomic_add32(&st.handled, 1);
}

static void delay_us(u64 us)
{
    u64 end = read_cntvct() + us * (read_cntfrq() / 1000000);
    while ((s64)(read_cntvct() - end) < 0)
        cpu_relax();
}

static void sleeper(unsigned cpu, void *arg)
{
    gic_cpu_init();
    u32 round = 0;
    for (int i = 0; i < ROUNDS; i++) {
        u32 before = load_acquire32(&st.handled);
        irq_enable();
        store_release32(&st.armed, ++round);
        /* The handler may already have run before the first WFI: then the
         * loop does not sleep at all, which is still a correct wake-up. */
        u32 n = 0;
        while (load_acquire32(&st.handled) == before) {
            wfi();
            n++;
        }
        st.wfi_returns += n;
        st.slept_rounds += n != 0;
        irq_disable();
        st.unmasked_ok++;
        store_release32(&st.woken, round);
    }
    for (int i = 0; i < ROUNDS; i++) {
        u32 before = load_acquire32(&st.handled);
        irq_disable();
        store_release32(&st.armed, ++round);
        /* WFI may also return spuriously; sleep again until the SGI is
         * what the CPU interface has pending. */
        u32 n = 0;
        while (((u32)READ_SYSREG(ICC_HPPIR1_EL1) & 0xFFFFFF) != SGI_WAKE) {
            wfi();
            n++;
        }
        st.wfi_returns += n;
        st.slept_rounds += n != 0;
        st.pending_seen++;
        if (load_acquire32(&st.handled) != before)
            st.handled_early++;
        irq_enable();
        isb();
        irq_disable();
        if (load_acquire32(&st.handled) == before + 1)
            st.handled_after_unmask++;
        st.masked_ok++;
        store_release32(&st.woken, round);
    }
}

int main(void)
{
    printf("wfi_wake: cpu 1 parks in WFI %d times unmasked and %d times masked, SGI %d wakes it\n",
           ROUNDS, ROUNDS, SGI_WAKE);
    if (plat.ncpus < 2)
        fail("wfi_wake needs at least 2 cpus");
    gic_dist_init();
    gic_cpu_init();
    gic_set_handler(SGI_WAKE, on_sgi);
    if (smp_boot_cpu(1, sleeper, 0, TIMEOUT_MS))
        fail("cpu 1 did not come online");
    for (u32 round = 1; round <= 2 * ROUNDS; round++) {
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&st.armed) != round)
            if (past(dl))
                fail("cpu 1 never armed round %u", round);
        delay_us(SETTLE_US);
        gic_send_sgi(SGI_WAKE, 1);
        dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&st.woken) != round)
            if (past(dl))
                fail("cpu 1 not woken in round %u (%s): WFI did not end on the SGI", round,
                     round <= ROUNDS ? "IRQs unmasked" : "IRQs masked");
    }
    if (smp_wait_off(1, TIMEOUT_MS))
        fail("cpu 1 did not power off");
    printf("WFI executed %u times, %u of %d rounds slept\n", st.wfi_returns, st.slept_rounds,
           2 * ROUNDS);
    check_true("rounds that slept in WFI", st.slept_rounds > 0, "%u", st.slept_rounds);
    check_eq("unmasked: woken", st.unmasked_ok, ROUNDS);
    check_eq("masked: woken", st.masked_ok, ROUNDS);
    check_eq("masked: SGI pending after WFI", st.pending_seen, ROUNDS);
    check_eq("masked: handler ran before unmask", st.handled_early, 0);
    check_eq("masked: handler ran after unmask", st.handled_after_unmask, ROUNDS);
    check_eq("handler runs", st.handled, 2 * ROUNDS);
    check_eq("handler on the wrong cpu", st.wrong_cpu, 0);
    return 0;
}
