/*
 * Hot-path hooks for one armvisor core, called by Unicorn from inside the JIT.
 *
 * Loaded with ctypes (not imported as a Python module). Python owns one
 * `armv_core` struct per core and registers these functions with uc_hook_add,
 * passing the struct as user_data.
 *
 * Why C: a UC_HOOK_BLOCK callback in Python costs ~345 ns per block (17 MIPS);
 * here it is a few ns, and calling uc_emu_stop from a block hook is one of the
 * few safe stop points (the block has not started, PC is its first
 * instruction). See shared/design/UNICORN-FACTS.md.
 */
#include <stdint.h>
#include <time.h>
#include <unicorn/unicorn.h>

/* Keep in sync with armvisor/cpu/native.py: ArmvCore, ArmvException. */
#define ARMV_IC_RANGES 256
#define ARMV_EXCEPTION_RING 256
#define IC_LINE 64              /* the smallest I-cache line CTR_EL0 reports (IminLine = 4) */
#define PAGE_4K 4096

typedef uc_err (*armv_stop_fn)(uc_engine *);
typedef uc_err (*armv_reg_fn)(uc_engine *, int, void *);
/*
 * Python's handler for a filtered system register access. Returns
 * ARMV_SYSREG_NOT_HANDLED (let Unicorn execute or UNDEF it), ARMV_SYSREG_DONE
 * (for a read, *result goes to Xt) or ARMV_SYSREG_DONE_ADVANCE (also step
 * over the instruction: Unicorn leaves PC on a skipped access to a register
 * it does not implement).
 */
typedef int (*armv_sysreg_fn)(uint32_t key, uint32_t el, uint32_t is_write, uint64_t value,
                              uint64_t *result);
#define ARMV_SYSREG_NOT_HANDLED 0
#define ARMV_SYSREG_DONE 1
#define ARMV_SYSREG_DONE_ADVANCE 2

/* Python's handler for an exception armvisor models (traps.py): QEMU's EXCP_* number. */
typedef void (*armv_intr_fn)(uint32_t intno);
/* QEMU's exception entry, arm_cpu_do_interrupt(CPUState *) in qemu/target/arm/helper.c,
 * exported by libunicorn as arm_cpu_do_interrupt_aarch64. */
typedef void (*armv_deliver_fn)(void *cpu);

/* One exception delivered natively, for Python's trace and reports. */
typedef struct armv_exception {
    uint64_t esr;              /* the syndrome QEMU wrote to ESR_ELx */
    uint64_t elr;              /* the preferred return address (ELR_ELx) */
    uint64_t far;              /* FAR_ELx, for aborts (has_far) */
    uint64_t vector;           /* where the core went */
    uint32_t target_el;
    uint32_t has_far;
    uint64_t args[4];          /* x0-x3 of an HVC or SMC: the SMCCC call it makes */
} armv_exception;

