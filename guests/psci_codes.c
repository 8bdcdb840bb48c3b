/* Provokes every PSCI (DEN0022 1.1) return code a caller can provoke on
 * purpose and prints "name: got X expect Y ok|BAD". Where QEMU's TCG PSCI
 * (target/arm/psci.c, arm-powerctl.c) answers differently from Trusted
 * Firmware-A, the line says "DIFF accepted" with the reason; armvisor must
 * give the TF-A answer (the pytest checks for it).
 *
 * Codes that cannot be provoked on purpose here:
 *  - DENIED (-3): CPU_OFF/MIGRATE on the CPU a uniprocessor Trusted OS lives
 *    on; no Trusted OS is modelled (MIGRATE_INFO_TYPE = 2).
 *  - INTERNAL_FAILURE (-6): the platform failing to power a core on; the
 *    models never fail.
 *  - NOT_PRESENT (-7): MIGRATE to a core that is not present; needs a
 *    migratable Trusted OS.
 *  - DISABLED (-8): CPU_ON of a core firmware disabled; all DTB cores are
 *    enabled.
 * Needs >= 3 CPUs for every check (CPU 1: context probe, CPU 2: ON_PENDING,
 * the last CPU: bad entry points). */
#include "guest.h"

#define CTX_ID 0x0123456789ABCDEFUL
#define BAD_MPIDR 0xFFFFFFFFUL
/* Aff2 = 0x7f: no such cluster on QEMU virt or armvisor. */
#define ABSENT_MPIDR 0x7F0000UL
/* CPU_SUSPEND original power_state format: bits [23:17] are reserved. */
#define PSTATE_RESERVED_BIT (1U << 17)
#define PSTATE_RESERVED_HI (1U << 30)

static volatile u32 release_cpu2;

static int check_hex(const char *name, u64 got, u64 expect)
{
    int ok = got == expect;
    printf("%s: got 0x%lx expect 0x%lx %s\n", name, got, expect, ok ? "ok" : "BAD");
    if (!ok)
        check_failed();
    return ok;
}

#define END_ALT 0x7FFFFFFF

/* expect is the TF-A/armvisor answer; the alternatives (ending with END_ALT)
 * are what QEMU's TCG PSCI has been seen to answer, for the reason given. */
static void check_either(const char *name, s64 got, s64 expect, const char *why, ...)
{
    if (got == expect) {
        printf("%s: got %ld expect %ld ok\n", name, got, expect);
        return;
    }
    va_list ap;
    va_start(ap, why);
    for (s64 alt = va_arg(ap, s64); alt != END_ALT; alt = va_arg(ap, s64)) {
        if (got == alt) {
            va_end(ap);
            printf("%s: got %ld expect %ld DIFF accepted (%s)\n", name, got, expect, why);
            return;
        }
    }
    va_end(ap);
    printf("%s: got %ld expect %ld BAD\n", name, got, expect);
    check_failed();
}

static void hold_task(unsigned cpu, void *arg)
{
    while (!load_acquire32(&release_cpu2))
        cpu_relax();
}

