/* GICv3 priorities, preemption, split EOI and SPI routing (IHI0069 4.8
 * priority, 4.1.1 / 12.2.10 EOImode, 12.9.22 GICD_IROUTER):
 *   1. PMR: an SGI whose priority is not higher (numerically lower) than
 *      ICC_PMR_EL1 stays pending: ICC_HPPIR1_EL1 names it, ICC_IAR1_EL1
 *      reads 1023, unmasked IRQs do not take it; lowering the mask delivers it.
 *   2. Preemption: a low-priority handler unmasks IRQs and sends itself a
 *      higher-priority SGI, which runs nested; an equal and a lower priority
 *      SGI stay pending until the low one is EOIed (trace of entries/exits).
 *   3. EOImode 1: after EOIR the interrupt stays active (GICR/GICD
 *      ISACTIVER), is not taken again while active, and DIR deactivates it.
 *   4. SPIs routed by GICD_IROUTER to each CPU in turn and with IRM = 1
 *      ("any"), made pending through GICD_ISPENDR, each taken exactly once
 *      on the right CPU. */
#include "guest.h"

#define TIMEOUT_MS 10000
#define SGI_PMR 8
#define SGI_LOW 9
#define SGI_HIGH 10
#define SGI_EQUAL 11
#define SGI_LOWER 12
#define SGI_SPLIT 13
#define SGI_SPLIT_DISPATCH 14
#define PRIO_HIGH 0x40
#define PRIO_MID 0xA0
#define PRIO_LOW 0xC0
#define PRIO_LOWER 0xE0
#define PMR_BLOCK 0x80
#define SPI_SPLIT 100
#define SPI_ROUTED 101        /* 101..108 */
#define NR_ROUTED 8
#define SPI_ANY 109
#define ROUTE_ROUNDS 4
#define ANY_ROUNDS 20

struct prio_state {
    volatile u32 pmr_handled;
    char trace[32];
    volatile u32 tlen;
    volatile u32 high_done;
    u64 rpr_low, rpr_high;
    u32 split_handled;
    volatile u32 spi_got[NR_ROUTED + 1][MAX_CPUS];  /* last row: SPI_ANY */
    volatile u32 spi_total;
    volatile u32 started;
    volatile u32 stop;
};
static struct prio_state st;

static u32 hppir(void) { return (u32)READ_SYSREG(ICC_HPPIR1_EL1) & 0xFFFFFF; }
static u32 iar(void) { return (u32)READ_SYSREG(ICC_IAR1_EL1) & 0xFFFFFF; }

static void delay_ms(u64 ms)
{
    u64 dl = deadline_ms(ms);
    while (!past(dl))
        cpu_relax();
}

static int wait_u32(volatile u32 *p, u32 want)
{
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (load_acquire32(p) != want)
        if (past(dl))
            return -1;
    return 0;
}

static int wait_pending(u32 intid)
{
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (!gic_is_pending(intid))
        if (past(dl))
            return -1;
    return 0;
}

static void log_event(char c)
{
    if (st.tlen < sizeof(st.trace) - 1)
        st.trace[st.tlen] = c;
    store_release32(&st.tlen, st.tlen + 1);
}

/* ---- 1. priority mask ---- */
static void on_pmr(u32 intid, struct exc_frame *f) { st.pmr_handled++; }