typedef struct armv_core {
    int64_t budget;            /* instructions left in this slice */
    uint64_t executed;         /* instructions charged over the core's life */
    armv_stop_fn stop;         /* uc_emu_stop of the loaded libunicorn */
    uint32_t budget_expired;   /* set when the hook stopped the slice */
    uint32_t tlbi_broadcast;   /* TLBI ...IS/...OS seen in this slice */
    uint64_t tlbi_count;       /* every broadcast TLBI, for statistics */
    uint64_t ic_count;         /* every IC IVAU / IC IALLUIS, for statistics */
    uint32_t ic_all;           /* IC IALLUIS, or more IC IVAU ranges than fit */
    uint32_t ic_used;          /* ranges used in ic_start/ic_end */
    /* VA ranges [start, end) invalidated by IC IVAU in this slice, each
     * within one 4 KiB page: a loop over a module's lines becomes one range
     * per page. */
    uint64_t ic_start[ARMV_IC_RANGES];
    uint64_t ic_end[ARMV_IC_RANGES];
    armv_sysreg_fn sysreg;     /* Python handler for timer and GIC CPU interface registers */
    armv_reg_fn reg_read;      /* uc_reg_read */
    armv_reg_fn reg_write;     /* uc_reg_write */
    uint64_t sysreg_count;     /* accesses passed to Python, for statistics */
    /* Deterministic mode (ARMV_CLOCK_INSTRUCTIONS): CNTVCT/CNTPCT read a
     * virtual clock, one tick per instruction, that starts each slice at
     * vclock_base. A host-clock machine restored from a snapshot
     * (ARMV_CLOCK_HOST_OFFSET): they read QEMU's clock plus vclock_base
     * (two's complement), so the count goes on from the snapshot's. */
    uint32_t vclock;
    uint64_t vclock_base;
    uint64_t vclock_origin;    /* `executed` when the slice started */
    /* The running block, for the exact instruction count at an access inside
     * it: `executed` is charged for the whole block when it starts. */
    uint64_t block_start;
    uint64_t block_insns;
    uint64_t access_retired;   /* instructions retired before the access passed to Python */
    /* Exact count (armv_count_hook, only while a debugger keeps a history):
     * instructions started, and a count to stop before (stop_at_armed). */
    uint64_t retired;
    uint64_t stop_at;
    uint32_t stop_at_armed;
    uint32_t stopped_at;       /* set when the count hook stopped the core */
    uint64_t stopped_pc;       /* the instruction it stopped before */
    /* Native exception delivery (armv_intr_hook). `deliver` is NULL while it
     * is off (the start-up self-test failed): everything goes to `intr`. */
    armv_intr_fn intr;
    armv_deliver_fn deliver;
    uint64_t uc_cpu_offset;    /* offsetof(struct uc_struct, cpu), include/uc_priv.h */
    uint64_t exception_offset; /* offsetof(ARMCPU, env) + offsetof(CPUARMState, exception) */
    uint32_t native_els;       /* bit n: exceptions taken to ELn run the guest's own vectors */
    uint32_t pan_hidden;       /* the CPU model has no FEAT_PAN: PSTATE.PAN stays 0 */
    uint64_t python_ecs;       /* bit n: exceptions of class EC n go to Python whatever their EL */
    uint64_t native_ec_count[64];  /* exceptions delivered natively, by EC */
    /* Exception-loop detection, shared with entry.py's Python entry: the
     * vector last entered, how many exceptions in a row came from its first
     * instruction, and the exception before such a run (the crash report's
     * "first exception"). */
    uint64_t last_vector;
    uint32_t last_vector_valid;
    uint32_t vector_faults;
    uint32_t vector_loop_limit;
    uint32_t exception_loop;   /* set when a vector faulted on itself vector_loop_limit times */
    uint32_t first_fault_valid;
    uint32_t first_fault_has_far;
    uint64_t first_esr;
    uint64_t first_elr;
    uint64_t first_far;
    /* The natively delivered exceptions, for the trace: entry i % RING is the
     * i-th; Python reads the ones it has not seen between slices and when a
     * hook calls it, so they keep their order with the events it emits. */
    uint64_t exceptions_total;
    uint64_t exceptions_seen;  /* how many Python has read */
    uint32_t exceptions_keep_all;  /* stop the slice when the ring is full (a trace wants all) */
    uint32_t exceptions_full;  /* set when it did */
    armv_exception exceptions[ARMV_EXCEPTION_RING];
    /* WFE and YIELD (patches/unicorn/0006 reports them to armv_intr_hook): the
     * guest spins. Once `executed` reaches yield_from (another CPU could run,
     * and this one has spun long enough, like KVM's pause-loop exiting) the
     * slice ends right after the instruction and `yielded` says why. */
    uint64_t yield_from;
    uint32_t yielded;
    uint32_t yield_pad;
    uint64_t yield_count;
    /* The guest owns EL2 (--virtualization): also pass up the EL2 GIC
     * registers (ICC_SRE_EL2, ICH_*: op0=3 op1=4 CRn=12), the EL2 physical
     * timer (CNTHP_*: op0=3 op1=4 CRn=14 CRm=2) and the identification
     * registers (MIDR, MPIDR and the ID space, op0=3 op1=0 CRn=0), which
     * Python answers as the modelled CPU (HCR_EL2.TID3 is the guest's now). */
    uint32_t virt_regs;
} armv_core;

