/* Synchronous exceptions at EL1 and from EL0 with the MMU on (identity map):
 * SVC, translation and permission faults fixed up and re-executed, an
 * instruction abort, EL1 aborts skipped, BRK, UDF, trapped/undefined system
 * register reads from EL0, LDP/STP/LDXR faults; each checks ESR_EL1 (EC,
 * ISS), FAR_EL1, ELR_EL1, SPSR_EL1 and SP banking. */
#include "guest.h"

/* EL0 programs (Arm ARM C6). Each ends with SVC #0xFFFF = return to EL1. */
__asm__(".pushsection .user_text, \"ax\"\n"
        ".globl u_svc, u_svc_call, u_load, u_store, u_ldp, u_stp, u_ldxr, u_jump\n"
        ".globl u_mrs_sctlr, u_mrs_ctr, u_brk\n"
        "u_svc:  mov x19, sp\n"
        "        mov x1, sp\n"
        "u_svc_call: svc #0x42\n"
        "        mov x2, sp\n"
        "        mov x1, x19\n"
        "        svc #0xffff\n"
        "u_load: ldr x0, [x0]\n"
        "        svc #0xffff\n"
        "u_store: movz x1, #0x5a5a\n"
        "        movk x1, #0xa5a5, lsl #16\n"
        "u_store_insn: str x1, [x0]\n"
        "        ldr x0, [x0]\n"
        "        svc #0xffff\n"
        "u_ldp:  ldp x1, x2, [x0]\n"
        "        add x0, x1, x2\n"
        "        svc #0xffff\n"
        "u_stp:  mov x1, #0x11\n"
        "        mov x2, #0x22\n"
        "u_stp_insn: stp x1, x2, [x0]\n"
        "        ldr x0, [x0, #8]\n"
        "        svc #0xffff\n"
        "u_ldxr: ldxr x0, [x0]\n"
        "        clrex\n"
        "        svc #0xffff\n"
        "u_jump: br x0\n"
        "u_mrs_sctlr: mrs x0, sctlr_el1\n"
        "        svc #0xffff\n"
        "u_mrs_ctr: mrs x0, ctr_el0\n"
        "        svc #0xffff\n"
        "u_brk:  brk #0x55\n"
        "        svc #0xffff\n"
        ".popsection\n");
extern char u_svc[], u_svc_call[], u_load[], u_store[], u_store_insn[], u_ldp[], u_stp[],
    u_stp_insn[], u_ldxr[], u_jump[], u_mrs_sctlr[], u_mrs_ctr[], u_brk[];

/* EL1 probes. */
__asm__(".text\n"
        ".globl el1_svc, el1_svc_call, el1_ldr, el1_str, el1_brk, el1_udf\n"
        "el1_svc: \n"
        "el1_svc_call: svc #0x123\n"
        "        ret\n"
        "el1_ldr: ldr x0, [x0]\n"
        "        ret\n"
        "el1_str: str x1, [x0]\n"
        "        ret\n"
        "el1_brk: brk #0x77\n"
        "        ret\n"
        "el1_udf: udf #0x1234\n"
        "        ret\n");
u64 el1_svc(u64 x);
u64 el1_ldr(u64 addr);
u64 el1_str(u64 addr, u64 val);
u64 el1_brk(void);
u64 el1_udf(void);
extern char el1_svc_call[];

enum action { ACT_NONE, ACT_SVC, ACT_MAP_RW, ACT_SKIP, ACT_END_EL0 };
#define SKIP_MARK 0x5111bUL
#define END_MARK 0xe0dUL
#define LOAD_MARK 0x1122334455667788UL
#define MAX_FAULTS 3   /* a fix-up that did not work would fault forever */

struct record {
    enum action act;
    u32 count;
    unsigned vec;
    struct exc_frame f;
    u64 handler_sp;
};
static struct record rec;

