/* GICv3 (ARM IHI0069) for the guests, brought up in the order Linux's
 * drivers/irqchip/irq-gic-v3.c uses: distributor off, wait RWP, SPIs
 * configured, distributor on with affinity routing; then per CPU: find the
 * redistributor by affinity, wake it, configure SGIs/PPIs, enable the
 * system-register CPU interface. Every interrupt is non-secure group 1. */
#include "guest.h"

/* GICR_TYPER (IHI0069 12.11.38): Last, VLPIS (then 4 x 64 KiB frames). */
#define GICR_TYPER_VLPIS (1UL << 1)
#define GICR_TYPER_LAST (1UL << 4)
#define GICR_FRAME_STRIDE 0x20000UL
#define GICR_FRAME_STRIDE_VLPI 0x40000UL
/* GICR_WAKER (12.11.42). */
#define WAKER_PROCESSOR_SLEEP (1U << 1)
#define WAKER_CHILDREN_ASLEEP (1U << 2)
/* ICC_SRE_EL1.SRE (12.2.21). */
#define ICC_SRE_SRE 1UL
/* ICC_SGI1R_EL1 fields (12.2.23). */
#define SGI1R_AFF1_SHIFT 16
#define SGI1R_INTID_SHIFT 24
#define SGI1R_AFF2_SHIFT 32
#define SGI1R_IRM (1UL << 40)
#define SGI1R_RS_SHIFT 44
#define SGI1R_AFF3_SHIFT 48
#define RWP_TIMEOUT_MS 1000

struct gic_state {
    irq_handler_t handler[GIC_MAX_INTID];
    u64 rd_base[MAX_CPUS];
    unsigned nr_lines;
};
static struct gic_state gic;

static inline volatile u32 *reg32(u64 addr) { return (volatile u32 *)addr; }

static void wait_clear(u64 addr, u32 bit, const char *what)
{
    u64 dl = deadline_ms(RWP_TIMEOUT_MS);
    while (*reg32(addr) & bit)
        if (past(dl))
            fail("cpu %u: %s stays set", this_cpu(), what);
}

static void gicd_wait_rwp(void) { wait_clear(GICD_BASE + GICD_CTLR, GICD_CTLR_RWP, "GICD_CTLR.RWP"); }

unsigned gic_nr_lines(void) { return gic.nr_lines; }

void gic_dist_init(void)
{
    u32 typer = *reg32(GICD_BASE + GICD_TYPER);
    unsigned lines = 32 * ((typer & 0x1F) + 1);
    gic.nr_lines = lines > GIC_MAX_INTID ? GIC_MAX_INTID : lines;

    *reg32(GICD_BASE + GICD_CTLR) = 0;
    gicd_wait_rwp();
    for (unsigned i = GIC_NR_PRIVATE; i < gic.nr_lines; i += 32) {
        *reg32(GICD_BASE + GICD_IGROUPR + i / 8) = ~0U;
        *reg32(GICD_BASE + GICD_ICENABLER + i / 8) = ~0U;
        *reg32(GICD_BASE + GICD_ICACTIVER + i / 8) = ~0U;
    }
    for (unsigned i = GIC_NR_PRIVATE; i < gic.nr_lines; i += 16)
        *reg32(GICD_BASE + GICD_ICFGR + i / 4) = 0;   /* level-sensitive */
    for (unsigned i = GIC_NR_PRIVATE; i < gic.nr_lines; i += 4)
        *reg32(GICD_BASE + GICD_IPRIORITYR + i) = GIC_PRIO_DEFAULT * 0x01010101U;
    gicd_wait_rwp();
    *reg32(GICD_BASE + GICD_CTLR) = GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1;
    gicd_wait_rwp();
    u64 route = gic_irouter_for(read_mpidr());
    for (unsigned i = GIC_NR_PRIVATE; i < gic.nr_lines; i++)
        *(volatile u64 *)(GICD_BASE + GICD_IROUTER + 8UL * i) = route;
    dsb(sy);
}

u64 gic_irouter_for(u64 mpidr)
{
    /* GICD_IROUTER (12.9.22): Aff3 [39:32], Aff2..Aff0 [23:0], as MPIDR. */
    return mpidr & MPIDR_AFF_MASK;
}

