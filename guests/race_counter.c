/* Planted bug for `armvisor explore` (a lost update): every CPU counts itself
 * online with a plain load and store of a shared counter, with a printf in
 * between. The default schedule runs each secondary's count in one slice and
 * passes; a slice that ends inside the printf lets another CPU count in the
 * gap, and one of the two counts is lost. The correct version uses
 * atomic_add32. Needs 3 CPUs or more. */
#include "guest.h"

#define TIMEOUT_MS 10000

static volatile u32 online_count;   /* the bug: updated without an atomic */
static volatile u32 finished;

/* Out of line, so the load and the store are in different blocks and a
 * slice can end between them. */
static __attribute__((noinline)) void announce(unsigned cpu)
{
    printf("cpu %u online\n", cpu);
}

static void count_online(unsigned cpu, void *arg)
{
    u32 seen = online_count;
    announce(cpu);
    online_count = seen + 1;
    atomic_add32(&finished, 1);
}

int main(void)
{
    unsigned n = (unsigned)plat.ncpus;
    if (n < 3)
        fail("race_counter needs 3 cpus or more");
    printf("race_counter: %u cpus count themselves online\n", n);
    online_count = 1;                       /* the boot CPU */
    /* Start them all before waiting, so their counts can overlap. */
    for (unsigned cpu = 1; cpu < n; cpu++)
        if (smp_start_cpu(cpu, count_online, 0) != PSCI_SUCCESS)
            fail("cpu %u did not start", cpu);
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (load_acquire32(&finished) != n - 1) {
        if (past(dl))
            fail("only %u of %u secondaries finished", finished, n - 1);
        cpu_relax();
    }
    for (unsigned cpu = 1; cpu < n; cpu++)
        if (smp_wait_off(cpu, TIMEOUT_MS))
            fail("cpu %u did not power off", cpu);
    if (online_count != n)
        fail("lost update: %u cpus counted, %u online", online_count, n);
    printf("cpus counted: %u of %u\n", online_count, n);
    pass();
}