enum { P_STACK, P_LOAD, P_STORE, P_RO, P_LDP, P_STP, P_LDXR, P_IABT, P_XN, P_EL1, N_PAGES };
static u8 upages[N_PAGES][PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
#define PAGE(i) ((u64)upages[i])

static int handler(struct exc_frame *f, unsigned vec)
{
    if (rec.act == ACT_NONE)
        return 0;
    if (++rec.count > MAX_FAULTS)
        fail("exception repeats: esr 0x%lx elr 0x%lx far 0x%lx", f->esr, f->elr, f->far);
    rec.vec = vec;
    rec.f = *f;
    __asm__ volatile("mov %0, sp" : "=r"(rec.handler_sp));
    switch (rec.act) {
    case ACT_SVC:
        f->x[0] = f->x[0] * 2 + 1;
        break;
    case ACT_MAP_RW:
        /* Map (or upgrade) the faulting page and re-execute the access. */
        mmu_set_page(f->far & ~(PAGE_SIZE - 1), f->far & ~(PAGE_SIZE - 1), PROT_USER_RW);
        break;
    case ACT_SKIP:
        f->elr += 4;
        f->x[0] = SKIP_MARK;
        break;
    case ACT_END_EL0:
        exc_end_el0(f, END_MARK);
        break;
    default:
        return 0;
    }
    return 1;
}

static void arm(enum action a)
{
    rec.act = a;
    rec.count = 0;
    memset(&rec.f, 0, sizeof(rec.f));
}

struct want {
    unsigned vec, ec;
    u64 iss;       /* full ISS, or low 6 bits (FSC) + WnR for aborts */
    int abort;     /* compare FSC and WnR instead of the whole ISS */
    unsigned wnr;
    u64 far;       /* 0 = don't check */
    u64 elr;
    unsigned mode; /* SPSR_EL1.M[3:0] */
};

static void expect(const char *name, const struct want *w, u64 result, u64 want_result)
{
    struct exc_frame *f = &rec.f;
    u64 esr = f->esr;
    int ok = rec.count == 1 && rec.vec == w->vec && ESR_EC(esr) == w->ec && ESR_IL(esr) &&
             f->elr == w->elr && SPSR_M(f->spsr) == w->mode && result == want_result;
    if (w->abort)
        ok = ok && ESR_FSC(esr) == w->iss && ESR_WNR(esr) == w->wnr;
    else
        ok = ok && ESR_ISS(esr) == w->iss;
    if (w->far)
        ok = ok && f->far == w->far;
    printf("%s: vec %u ec 0x%02lx iss 0x%lx far 0x%lx elr 0x%lx spsr.M %lu -> 0x%lx %s\n", name,
           rec.vec, ESR_EC(esr), ESR_ISS(esr), w->far ? f->far : 0, f->elr, SPSR_M(f->spsr),
           result, ok ? "ok" : "BAD");
    if (!ok) {
        printf("  expected: 1 exception, vec %u ec 0x%02x %s 0x%lx%s far 0x%lx elr 0x%lx "
               "spsr.M %u -> 0x%lx (count %u)\n",
               w->vec, w->ec, w->abort ? "fsc" : "iss", w->iss, w->abort && w->wnr ? " WnR" : "",
               w->far, w->elr, w->mode, want_result, rec.count);
        check_failed();
    }
}

static u64 user_sp(void) { return PAGE(P_STACK) + PAGE_SIZE; }

static void el0_tests(void)
{
    u64 lo, hi;
    stack_bounds(0, &lo, &hi);

    /* SVC from EL0: handler runs on SP_EL1, SP_EL0 kept. */
    arm(ACT_SVC);
    u64 r = run_el0((u64)u_svc, user_sp(), 20);
    struct exc_frame *x = &el0_exit_frame[0];
    expect("el0 svc #0x42", &(struct want){VEC_LOWER64_SYNC, EC_SVC64, 0x42, 0, 0, 0,
                                            (u64)u_svc_call + 4, SPSR_EL0T}, r, 41);
    check_true("el0 svc: SP_EL0 in frame", rec.f.sp_el0 == user_sp(), "0x%lx", rec.f.sp_el0);
    check_true("el0 svc: SP_EL0 preserved", x->x[1] == user_sp() && x->x[2] == user_sp(),
               "before 0x%lx after 0x%lx", x->x[1], x->x[2]);
    check_true("el0 svc: handler on EL1 stack", rec.handler_sp > lo && rec.handler_sp < hi,
               "sp 0x%lx", rec.handler_sp);

    /* Load from an unmapped page: translation fault, mapped, re-executed. */
    arm(ACT_MAP_RW);
    u64 a = PAGE(P_LOAD) + 0x128;
    r = run_el0((u64)u_load, user_sp(), a);
    expect("el0 load unmapped", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_TRANS_L3, 1,
                                               0, a, (u64)u_load, SPSR_EL0T}, r, LOAD_MARK);

    arm(ACT_MAP_RW);
    a = PAGE(P_STORE) + 0x7f8;
    r = run_el0((u64)u_store, user_sp(), a);
    expect("el0 store unmapped", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_TRANS_L3, 1,
                                                1, a, (u64)u_store_insn, SPSR_EL0T}, r, 0xa5a55a5a);

    /* Store to a read-only page: permission fault, made writable. */
    arm(ACT_MAP_RW);
    a = PAGE(P_RO) + 0x10;
    r = run_el0((u64)u_store, user_sp(), a);
    expect("el0 store read-only", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_PERM_L3, 1,
                                                 1, a, (u64)u_store_insn, SPSR_EL0T}, r, 0xa5a55a5a);

    arm(ACT_MAP_RW);
    a = PAGE(P_LDP) + 0x30;
    r = run_el0((u64)u_ldp, user_sp(), a);
    expect("el0 ldp unmapped", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_TRANS_L3, 1, 0,
                                              a, (u64)u_ldp, SPSR_EL0T}, r, 2 * LOAD_MARK);

    arm(ACT_MAP_RW);
    a = PAGE(P_STP) + 0x50;
    r = run_el0((u64)u_stp, user_sp(), a);
    expect("el0 stp unmapped", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_TRANS_L3, 1, 1,
                                              a, (u64)u_stp_insn, SPSR_EL0T}, r, 0x22);

    arm(ACT_MAP_RW);
    a = PAGE(P_LDXR) + 0x40;
    r = run_el0((u64)u_ldxr, user_sp(), a);
    expect("el0 ldxr unmapped", &(struct want){VEC_LOWER64_SYNC, EC_DABT_LOWER, FSC_TRANS_L3, 1,
                                               0, a, (u64)u_ldxr, SPSR_EL0T}, r, LOAD_MARK);

    /* Instruction fetch from an unmapped page, then from an EL0 data page
     * (UXN): the handler ends the EL0 program. */
    arm(ACT_END_EL0);
    a = PAGE(P_IABT) + 0x40;
    r = run_el0((u64)u_jump, user_sp(), a);
    expect("el0 fetch unmapped", &(struct want){VEC_LOWER64_SYNC, EC_IABT_LOWER, FSC_TRANS_L3, 1,
                                                0, a, a, SPSR_EL0T}, r, END_MARK);
    arm(ACT_END_EL0);
    a = PAGE(P_XN) + 0x80;
    r = run_el0((u64)u_jump, user_sp(), a);
    expect("el0 fetch UXN page", &(struct want){VEC_LOWER64_SYNC, EC_IABT_LOWER, FSC_PERM_L3, 1,
                                                0, a, a, SPSR_EL0T}, r, END_MARK);

    /* EL1-only system register from EL0: UNDEFINED (EC 0x00, Arm ARM D1.13). */
    arm(ACT_SKIP);
    r = run_el0((u64)u_mrs_sctlr, user_sp(), 0);
    expect("el0 mrs sctlr_el1", &(struct want){VEC_LOWER64_SYNC, EC_UNKNOWN, 0, 0, 0, 0,
                                               (u64)u_mrs_sctlr, SPSR_EL0T}, r, SKIP_MARK);
    /* CTR_EL0 with SCTLR_EL1.UCT = 0: trapped (EC 0x18), ISS = Op0 3, Op2 1,
     * Op1 3, CRn 0, Rt 0, CRm 0, read (Arm ARM D17.2.37, ISS for EC 0x18). */
    arm(ACT_SKIP);
    r = run_el0((u64)u_mrs_ctr, user_sp(), 0);
    expect("el0 mrs ctr_el0 (UCT=0)", &(struct want){VEC_LOWER64_SYNC, EC_SYSREG, 0x32C001, 0, 0,
                                                     0, (u64)u_mrs_ctr, SPSR_EL0T}, r, SKIP_MARK);
    arm(ACT_SKIP);
    r = run_el0((u64)u_brk, user_sp(), 0);
    expect("el0 brk #0x55", &(struct want){VEC_LOWER64_SYNC, EC_BRK64, 0x55, 0, 0, 0, (u64)u_brk,
                                           SPSR_EL0T}, r, SKIP_MARK);
}

