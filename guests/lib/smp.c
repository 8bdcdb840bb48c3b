/* Boot flow and SMP bring-up in the style of Linux arch/arm64/kernel/smp.c:
 * the boot CPU fills a secondary_data for the target, calls PSCI CPU_ON with
 * the runtime's entry point and a context_id that points at that data, and
 * waits (with a timeout) for the target to publish "online" with a
 * store-release. Logical CPU 0 is the boot CPU; the others follow DTB order. */
#include "guest.h"

struct platform plat;
u32 psci_use_hvc;
struct secondary_data secondary_data[MAX_CPUS];
u8 cpu_stacks[MAX_CPUS][STACK_SIZE] __attribute__((aligned(16)));
volatile u64 ctx_probe_value;
volatile u64 ctx_probe_el;
static volatile u32 failed_checks;

/* Where QEMU's loader puts the DTB for an ELF kernel (hw/arm/boot.c: start
 * of RAM when the image leaves room there) and x0 is not set. */
#define FALLBACK_DTB RAM_BASE

void spin_lock(spinlock_t *l)
{
    u32 tmp, st;
    __asm__ volatile("1: ldaxr %w0, [%2]\n"
                     "   cbnz %w0, 2f\n"
                     "   stxr %w1, %w3, [%2]\n"
                     "   cbnz %w1, 1b\n"
                     "   b 3f\n"
                     "2: yield\n"
                     "   b 1b\n"
                     "3:\n"
                     : "=&r"(tmp), "=&r"(st)
                     : "r"(&l->v), "r"(1U)
                     : "memory");
}

void spin_unlock(spinlock_t *l)
{
    store_release32(&l->v, 0);
}

u64 deadline_ms(u64 ms)
{
    return read_cntvct() + ms * (read_cntfrq() / 1000);
}

int past(u64 deadline)
{
    return (s64)(read_cntvct() - deadline) > 0;
}

unsigned this_cpu(void)
{
    u64 v;
    __asm__ volatile("mrs %0, tpidr_el1" : "=r"(v));
    return (unsigned)v;
}

u64 cpu_mpidr(unsigned cpu)
{
    return plat.mpidr[cpu];
}

void stack_bounds(unsigned cpu, u64 *lo, u64 *hi)
{
    *lo = (u64)cpu_stacks[cpu];
    *hi = *lo + STACK_SIZE;
}

void check_failed(void)
{
    atomic_add32(&failed_checks, 1);
}

int checks_failed(void)
{
    return (int)load_acquire32(&failed_checks);
}

int check_eq(const char *name, s64 got, s64 expect)
{
    int ok = got == expect;
    printf("%s: got %ld expect %ld %s\n", name, got, expect, ok ? "ok" : "BAD");
    if (!ok)
        check_failed();
    return ok;
}

int check_true(const char *name, int cond, const char *fmt, ...)
{
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printf("%s: %s%s%s\n", name, buf, buf[0] ? " " : "", cond ? "ok" : "BAD");
    if (!cond)
        check_failed();
    return cond;
}

void pass(void)
{
    uart_puts("RESULT: PASS\n");
    psci_system_off();
}

void fail(const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printf("RESULT: FAIL %s\n", buf);
    psci_system_off();
}

void finish(void)
{
    int n = checks_failed();
    if (n)
        fail("%d checks failed", n);
    pass();
}

static void dcache_clean(const void *p, size_t len)
{
    /* Secondaries start with the MMU (and so caches) off: push what the boot
     * CPU wrote to the point of coherency, as Linux does for secondary_data. */
    for (u64 a = (u64)p & ~63UL; a < (u64)p + len; a += 64)
        __asm__ volatile("dc cvac, %0" ::"r"(a) : "memory");
    dsb(sy);
}

void dcache_clean_secondary(unsigned cpu)
{
    dcache_clean(&secondary_data[cpu], sizeof(secondary_data[cpu]));
}

