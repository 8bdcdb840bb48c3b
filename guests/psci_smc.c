/* PSCI over SMC whatever the DTB says, as firmware-minded code hard-codes it:
 * under a hypervisor (a VM's DTB names HVC) the SMC traps to EL2 (HCR_EL2.TSC)
 * and must be served exactly once, resuming after the SMC. Checks
 * PSCI_VERSION (also from an SMC whose preceding word is an SMC), CPU_ON of every secondary (each
 * adds to a counter and powers itself off with CPU_OFF, also over SMC),
 * AFFINITY_INFO down to OFF, and SYSTEM_OFF over SMC at the end. */
#include "guest.h"

#define ROUNDS 200

static volatile u64 counter;

/* PSCI_VERSION through an SMC whose preceding word is another SMC (never
 * executed): a trap handler that decodes the word before PC finds an SMC
 * there too, serves the call and resumes on the same SMC, forever. */
static s64 smc_after_smc(void)
{
    register u64 x0 __asm__("x0") = PSCI_VERSION;
    __asm__ volatile("b 1f\n"
                     "smc #0\n"
                     "1: smc #0\n"
                     : "+r"(x0)
                     :
                     : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",
                       "x13", "x14", "x15", "x16", "x17", "memory");
    return (s64)(int32_t)x0;
}

static void secondary_task(unsigned cpu, void *arg)
{
    for (int i = 0; i < ROUNDS; i++)
        atomic_add64(&counter, 1);
}

int main(void)
{
    int n = plat.ncpus;
    printf("psci_smc: DTB says %s, using smc\n", plat.conduit == CONDUIT_HVC ? "hvc" : "smc");
    plat.conduit = CONDUIT_SMC;
    psci_use_hvc = 0;

    s64 version = (s64)(int32_t)smc_call(PSCI_VERSION, 0, 0, 0);
    check_true("PSCI_VERSION over smc", version >= 0x10000, "0x%lx", version);
    check_eq("PSCI_VERSION, smc after an smc", smc_after_smc(), version);

    for (int round = 0; round < 3; round++) {
        for (int cpu = 1; cpu < n; cpu++) {
            s64 r = smp_boot_cpu(cpu, secondary_task, 0, 10000);
            if (r != 0)
                fail("round %d: cpu %d did not come online (%ld)", round, cpu, r);
        }
        for (int cpu = 1; cpu < n; cpu++)
            if (smp_wait_off(cpu, 10000))
                fail("round %d: cpu %d did not power off", round, cpu);
    }
    check_eq("counter", (s64)counter, (s64)3 * (n - 1) * ROUNDS);
    return 0;
}