static void test_pmr(void)
{
    gic_set_handler(SGI_PMR, on_pmr);
    gic_set_priority(SGI_PMR, PRIO_MID);
    irq_disable();
    WRITE_SYSREG(ICC_PMR_EL1, PMR_BLOCK);
    gic_send_sgi(SGI_PMR, 0);
    check_true("pmr: SGI pending", wait_pending(SGI_PMR) == 0, "");
    check_eq("pmr: HPPIR1 names the masked SGI", hppir(), SGI_PMR);
    check_eq("pmr: IAR1 with priority 0xa0 >= PMR 0x80", iar(), GIC_INTID_SPURIOUS);
    WRITE_SYSREG(ICC_PMR_EL1, PRIO_MID);
    check_eq("pmr: IAR1 with priority 0xa0 = PMR 0xa0", iar(), GIC_INTID_SPURIOUS);
    irq_enable();
    delay_ms(2);
    check_eq("pmr: handler runs while masked by PMR", st.pmr_handled, 0);
    WRITE_SYSREG(ICC_PMR_EL1, GIC_PMR_DEFAULT);
    check_true("pmr: delivered after PMR 0xf0", wait_u32(&st.pmr_handled, 1) == 0, "");
    irq_disable();
    check_eq("pmr: pending after delivery", gic_is_pending(SGI_PMR), 0);
}

/* ---- 2. preemption ---- */
static void on_low(u32 intid, struct exc_frame *f)
{
    log_event('L');
    st.rpr_low = READ_SYSREG(ICC_RPR_EL1);
    irq_enable();
    gic_send_sgi(SGI_HIGH, 0);
    if (wait_u32(&st.high_done, 1))
        log_event('T');
    gic_send_sgi(SGI_EQUAL, 0);
    gic_send_sgi(SGI_LOWER, 0);
    if (wait_pending(SGI_EQUAL) || wait_pending(SGI_LOWER))
        log_event('P');
    /* They must stay pending however long this handler runs. */
    delay_ms(2);
    irq_disable();
    log_event('l');
}

static void on_high(u32 intid, struct exc_frame *f)
{
    log_event('H');
    st.rpr_high = READ_SYSREG(ICC_RPR_EL1);
    log_event('h');
    store_release32(&st.high_done, 1);
}

static void on_equal(u32 intid, struct exc_frame *f)
{
    log_event('E');
    log_event('e');
}

static void on_lower(u32 intid, struct exc_frame *f)
{
    log_event('W');
    log_event('w');
}

static void test_preemption(void)
{
    static const char expect[] = "LHhlEeWw";
    gic_set_priority(SGI_LOW, PRIO_LOW);
    gic_set_priority(SGI_HIGH, PRIO_HIGH);
    gic_set_priority(SGI_EQUAL, PRIO_LOW);
    gic_set_priority(SGI_LOWER, PRIO_LOWER);
    gic_set_handler(SGI_LOW, on_low);
    gic_set_handler(SGI_HIGH, on_high);
    gic_set_handler(SGI_EQUAL, on_equal);
    gic_set_handler(SGI_LOWER, on_lower);
    printf("preempt: priorities low 0x%x high 0x%x equal 0x%x lower 0x%x, BPR1 %lu\n",
           PRIO_LOW, PRIO_HIGH, PRIO_LOW, PRIO_LOWER, READ_SYSREG(ICC_BPR1_EL1));
    irq_enable();
    gic_send_sgi(SGI_LOW, 0);
    int r = wait_u32(&st.tlen, sizeof(expect) - 1);
    delay_ms(2);
    irq_disable();
    st.trace[st.tlen < sizeof(st.trace) ? st.tlen : sizeof(st.trace) - 1] = 0;
    check_true("preempt: all handlers ran", r == 0, "");
    check_true("preempt: trace", strcmp(st.trace, expect) == 0, "%s (expect %s)", st.trace, expect);
    check_eq("preempt: RPR in low handler", (s64)st.rpr_low, PRIO_LOW);
    check_eq("preempt: RPR in nested high handler", (s64)st.rpr_high, PRIO_HIGH);
    check_eq("preempt: RPR when idle", (s64)READ_SYSREG(ICC_RPR_EL1), GIC_PRIO_IDLE);
}

/* ---- 3. EOImode 1 ---- */
static void on_split(u32 intid, struct exc_frame *f) { st.split_handled++; }

