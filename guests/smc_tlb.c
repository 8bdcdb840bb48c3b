/* Cross-CPU coherence of code and translations, with the MMU on everywhere.
 * (a) Self-modifying code: CPU 0 rewrites `mov w0, #imm; ret` and does the
 *     Linux sequence (DC CVAU, DSB ISH, IC IVAU, DSB ISH, ISB; Arm ARM B2.4.4)
 *     before telling the others, which ran the previous version (so it is
 *     translated and cached) and must now get the new imm.
 * (b) TLB shootdown: CPU 0 moves a VA page between physical pages A and B
 *     with break-before-make and TLBI VAE1IS; the others, which read the VA
 *     through the old page just before, must see the new page's marker. */
#include "guest.h"

#define ROUNDS 200
#define MARK_A 0xA0000000UL
#define MARK_B 0xB0000000UL

static u32 patch_buf[16] __attribute__((section(".patch_text"), aligned(64)));
static u8 window[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 page_a[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 page_b[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

struct shared {
    volatile u32 round;          /* published by CPU 0 with store-release */
    volatile u32 ack[MAX_CPUS];  /* last round each checker finished */
    u32 smc_bad[MAX_CPUS];
    u32 tlb_bad[MAX_CPUS];
    u64 first_bad[MAX_CPUS];
};
static struct shared sh;

/* movz w0, #imm (Arm ARM C6.2.191) and ret. */
#define MOVZ_W0(imm) (0x52800000U | ((u32)(imm) << 5))
#define RET 0xD65F03C0U

static u32 imm_for(u32 round) { return (round * 7919U + 13U) & 0xFFFF; }

static u32 call_patched(void)
{
    u32 (*fn)(void) = (u32 (*)(void))(u64)patch_buf;
    return fn();
}

static void patch(u32 imm)
{
    patch_buf[0] = MOVZ_W0(imm);
    patch_buf[1] = RET;
    __asm__ volatile("dc cvau, %0\n dsb ish\n ic ivau, %0\n dsb ish\n isb"
                     ::"r"(patch_buf) : "memory");
}

static u64 window_marker(u32 round) { return ((round & 1) ? MARK_B : MARK_A) | round; }

static u64 read_window(void) { return *(volatile u64 *)window; }

static void wait_round(u32 r)
{
    u64 dl = deadline_ms(10000);
    while (load_acquire32(&sh.round) < r)
        if (past(dl))
            fail("cpu %u: round %u never published", this_cpu(), r);
}

static void wait_acks(u32 r)
{
    u64 dl = deadline_ms(10000);
    for (int cpu = 1; cpu < plat.ncpus; cpu++)
        while (load_acquire32(&sh.ack[cpu]) < r)
            if (past(dl))
                fail("cpu %d never acknowledged round %u", cpu, r);
}

static void checker(unsigned cpu, void *arg)
{
    /* Rounds 1..ROUNDS: code; ROUNDS+1..2*ROUNDS: translations. Round 0 is
     * the initial state each checker caches before CPU 0 changes it. */
    for (u32 r = 0; r <= 2 * ROUNDS; r++) {
        wait_round(r);
        isb();
        if (r <= ROUNDS) {
            u32 got = call_patched();
            if (got != imm_for(r) && !sh.smc_bad[cpu]++)
                sh.first_bad[cpu] = ((u64)r << 32) | got;
            call_patched();
        } else {
            u64 got = read_window();
            if (got != window_marker(r) && !sh.tlb_bad[cpu]++)
                sh.first_bad[cpu] = ((u64)r << 32) | (got & 0xFFFFFFFF);
        }
        if (r == ROUNDS)
            read_window();   /* cache the round-ROUNDS translation */
        store_release32(&sh.ack[cpu], r);
    }
}

int main(void)
{
    int n = plat.ncpus;
    printf("smc_tlb: %d cpus, %d code patches, %d remaps\n", n, ROUNDS, ROUNDS);
    if (n < 2)
        fail("smc_tlb needs at least 2 cpus");
    mmu_init();
    mmu_enable();
    patch(imm_for(0));
    *(volatile u64 *)page_a = window_marker(ROUNDS);   /* window starts on A */
    mmu_set_page((u64)window, (u64)page_a, PROT_KERNEL_RW);
    for (int cpu = 1; cpu < n; cpu++)
        if (smp_boot_cpu(cpu, checker, 0, 10000))
            fail("cpu %d did not come online", cpu);
    wait_acks(0);

    u32 own_bad = 0;
    for (u32 r = 1; r <= ROUNDS; r++) {
        patch(imm_for(r));
        own_bad += call_patched() != imm_for(r);
        store_release32(&sh.round, r);
        wait_acks(r);
    }
    for (u32 r = ROUNDS + 1; r <= 2 * ROUNDS; r++) {
        *(volatile u64 *)page_a = MARK_A | r;
        *(volatile u64 *)page_b = MARK_B | r;
        /* Odd rounds go A -> B, even rounds B -> A. */
        mmu_set_page((u64)window, (u64)((r & 1) ? page_b : page_a), PROT_KERNEL_RW);
        own_bad += read_window() != window_marker(r);
        store_release32(&sh.round, r);
        wait_acks(r);
    }
    check_eq("cpu 0 own checks bad", own_bad, 0);
    for (int cpu = 1; cpu < n; cpu++) {
        printf("cpu %d: code rounds %d stale %u, remap rounds %d stale %u\n", cpu, ROUNDS,
               sh.smc_bad[cpu], ROUNDS, sh.tlb_bad[cpu]);
        if (sh.smc_bad[cpu] || sh.tlb_bad[cpu])
            printf("  first stale: round %lu got 0x%lx\n", sh.first_bad[cpu] >> 32,
                   sh.first_bad[cpu] & 0xFFFFFFFF);
        check_eq("  stale code executions", sh.smc_bad[cpu], 0);
        check_eq("  stale translations", sh.tlb_bad[cpu], 0);
    }
    return 0;
}