static u64 find_redistributor(u64 mpidr)
{
    /* GICR_TYPER.Affinity [63:32] is Aff3.Aff2.Aff1.Aff0 (12.11.38). */
    u64 aff = ((mpidr >> 8) & 0xFF000000UL) | (mpidr & 0xFFFFFFUL);
    for (u64 rd = GICR_BASE;;) {
        u64 typer = *(volatile u64 *)(rd + GICR_TYPER);
        if ((typer >> 32) == aff)
            return rd;
        if (typer & GICR_TYPER_LAST)
            fail("no redistributor for mpidr 0x%lx", mpidr);
        rd += (typer & GICR_TYPER_VLPIS) ? GICR_FRAME_STRIDE_VLPI : GICR_FRAME_STRIDE;
    }
}

u64 gic_rd_base(unsigned cpu) { return gic.rd_base[cpu]; }
u64 gic_sgi_base(unsigned cpu) { return gic.rd_base[cpu] + GICR_SGI_OFFSET; }

void gic_cpu_init(void)
{
    unsigned cpu = this_cpu();
    u64 rd = find_redistributor(read_mpidr());
    gic.rd_base[cpu] = rd;

    *reg32(rd + GICR_WAKER) &= ~WAKER_PROCESSOR_SLEEP;
    wait_clear(rd + GICR_WAKER, WAKER_CHILDREN_ASLEEP, "GICR_WAKER.ChildrenAsleep");

    u64 sgi = rd + GICR_SGI_OFFSET;
    *reg32(sgi + GICD_IGROUPR) = ~0U;
    /* Pending state is kept, as Linux keeps it: after a power-down suspend
     * the SGI that woke this CPU is still pending and must be taken. */
    *reg32(sgi + GICD_ICACTIVER) = ~0U;
    *reg32(sgi + GICD_ICENABLER) = 0xFFFF0000U;   /* PPIs off until asked for */
    *reg32(sgi + GICD_ISENABLER) = 0x0000FFFFU;   /* SGIs on, as Linux has them */
    for (unsigned i = 0; i < GIC_NR_PRIVATE; i += 4)
        *reg32(sgi + GICD_IPRIORITYR + i) = GIC_PRIO_DEFAULT * 0x01010101U;
    wait_clear(rd + GICR_CTLR, GICR_CTLR_RWP, "GICR_CTLR.RWP");

    WRITE_SYSREG(ICC_SRE_EL1, READ_SYSREG(ICC_SRE_EL1) | ICC_SRE_SRE);
    if (!(READ_SYSREG(ICC_SRE_EL1) & ICC_SRE_SRE))
        fail("cpu %u: ICC_SRE_EL1.SRE does not stick (no system-register GIC access)", cpu);
    WRITE_SYSREG(ICC_PMR_EL1, GIC_PMR_DEFAULT);
    WRITE_SYSREG(ICC_BPR1_EL1, 0);
    WRITE_SYSREG(ICC_CTLR_EL1, READ_SYSREG(ICC_CTLR_EL1) & ~(u64)ICC_CTLR_EOIMODE);
    WRITE_SYSREG(ICC_IGRPEN1_EL1, 1);
    exc_set_handler(gic_exc_handler);
}

void gic_set_handler(u32 intid, irq_handler_t h)
{
    if (intid < GIC_MAX_INTID)
        gic.handler[intid] = h;
    dsb(ish);
}

/* Base of the register block holding intid's bits: the calling CPU's SGI
 * frame for SGIs/PPIs (whose banked registers mirror the GICD layout for
 * INTIDs 0-31), the distributor for SPIs. */
static u64 block_for(u32 intid)
{
    return intid < GIC_NR_PRIVATE ? gic_sgi_base(this_cpu()) : GICD_BASE;
}

static void write_bit(u32 intid, unsigned reg)
{
    *reg32(block_for(intid) + reg + (intid / 32) * 4) = 1U << (intid % 32);
    dsb(sy);
}

static int read_bit(u32 intid, unsigned reg)
{
    return (*reg32(block_for(intid) + reg + (intid / 32) * 4) >> (intid % 32)) & 1;
}

static void wait_rwp_for(u32 intid)
{
    if (intid < GIC_NR_PRIVATE)
        wait_clear(gic_rd_base(this_cpu()) + GICR_CTLR, GICR_CTLR_RWP, "GICR_CTLR.RWP");
    else
        gicd_wait_rwp();
}

void gic_enable_irq(u32 intid) { write_bit(intid, GICD_ISENABLER); }

