/* Runtime for armvisor's bare-metal AArch64 test guests.
 * Everything a test program needs: UART printf, the platform facts read from
 * the DTB, PSCI through the DTB's conduit, Linux-style SMP bring-up, EL1
 * exception handlers, identity-mapped MMU and a few atomics. */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef uint8_t u8;
typedef int64_t s64;

#define MAX_CPUS 64
#define STACK_SIZE 16384
#define PAGE_SIZE 4096UL

/* QEMU virt memory map (hw/arm/virt.c base_memmap). */
#define RAM_BASE 0x40000000UL
#define UART_BASE 0x09000000UL
#define GICD_BASE 0x08000000UL
#define GICR_BASE 0x080A0000UL

/* ---- uart.c ---- */
void uart_init(void);
void uart_putc(char c);
void uart_puts(const char *s);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...);
void printf(const char *fmt, ...);

/* ---- string.c ---- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int strcmp(const char *a, const char *b);
size_t strlen(const char *s);

/* ---- fdt.c ---- */
enum conduit { CONDUIT_NONE = 0, CONDUIT_SMC, CONDUIT_HVC };
struct platform {
    const void *fdt;
    int ncpus;                /* cpu@* nodes under /cpus, in DTB order */
    u64 mpidr[MAX_CPUS];      /* their reg (affinity fields) */
    enum conduit conduit;     /* /psci method */
    u64 mem_base, mem_size;   /* first /memory reg */
};
int fdt_valid(const void *fdt);
int fdt_parse(const void *fdt, struct platform *out);

/* ---- psci.c (DEN0022 D: function IDs, 5.2.2 return codes) ---- */
#define PSCI_VERSION 0x84000000U
#define PSCI_CPU_SUSPEND 0xC4000001U
#define PSCI_CPU_SUSPEND32 0x84000001U
#define PSCI_CPU_OFF 0x84000002U
#define PSCI_CPU_ON 0xC4000003U
#define PSCI_CPU_ON32 0x84000003U
#define PSCI_AFFINITY_INFO 0xC4000004U
#define PSCI_AFFINITY_INFO32 0x84000004U
#define PSCI_MIGRATE 0xC4000005U
#define PSCI_MIGRATE_INFO_TYPE 0x84000006U
#define PSCI_MIGRATE_INFO_UP_CPU 0xC4000007U
#define PSCI_SYSTEM_OFF 0x84000008U
#define PSCI_SYSTEM_RESET 0x84000009U
#define PSCI_FEATURES 0x8400000AU
#define SMCCC_VERSION 0x80000000U

#define PSCI_SUCCESS 0
#define PSCI_NOT_SUPPORTED (-1)
#define PSCI_INVALID_PARAMETERS (-2)
#define PSCI_DENIED (-3)
#define PSCI_ALREADY_ON (-4)
#define PSCI_ON_PENDING (-5)
#define PSCI_INTERNAL_FAILURE (-6)
#define PSCI_NOT_PRESENT (-7)
#define PSCI_DISABLED (-8)
#define PSCI_INVALID_ADDRESS (-9)

/* AFFINITY_INFO results (DEN0022 5.7). */
#define AFF_ON 0
#define AFF_OFF 1
#define AFF_ON_PENDING 2

s64 psci_call(u32 fid, u64 a1, u64 a2, u64 a3);
s64 psci_version(void);
s64 psci_features(u32 fid);
s64 psci_cpu_on(u64 mpidr, u64 entry, u64 context_id);
s64 psci_cpu_off(void);
s64 psci_affinity_info(u64 mpidr, u64 level);
s64 psci_cpu_suspend(u32 power_state, u64 entry, u64 context_id);
void psci_system_off(void) __attribute__((noreturn));
/* Low-level conduits (start.S). */
s64 smc_call(u64 fid, u64 a1, u64 a2, u64 a3);
s64 hvc_call(u64 fid, u64 a1, u64 a2, u64 a3);

/* ---- runtime state (start.S / smp.c) ---- */
extern struct platform plat;
/* Mirrors plat.conduit for the assembly probe entry: 1 = HVC, 0 = SMC. */
extern u32 psci_use_hvc;