/*
 * UC_HOOK_BLOCK: charge the block's instructions against the slice budget.
 * A64 instructions are 4 bytes, so size/4 is the block's instruction count.
 * When the budget is spent, stop before the block runs (safe point).
 */
void armv_block_hook(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
    armv_core *core = (armv_core *)user_data;
    if (core->budget <= 0) {
        /* Stop on every block while spent: a PC write in another hook makes
         * Unicorn drop a pending stop request. */
        core->budget_expired = 1;
        core->stop(uc);
        return;
    }
    core->budget -= size / 4;
    core->executed += size / 4;
    core->block_start = address;
    core->block_insns = size / 4;
}

/*
 * UC_HOOK_CODE on every address, only while a debugger keeps a history for
 * reverse execution: counts every instruction as it starts, exactly (the
 * block hook charges whole blocks, and a block left early by an exception,
 * a breakpoint or a PC write would be over-counted), and stops the core
 * before the instruction that would make the count pass `stop_at`. A code
 * hook is a safe point to stop at (the patched Unicorn checks for exit
 * requests after code hooks).
 */
void armv_count_hook(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
    armv_core *core = (armv_core *)user_data;
    (void)size;
    if (core->stop_at_armed && core->retired == core->stop_at) {
        core->stop_at_armed = 0;
        core->stopped_at = 1;
        core->stopped_pc = address;
        core->budget = 0;
        core->stop(uc);
        return;
    }
    core->retired++;
}

static void note_ic_line(armv_core *core, uint64_t va)
{
    uint64_t line = va & ~(uint64_t)(IC_LINE - 1);
    if (core->ic_used) {
        uint32_t last = core->ic_used - 1;
        if (line >= core->ic_start[last] && line < core->ic_end[last])
            return;                                      /* already in the last range */
        if (line == core->ic_end[last] && (line & ~(uint64_t)(PAGE_4K - 1)) ==
                                              (core->ic_start[last] & ~(uint64_t)(PAGE_4K - 1))) {
            core->ic_end[last] = line + IC_LINE;         /* the next line of the same page */
            return;
        }
    }
    if (core->ic_used < ARMV_IC_RANGES) {
        core->ic_start[core->ic_used] = line;
        core->ic_end[core->ic_used] = line + IC_LINE;
        core->ic_used++;
    } else {
        core->ic_all = 1;
    }
}

/* SYS encodings (Arm ARM C5.3 "A64 system instructions for cache maintenance / TLB maintenance"). */
#define SYS_OP0 1
#define CRN_CACHE 7
#define CRN_TLBI 8
/* TLBI CRm values whose operations are broadcast: Inner Shareable (3), range IS (2),
 * Outer Shareable (1) and range OS (5), FEAT_TLBIOS / FEAT_TLBIRANGE. */
static int tlbi_is_broadcast(uint32_t crm)
{
    return crm == 1 || crm == 2 || crm == 3 || crm == 5;
}

/*
 * UC_HOOK_INSN (UC_ARM64_INS_SYS): note the maintenance operations that
 * other cores must see. They are applied by Python at the end of the slice,
 * before any other core runs, which is when they become observable in a
 * one-thread round-robin machine. Returning 0 lets the instruction execute.
 */
uint32_t armv_sys_hook(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *user_data)
{
    armv_core *core = (armv_core *)user_data;
    (void)uc;
    (void)reg;
    if (cp->op0 != SYS_OP0)
        return 0;
    if (cp->crn == CRN_TLBI && tlbi_is_broadcast(cp->crm)) {
        core->tlbi_broadcast = 1;
        core->tlbi_count++;
    } else if (cp->crn == CRN_CACHE) {
        if (cp->op1 == 3 && cp->crm == 5 && cp->op2 == 1) {          /* IC IVAU, Xt */
            core->ic_count++;
            note_ic_line(core, cp->val);
        } else if (cp->op1 == 0 && cp->crm == 1 && cp->op2 == 0) {   /* IC IALLUIS */
            core->ic_count++;
            core->ic_all = 1;
        }
    }
    return 0;
}

