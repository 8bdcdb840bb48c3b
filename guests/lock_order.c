/* Planted bug for `armvisor explore` (a lock-order deadlock through an
 * interrupt handler): each round, CPU 1 takes lock A, sends CPU 0 an SGI
 * whose handler takes A too, then takes lock B. CPU 0 takes B with IRQs
 * unmasked, then sleeps in WFI until the round's SGI was handled. When the
 * SGI arrives while CPU 0 holds B, CPU 0 spins on A in the handler and CPU 1
 * spins on B: both spin forever. The default schedule runs CPU 0 from the
 * handler through its B section into WFI in one slice and passes; a slice
 * that ends inside the B section hangs. The correct version masks IRQs
 * while holding B (or takes the locks in one order). Needs 2 CPUs. */
#include "guest.h"

#define TIMEOUT_MS 10000
#define ROUNDS 4
#define SGI_FOLD 5
#define OUTSIDE_WORK 100
#define INSIDE_WORK 200

static spinlock_t lock_a, lock_b;
static volatile u32 a_total, b_total, handled, cpu1_done;

static __attribute__((noinline)) void work(u32 n)
{
    for (volatile u32 i = 0; i < n; i++)
        ;
}

/* CPU 0: CPU 1 asks it to fold its count into A's total. */
static void on_fold(u32 intid, struct exc_frame *f)
{
    spin_lock(&lock_a);
    a_total++;
    spin_unlock(&lock_a);
    store_release32(&handled, handled + 1);
}

static void cpu1_task(unsigned cpu, void *arg)
{
    gic_cpu_init();
    for (int r = 0; r < ROUNDS; r++) {
        spin_lock(&lock_a);
        gic_send_sgi(SGI_FOLD, 0);
        spin_lock(&lock_b);
        b_total++;
        spin_unlock(&lock_b);
        spin_unlock(&lock_a);
        /* One SGI at a time: a second one sent while the first is pending would merge. */
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&handled) != (u32)r + 1)
            if (past(dl))
                fail("cpu 0 did not take SGI %d", r + 1);
        work(OUTSIDE_WORK);
    }
    store_release32(&cpu1_done, 1);
}

int main(void)
{
    printf("lock_order: cpu 1 takes A then B, cpu 0 takes B with an IRQ handler that takes A\n");
    gic_dist_init();
    gic_cpu_init();
    gic_set_handler(SGI_FOLD, on_fold);
    irq_enable();
    if (smp_boot_cpu(1, cpu1_task, 0, TIMEOUT_MS))
        fail("cpu 1 did not come online");
    for (u32 r = 0; r < ROUNDS; r++) {
        spin_lock(&lock_b);             /* the bug: IRQs stay unmasked while B is held */
        b_total++;
        work(INSIDE_WORK);
        spin_unlock(&lock_b);
        /* Sleep until CPU 1's SGI of this round has been handled. */
        while (load_acquire32(&handled) <= r)
            wfi();
    }
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (!load_acquire32(&cpu1_done))
        if (past(dl))
            fail("cpu 1 did not finish");
    irq_disable();
    if (smp_wait_off(1, TIMEOUT_MS))
        fail("cpu 1 did not power off");
    printf("SGIs handled: %u, A total %u, B total %u\n", handled, a_total, b_total);
    pass();
}
