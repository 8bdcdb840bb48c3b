/* Inter-processor interrupts through the GICv3 (IHI0069 12.2.23
 * ICC_SGI1R_EL1): every CPU sends ROUNDS SGIs to every other CPU by target
 * list, to itself, and to all others by broadcast (IRM = 1), one SGI number
 * per kind. GICv3's IAR carries no source CPU, so the sender claims the
 * receiver's mailbox for that kind (0 -> sender + 1) before sending; the
 * receiver's handler checks the INTID, records the sender and frees the
 * mailbox. One outstanding SGI per (receiver, kind) also means no two SGIs
 * can merge into one pending state, so every send must arrive exactly once. */
#include "guest.h"

#define ROUNDS 10
/* Generous: with 8 vCPUs spinning on a loaded 2-core host, one mailbox
 * round trip can take seconds of wall (and counter) time. */
#define TIMEOUT_MS 30000
enum kind { K_TARGET, K_SELF, K_BCAST, NKINDS };
static const u32 sgi_of[NKINDS] = {2, 3, 4};
static const char *const kind_name[NKINDS] = {"unicast", "self", "broadcast"};

struct ipi_state {
    volatile u32 mailbox[MAX_CPUS][NKINDS];      /* 0 free, else sender + 1 */
    volatile u32 got[MAX_CPUS][MAX_CPUS][NKINDS]; /* [receiver][sender][kind] */
    volatile u32 empty_mailbox[MAX_CPUS];         /* SGI arrived, nobody sent */
    volatile u32 started;
    volatile u32 sent_all;
    volatile u32 stop;
};
static struct ipi_state st;

/* 1 if *p went from 0 to v (LDAXR/STXR compare-and-swap). */
static int claim(volatile u32 *p, u32 v)
{
    u32 old, fail_;
    __asm__ volatile("1: ldaxr %w0, [%2]\n"
                     "   cbnz %w0, 2f\n"
                     "   stxr %w1, %w3, [%2]\n"
                     "   cbnz %w1, 1b\n"
                     "2:\n"
                     : "=&r"(old), "=&r"(fail_)
                     : "r"(p), "r"(v)
                     : "memory");
    return old == 0;
}

static void on_sgi(u32 intid, struct exc_frame *f)
{
    unsigned me = this_cpu();
    int k = intid == sgi_of[K_TARGET] ? K_TARGET : intid == sgi_of[K_SELF] ? K_SELF : K_BCAST;
    u32 m = load_acquire32(&st.mailbox[me][k]);
    if (!m) {
        st.empty_mailbox[me]++;
        return;
    }
    st.got[me][m - 1][k]++;
    store_release32(&st.mailbox[me][k], 0);
}

static void claim_or_fail(unsigned me, unsigned dest, int k)
{
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (!claim(&st.mailbox[dest][k], me + 1)) {
        if (past(dl)) {
            /* Where the SGI is stuck: pending, active, or nowhere (lost). */
            u64 sgi = gic_sgi_base(dest);
            u32 pend = *(volatile u32 *)(sgi + GICD_ISPENDR);
            u32 act = *(volatile u32 *)(sgi + GICD_ISACTIVER);
            fail("cpu %u: %s mailbox of cpu %u still busy (held by cpu %u): SGI %u "
                 "pending %u active %u at cpu %u", me, kind_name[k], dest,
                 st.mailbox[dest][k] - 1, sgi_of[k], (pend >> sgi_of[k]) & 1,
                 (act >> sgi_of[k]) & 1, dest);
        }
        cpu_relax();
    }
}

static void send_all(unsigned me)
{
    int n = plat.ncpus;
    /* IRQs stay unmasked while waiting for a mailbox: the CPU that holds
     * ours may be waiting for us to take its SGI. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 1; i < n; i++) {
            unsigned dest = (me + (unsigned)i) % (unsigned)n;
            claim_or_fail(me, dest, K_TARGET);
            gic_send_sgi(sgi_of[K_TARGET], dest);
        }
        claim_or_fail(me, me, K_SELF);
        gic_send_sgi(sgi_of[K_SELF], me);
        /* Claim in CPU order so two broadcasters cannot deadlock. */
        for (int d = 0; d < n; d++)
            if ((unsigned)d != me)
                claim_or_fail(me, (unsigned)d, K_BCAST);
        gic_send_sgi_others(sgi_of[K_BCAST]);
    }
    atomic_add32(&st.sent_all, 1);
}