void gic_disable_irq(u32 intid)
{
    write_bit(intid, GICD_ICENABLER);
    wait_rwp_for(intid);
}

void gic_set_pending(u32 intid) { write_bit(intid, GICD_ISPENDR); }
void gic_clear_pending(u32 intid) { write_bit(intid, GICD_ICPENDR); }
int gic_is_pending(u32 intid) { return read_bit(intid, GICD_ISPENDR); }
int gic_is_active(u32 intid) { return read_bit(intid, GICD_ISACTIVER); }

void gic_set_priority(u32 intid, u8 prio)
{
    *(volatile u8 *)(block_for(intid) + GICD_IPRIORITYR + intid) = prio;
    dsb(sy);
}

void gic_set_edge(u32 intid, int edge)
{
    /* GICD_ICFGR<n> (12.9.10): 2 bits per INTID, bit 1 = edge-triggered. */
    volatile u32 *r = reg32(block_for(intid) + GICD_ICFGR + (intid / 16) * 4);
    u32 bit = 2U << ((intid % 16) * 2);
    *r = edge ? (*r | bit) : (*r & ~bit);
    dsb(sy);
}

void gic_route_spi(u32 intid, u64 irouter)
{
    *(volatile u64 *)(GICD_BASE + GICD_IROUTER + 8UL * intid) = irouter;
    dsb(sy);
}

u64 gic_read_irouter(u32 intid)
{
    return *(volatile u64 *)(GICD_BASE + GICD_IROUTER + 8UL * intid);
}

void gic_set_eoimode(int split)
{
    u64 v = READ_SYSREG(ICC_CTLR_EL1);
    v = split ? (v | ICC_CTLR_EOIMODE) : (v & ~(u64)ICC_CTLR_EOIMODE);
    WRITE_SYSREG(ICC_CTLR_EL1, v);
}

static u64 sgi1r(u32 intid, u64 mpidr)
{
    /* TargetList holds Aff0 % 16, RS selects the block of 16 (GICv3.1 RSS). */
    u64 aff0 = mpidr & 0xFF;
    return (1UL << (aff0 % 16)) | (((mpidr >> 8) & 0xFF) << SGI1R_AFF1_SHIFT) |
           ((u64)(intid & 0xF) << SGI1R_INTID_SHIFT) |
           (((mpidr >> 16) & 0xFF) << SGI1R_AFF2_SHIFT) | ((aff0 / 16) << SGI1R_RS_SHIFT) |
           (((mpidr >> 32) & 0xFF) << SGI1R_AFF3_SHIFT);
}

void gic_send_sgi(u32 intid, unsigned cpu)
{
    /* Make the sender's earlier stores visible before the interrupt, as
     * Linux's gic_ipi_send_mask does with dsb(ishst). */
    dsb(ish);
    WRITE_SYSREG(ICC_SGI1R_EL1, sgi1r(intid, cpu_mpidr(cpu)));
}

void gic_send_sgi_others(u32 intid)
{
    dsb(ish);
    WRITE_SYSREG(ICC_SGI1R_EL1, SGI1R_IRM | ((u64)(intid & 0xF) << SGI1R_INTID_SHIFT));
}

int gic_exc_handler(struct exc_frame *f, unsigned vec)
{
    if (vec != VEC_CUR_SPX_IRQ && vec != VEC_LOWER64_IRQ)
        return 0;
    int split = (READ_SYSREG(ICC_CTLR_EL1) & ICC_CTLR_EOIMODE) != 0;
    for (;;) {
        u32 intid = (u32)READ_SYSREG(ICC_IAR1_EL1) & 0xFFFFFF;
        /* 1020-1023 are special INTIDs: nothing (more) to take. */
        if (intid >= GIC_MAX_INTID && intid <= GIC_INTID_SPURIOUS)
            return 1;
        irq_handler_t h = intid < GIC_MAX_INTID ? gic.handler[intid] : 0;
        if (!h)
            fail("cpu %u: IRQ %u with no handler (elr 0x%lx)", this_cpu(), intid, f->elr);
        h(intid, f);
        /* The handler may have unmasked IRQs to allow preemption. */
        irq_disable();
        WRITE_SYSREG(ICC_EOIR1_EL1, intid);
        if (split)
            WRITE_SYSREG(ICC_DIR_EL1, intid);
    }
}