s64 smp_start_cpu(unsigned cpu, cpu_task_t task, void *arg)
{
    struct secondary_data *d = &secondary_data[cpu];
    d->stack_top = (u64)cpu_stacks[cpu] + STACK_SIZE;
    d->cpu = cpu;
    d->mpidr = plat.mpidr[cpu];
    d->task = task;
    d->arg = arg;
    d->ctx_seen = 0;
    store_release32(&d->online, 0);
    dcache_clean(d, sizeof(*d));
    return psci_cpu_on(plat.mpidr[cpu], (u64)secondary_entry, (u64)d);
}

int smp_wait_online(unsigned cpu, u64 timeout_ms)
{
    u64 dl = deadline_ms(timeout_ms);
    while (!load_acquire32(&secondary_data[cpu].online)) {
        if (past(dl))
            return -1;
        cpu_relax();
    }
    return 0;
}

s64 smp_boot_cpu(unsigned cpu, cpu_task_t task, void *arg, u64 timeout_ms)
{
    s64 r = smp_start_cpu(cpu, task, arg);
    if (r != PSCI_SUCCESS)
        return r;
    return smp_wait_online(cpu, timeout_ms) ? 1 : 0;
}

int smp_wait_off(unsigned cpu, u64 timeout_ms)
{
    u64 dl = deadline_ms(timeout_ms);
    while (psci_affinity_info(plat.mpidr[cpu], 0) != AFF_OFF) {
        if (past(dl))
            return -1;
        cpu_relax();
    }
    return 0;
}

void secondary_main(struct secondary_data *d, u64 entry_el)
{
    d->ctx_seen = (u64)d;
    d->entry_el = entry_el;
    d->el_seen = current_el();
    d->mpidr_seen = read_mpidr();
    if (mmu_enabled())
        mmu_enable();
    d->boots++;
    store_release32(&d->online, 1);
    d->task((unsigned)d->cpu, d->arg);
    s64 r = psci_cpu_off();
    fail("cpu %u: CPU_OFF returned %ld", (unsigned)d->cpu, r);
}

static const void *find_dtb(u64 x0)
{
    /* Only look at x0 if it could be a DTB in RAM: QEMU leaves it unset for
     * ELF images, and reading a wild address would fault. */
    if (x0 >= RAM_BASE && x0 < RAM_BASE + (4UL << 30) && !(x0 & 7) &&
        fdt_valid((const void *)x0))
        return (const void *)x0;
    if (fdt_valid((const void *)FALLBACK_DTB))
        return (const void *)FALLBACK_DTB;
    return 0;
}

void boot_main(u64 x0, u64 entry_el)
{
    uart_init();
    const void *dtb = find_dtb(x0);
    struct platform raw;
    if (!dtb || fdt_parse(dtb, &raw) || raw.ncpus == 0) {
        printf("RESULT: FAIL no usable DTB (x0 0x%lx, word at RAM 0x%x, parsed cpus %d)\n",
               x0, *(volatile u32 *)FALLBACK_DTB, dtb ? raw.ncpus : -1);
        for (;;)
            __asm__ volatile("wfi");
    }
    /* Logical 0 = boot CPU, then the others in DTB order (Linux smp_init_cpus). */
    u64 self = read_mpidr() & MPIDR_AFF_MASK;
    plat = raw;
    plat.ncpus = 0;
    plat.mpidr[plat.ncpus++] = self;
    int found = 0;
    for (int i = 0; i < raw.ncpus; i++) {
        if (raw.mpidr[i] == self)
            found = 1;
        else
            plat.mpidr[plat.ncpus++] = raw.mpidr[i];
    }
    psci_use_hvc = plat.conduit == CONDUIT_HVC;
    if (plat.conduit == CONDUIT_NONE) {
        uart_puts("RESULT: FAIL DTB has no /psci method\n");
        for (;;)
            __asm__ volatile("wfi");
    }
    if (!found)
        fail("boot CPU mpidr 0x%lx not in the DTB", self);
    secondary_data[0].cpu = 0;
    secondary_data[0].mpidr = self;
    printf("guest: %d cpus, psci %s, entered at EL%u\n", plat.ncpus,
           plat.conduit == CONDUIT_HVC ? "hvc" : "smc", (unsigned)entry_el);
    int rc = main();
    if (rc)
        fail("main returned %d", rc);
    finish();
}
