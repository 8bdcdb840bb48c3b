/* Planted bug for `armvisor explore` (a missing wait): the boot CPU starts
 * the secondary and only then writes the data the secondary reads first
 * thing. The default schedule lets the caller of CPU_ON run
 * POWER_ON_LATENCY instructions before the new CPU starts, long enough for
 * the stores, and passes; a shorter power-up lets the secondary read the
 * data before it is written. The correct version writes the data first, or
 * makes the secondary wait for a flag set with store_release32. */
#include "guest.h"

#define TIMEOUT_MS 10000
#define WORDS 32

struct boot_data {
    u64 magic;                /* what the secondary must see */
    u64 table[WORDS];
};
static struct boot_data boot_data;
static volatile u64 seen_magic;
static volatile u32 done;

static void secondary(unsigned cpu, void *arg)
{
    seen_magic = *(volatile u64 *)&boot_data.magic;     /* the bug: no wait for the data */
    store_release32(&done, 1);
}

/* The data takes some work to make (a few hundred instructions). */
static u64 make_boot_data(void)
{
    u64 sum = 0x9e3779b97f4a7c15UL;
    for (int i = 0; i < WORDS; i++) {
        boot_data.table[i] = sum;
        sum = (sum ^ (sum >> 29)) * 0xbf58476d1ce4e5b9UL + (u64)i;
    }
    return sum | 1;
}

int main(void)
{
    printf("boot_data: the boot cpu starts cpu 1, then writes its boot data\n");
    if (smp_start_cpu(1, secondary, 0) != PSCI_SUCCESS)
        fail("cpu 1 did not start");
    u64 magic = make_boot_data();
    *(volatile u64 *)&boot_data.magic = magic;
    u64 dl = deadline_ms(TIMEOUT_MS);
    while (!load_acquire32(&done))
        if (past(dl))
            fail("cpu 1 never read its boot data");
    if (smp_wait_off(1, TIMEOUT_MS))
        fail("cpu 1 did not power off");
    if (seen_magic != magic)
        fail("cpu 1 read boot data 0x%lx, expected 0x%lx", seen_magic, magic);
    printf("cpu 1 read boot data 0x%lx\n", seen_magic);
    pass();
}
