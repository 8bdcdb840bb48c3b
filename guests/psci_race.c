/* KVM's virtual PSCI rule (PLATFORM-FACTS.md): when several vCPUs call CPU_ON
 * for the same vCPU at once, exactly one gets SUCCESS and every other
 * ALREADY_ON (never ON_PENDING). vCPUs 1-3 race for vCPU 4, ROUNDS times;
 * the target powers itself off again after each round. Needs 5 CPUs. */
#include "guest.h"

#define ROUNDS 100
#define CALLERS 3
#define TARGET 4
#define TIMEOUT_MS 20000

static volatile u32 go_round, arrived, done_round;
static volatile s64 results[CALLERS + 1];
static volatile u32 target_runs;
static u32 success_rounds, bad_rounds, on_pending_seen;

static void target_entry_task(unsigned cpu, void *arg)
{
    atomic_add32(&target_runs, 1);
}

static void caller(unsigned cpu, void *arg)
{
    for (u32 round = 1; round <= ROUNDS; round++) {
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&go_round) != round)
            if (past(dl))
                fail("cpu %u: round %u never started", cpu, round);
        results[cpu] = smp_start_cpu(TARGET, target_entry_task, 0);
        atomic_add32(&arrived, 1);
        while (load_acquire32(&done_round) != round)
            if (past(dl))
                fail("cpu %u: round %u never ended", cpu, round);
    }
}

int main(void)
{
    if (plat.ncpus < TARGET + 1)
        fail("psci_race needs %d cpus", TARGET + 1);
    printf("psci_race: vcpus 1-%d call CPU_ON for vcpu %d at once, %d rounds\n", CALLERS, TARGET,
           ROUNDS);
    for (unsigned cpu = 1; cpu <= CALLERS; cpu++)
        if (smp_boot_cpu(cpu, caller, 0, TIMEOUT_MS))
            fail("cpu %u did not come online", cpu);
    for (u32 round = 1; round <= ROUNDS; round++) {
        store_release32(&arrived, 0);
        store_release32(&go_round, round);
        u64 dl = deadline_ms(TIMEOUT_MS);
        while (load_acquire32(&arrived) != CALLERS)
            if (past(dl))
                fail("round %u: callers did not all return", round);
        unsigned successes = 0;
        for (unsigned c = 1; c <= CALLERS; c++) {
            if (results[c] == PSCI_SUCCESS)
                successes++;
            else if (results[c] == PSCI_ON_PENDING)
                on_pending_seen++;
            else if (results[c] != PSCI_ALREADY_ON)
                bad_rounds++;
        }
        success_rounds += successes == 1;
        if (smp_wait_off(TARGET, TIMEOUT_MS))
            fail("round %u: vcpu %d did not power off again", round, TARGET);
        store_release32(&done_round, round);
    }
    for (unsigned cpu = 1; cpu <= CALLERS; cpu++)
        smp_wait_off(cpu, TIMEOUT_MS);
    check_eq("rounds with exactly one SUCCESS", success_rounds, ROUNDS);
    check_eq("ON_PENDING answers", on_pending_seen, 0);
    check_eq("answers other than SUCCESS/ALREADY_ON", bad_rounds, 0);
    check_eq("target runs", target_runs, ROUNDS);
    finish();
}
