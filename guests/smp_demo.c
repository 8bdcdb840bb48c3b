/* The README demo: Linux-style bring-up of every CPU the DTB lists, then all
 * CPUs add to one shared counter with LDXR/STXR. The per-CPU lines are
 * printed by the boot CPU once everyone reported in, so the output is the
 * same whatever order the CPUs ran in. */
#include "guest.h"

#define ROUNDS 1000

struct demo {
    volatile u64 counter;
    volatile u32 done;
    u64 partial[MAX_CPUS];
};
static struct demo demo;

static void work(unsigned cpu)
{
    u64 mine = 0;
    for (int i = 0; i < ROUNDS; i++) {
        atomic_add64(&demo.counter, 1);
        mine += (u64)cpu + 1;
    }
    demo.partial[cpu] = mine;
}

static void secondary_task(unsigned cpu, void *arg)
{
    /* Work starts as soon as the CPU is up, so it overlaps the bring-up of
     * the next ones and the boot CPU's own share; nobody idles in a spin
     * loop (on QEMU, 64 spinning vCPU threads would starve the boot CPU). */
    work(cpu);
    atomic_add32(&demo.done, 1);
}

int main(void)
{
    int n = plat.ncpus;
    printf("smp_demo: bringing up %d cpus\n", n);
    printf("cpu 0 (mpidr 0x%lx) online at EL%u (boot cpu)\n", cpu_mpidr(0), current_el());
    mmu_init();
    mmu_enable();
    for (int cpu = 1; cpu < n; cpu++) {
        s64 r = smp_boot_cpu(cpu, secondary_task, 0, 10000);
        if (r != 0)
            fail("cpu %d did not come online (%ld)", cpu, r);
    }
    int bad = 0;
    for (int cpu = 1; cpu < n; cpu++) {
        struct secondary_data *d = &secondary_data[cpu];
        u64 mpidr = d->mpidr_seen & MPIDR_AFF_MASK;
        printf("cpu %d (mpidr 0x%lx) online at EL%lu\n", cpu, mpidr, d->el_seen);
        bad += mpidr != cpu_mpidr(cpu) || d->el_seen != 1;
    }
    check_eq("secondaries with wrong mpidr or EL", bad, 0);
    work(0);
    u64 dl = deadline_ms(20000);
    while (load_acquire32(&demo.done) != (u32)(n - 1)) {
        if (past(dl))
            fail("only %u of %d secondaries finished", demo.done, n - 1);
        cpu_relax();
    }
    u64 want = (u64)n * ROUNDS;
    printf("counter: %lu (expect %lu = %d cpus x %d)\n", demo.counter, want, n, ROUNDS);
    check_eq("shared counter", (s64)demo.counter, (s64)want);
    u64 sum = 0;
    for (int cpu = 0; cpu < n; cpu++)
        sum += demo.partial[cpu];
    check_eq("per-cpu work sum", (s64)sum, (s64)ROUNDS * n * (n + 1) / 2);
    int off = 0;
    for (int cpu = 1; cpu < n; cpu++)
        off += smp_wait_off(cpu, 10000) == 0;
    check_eq("secondaries powered off", off, n - 1);
    printf("all %d cpus done\n", n);
    return 0;
}
