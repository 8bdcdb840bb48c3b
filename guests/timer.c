/* Generic timers (Arm ARM D11.2) through the GICv3: every CPU runs, for the
 * EL1 virtual timer (CNTV_*, PPI 27) and then the EL1 physical timer
 * (CNTP_*, PPI 30):
 *   - ROUNDS interrupts programmed with TVAL (handler masks with IMASK) and
 *     ROUNDS programmed with CVAL (handler disables the timer); the handler
 *     checks CTL.ISTATUS = 1 and measures latency = counter at entry - CVAL,
 *     which must never be negative;
 *   - WFI_ROUNDS "WFI until the timer fires" wake-ups, with the other timer
 *     armed far out as a watchdog so a lost interrupt fails instead of hanging;
 *   - the level-sensitive output: CVAL in the past sets ISTATUS and makes the
 *     PPI pending, moving CVAL (or TVAL) into the future clears both.
 * Latencies vary from run to run; the lines print min/max/avg in ticks. */
#include "guest.h"

#define ROUNDS 100
#define WFI_ROUNDS 20
#define TIMEOUT_MS 10000
#define WATCHDOG_MS 5000
/* Below the timer under test: if both are pending (vCPU descheduled for
 * seconds), the tested one is taken first and the watchdog does not count. */
#define PRIO_WATCHDOG 0xC0
#define PPI_VTIMER 27
#define PPI_PTIMER 30
/* CNTx_CTL_EL0 (Arm ARM D13.8): ENABLE, IMASK, ISTATUS. */
#define CTL_ENABLE 1UL
#define CTL_IMASK 2UL
#define CTL_ISTATUS 4UL

enum tmr { VIRT, PHYS, NTIMERS };
enum mode { M_TVAL, M_CVAL, M_WFI, NMODES };
enum role { IDLE, ARMED, WATCHDOG };
static const char *const tmr_name[NTIMERS] = {"virt", "phys"};
static const char *const mode_name[NMODES] = {"tval", "cval", "wfi"};
static const u32 ppi_of[NTIMERS] = {PPI_VTIMER, PPI_PTIMER};

struct lat {
    u32 n;
    s64 min, max, sum;
};

struct cpu_timers {
    volatile u32 role[NTIMERS];
    volatile u32 fired[NTIMERS];
    int disable_on_fire;          /* else set IMASK */
    s64 last_latency;
    struct lat lat[NTIMERS][NMODES];
    u32 istatus_clear;            /* handler saw ISTATUS = 0 */
    u32 early;                    /* fired before CVAL */
    u32 unexpected;               /* interrupt while not armed */
    u32 watchdog;                 /* watchdog fired during a WFI round */
    u32 level_bad;
    u32 timeouts;
    u32 done;
};
static struct cpu_timers ct[MAX_CPUS];
static volatile u32 cpus_done;

static u64 counter(enum tmr t)
{
    u64 v;
    if (t == VIRT)
        __asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
    else
        __asm__ volatile("isb; mrs %0, cntpct_el0" : "=r"(v));
    return v;
}

static u64 get_ctl(enum tmr t)
{
    u64 v;
    if (t == VIRT)
        __asm__ volatile("isb; mrs %0, cntv_ctl_el0" : "=r"(v));
    else
        __asm__ volatile("isb; mrs %0, cntp_ctl_el0" : "=r"(v));
    return v;
}

static void set_ctl(enum tmr t, u64 v)
{
    if (t == VIRT)
        __asm__ volatile("msr cntv_ctl_el0, %0; isb" ::"r"(v) : "memory");
    else
        __asm__ volatile("msr cntp_ctl_el0, %0; isb" ::"r"(v) : "memory");
}

static u64 get_cval(enum tmr t)
{
    u64 v;
    if (t == VIRT)
        __asm__ volatile("isb; mrs %0, cntv_cval_el0" : "=r"(v));
    else
        __asm__ volatile("isb; mrs %0, cntp_cval_el0" : "=r"(v));
    return v;
}

static void set_cval(enum tmr t, u64 v)
{
    if (t == VIRT)
        __asm__ volatile("msr cntv_cval_el0, %0; isb" ::"r"(v) : "memory");
    else
        __asm__ volatile("msr cntp_cval_el0, %0; isb" ::"r"(v) : "memory");
}

static void set_tval(enum tmr t, u64 v)
{
    if (t == VIRT)
        __asm__ volatile("msr cntv_tval_el0, %0; isb" ::"r"(v) : "memory");
    else
        __asm__ volatile("msr cntp_tval_el0, %0; isb" ::"r"(v) : "memory");
}

static u64 ticks_ms(u64 ms) { return ms * (read_cntfrq() / 1000); }