/* System register key: op0:op1:CRn:CRm:op2 packed as in the MRS/MSR encoding (bits 20:5). */
static uint32_t sysreg_key(const uc_arm64_cp_reg *cp)
{
    return (cp->op0 << 14) | (cp->op1 << 11) | (cp->crn << 7) | (cp->crm << 3) | cp->op2;
}

/*
 * Which accesses Python models: the EL1 physical and virtual timers
 * (op0=3 op1=3 CRn=14 CRm=2/3 op2=0..2, Arm ARM D19.11), the GICv3 CPU
 * interface (ICC_PMR_EL1 = 3,0,4,6,0 and op0=3 op1=0 CRn=12 CRm=8/9/11/12,
 * IHI0069 12.1.6) and the PMU, whose counters Unicorn does not accumulate
 * (op0=3 op1=3 CRn=9 CRm=12..14, PMINTENSET/CLR_EL1 = 3,0,9,14,1/2, and
 * PMEVCNTR<n>/PMEVTYPER<n>/PMCCFILTR = 3,3,14,8..15; Arm ARM D19, the
 * Performance Monitors registers). Python also sees the guest's watchpoint
 * registers DBGWVR<n>_EL1/DBGWCR<n>_EL1 (op0=2 op1=0 CRn=0 op2=6/7, D19.3),
 * which Unicorn stores but never acts on. Everything else runs natively at no
 * cost beyond this test.
 */
static int wanted(const armv_core *core, const uc_arm64_cp_reg *cp)
{
    if (cp->op0 == 2)
        return cp->op1 == 0 && cp->crn == 0 && (cp->op2 == 6 || cp->op2 == 7);
    if (cp->op0 != 3)
        return 0;
    if (core->virt_regs) {
        if (cp->op1 == 4 && cp->crn == 12)
            return cp->crm >= 8 && cp->crm <= 13;
        /* ICC_CTLR_EL3, ICC_SRE_EL3, ICC_IGRPEN1_EL3 (op1=6 CRn=12 CRm=12): only
         * EL3 code reaches them, which is the guest's with --secure. */
        if (cp->op1 == 6 && cp->crn == 12)
            return cp->crm == 12;
        if (cp->op1 == 4 && cp->crn == 14)
            return cp->crm == 2 && cp->op2 <= 2;
        if (cp->op1 == 0 && cp->crn == 0)
            return (cp->crm == 0 && (cp->op2 == 0 || cp->op2 == 5)) || cp->crm >= 1;
    }
    if (cp->op1 == 3 && cp->crn == 14)
        return ((cp->crm == 2 || cp->crm == 3) && cp->op2 <= 2) || cp->crm >= 8;
    if (cp->op1 == 3 && cp->crn == 9)
        return cp->crm >= 12 && cp->crm <= 14;
    if (cp->op1 == 0 && cp->crn == 9)
        return cp->crm == 14 && (cp->op2 == 1 || cp->op2 == 2);
    if (cp->op1 == 0 && cp->crn == 12)
        return cp->crm == 8 || cp->crm == 9 || cp->crm == 11 || cp->crm == 12;
    return cp->op1 == 0 && cp->crn == 4 && cp->crm == 6 && cp->op2 == 0;
}

#define PSTATE_EL_SHIFT 2
#define ARMV_CLOCK_INSTRUCTIONS 1
#define ARMV_CLOCK_HOST_OFFSET 2
#define NS_PER_TICK 16            /* the 62.5 MHz generic counter QEMU's virt has */

/* What QEMU's counter reads natively: CLOCK_MONOTONIC in 16 ns ticks. */
static uint64_t host_ticks(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec) / NS_PER_TICK;
}

/* CNTPCT_EL0 (op2 1), CNTVCT_EL0 (2), CNTPCTSS_EL0 (5), CNTVCTSS_EL0 (6): op0=3 op1=3 CRn=14 CRm=0. */
static int counter_read(const uc_arm64_cp_reg *cp)
{
    return cp->op0 == 3 && cp->op1 == 3 && cp->crn == 14 && cp->crm == 0 &&
           (cp->op2 == 1 || cp->op2 == 2 || cp->op2 == 5 || cp->op2 == 6);
}