/* Ends the program: prints the RESULT line and powers the system off. */
void pass(void) __attribute__((noreturn));
void fail(const char *fmt, ...) __attribute__((noreturn));
/* Counts a failed check; main() calls finish() to turn the count into RESULT. */
void check_failed(void);
int checks_failed(void);
void finish(void) __attribute__((noreturn));
/* Prints "name: got X expect Y ok|BAD" and counts BADs. */
int check_eq(const char *name, s64 got, s64 expect);
int check_true(const char *name, int cond, const char *fmt, ...);

/* ---- smp.c ---- */
typedef void (*cpu_task_t)(unsigned cpu, void *arg);
struct secondary_data {
    u64 stack_top;          /* +0  read by secondary_entry */
    u64 cpu;                /* +8  logical index, goes to TPIDR_EL1 */
    u64 mpidr;
    cpu_task_t task;
    void *arg;
    u64 ctx_seen;           /* x0 the secondary got from CPU_ON */
    u64 el_seen;            /* CurrentEL after the runtime's EL2 drop */
    u64 entry_el;           /* CurrentEL at the PSCI entry point */
    u64 mpidr_seen;         /* MPIDR_EL1 as read by the secondary */
    u32 online;             /* store-release 1 once running C code */
    u32 boots;              /* times this CPU came online */
};
extern struct secondary_data secondary_data[MAX_CPUS];
void secondary_entry(void);     /* PSCI entry point for smp.c */
void ctx_probe_entry(void);     /* records x0 in ctx_probe_value then CPU_OFF */
extern volatile u64 ctx_probe_value;
extern volatile u64 ctx_probe_el;

unsigned this_cpu(void);
u64 cpu_mpidr(unsigned cpu);
/* Fills secondary_data[cpu] and issues CPU_ON; returns the PSCI code. */
s64 smp_start_cpu(unsigned cpu, cpu_task_t task, void *arg);
/* Waits for secondary_data[cpu].online; 0 on success, -1 on timeout. */
int smp_wait_online(unsigned cpu, u64 timeout_ms);
/* CPU_ON + wait, as Linux __cpu_up does. */
s64 smp_boot_cpu(unsigned cpu, cpu_task_t task, void *arg, u64 timeout_ms);
/* Polls AFFINITY_INFO until OFF; 0 on success, -1 on timeout. */
int smp_wait_off(unsigned cpu, u64 timeout_ms);
void stack_bounds(unsigned cpu, u64 *lo, u64 *hi);
/* Cleans secondary_data[cpu] to the PoC before a CPU_ON or power-down
 * suspend whose entry runs with the MMU off. */
void dcache_clean_secondary(unsigned cpu);

/* ---- timing ---- */
static inline u64 read_cntvct(void)
{
    u64 v;
    __asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
    return v;
}
static inline u64 read_cntfrq(void)
{
    u64 v;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}
u64 deadline_ms(u64 ms);
int past(u64 deadline);

/* ---- barriers / atomics (Arm ARM B2.3, B2.9 exclusives) ---- */
#define dsb(opt) __asm__ volatile("dsb " #opt ::: "memory")
#define dmb(opt) __asm__ volatile("dmb " #opt ::: "memory")
#define isb() __asm__ volatile("isb" ::: "memory")
static inline void cpu_relax(void) { __asm__ volatile("yield" ::: "memory"); }