static void on_timer(u32 intid, struct exc_frame *f)
{
    enum tmr t = intid == PPI_VTIMER ? VIRT : PHYS;
    u64 now = counter(t);
    struct cpu_timers *c = &ct[this_cpu()];
    u64 ctl = get_ctl(t);
    if (!(ctl & CTL_ISTATUS))
        c->istatus_clear++;
    s64 latency = (s64)(now - get_cval(t));
    /* Level-sensitive: the line stays up until the condition is masked. */
    set_ctl(t, c->disable_on_fire || c->role[t] == WATCHDOG ? 0 : CTL_ENABLE | CTL_IMASK);
    if (c->role[t] == WATCHDOG) {
        if (c->role[t == VIRT ? PHYS : VIRT] == ARMED)
            c->watchdog++;
        c->role[t] = IDLE;
        return;
    }
    if (c->role[t] != ARMED) {
        c->unexpected++;
        return;
    }
    if (latency < 0)
        c->early++;
    c->last_latency = latency;
    c->role[t] = IDLE;
    store_release32(&c->fired[t], c->fired[t] + 1);
}

static void record(struct lat *l, s64 v)
{
    if (!l->n || v < l->min)
        l->min = v;
    if (!l->n || v > l->max)
        l->max = v;
    l->sum += v;
    l->n++;
}

static u64 next_delta(u64 *seed)
{
    /* 200..3199 ticks (3-51 us at 62.5 MHz), varied so programming and
     * expiry interleave differently each round. */
    *seed = *seed * 6364136223846793005UL + 1442695040888963407UL;
    return 200 + (*seed >> 33) % 3000;
}

/* Waits (IRQs unmasked) for the handler to count one more firing of t. */
static int wait_fired(struct cpu_timers *c, enum tmr t, u32 before, int use_wfi)
{
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (load_acquire32(&c->fired[t]) == before) {
        if (use_wfi) {
            wfi();
            if (c->watchdog)
                return -1;
        } else if (past(dl)) {
            return -1;
        }
    }
    return 0;
}

static void run_mode(struct cpu_timers *c, enum tmr t, enum mode m, u64 *seed)
{
    int rounds = m == M_WFI ? WFI_ROUNDS : ROUNDS;
    enum tmr other = t == VIRT ? PHYS : VIRT;
    c->disable_on_fire = m == M_CVAL;
    if (m == M_WFI)
        gic_set_priority(ppi_of[other], PRIO_WATCHDOG);
    for (int i = 0; i < rounds; i++) {
        u32 before = c->fired[t];
        u64 delta = m == M_WFI ? ticks_ms(1) / 2 : next_delta(seed);
        c->role[t] = ARMED;
        if (m == M_WFI) {
            c->role[other] = WATCHDOG;
            set_tval(other, ticks_ms(WATCHDOG_MS));
            set_ctl(other, CTL_ENABLE);
        }
        if (m == M_CVAL) {
            set_cval(t, counter(t) + delta);
        } else {
            set_tval(t, delta);
        }
        set_ctl(t, CTL_ENABLE);
        irq_enable();
        int r = wait_fired(c, t, before, m == M_WFI);
        irq_disable();
        if (m == M_WFI) {
            set_ctl(other, 0);
            c->role[other] = IDLE;
        }
        if (r) {
            set_ctl(t, 0);
            c->role[t] = IDLE;
            c->timeouts++;
            printf("cpu %u %s %s round %d: no interrupt (CTL 0x%lx, CVAL %lu, counter %lu)\n",
                   this_cpu(), tmr_name[t], mode_name[m], i, get_ctl(t), get_cval(t),
                   counter(t));
            break;
        }
        record(&c->lat[t][m], c->last_latency);
    }
    set_ctl(t, 0);
    gic_set_priority(ppi_of[other], GIC_PRIO_DEFAULT);
}

static int pending_is(u32 ppi, int want)
{
    u64 dl = deadline_ms(100);
    while (gic_is_pending(ppi) != want)
        if (past(dl))
            return 0;
    return 1;
}