static uint32_t sysreg_access(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp,
                              armv_core *core, uint32_t is_write)
{
    uint64_t pstate = 0, result = 0, pc = 0;
    int status;
    if (core->vclock && !is_write && counter_read(cp)) {
        /* `executed` counts whole blocks as they start: reads inside a block see
         * its end, which is as deterministic as the rest. */
        if (core->vclock == ARMV_CLOCK_HOST_OFFSET)
            result = host_ticks() + core->vclock_base;
        else
            result = core->vclock_base + (core->executed - core->vclock_origin);
        if (core->virt_regs && (cp->op2 == 2 || cp->op2 == 6)) {
            /* CNTVCT = CNTPCT - CNTVOFF_EL2, which the guest's EL2 sets (Arm ARM D11.2.4). */
            uc_arm64_cp_reg cntvoff = {.crn = 14, .crm = 0, .op0 = 3, .op1 = 4, .op2 = 3};
            core->reg_read(uc, UC_ARM64_REG_CP_REG, &cntvoff);
            result -= cntvoff.val;
        }
        if (reg != UC_ARM64_REG_XZR)
            core->reg_write(uc, reg, &result);
        return 1;
    }
    if (!core->sysreg || !wanted(core, cp))
        return 0;
    core->reg_read(uc, UC_ARM64_REG_PSTATE, &pstate);
    /* PC is this instruction's: its place in the block makes the count exact
     * (the PMU counts instructions; two back-to-back reads must differ). */
    core->reg_read(uc, UC_ARM64_REG_PC, &pc);
    core->access_retired = core->executed - core->block_insns + (pc - core->block_start) / 4;
    core->sysreg_count++;
    status = core->sysreg(sysreg_key(cp), (uint32_t)(pstate >> PSTATE_EL_SHIFT) & 3, is_write,
                          cp->val, &result);
    if (status == ARMV_SYSREG_NOT_HANDLED)
        return 0;
    if (!is_write && reg != UC_ARM64_REG_XZR)
        core->reg_write(uc, reg, &result);
    if (status == ARMV_SYSREG_DONE_ADVANCE) {
        /* PC is synced to this instruction here; the block ends after it. */
        pc += 4;
        core->reg_write(uc, UC_ARM64_REG_PC, &pc);
    }
    return 1;
}

/* UC_HOOK_INSN (UC_ARM64_INS_MRS). */
uint32_t armv_mrs_hook(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *user_data)
{
    return sysreg_access(uc, reg, cp, (armv_core *)user_data, 0);
}

/* UC_HOOK_INSN (UC_ARM64_INS_MSR). */
uint32_t armv_msr_hook(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *user_data)
{
    return sysreg_access(uc, reg, cp, (armv_core *)user_data, 1);
}

/*
 * Native delivery of synchronous exceptions.
 *
 * Unicorn calls UC_HOOK_INTR with QEMU's pending exception (EXCP_* number in
 * cpu->exception_index; syndrome, fault address and target EL in
 * CPUARMState.exception, filled by raise_exception() in op_helper.c) and then
 * resumes at PC as if nothing happened. Calling QEMU's own entry here,
 * arm_cpu_do_interrupt(), takes the exception exactly as `qemu-system-aarch64`
 * does: ESR/FAR/ELR/SPSR of the target EL, SP banking, PSTATE, the vector,
 * the rebuilt EL flags (helper.c arm_cpu_do_interrupt_aarch64_qemu). Unicorn
 * then goes on at the vector.
 *
 * The symbol and both offsets are QEMU's private layout in Unicorn 2.1.4, so
 * armvisor/cpu/native_exceptions.py checks them on a scratch instance at
 * start-up and leaves `deliver` NULL when they do not hold.
 */

/* QEMU's exception numbers (qemu/target/arm/cpu.h EXCP_*). */
#define EXCP_UDEF 1            /* UNDEFINED and every trap QEMU reports with a syndrome */
#define EXCP_SWI 2             /* SVC */
#define EXCP_PREFETCH_ABORT 3  /* instruction aborts, hardware breakpoints */
#define EXCP_DATA_ABORT 4      /* data aborts, alignment faults, watchpoints */
#define EXCP_BKPT 7            /* BRK */
#define EXCP_HVC 11
#define EXCP_HYP_TRAP 12
#define EXCP_SMC 13