static inline u32 load_acquire32(const volatile u32 *p)
{
    u32 v;
    __asm__ volatile("ldar %w0, [%1]" : "=r"(v) : "r"(p) : "memory");
    return v;
}
static inline void store_release32(volatile u32 *p, u32 v)
{
    __asm__ volatile("stlr %w1, [%0]" ::"r"(p), "r"(v) : "memory");
}
static inline u64 load_acquire64(const volatile u64 *p)
{
    u64 v;
    __asm__ volatile("ldar %0, [%1]" : "=r"(v) : "r"(p) : "memory");
    return v;
}
static inline void store_release64(volatile u64 *p, u64 v)
{
    __asm__ volatile("stlr %1, [%0]" ::"r"(p), "r"(v) : "memory");
}
/* LDXR/STXR add: cortex-a57 (ARMv8.0) has no LSE atomics. Returns new value. */
static inline u64 atomic_add64(volatile u64 *p, u64 v)
{
    u64 res;
    u32 fail_;
    __asm__ volatile("1: ldxr %0, [%2]\n"
                     "   add %0, %0, %3\n"
                     "   stlxr %w1, %0, [%2]\n"
                     "   cbnz %w1, 1b\n"
                     "   dmb ish\n"
                     : "=&r"(res), "=&r"(fail_)
                     : "r"(p), "r"(v)
                     : "memory");
    return res;
}
static inline u32 atomic_add32(volatile u32 *p, u32 v)
{
    u32 res, fail_;
    __asm__ volatile("1: ldxr %w0, [%2]\n"
                     "   add %w0, %w0, %w3\n"
                     "   stlxr %w1, %w0, [%2]\n"
                     "   cbnz %w1, 1b\n"
                     "   dmb ish\n"
                     : "=&r"(res), "=&r"(fail_)
                     : "r"(p), "r"(v)
                     : "memory");
    return res;
}
typedef struct { volatile u32 v; } spinlock_t;
void spin_lock(spinlock_t *l);
void spin_unlock(spinlock_t *l);

static inline unsigned current_el(void)
{
    u64 v;
    __asm__ volatile("mrs %0, CurrentEL" : "=r"(v));
    return (unsigned)(v >> 2) & 3;
}
static inline u64 read_mpidr(void)
{
    u64 v;
    __asm__ volatile("mrs %0, mpidr_el1" : "=r"(v));
    return v;
}
/* Affinity fields of MPIDR_EL1 (Aff3 [39:32], Aff2..Aff0 [23:0]). */
#define MPIDR_AFF_MASK 0xFF00FFFFFFUL

/* ---- exceptions (vectors.S / exc.c) ---- */
struct exc_frame {
    u64 x[31];
    u64 sp_el0;
    u64 elr;
    u64 spsr;
    u64 esr;
    u64 far;
};
/* Vector slots (Arm ARM D1.10.2): group * 4 + kind. */
#define VEC_CUR_SP0_SYNC 0
#define VEC_CUR_SPX_SYNC 4
#define VEC_LOWER64_SYNC 8
#define VEC_LOWER64_IRQ 9
#define VEC_CUR_SPX_IRQ 5
/* ESR_ELx.EC values (Arm ARM D17.2.37). */
#define EC_UNKNOWN 0x00
#define EC_SVC64 0x15
#define EC_SYSREG 0x18
#define EC_IABT_LOWER 0x20
#define EC_IABT_CUR 0x21
#define EC_DABT_LOWER 0x24
#define EC_DABT_CUR 0x25
#define EC_BRK64 0x3C
#define ESR_EC(esr) (((esr) >> 26) & 0x3F)
#define ESR_IL(esr) (((esr) >> 25) & 1)
#define ESR_ISS(esr) ((esr) & 0x1FFFFFF)
#define ESR_FSC(esr) ((esr) & 0x3F)
#define ESR_WNR(esr) (((esr) >> 6) & 1)
#define FSC_TRANS_L3 0x07
#define FSC_PERM_L3 0x0F
#define SPSR_M(spsr) ((spsr) & 0xF)
#define SPSR_EL0T 0x0
#define SPSR_EL1H 0x5

/* Returns nonzero when handled; unhandled exceptions end the test with FAIL. */
typedef int (*exc_handler_t)(struct exc_frame *f, unsigned vec);
void exc_set_handler(exc_handler_t h);
/* SVC #EL0_EXIT_IMM from EL0 ends run_el0(), which returns the EL0 x0. */
#define EL0_EXIT_IMM 0xFFFF
u64 run_el0(u64 entry, u64 sp, u64 arg);
/* Makes the current exception return into run_el0()'s caller with value. */
void exc_end_el0(struct exc_frame *f, u64 value);
/* Frame of the last EL0 exit on this CPU (registers at SVC #EL0_EXIT_IMM). */
extern struct exc_frame el0_exit_frame[MAX_CPUS];
extern char vectors[];

/* ---- system register access by encoding (for registers the assembler may
 * not name, e.g. the GICv3 ICC_* registers) ---- */