static void secondary(unsigned cpu, void *arg)
{
    gic_cpu_init();
    irq_enable();
    atomic_add32(&st.started, 1);
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (load_acquire32(&st.started) != (u32)plat.ncpus)
        if (past(dl))
            fail("cpu %u: not every cpu started", cpu);
    send_all(cpu);
    dl = deadline_ms(2 * TIMEOUT_MS);
    while (!load_acquire32(&st.stop))
        if (past(dl))
            fail("cpu %u: boot cpu never said stop", cpu);
    irq_disable();
}

static int mailboxes_free(void)
{
    for (int c = 0; c < plat.ncpus; c++)
        for (int k = 0; k < NKINDS; k++)
            if (load_acquire32(&st.mailbox[c][k]))
                return 0;
    return 1;
}

int main(void)
{
    int n = plat.ncpus;
    printf("gic_ipi: %d cpus, %d rounds, SGI %u unicast, %u self, %u broadcast\n", n, ROUNDS,
           sgi_of[K_TARGET], sgi_of[K_SELF], sgi_of[K_BCAST]);
    gic_dist_init();
    gic_cpu_init();
    for (int k = 0; k < NKINDS; k++)
        gic_set_handler(sgi_of[k], on_sgi);
    irq_enable();
    atomic_add32(&st.started, 1);
    for (int c = 1; c < n; c++)
        if (smp_boot_cpu((unsigned)c, secondary, 0, TIMEOUT_MS))
            fail("cpu %d did not come online", c);
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (load_acquire32(&st.started) != (u32)n)
        if (past(dl))
            fail("not every cpu set up its GIC interface");
    send_all(0);
    dl = deadline_ms(2 * TIMEOUT_MS);
    while (load_acquire32(&st.sent_all) != (u32)n || !mailboxes_free())
        if (past(dl))
            fail("SGIs still outstanding (%u of %d cpus done sending)", st.sent_all, n);
    /* Anything extra (a duplicate delivery) would show up in this window. */
    u64 grace = deadline_ms(20);
    while (!past(grace))
        cpu_relax();
    store_release32(&st.stop, 1);
    irq_disable();

    u32 total[NKINDS] = {0};
    u32 bad_pairs = 0, empty = 0;
    for (int r = 0; r < n; r++) {
        u32 per[NKINDS] = {0};
        for (int s = 0; s < n; s++)
            for (int k = 0; k < NKINDS; k++) {
                u32 want = k == K_SELF ? (r == s ? ROUNDS : 0) : (r == s ? 0 : ROUNDS);
                u32 got = st.got[r][s][k];
                per[k] += got;
                if (got != want) {
                    bad_pairs++;
                    printf("cpu %d got %u %s SGIs from cpu %d, expect %u\n", r, got,
                           kind_name[k], s, want);
                }
            }
        empty += st.empty_mailbox[r];
        printf("cpu %d received: unicast %u self %u broadcast %u unclaimed %u\n", r,
               per[K_TARGET], per[K_SELF], per[K_BCAST], st.empty_mailbox[r]);
        for (int k = 0; k < NKINDS; k++)
            total[k] += per[k];
    }
    check_eq("unicast SGIs received", total[K_TARGET], (s64)n * (n - 1) * ROUNDS);
    check_eq("self SGIs received", total[K_SELF], (s64)n * ROUNDS);
    check_eq("broadcast SGIs received", total[K_BCAST], (s64)n * (n - 1) * ROUNDS);
    check_eq("sender/receiver pairs wrong", bad_pairs, 0);
    check_eq("SGIs with an empty mailbox", empty, 0);
    int off = 0;
    for (int c = 1; c < n; c++)
        off += smp_wait_off((unsigned)c, TIMEOUT_MS) == 0;
    check_eq("secondaries powered off", off, n - 1);
    return 0;
}