static void features(void)
{
    static const struct { const char *name; u32 fid; } impl[] = {
        {"FEATURES(PSCI_VERSION)", PSCI_VERSION},
        {"FEATURES(CPU_OFF)", PSCI_CPU_OFF},
        {"FEATURES(CPU_ON64)", PSCI_CPU_ON},
        {"FEATURES(CPU_ON32)", PSCI_CPU_ON32},
        {"FEATURES(AFFINITY_INFO64)", PSCI_AFFINITY_INFO},
        {"FEATURES(AFFINITY_INFO32)", PSCI_AFFINITY_INFO32},
        {"FEATURES(MIGRATE_INFO_TYPE)", PSCI_MIGRATE_INFO_TYPE},
        {"FEATURES(SYSTEM_OFF)", PSCI_SYSTEM_OFF},
        {"FEATURES(SYSTEM_RESET)", PSCI_SYSTEM_RESET},
        {"FEATURES(PSCI_FEATURES)", PSCI_FEATURES},
    };
    for (unsigned i = 0; i < sizeof(impl) / sizeof(impl[0]); i++)
        check_eq(impl[i].name, psci_features(impl[i].fid), PSCI_SUCCESS);
    /* CPU_SUSPEND answers with its feature flags (DEN0022 5.15.2): bit 1 is
     * the power_state format, 0 = original (what the reserved-bit check
     * below relies on). */
    s64 f = psci_features(PSCI_CPU_SUSPEND);
    check_true("FEATURES(CPU_SUSPEND64)", f >= 0 && !(f & 2), "got %ld expect >=0 original format", f);
    f = psci_features(PSCI_CPU_SUSPEND32);
    check_true("FEATURES(CPU_SUSPEND32)", f >= 0 && !(f & 2), "got %ld expect >=0 original format", f);

    static const struct { const char *name; u32 fid; } bad[] = {
        {"FEATURES(0x8400001f unassigned)", 0x8400001FU},
        {"FEATURES(0xc400001f unassigned)", 0xC400001FU},
        {"FEATURES(0x8400ffff)", 0x8400FFFFU},
        {"FEATURES(0x12345678 not PSCI)", 0x12345678U},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_eq(bad[i].name, psci_features(bad[i].fid), PSCI_NOT_SUPPORTED);
}

static void migrate(void)
{
    check_eq("MIGRATE_INFO_TYPE", psci_call(PSCI_MIGRATE_INFO_TYPE, 0, 0, 0), 2);
    /* Optional when no Trusted OS is resident: whatever PSCI_FEATURES says
     * must match what the call does. */
    s64 f = psci_features(PSCI_MIGRATE_INFO_UP_CPU);
    s64 r = psci_call(PSCI_MIGRATE_INFO_UP_CPU, 0, 0, 0);
    if (f == PSCI_NOT_SUPPORTED)
        check_eq("MIGRATE_INFO_UP_CPU (not in FEATURES)", r, PSCI_NOT_SUPPORTED);
    else
        check_true("MIGRATE_INFO_UP_CPU (in FEATURES)", r >= 0, "got 0x%lx", r);
    f = psci_features(PSCI_MIGRATE);
    check_eq("FEATURES(MIGRATE) without Trusted OS", f, PSCI_NOT_SUPPORTED);
    check_eq("MIGRATE without Trusted OS", psci_call(PSCI_MIGRATE, cpu_mpidr(0), 0, 0),
             PSCI_NOT_SUPPORTED);
}

int main(void)
{
    int n = plat.ncpus;
    printf("psci_codes: %d cpus\n", n);
    if (n < 3)
        fail("psci_codes needs at least 3 cpus, got %d", n);
    unsigned probe = 1, pend = 2, last = (unsigned)n - 1;

    check_hex("PSCI_VERSION", (u64)psci_version(), 0x10001);
    s64 f = psci_features(SMCCC_VERSION);
    s64 v = psci_call(SMCCC_VERSION, 0, 0, 0);
    if (f == PSCI_SUCCESS)
        check_true("SMCCC_VERSION", v >= 0x10001, "got 0x%lx expect >= 0x10001", v);
    else
        check_true("SMCCC_VERSION (v1.0, not in FEATURES)", v == PSCI_NOT_SUPPORTED,
                   "got %ld expect -1", v);
    features();
    check_eq("unknown fid 0x8400001f", psci_call(0x8400001FU, 0, 0, 0), PSCI_NOT_SUPPORTED);
    check_eq("unknown fid 0xc400001f", psci_call(0xC400001FU, 0, 0, 0), PSCI_NOT_SUPPORTED);
    migrate();

    check_eq("AFFINITY_INFO(self)", psci_affinity_info(cpu_mpidr(0), 0), AFF_ON);
    check_eq("AFFINITY_INFO(never started)", psci_affinity_info(cpu_mpidr(probe), 0), AFF_OFF);
    check_eq("AFFINITY_INFO32(never started)",
             (int32_t)psci_call(PSCI_AFFINITY_INFO32, cpu_mpidr(probe), 0, 0), AFF_OFF);
    check_eq("AFFINITY_INFO(bad mpidr)", psci_affinity_info(BAD_MPIDR, 0), PSCI_INVALID_PARAMETERS);
    check_eq("AFFINITY_INFO(absent mpidr)", psci_affinity_info(ABSENT_MPIDR, 0),
             PSCI_INVALID_PARAMETERS);
    check_either("AFFINITY_INFO(level 4)", psci_affinity_info(cpu_mpidr(0), 4),
                 PSCI_INVALID_PARAMETERS, "QEMU ignores lowest_affinity_level", (s64)AFF_ON,
                 (s64)END_ALT);

    check_eq("CPU_ON(mpidr 0xffffffff)", psci_cpu_on(BAD_MPIDR, (u64)secondary_entry, 0),
             PSCI_INVALID_PARAMETERS);
    check_eq("CPU_ON(absent mpidr)", psci_cpu_on(ABSENT_MPIDR, (u64)secondary_entry, 0),
             PSCI_INVALID_PARAMETERS);
    check_eq("CPU_ON(self)", psci_cpu_on(cpu_mpidr(0), (u64)secondary_entry, 0), PSCI_ALREADY_ON);
    check_eq("CPU_SUSPEND(reserved bit 17)", psci_cpu_suspend(PSTATE_RESERVED_BIT, 0, 0),
             PSCI_INVALID_PARAMETERS);
    check_eq("CPU_SUSPEND(reserved bit 30)", psci_cpu_suspend(PSTATE_RESERVED_HI, 0, 0),
             PSCI_INVALID_PARAMETERS);

    /* context_id passing: an entry point that only records x0. */
    ctx_probe_value = 0;
    check_eq("CPU_ON(context probe)", psci_cpu_on(cpu_mpidr(probe), (u64)ctx_probe_entry, CTX_ID),
             PSCI_SUCCESS);
    u64 dl = deadline_ms(5000);
    while (ctx_probe_value == 0 && !past(dl))
        cpu_relax();
    check_hex("context_id in x0", ctx_probe_value, CTX_ID);
    check_eq("CPU_OFF then AFFINITY_INFO OFF", smp_wait_off(probe, 5000), 0);

    /* Two CPU_ONs back to back, and AFFINITY_INFO, before the target ran. */
    s64 r1 = smp_start_cpu(pend, hold_task, 0);
    s64 r2 = psci_cpu_on(cpu_mpidr(pend), (u64)secondary_entry, (u64)&secondary_data[pend]);
    s64 a = psci_affinity_info(cpu_mpidr(pend), 0);
    check_eq("CPU_ON(off cpu)", r1, PSCI_SUCCESS);
    check_either("CPU_ON(same cpu again)", r2, PSCI_ON_PENDING,
                 "QEMU has no ON_PENDING state: two racing CPU_ONs may both succeed",
                 (s64)PSCI_ALREADY_ON, (s64)PSCI_SUCCESS, (s64)END_ALT);
    check_either("AFFINITY_INFO(just started)", a, AFF_ON_PENDING,
                 "QEMU reports OFF until the target thread ran, then ON",
                 (s64)AFF_ON, (s64)AFF_OFF, (s64)END_ALT);
    check_eq("started cpu came online", smp_wait_online(pend, 5000), 0);
    check_eq("AFFINITY_INFO(running)", psci_affinity_info(cpu_mpidr(pend), 0), AFF_ON);
    check_eq("CPU_ON(running cpu)", psci_cpu_on(cpu_mpidr(pend), (u64)secondary_entry, 0),
             PSCI_ALREADY_ON);
    store_release32(&release_cpu2, 1);
    check_eq("released cpu powered off", smp_wait_off(pend, 5000), 0);

    /* Bad entry points, last because QEMU may accept them and start the CPU
     * at an address with no code. */
    s64 e1 = psci_cpu_on(cpu_mpidr(last), 0x1000, 0);
    check_either("CPU_ON(entry 0x1000)", e1, PSCI_INVALID_ADDRESS,
                 "QEMU does not validate the entry point", (s64)PSCI_SUCCESS, (s64)END_ALT);
    if (e1 != PSCI_SUCCESS) {
        check_eq("CPU_ON(entry 0x0)", psci_cpu_on(cpu_mpidr(last), 0, 0), PSCI_INVALID_ADDRESS);
        check_eq("CPU_ON(entry with bit 0 set)",
                 psci_cpu_on(cpu_mpidr(last), (u64)secondary_entry + 1, 0), PSCI_INVALID_ADDRESS);
        check_eq("AFFINITY_INFO(after rejected CPU_ON)", psci_affinity_info(cpu_mpidr(last), 0),
                 AFF_OFF);
    }
    return 0;
}