#define WRITE_SYSREG(name, v) __asm__ volatile("msr " name ", %0\n isb" ::"r"((u64)(v)) : "memory")
#define READ_SYSREG(name) ({ u64 v_; __asm__ volatile("isb\n mrs %0, " name : "=r"(v_) :: "memory"); v_; })
/* PSTATE.I (Arm ARM C5.2.5 DAIFSet/DAIFClr, I = bit 1 of the immediate). */
static inline void irq_enable(void) { __asm__ volatile("msr daifclr, #2\n isb" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("msr daifset, #2" ::: "memory"); }
static inline void wfi(void) { __asm__ volatile("dsb sy\n wfi" ::: "memory"); }

/* ---- gic.c: GICv3 (IHI0069) set up the way Linux irq-gic-v3.c does ---- */
/* CPU interface registers (IHI0069 12.2, op0=3 encodings). */
#define ICC_PMR_EL1 "S3_0_C4_C6_0"
#define ICC_IAR1_EL1 "S3_0_C12_C12_0"
#define ICC_EOIR1_EL1 "S3_0_C12_C12_1"
#define ICC_HPPIR1_EL1 "S3_0_C12_C12_2"
#define ICC_BPR1_EL1 "S3_0_C12_C12_3"
#define ICC_CTLR_EL1 "S3_0_C12_C12_4"
#define ICC_SRE_EL1 "S3_0_C12_C12_5"
#define ICC_IGRPEN1_EL1 "S3_0_C12_C12_7"
#define ICC_DIR_EL1 "S3_0_C12_C11_1"
#define ICC_RPR_EL1 "S3_0_C12_C11_3"
#define ICC_SGI1R_EL1 "S3_0_C12_C11_5"
#define ICC_CTLR_EOIMODE (1U << 1)
/* Distributor (IHI0069 12.9) and redistributor (12.10, 12.11) offsets. */
#define GICD_CTLR 0x0000
#define GICD_TYPER 0x0004
#define GICD_IGROUPR 0x0080
#define GICD_ISENABLER 0x0100
#define GICD_ICENABLER 0x0180
#define GICD_ISPENDR 0x0200
#define GICD_ICPENDR 0x0280
#define GICD_ISACTIVER 0x0300
#define GICD_ICACTIVER 0x0380
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR 0x0C00
#define GICD_IROUTER 0x6000
#define GICD_CTLR_ENABLE_G1 (1U << 1)
#define GICD_CTLR_ARE (1U << 4)
#define GICD_CTLR_RWP (1U << 31)
#define GICD_TYPER_NO1N (1U << 25)
#define GICD_IROUTER_IRM (1UL << 31)
#define GICR_CTLR 0x0000
#define GICR_TYPER 0x0008
#define GICR_WAKER 0x0014
#define GICR_SGI_OFFSET 0x10000UL   /* SGI_base = RD_base + 64 KiB */
#define GICR_CTLR_RWP (1U << 3)
/* Interrupt ID ranges (IHI0069 2.2.1). */
#define GIC_NR_SGIS 16
#define GIC_NR_PRIVATE 32
#define GIC_INTID_SPURIOUS 1023
#define GIC_MAX_INTID 1020
#define GIC_PRIO_DEFAULT 0xA0
#define GIC_PMR_DEFAULT 0xF0
#define GIC_PRIO_IDLE 0xFF          /* ICC_RPR_EL1 with nothing active */

typedef void (*irq_handler_t)(u32 intid, struct exc_frame *f);
/* Boot CPU, once: every SPI group 1, level, GIC_PRIO_DEFAULT, disabled and
 * routed to the boot CPU; then ARE + EnableGrp1. */
void gic_dist_init(void);
/* Calling CPU (again after a power-down): wakes its redistributor, SGIs and
 * PPIs group 1 at GIC_PRIO_DEFAULT (SGIs enabled, PPIs disabled), CPU
 * interface on (SRE, PMR 0xF0, BPR1 0, EOImode 0, Grp1 enabled) and the IRQ
 * vectors pointed at gic_exc_handler. IRQs stay masked in PSTATE. */
void gic_cpu_init(void);
u64 gic_rd_base(unsigned cpu);          /* after that CPU's gic_cpu_init */
u64 gic_sgi_base(unsigned cpu);
unsigned gic_nr_lines(void);            /* 32 * (GICD_TYPER.ITLinesNumber + 1) */
void gic_set_handler(u32 intid, irq_handler_t h);
/* SGIs/PPIs act on the calling CPU's redistributor, SPIs on the distributor. */
void gic_enable_irq(u32 intid);
void gic_disable_irq(u32 intid);
void gic_set_priority(u32 intid, u8 prio);
void gic_set_edge(u32 intid, int edge); /* 1 edge, 0 level (PPIs and SPIs) */
void gic_set_pending(u32 intid);
void gic_clear_pending(u32 intid);
int gic_is_pending(u32 intid);
int gic_is_active(u32 intid);
void gic_route_spi(u32 intid, u64 irouter);  /* value for GICD_IROUTER<n> */
u64 gic_read_irouter(u32 intid);
u64 gic_irouter_for(u64 mpidr);         /* affinity of mpidr, IRM = 0 */
void gic_set_eoimode(int split);        /* ICC_CTLR_EL1.EOImode, this CPU */
void gic_send_sgi(u32 intid, unsigned cpu);
void gic_send_sgi_others(u32 intid);    /* IRM = 1: every PE but self */
/* exc_handler_t for the IRQ vectors (0x280, 0x480): IAR1 -> handler ->
 * EOIR1 (-> DIR1 with EOImode 1) until IAR1 reads spurious; IRQs may be
 * unmasked inside a handler (the vector frame holds ELR/SPSR, so nesting is
 * safe), they are masked again before the next acknowledge. */
int gic_exc_handler(struct exc_frame *f, unsigned vec);

/* ---- mmu.c (VMSAv8-64, 4 KiB granule, Arm ARM D8) ---- */
#define MMU_FINE_SIZE (16UL << 20)   /* first 16 MiB of RAM at L3 granularity */
#define PTE_VALID (1UL << 0)
#define PTE_PAGE (1UL << 1)
#define PTE_ATTR(i) ((u64)(i) << 2)
#define PTE_AP_EL0 (1UL << 6)        /* AP[1]: EL0 access */
#define PTE_AP_RO (1UL << 7)         /* AP[2]: read-only */
#define PTE_SH_INNER (3UL << 8)
#define PTE_AF (1UL << 10)
#define PTE_PXN (1UL << 53)
#define PTE_UXN (1UL << 54)
#define MAIR_IDX_DEVICE 0
#define MAIR_IDX_NORMAL 1
#define PTE_NORMAL (PTE_VALID | PTE_PAGE | PTE_ATTR(MAIR_IDX_NORMAL) | PTE_SH_INNER | PTE_AF)
#define PROT_KERNEL_RW (PTE_NORMAL | PTE_UXN)
#define PROT_KERNEL_RO (PTE_NORMAL | PTE_UXN | PTE_AP_RO)
#define PROT_USER_RW (PTE_NORMAL | PTE_AP_EL0 | PTE_UXN | PTE_PXN)
#define PROT_USER_RO (PTE_NORMAL | PTE_AP_EL0 | PTE_AP_RO | PTE_UXN | PTE_PXN)
#define PROT_USER_RX (PTE_NORMAL | PTE_AP_EL0 | PTE_AP_RO | PTE_PXN)

void mmu_init(void);            /* build the identity map (boot CPU, MMU off) */
void mmu_enable(void);          /* turn the MMU on for the calling CPU */
int mmu_enabled(void);
u64 *mmu_pte(u64 va);           /* L3 entry for va in the fine region, or 0 */
/* Break-before-make replacement of one L3 entry, with a broadcast TLBI. */
void mmu_set_page(u64 va, u64 pa, u64 prot);
void mmu_unmap_page(u64 va);
void tlbi_va_is(u64 va);        /* DSB ISHST; TLBI VAE1IS; DSB ISH; ISB */
void mmu_map_range(u64 start, u64 end, u64 prot);   /* identity */

/* Image symbols from linker.ld. */
extern char __image_start[], __image_end[], __bss_start[], __bss_end[];
extern char __user_text_start[], __user_text_end[];

/* The program's entry point, called on the boot CPU at EL1 with the MMU off. */
int main(void);

#endif