static void test_split_eoi(void)
{
    irq_disable();
    gic_set_eoimode(1);
    gic_send_sgi(SGI_SPLIT, 0);
    wait_pending(SGI_SPLIT);
    check_eq("eoimode1: IAR1", iar(), SGI_SPLIT);
    check_eq("eoimode1: SGI active after IAR", gic_is_active(SGI_SPLIT), 1);
    WRITE_SYSREG(ICC_EOIR1_EL1, SGI_SPLIT);
    check_eq("eoimode1: RPR after EOIR (priority dropped)", (s64)READ_SYSREG(ICC_RPR_EL1),
             GIC_PRIO_IDLE);
    check_eq("eoimode1: SGI active after EOIR (GICR_ISACTIVER0)", gic_is_active(SGI_SPLIT), 1);
    gic_send_sgi(SGI_SPLIT, 0);
    check_true("eoimode1: resent SGI pending", wait_pending(SGI_SPLIT) == 0, "");
    check_eq("eoimode1: IAR1 while active and pending", iar(), GIC_INTID_SPURIOUS);
    WRITE_SYSREG(ICC_DIR_EL1, SGI_SPLIT);
    check_eq("eoimode1: SGI active after DIR", gic_is_active(SGI_SPLIT), 0);
    check_eq("eoimode1: IAR1 after DIR takes the resent SGI", iar(), SGI_SPLIT);
    WRITE_SYSREG(ICC_EOIR1_EL1, SGI_SPLIT);
    WRITE_SYSREG(ICC_DIR_EL1, SGI_SPLIT);
    check_eq("eoimode1: SGI active at the end", gic_is_active(SGI_SPLIT), 0);

    gic_set_edge(SPI_SPLIT, 1);
    gic_route_spi(SPI_SPLIT, gic_irouter_for(cpu_mpidr(0)));
    gic_enable_irq(SPI_SPLIT);
    gic_set_pending(SPI_SPLIT);
    wait_pending(SPI_SPLIT);
    check_eq("eoimode1: IAR1 for the SPI", iar(), SPI_SPLIT);
    WRITE_SYSREG(ICC_EOIR1_EL1, SPI_SPLIT);
    check_eq("eoimode1: SPI active after EOIR (GICD_ISACTIVER)", gic_is_active(SPI_SPLIT), 1);
    WRITE_SYSREG(ICC_DIR_EL1, SPI_SPLIT);
    check_eq("eoimode1: SPI active after DIR", gic_is_active(SPI_SPLIT), 0);
    gic_disable_irq(SPI_SPLIT);

    /* The dispatcher's own EOIR + DIR path. */
    gic_set_handler(SGI_SPLIT_DISPATCH, on_split);
    irq_enable();
    gic_send_sgi(SGI_SPLIT_DISPATCH, 0);
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (!st.split_handled && !past(dl))
        cpu_relax();
    irq_disable();
    check_eq("eoimode1: dispatched SGI handled", st.split_handled, 1);
    check_eq("eoimode1: dispatched SGI deactivated", gic_is_active(SGI_SPLIT_DISPATCH), 0);
    gic_set_eoimode(0);
}

/* ---- 4. SPI routing ---- */
static void on_spi(u32 intid, struct exc_frame *f)
{
    unsigned row = intid == SPI_ANY ? NR_ROUTED : intid - SPI_ROUTED;
    st.spi_got[row][this_cpu()]++;
    atomic_add32(&st.spi_total, 1);
}

static void spi_cpu(unsigned cpu, void *arg)
{
    gic_cpu_init();
    irq_enable();
    atomic_add32(&st.started, 1);
    u64 dl = deadline_ms(30000);
    while (!load_acquire32(&st.stop))
        if (past(dl))
            fail("cpu %u: boot cpu never said stop", cpu);
    irq_disable();
}