static void el1_tests(void)
{
    arm(ACT_SVC);
    u64 r = el1_svc(5);
    expect("el1 svc #0x123", &(struct want){VEC_CUR_SPX_SYNC, EC_SVC64, 0x123, 0, 0, 0,
                                            (u64)el1_svc_call + 4, SPSR_EL1H}, r, 11);

    arm(ACT_SKIP);
    u64 a = PAGE(P_EL1) + 0x88;
    r = el1_ldr(a);
    expect("el1 load unmapped", &(struct want){VEC_CUR_SPX_SYNC, EC_DABT_CUR, FSC_TRANS_L3, 1, 0,
                                               a, (u64)el1_ldr, SPSR_EL1H}, r, SKIP_MARK);
    arm(ACT_SKIP);
    a = PAGE(P_EL1) + 0xff0;
    r = el1_str(a, 1);
    expect("el1 store unmapped", &(struct want){VEC_CUR_SPX_SYNC, EC_DABT_CUR, FSC_TRANS_L3, 1, 1,
                                                a, (u64)el1_str, SPSR_EL1H}, r, SKIP_MARK);
    /* An unaligned store whose second half lands in the unmapped page: the
     * fault is on that page and FAR is its first byte. */
    arm(ACT_SKIP);
    a = PAGE(P_EL1) - 4;
    r = el1_str(a, 1);
    expect("el1 store across a page into an unmapped one",
           &(struct want){VEC_CUR_SPX_SYNC, EC_DABT_CUR, FSC_TRANS_L3, 1, 1, PAGE(P_EL1),
                          (u64)el1_str, SPSR_EL1H}, r, SKIP_MARK);
    arm(ACT_SKIP);
    r = el1_brk();
    expect("el1 brk #0x77", &(struct want){VEC_CUR_SPX_SYNC, EC_BRK64, 0x77, 0, 0, 0,
                                           (u64)el1_brk, SPSR_EL1H}, r, SKIP_MARK);
    arm(ACT_SKIP);
    r = el1_udf();
    expect("el1 udf", &(struct want){VEC_CUR_SPX_SYNC, EC_UNKNOWN, 0, 0, 0, 0, (u64)el1_udf,
                                     SPSR_EL1H}, r, SKIP_MARK);
}

int main(void)
{
    printf("exceptions: MMU on, EL0 and EL1 synchronous exceptions\n");
    mmu_init();
    /* Data the EL0 program must see once its page is mapped back. */
    for (int p = P_LOAD; p < N_PAGES; p++)
        for (u64 i = 0; i < PAGE_SIZE / 8; i++)
            ((u64 *)upages[p])[i] = LOAD_MARK;
    mmu_map_range((u64)__user_text_start, (u64)__user_text_end, PROT_USER_RX);
    mmu_set_page(PAGE(P_STACK), PAGE(P_STACK), PROT_USER_RW);
    mmu_set_page(PAGE(P_RO), PAGE(P_RO), PROT_USER_RO);
    mmu_set_page(PAGE(P_XN), PAGE(P_XN), PROT_USER_RW);
    for (int p = P_LOAD; p < N_PAGES; p++)
        if (p != P_RO && p != P_XN)
            mmu_unmap_page(PAGE(p));
    mmu_enable();
    exc_set_handler(handler);
    el0_tests();
    el1_tests();
    arm(ACT_NONE);
    return 0;
}
