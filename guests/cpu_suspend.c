/* CPU_SUSPEND standby and power-down (DEN0022 5.4), woken by SGI 1 sent
 * through the GICv3 (IHI0069) from CPU 0. A power-down suspend may resume at
 * the entry point with context_id in x0 (TF-A) or return 0 in place (QEMU
 * treats it as standby); both are accepted and reported. */
#include "guest.h"

#define SGI_WAKE 1
/* GICD (IHI0069 12.9), GICR (12.10/12.11) offsets and bits. */
#define GICD_CTLR 0x0000
#define GICD_CTLR_ENABLE_G1 (1U << 1)
#define GICD_CTLR_ARE (1U << 4)
#define GICR_STRIDE 0x20000UL
#define GICR_WAKER 0x0014
#define GICR_TYPER 0x0008
#define GICR_TYPER_LAST (1UL << 4)
#define WAKER_PROCESSOR_SLEEP (1U << 1)
#define WAKER_CHILDREN_ASLEEP (1U << 2)
#define GICR_SGI_FRAME 0x10000UL
#define GICR_IGROUPR0 0x0080
#define GICR_ISENABLER0 0x0100
#define GICR_IPRIORITYR 0x0400
/* CPU_SUSPEND power_state (original format): type bit 16 = power-down. */
#define PSTATE_STANDBY 0x0U
#define PSTATE_POWERDOWN (1U << 16)
#define INTID_SPURIOUS 1023

static inline volatile u32 *reg32(u64 addr) { return (volatile u32 *)addr; }

#define WRITE_SYSREG(name, v) __asm__ volatile("msr " name ", %0\n isb" ::"r"((u64)(v)) : "memory")
#define READ_SYSREG(name) ({ u64 v_; __asm__ volatile("mrs %0, " name : "=r"(v_)); v_; })
#define ICC_SRE_EL1 "S3_0_C12_C12_5"
#define ICC_PMR_EL1 "S3_0_C4_C6_0"
#define ICC_IGRPEN1_EL1 "S3_0_C12_C12_7"
#define ICC_SGI1R_EL1 "S3_0_C12_C11_5"
#define ICC_IAR1_EL1 "S3_0_C12_C12_0"
#define ICC_EOIR1_EL1 "S3_0_C12_C12_1"

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

static u64 redistributor(u64 mpidr)
{
    /* Walk the frames until GICR_TYPER.Affinity matches (IHI0069 12.11.38). */
    u64 aff = ((mpidr >> 8) & 0xFF000000UL) | (mpidr & 0xFFFFFFUL);
    for (u64 rd = GICR_BASE;; rd += GICR_STRIDE) {
        u64 typer = *(volatile u64 *)(rd + GICR_TYPER);
        if ((typer >> 32) == aff)
            return rd;
        if (typer & GICR_TYPER_LAST)
            fail("no redistributor for mpidr 0x%lx", mpidr);
    }
}

static void gic_cpu_init(unsigned cpu)
{
    u64 rd = redistributor(cpu_mpidr(cpu));
    *reg32(rd + GICR_WAKER) &= ~WAKER_PROCESSOR_SLEEP;
    u64 dl = deadline_ms(1000);
    while (*reg32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP)
        if (past(dl))
            fail("cpu %u redistributor stays asleep", cpu);
    u64 sgi = rd + GICR_SGI_FRAME;
    *(volatile u8 *)(sgi + GICR_IPRIORITYR + SGI_WAKE) = 0x80;
    *reg32(sgi + GICR_IGROUPR0) |= 1U << SGI_WAKE;
    *reg32(sgi + GICR_ISENABLER0) = 1U << SGI_WAKE;
    WRITE_SYSREG(ICC_SRE_EL1, READ_SYSREG(ICC_SRE_EL1) | 1);
    WRITE_SYSREG(ICC_PMR_EL1, 0xFF);
    WRITE_SYSREG(ICC_IGRPEN1_EL1, 1);
}

static void send_sgi(unsigned cpu)
{
    u64 m = cpu_mpidr(cpu);
    /* ICC_SGI1R_EL1 (IHI0069 12.11.15): TargetList = bit Aff0, Aff1 [23:16],
     * INTID [27:24], Aff2 [39:32], Aff3 [55:48]. */
    u64 v = (1UL << (m & 0xF)) | (((m >> 8) & 0xFF) << 16) | ((u64)SGI_WAKE << 24) |
            (((m >> 16) & 0xFF) << 32) | (((m >> 32) & 0xFF) << 48);
    dsb(ish);
    WRITE_SYSREG(ICC_SGI1R_EL1, v);
}

/* IRQs stay masked (DAIF.I): a pending one still ends WFI / standby. */
static u32 ack_irq(void)
{
    u64 dl = deadline_ms(1000);
    for (;;) {
        u32 intid = (u32)READ_SYSREG(ICC_IAR1_EL1) & 0xFFFFFF;
        if (intid != INTID_SPURIOUS) {
            WRITE_SYSREG(ICC_EOIR1_EL1, intid);
            return intid;
        }
        if (past(dl))
            return INTID_SPURIOUS;
    }
}

static void resumed_task(unsigned cpu, void *arg)
{
    /* Power-down lost the CPU interface state: set it up again. */
    st.resumed_at_entry = 1;
    st.resume_ctx = secondary_data[cpu].ctx_seen;
    gic_cpu_init(cpu);
    st.powerdown_intid = ack_irq();
    store_release32(&st.woke, 2);
}

static void sleeper(unsigned cpu, void *arg)
{
    gic_cpu_init(cpu);
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
    *reg32(GICD_BASE + GICD_CTLR) = GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1;
    gic_cpu_init(0);
    if (smp_boot_cpu(1, sleeper, 0, 5000))
        fail("cpu 1 did not come online");
    while (!load_acquire32(&st.ready))
        cpu_relax();
    /* Give it time to reach the suspend; an SGI sent earlier stays pending
     * and ends the suspend at once, which is also correct. */
    u64 dl = deadline_ms(20);
    while (!past(dl))
        cpu_relax();
    send_sgi(1);
    wait_woke(1);
    check_eq("standby CPU_SUSPEND return", st.standby_ret, PSCI_SUCCESS);
    check_eq("standby woken by SGI", st.standby_intid, SGI_WAKE);

    store_release32(&st.ready, 2);
    dl = deadline_ms(20);
    while (!past(dl))
        cpu_relax();
    send_sgi(1);
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