static void test_spi_routing(void)
{
    int n = plat.ncpus;
    for (u32 i = 0; i <= NR_ROUTED; i++) {
        u32 spi = i == NR_ROUTED ? SPI_ANY : SPI_ROUTED + i;
        gic_set_handler(spi, on_spi);
        gic_set_edge(spi, 1);
        gic_set_priority(spi, PRIO_MID);
        gic_enable_irq(spi);
    }
    store_release32(&st.started, 1);
    for (int c = 1; c < n; c++)
        if (smp_boot_cpu((unsigned)c, spi_cpu, 0, TIMEOUT_MS))
            fail("cpu %d did not come online", c);
    if (wait_u32(&st.started, (u32)n))
        fail("not every cpu set up its GIC interface");
    irq_enable();

    u32 expect[NR_ROUTED][MAX_CPUS] = {{0}};
    u32 sent = 0;
    for (int r = 0; r < ROUTE_ROUNDS; r++)
        for (int t = 0; t < n; t++) {
            u32 row = (u32)(t + r) % NR_ROUTED;
            gic_route_spi(SPI_ROUTED + row, gic_irouter_for(cpu_mpidr((unsigned)t)));
            gic_set_pending(SPI_ROUTED + row);
            expect[row][t]++;
            if (wait_u32(&st.spi_total, ++sent))
                fail("SPI %u routed to cpu %d never taken", SPI_ROUTED + row, t);
        }
    u64 route_any = GICD_IROUTER_IRM;
    gic_route_spi(SPI_ANY, route_any);
    u64 readback = gic_read_irouter(SPI_ANY);
    u32 no1n = (*(volatile u32 *)(GICD_BASE + GICD_TYPER) & GICD_TYPER_NO1N) != 0;
    printf("spi: IROUTER IRM=1 reads back 0x%lx, GICD_TYPER.No1N %u\n", readback, no1n);
    for (int i = 0; i < ANY_ROUNDS; i++) {
        gic_set_pending(SPI_ANY);
        if (wait_u32(&st.spi_total, ++sent))
            fail("SPI %u routed to any cpu never taken", SPI_ANY);
    }
    delay_ms(20);   /* room for a duplicate delivery to show up */
    irq_disable();
    store_release32(&st.stop, 1);

    u32 wrong = 0;
    for (u32 row = 0; row < NR_ROUTED; row++)
        for (int c = 0; c < n; c++)
            if (st.spi_got[row][c] != expect[row][c]) {
                wrong++;
                printf("SPI %u on cpu %d: taken %u times, expect %u\n", SPI_ROUTED + row, c,
                       st.spi_got[row][c], expect[row][c]);
            }
    u32 any = 0, any_cpus = 0;
    char dist[160];
    int len = 0;
    for (int c = 0; c < n; c++) {
        any += st.spi_got[NR_ROUTED][c];
        any_cpus += st.spi_got[NR_ROUTED][c] != 0;
        if (len < (int)sizeof(dist))
            len += snprintf(dist + len, sizeof(dist) - (size_t)len, " %u", st.spi_got[NR_ROUTED][c]);
    }
    printf("spi: IRM=1 deliveries per cpu:%s\n", dist);
    check_eq("spi: routed SPIs taken", (s64)st.spi_total - any, (s64)ROUTE_ROUNDS * n);
    check_eq("spi: routed SPIs on the wrong cpu or not exactly once", wrong, 0);
    check_eq("spi: IRM=1 SPIs taken", any, ANY_ROUNDS);
    check_true("spi: IRM=1 SPIs reached a cpu", any_cpus >= 1, "%u cpus", any_cpus);
    int off = 0;
    for (int c = 1; c < n; c++)
        off += smp_wait_off((unsigned)c, TIMEOUT_MS) == 0;
    check_eq("secondaries powered off", off, n - 1);
}

int main(void)
{
    printf("gic_prio: %d cpus\n", plat.ncpus);
    if (plat.ncpus < 2)
        fail("gic_prio needs at least 2 cpus");
    gic_dist_init();
    gic_cpu_init();
    test_pmr();
    test_preemption();
    test_split_eoi();
    test_spi_routing();
    return 0;
}
