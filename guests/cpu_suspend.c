/* CPU_SUSPEND standby and power-down (DEN0022 5.4), woken by SGI 1 sent
 * through the GICv3 (IHI0069) from CPU 0. A power-down suspend may resume at
 * the entry point with context_id in x0 (TF-A) or return 0 in place (QEMU
 * treats it as standby); both are accepted and reported. */
#include "guest.h"

#define SGI_WAKE 1
/* CPU_SUSPEND power_state (original format): type bit 16 = power-down. */
#define PSTATE_STANDBY 0x0U
#define PSTATE_POWERDOWN (1U << 16)

struct state {
    volatile u32 ready;
    volatile u32 woke;         /* 1 after standby wake, 2 after power-down wake */
    s64 standby_ret;
    s64 powerdown_ret;         /* set only when the call returned in place */
    u32 standby_intid;
    u32 powerdown_intid;
    u32 resumed_at_entry;
    u64 resume_ctx;
};
static struct state st;

/* IRQs stay masked (DAIF.I): a pending one still ends WFI / standby. */
static u32 ack_irq(void)
{
    u64 dl = deadline_ms(1000);
    for (;;) {
        u32 intid = (u32)READ_SYSREG(ICC_IAR1_EL1) & 0xFFFFFF;
        if (intid != GIC_INTID_SPURIOUS) {
            WRITE_SYSREG(ICC_EOIR1_EL1, intid);
            return intid;
        }
        if (past(dl))
            return GIC_INTID_SPURIOUS;
    }
}

static void resumed_task(unsigned cpu, void *arg)
{
    /* Power-down lost the CPU interface state: set it up again. */
    st.resumed_at_entry = 1;
    st.resume_ctx = secondary_data[cpu].ctx_seen;
    gic_cpu_init();
    st.powerdown_intid = ack_irq();
    store_release32(&st.woke, 2);
}

static void sleeper(unsigned cpu, void *arg)
{
    gic_cpu_init();
    store_release32(&st.ready, 1);
    st.standby_ret = psci_cpu_suspend(PSTATE_STANDBY, 0, 0);
    st.standby_intid = ack_irq();
    store_release32(&st.woke, 1);

    while (load_acquire32(&st.ready) != 2)
        cpu_relax();
    secondary_data[cpu].task = resumed_task;
    dcache_clean_secondary(cpu);
    s64 r = psci_cpu_suspend(PSTATE_POWERDOWN, (u64)secondary_entry, (u64)&secondary_data[cpu]);
    /* Only here when the suspend returned in place. */
    st.powerdown_ret = r;
    st.powerdown_intid = ack_irq();
    store_release32(&st.woke, 2);
}

static void wait_woke(u32 v)
{
    u64 dl = deadline_ms(5000);
    while (load_acquire32(&st.woke) != v)
        if (past(dl))
            fail("sleeper did not wake (stage %u)", v);
}

int main(void)
{
    int n = plat.ncpus;
    printf("cpu_suspend: %d cpus, SGI %d wakes cpu 1\n", n, SGI_WAKE);
    if (n < 2)
        fail("cpu_suspend needs at least 2 cpus");
    gic_dist_init();
    gic_cpu_init();
    if (smp_boot_cpu(1, sleeper, 0, 5000))
        fail("cpu 1 did not come online");
    while (!load_acquire32(&st.ready))
        cpu_relax();
    /* Give it time to reach the suspend; an SGI sent earlier stays pending
     * and ends the suspend at once, which is also correct. */
    u64 dl = deadline_ms(20);
    while (!past(dl))
        cpu_relax();
    gic_send_sgi(SGI_WAKE, 1);
    wait_woke(1);
    check_eq("standby CPU_SUSPEND return", st.standby_ret, PSCI_SUCCESS);
    check_eq("standby woken by SGI", st.standby_intid, SGI_WAKE);

    store_release32(&st.ready, 2);
    dl = deadline_ms(20);
    while (!past(dl))
        cpu_relax();
    gic_send_sgi(SGI_WAKE, 1);
    wait_woke(2);
    if (st.resumed_at_entry) {
        printf("power-down: resumed at the entry point\n");
        check_true("power-down context_id", st.resume_ctx == (u64)&secondary_data[1], "0x%lx",
                   st.resume_ctx);
    } else {
        printf("power-down: returned in place (treated as standby)\n");
        check_eq("power-down CPU_SUSPEND return", st.powerdown_ret, PSCI_SUCCESS);
    }
    check_eq("power-down woken by SGI", st.powerdown_intid, SGI_WAKE);
    check_eq("cpu 1 powered off", smp_wait_off(1, 5000), 0);
    return 0;
}