/* CPUARMState.exception (qemu/target/arm/cpu.h). */
typedef struct qemu_pending_exception {
    uint32_t syndrome;         /* AArch64 format syndrome register */
    uint32_t fsr;              /* AArch32 format fault status */
    uint64_t vaddress;         /* virtual address associated with the exception */
    uint32_t target_el;        /* EL the exception is taken to */
} qemu_pending_exception;

#define ESR_EC_SHIFT 26        /* ESR_ELx.EC, bits [31:26] (Arm ARM D17.2.37) */
#define ESR_IL (1u << 25)      /* ESR_ELx.IL: 1 for a trapped 32-bit instruction */
#define EC_HVC64 0x16          /* HVC from AArch64 (Arm ARM D17.2.37, ESR_ELx.EC) */
#define EC_SMC64 0x17          /* SMC from AArch64 */
#define EC_PAC_TRAP 0x09       /* PAuth instruction trapped (HCR_EL2.API / SCR_EL3.API) */
#define EC_BTI 0x0D            /* branch target exception */
#define EC_SVE 0x19            /* SVE access trap */
#define PSTATE_PAN (1u << 22)  /* PSTATE.PAN, as SPSR_ELx holds it (Arm ARM C5.2, "PAN") */
/* SPSR_EL1 (op0=3 op1=0 CRn=4 CRm=0 op2=0): written back unchanged to make
 * Unicorn rebuild its cached EL flags after a PSTATE write (a CP_REG write
 * calls arm_rebuild_hflags; a PSTATE write does not). */
static const uc_arm64_cp_reg spsr_el1 = {.crn = 4, .crm = 0, .op0 = 3, .op1 = 0, .op2 = 0};

/* The exceptions arm_cpu_do_interrupt takes with a syndrome (aarch64_qemu's switch). */
static int is_synchronous(uint32_t intno)
{
    return intno == EXCP_UDEF || intno == EXCP_SWI || intno == EXCP_PREFETCH_ABORT ||
           intno == EXCP_DATA_ABORT || intno == EXCP_BKPT || intno == EXCP_HVC ||
           intno == EXCP_HYP_TRAP || intno == EXCP_SMC;
}

/*
 * The syndromes this QEMU (5.0, inside Unicorn 2.1.4) builds without IL,
 * although every A64 instruction is 32 bits: syn_sve_access_trap,
 * syn_pactrap and syn_btitrap. QEMU 8.2 fixed the three the same way
 * ("target/arm: Set IL bit for pauth, SVE access, BTI trap syndromes").
 */
static int lacks_il(uint32_t ec)
{
    return ec == EC_SVE || ec == EC_PAC_TRAP || ec == EC_BTI;
}

/* FAR_ELx is written for aborts only (arm_cpu_do_interrupt_aarch64_qemu). */
static int writes_far(uint32_t intno)
{
    return intno == EXCP_PREFETCH_ABORT || intno == EXCP_DATA_ABORT;
}

/*
 * A CPU model without FEAT_PAN (cortex-a57) runs on QEMU's `max`, which
 * has it: QEMU sets PSTATE.PAN on entry to EL1 when SCTLR_EL1.SPAN is 0.
 * On the modelled CPU PSTATE.PAN is RES0 (Arm ARM D1.10, "PSTATE on
 * exception entry": PAN is set only when FEAT_PAN is implemented).
 */
static void clear_pan(uc_engine *uc, armv_core *core)
{
    uint64_t pstate = 0;
    uc_arm64_cp_reg cp = spsr_el1;
    core->reg_read(uc, UC_ARM64_REG_PSTATE, &pstate);
    if (!(pstate & PSTATE_PAN))
        return;
    pstate &= ~(uint64_t)PSTATE_PAN;
    core->reg_write(uc, UC_ARM64_REG_PSTATE, &pstate);
    core->reg_read(uc, UC_ARM64_REG_CP_REG, &cp);
    core->reg_write(uc, UC_ARM64_REG_CP_REG, &cp);
}