/* IRQs masked throughout: only the timer output and the GIC state change. */
static void level_check(struct cpu_timers *c, enum tmr t)
{
    unsigned cpu = this_cpu();
    u32 ppi = ppi_of[t];
    const char *name = tmr_name[t];
    for (int via_tval = 0; via_tval < 2; via_tval++) {
        const char *how = via_tval ? "TVAL" : "CVAL";
        if (via_tval)
            set_tval(t, 0);
        else
            set_cval(t, counter(t));
        set_ctl(t, CTL_ENABLE);
        if (!(get_ctl(t) & CTL_ISTATUS) || !pending_is(ppi, 1)) {
            c->level_bad++;
            printf("cpu %u %s %s due: CTL 0x%lx pending %d BAD\n", cpu, name, how, get_ctl(t),
                   gic_is_pending(ppi));
        }
        u32 hppi = (u32)READ_SYSREG(ICC_HPPIR1_EL1) & 0xFFFFFF;
        if (hppi != ppi) {
            c->level_bad++;
            printf("cpu %u %s %s due: HPPIR1 %u BAD\n", cpu, name, how, hppi);
        }
        if (via_tval)
            set_tval(t, ticks_ms(10000));
        else
            set_cval(t, counter(t) + ticks_ms(10000));
        if ((get_ctl(t) & CTL_ISTATUS) || !pending_is(ppi, 0)) {
            c->level_bad++;
            printf("cpu %u %s %s moved to the future: CTL 0x%lx pending %d BAD\n", cpu, name,
                   how, get_ctl(t), gic_is_pending(ppi));
        }
    }
    /* The line is low: unmasking must not deliver anything. */
    u32 unexpected = c->unexpected;
    irq_enable();
    u64 dl = deadline_ms(2);
    while (!past(dl))
        cpu_relax();
    irq_disable();
    set_ctl(t, 0);
    if (c->unexpected != unexpected) {
        c->level_bad++;
        printf("cpu %u %s: interrupt after moving CVAL into the future BAD\n", cpu, name);
    }
}

static void timer_task(unsigned cpu, void *arg)
{
    struct cpu_timers *c = &ct[cpu];
    u64 seed = 0x9E3779B97F4A7C15UL * (cpu + 1);
    if (cpu)
        gic_cpu_init();
    for (int t = 0; t < NTIMERS; t++) {
        set_ctl((enum tmr)t, 0);
        gic_set_edge(ppi_of[t], 0);
        gic_enable_irq(ppi_of[t]);
    }
    for (int t = 0; t < NTIMERS; t++) {
        for (int m = 0; m < NMODES; m++) {
            run_mode(c, (enum tmr)t, (enum mode)m, &seed);
            struct lat *l = &c->lat[t][m];
            printf("cpu %u %s %s: %u irqs, latency ticks min %ld max %ld avg %ld\n", cpu,
                   tmr_name[t], mode_name[m], l->n, l->n ? l->min : 0L, l->n ? l->max : 0L,
                   l->n ? l->sum / (s64)l->n : 0L);
        }
        level_check(c, (enum tmr)t);
        printf("cpu %u %s level: %s\n", cpu, tmr_name[t], c->level_bad ? "BAD" : "ok");
    }
    store_release32(&c->done, 1);
    atomic_add32(&cpus_done, 1);
}

int main(void)
{
    int n = plat.ncpus;
    printf("timer: %d cpus, cntfrq %lu Hz, %d TVAL + %d CVAL + %d WFI rounds per timer\n", n,
           read_cntfrq(), ROUNDS, ROUNDS, WFI_ROUNDS);
    gic_dist_init();
    gic_cpu_init();
    gic_set_handler(PPI_VTIMER, on_timer);
    gic_set_handler(PPI_PTIMER, on_timer);
    for (int cpu = 1; cpu < n; cpu++)
        if (smp_boot_cpu((unsigned)cpu, timer_task, 0, TIMEOUT_MS))
            fail("cpu %d did not come online", cpu);
    timer_task(0, 0);
    u64 dl = deadline_ms(60000);
    while (load_acquire32(&cpus_done) != (u32)n)
        if (past(dl))
            fail("only %u of %d cpus finished", cpus_done, n);

    u32 irqs[NTIMERS][NMODES] = {{0}};
    u32 istatus = 0, early = 0, unexpected = 0, watchdog = 0, level = 0, timeouts = 0;
    for (int cpu = 0; cpu < n; cpu++) {
        struct cpu_timers *c = &ct[cpu];
        for (int t = 0; t < NTIMERS; t++)
            for (int m = 0; m < NMODES; m++)
                irqs[t][m] += c->lat[t][m].n;
        istatus += c->istatus_clear;
        early += c->early;
        unexpected += c->unexpected;
        watchdog += c->watchdog;
        level += c->level_bad;
        timeouts += c->timeouts;
    }
    char name[48];
    for (int t = 0; t < NTIMERS; t++)
        for (int m = 0; m < NMODES; m++) {
            snprintf(name, sizeof(name), "%s %s interrupts", tmr_name[t], mode_name[m]);
            check_eq(name, irqs[t][m], (s64)n * (m == M_WFI ? WFI_ROUNDS : ROUNDS));
        }
    check_eq("handler saw ISTATUS 0", istatus, 0);
    check_eq("interrupts before CVAL", early, 0);
    check_eq("interrupts while not armed", unexpected, 0);
    check_eq("watchdog ended a WFI", watchdog, 0);
    check_eq("timeouts", timeouts, 0);
    check_eq("level checks failed", level, 0);
    int off = 0;
    for (int cpu = 1; cpu < n; cpu++)
        off += smp_wait_off((unsigned)cpu, TIMEOUT_MS) == 0;
    check_eq("secondaries powered off", off, n - 1);
    return 0;
}
