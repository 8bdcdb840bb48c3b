/* PSCI (DEN0022) through the conduit the DTB's /psci "method" names. */
#include "guest.h"

s64 psci_call(u32 fid, u64 a1, u64 a2, u64 a3)
{
    if (plat.conduit == CONDUIT_HVC)
        return hvc_call(fid, a1, a2, a3);
    return smc_call(fid, a1, a2, a3);
}

/* 32-bit (SMC32) calls return a 32-bit signed value in w0. */
static s64 ret32(s64 v) { return (s64)(int32_t)(u32)v; }

s64 psci_version(void) { return ret32(psci_call(PSCI_VERSION, 0, 0, 0)); }
s64 psci_features(u32 fid) { return ret32(psci_call(PSCI_FEATURES, fid, 0, 0)); }
s64 psci_cpu_on(u64 mpidr, u64 entry, u64 ctx) { return psci_call(PSCI_CPU_ON, mpidr, entry, ctx); }
s64 psci_cpu_off(void) { return ret32(psci_call(PSCI_CPU_OFF, 0, 0, 0)); }
s64 psci_affinity_info(u64 mpidr, u64 level)
{
    return psci_call(PSCI_AFFINITY_INFO, mpidr, level, 0);
}
s64 psci_cpu_suspend(u32 state, u64 entry, u64 ctx)
{
    return psci_call(PSCI_CPU_SUSPEND, state, entry, ctx);
}

void psci_system_off(void)
{
    psci_call(PSCI_SYSTEM_OFF, 0, 0, 0);
    /* SYSTEM_OFF does not return; if it does, there is nothing left to do. */
    uart_puts("SYSTEM_OFF returned\n");
    for (;;)
        __asm__ volatile("wfi");
}