/*
 * Exception-loop bookkeeping, as entry.py's _check_not_looping does it for
 * the exceptions Python delivers. Returns 0 when the core is looping: the
 * exception is not taken and the slice stops (PC stays on the instruction).
 */
static int note_exception(uc_engine *uc, armv_core *core, uint64_t elr, uint32_t syndrome,
                          uint64_t far, uint32_t has_far)
{
    if (core->last_vector_valid && elr == core->last_vector) {
        if (++core->vector_faults >= core->vector_loop_limit) {
            core->exception_loop = 1;
            core->stop(uc);
            return 0;
        }
        return 1;
    }
    core->vector_faults = 0;
    core->first_fault_valid = 1;
    core->first_esr = syndrome;
    core->first_elr = elr;
    core->first_far = far;
    core->first_fault_has_far = has_far;
    return 1;
}

/* Take the pending exception natively if its target EL runs the guest's code; 0 if not. */
static int deliver_natively(uc_engine *uc, armv_core *core, uint32_t intno)
{
    void *cpu = *(void **)((char *)uc + core->uc_cpu_offset);
    qemu_pending_exception *pending = (qemu_pending_exception *)((char *)cpu + core->exception_offset);
    uint32_t target_el = pending->target_el;
    uint32_t ec = pending->syndrome >> ESR_EC_SHIFT;
    uint32_t has_far = writes_far(intno);
    uint64_t elr = 0, vector = 0;
    armv_exception *record;

    if (!is_synchronous(intno) || target_el > 3 || !(core->native_els & (1u << target_el)))
        return 0;
    if (core->python_ecs & ((uint64_t)1 << ec))
        return 0;
    /* QEMU's ELR is the PC it synced before raising: this instruction, or
     * the next one for SVC/HVC/SMC. */
    core->reg_read(uc, UC_ARM64_REG_PC, &elr);
    if (lacks_il(ec))
        pending->syndrome |= ESR_IL;
    if (!note_exception(uc, core, elr, pending->syndrome, pending->vaddress, has_far))
        return 1;
    core->deliver(cpu);
    if (core->pan_hidden && target_el == 1)
        clear_pan(uc, core);
    core->reg_read(uc, UC_ARM64_REG_PC, &vector);
    core->last_vector = vector;
    core->last_vector_valid = 1;
    core->native_ec_count[ec]++;
    record = &core->exceptions[core->exceptions_total % ARMV_EXCEPTION_RING];
    record->esr = pending->syndrome;      /* as written: entry masks FP trap fields in place */
    record->elr = elr;
    record->far = pending->vaddress;
    record->has_far = has_far;
    record->vector = vector;
    record->target_el = target_el;
    if (ec == EC_HVC64 || ec == EC_SMC64) {
        for (int i = 0; i < 4; i++)
            core->reg_read(uc, UC_ARM64_REG_X0 + i, &record->args[i]);
    }
    core->exceptions_total++;
    if (core->exceptions_keep_all &&
        core->exceptions_total - core->exceptions_seen >= ARMV_EXCEPTION_RING) {
        /* A safe point: the exception is taken and no block is running. */
        core->exceptions_full = 1;
        core->stop(uc);
    }
    return 1;
}

/*
 * UC_HOOK_INTR: the guest's own exceptions (SVC, aborts, UNDEFINED, BRK,
 * debug exceptions, alignment, FP/SVE traps... whatever QEMU routes to an EL
 * in native_els) are taken here without leaving C; the rest (SMC, HVC, traps
 * to EL2 such as WFI under HCR_EL2.TWI or ID registers under TID3) goes to
 * Python, which models EL2 and EL3.
 */
/* QEMU's EXCP_YIELD (include/exec/cpu-all.h): not an exception, a WFE or YIELD. */
#define ARMV_EXCP_YIELD 0x10004

void armv_intr_hook(uc_engine *uc, uint32_t intno, void *user_data)
{
    armv_core *core = (armv_core *)user_data;
    if (intno == ARMV_EXCP_YIELD) {
        core->yield_count++;
        if (core->executed >= core->yield_from) {
            core->yielded = 1;
            core->stop(uc);
        }
        return;
    }
    if (core->deliver != NULL && deliver_natively(uc, core, intno))
        return;
    core->intr(intno);
}
