/* CPU hotplug: every secondary is powered on, does a bit of work, reports,
 * and calls CPU_OFF; the boot CPU waits for AFFINITY_INFO == OFF and powers
 * it on again, ROUNDS times per CPU. All secondaries cycle concurrently. */
#include "guest.h"

#define ROUNDS 100

struct hp {
    volatile u32 reported[MAX_CPUS];   /* rounds the CPU finished */
    volatile u64 work[MAX_CPUS];
    u32 on_fail[MAX_CPUS];
};
static struct hp hp;

static void task(unsigned cpu, void *arg)
{
    u64 round = (u64)arg;
    /* Work that depends on the round, so a stale or skipped run shows. */
    u64 acc = 0;
    for (u64 i = 1; i <= 64; i++)
        acc += i * (round + 1);
    hp.work[cpu] += acc;
    store_release32(&hp.reported[cpu], (u32)round + 1);
    /* Returning makes the runtime call CPU_OFF. */
}

static int wait_reported(unsigned cpu, u32 round)
{
    u64 dl = deadline_ms(5000);
    while (load_acquire32(&hp.reported[cpu]) != round + 1) {
        if (past(dl))
            return -1;
        cpu_relax();
    }
    return 0;
}

int main(void)
{
    int n = plat.ncpus;
    printf("hotplug: %d cpus, %d CPU_OFF/CPU_ON cycles each\n", n, ROUNDS);
    if (n < 2)
        fail("hotplug needs at least 2 cpus");
    for (u32 round = 0; round < ROUNDS; round++) {
        for (int cpu = 1; cpu < n; cpu++) {
            s64 r = smp_start_cpu(cpu, task, (void *)(u64)round);
            if (r != PSCI_SUCCESS) {
                if (!hp.on_fail[cpu]++)
                    printf("cpu %d round %u: CPU_ON returned %ld\n", cpu, round, r);
            }
        }
        for (int cpu = 1; cpu < n; cpu++) {
            if (wait_reported(cpu, round))
                fail("cpu %d round %u: did not report", cpu, round);
            if (smp_wait_off(cpu, 5000))
                fail("cpu %d round %u: AFFINITY_INFO never said OFF", cpu, round);
        }
    }
    u64 want = 0;
    for (u64 round = 0; round < ROUNDS; round++)
        for (u64 i = 1; i <= 64; i++)
            want += i * (round + 1);
    for (int cpu = 1; cpu < n; cpu++) {
        printf("cpu %d: boots %u work %lu CPU_ON failures %u\n", cpu, secondary_data[cpu].boots,
               hp.work[cpu], hp.on_fail[cpu]);
        check_eq("  boots", secondary_data[cpu].boots, ROUNDS);
        check_eq("  work", (s64)hp.work[cpu], (s64)want);
        check_eq("  CPU_ON failures", hp.on_fail[cpu], 0);
        check_eq("  final AFFINITY_INFO", psci_affinity_info(cpu_mpidr(cpu), 0), AFF_OFF);
    }
    return 0;
}
