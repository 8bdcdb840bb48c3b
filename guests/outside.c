/* Loads, stores and instruction fetches to physical addresses with nothing
 * behind them: holes in the virt memory map (empty on the board, in a VM and
 * on QEMU) and the space right after RAM. Each must be a synchronous
 * external abort at EL1 (Arm ARM D17.2.37: EC 0x24/0x25 data abort with DFSC
 * 0b010000 and WnR for stores, EC 0x20/0x21 instruction abort with IFSC
 * 0b010000), ELR the exact instruction (or the fetched address), FAR the
 * virtual address accessed. The accesses sit at the start of a block (a
 * branch target) and in the middle of one (after ALU instructions), in
 * several widths, pairs, pre/post-index (whose base must not be written
 * back), exclusive and acquire forms. Three phases, each ROUNDS times:
 * MMU off at EL1; MMU on at EL1 through pages whose VA is in RAM and whose PA
 * is in a hole (FAR is the VA); MMU on at EL0. The handler skips a faulting
 * access and returns to LR from a faulting fetch. */
#include "guest.h"

#define ROUNDS 60
#define FSC_SYNC_EXTERNAL 0x10
/* Holes in QEMU virt's map (hw/arm/virt.c base_memmap): after the
 * virtio-mmio transports (0x0A000000 + 32 * 0x200) up to the platform bus
 * (0x0C000000), and the secure-memory slot 0x0E000000-0x0EFFFFFF plus the
 * gap before the PCIe window (0x10000000), empty without secure=on. */
#define HOLE_A 0x0A100000UL
#define HOLE_B 0x0F000000UL

/* Each probe takes the address in x0 and returns x0 (so a pre/post-index
 * write-back that should not have happened shows). `*_at` labels the access.
 * Probes without ALU instructions before the access begin a block (they are
 * branched to); the others access in the middle of one. */
#define PROBE_START(name, insn) \
    ".globl " #name ", " #name "_at\n" #name ":\n" #name "_at: " insn "\n ret\n"
#define PROBE_MID(name, insn) \
    ".globl " #name ", " #name "_at\n" #name ":\n add x9, x0, #1\n eor x10, x9, x0\n" \
    " add x11, x10, #3\n" #name "_at: " insn "\n ret\n"
__asm__(".text\n"
        PROBE_START(p_ldrb, "ldrb w1, [x0]")
        PROBE_MID(p_ldrh, "ldrh w1, [x0]")
        PROBE_START(p_ldr_w, "ldr w1, [x0]")
        PROBE_MID(p_ldr_x_post, "ldr x1, [x0], #8")
        PROBE_START(p_ldp_x, "ldp x1, x2, [x0]")
        PROBE_MID(p_ldp_w_pre, "ldp w1, w2, [x0, #8]!")
        PROBE_START(p_ldxr, "ldxr x1, [x0]")
        PROBE_MID(p_ldar, "ldar w1, [x0]")
        PROBE_START(p_strb, "strb w1, [x0]")
        PROBE_MID(p_strh, "strh w1, [x0]")
        PROBE_START(p_str_w_pre, "str w1, [x0, #4]!")
        PROBE_MID(p_str_x_off, "str x1, [x0, #16]")
        PROBE_START(p_stp_x, "stp x1, x2, [x0]")
        PROBE_MID(p_stp_w_post, "stp w1, w2, [x0], #8")
        PROBE_MID(p_stlr, "stlr x1, [x0]"));

#define DECL(name) u64 name(u64 addr); extern char name##_at[];
DECL(p_ldrb) DECL(p_ldrh) DECL(p_ldr_w) DECL(p_ldr_x_post) DECL(p_ldp_x) DECL(p_ldp_w_pre)
DECL(p_ldxr) DECL(p_ldar) DECL(p_strb) DECL(p_strh) DECL(p_str_w_pre) DECL(p_str_x_off)
DECL(p_stp_x) DECL(p_stp_w_post) DECL(p_stlr)

struct probe {
    const char *name;
    u64 (*fn)(u64);
    const char *at;
    u64 far_offset;      /* FAR = address + this */
    int write;
};
#define P(name, off, w) {#name, name, name##_at, off, w}
static const struct probe probes[] = {
    P(p_ldrb, 0, 0), P(p_ldrh, 0, 0), P(p_ldr_w, 0, 0), P(p_ldr_x_post, 0, 0), P(p_ldp_x, 0, 0),
    P(p_ldp_w_pre, 8, 0), P(p_ldxr, 0, 0), P(p_ldar, 0, 0), P(p_strb, 0, 1), P(p_strh, 0, 1),
    P(p_str_w_pre, 4, 1), P(p_str_x_off, 16, 1), P(p_stp_x, 0, 1), P(p_stp_w_post, 0, 1),
    P(p_stlr, 0, 1),
};
#define N_PROBES (sizeof(probes) / sizeof(probes[0]))

/* EL0: one load, one store, one jump (to a fetch abort); SVC #0xFFFF returns. */
__asm__(".pushsection .user_text, \"ax\"\n"
        ".globl u_load, u_load_at, u_store, u_store_at, u_call\n"
        "u_load: add x9, x0, #0\n"
        "u_load_at: ldr x1, [x9]\n"
        "        svc #0xffff\n"
        "u_store:\n"
        "u_store_at: stp x0, x0, [x0]\n"
        "        svc #0xffff\n"
        "u_call: blr x0\n"
        "        svc #0xffff\n"
        ".popsection\n");
extern char u_load[], u_load_at[], u_store[], u_store_at[], u_call[];

static struct {
    int armed, fetch, write, el0;
    u64 elr, far;
    unsigned long taken, bad;
} want;

static int handler(struct exc_frame *f, unsigned vec)
{
    if (!want.armed)
        return 0;
    want.armed = 0;
    want.taken++;
    unsigned ec = want.fetch ? (want.el0 ? EC_IABT_LOWER : EC_IABT_CUR)
                             : (want.el0 ? EC_DABT_LOWER : EC_DABT_CUR);
    unsigned want_vec = want.el0 ? VEC_LOWER64_SYNC : VEC_CUR_SPX_SYNC;
    int ok = vec == want_vec && ESR_EC(f->esr) == ec && ESR_IL(f->esr) &&
             ESR_FSC(f->esr) == FSC_SYNC_EXTERNAL && f->elr == want.elr && f->far == want.far &&
             (want.fetch || ESR_WNR(f->esr) == (u64)want.write);
    if (!ok && want.bad++ < 10)
        printf("BAD: vec %u esr 0x%lx elr 0x%lx far 0x%lx; want vec %u ec 0x%x fsc 0x10 wnr %d "
               "elr 0x%lx far 0x%lx\n", vec, f->esr, f->elr, f->far, want_vec, ec, want.write,
               want.elr, want.far);
    if (want.fetch)
        f->elr = f->x[30];       /* back to the caller of the jump */
    else
        f->elr += 4;             /* skip the access */
    return 1;
}

static void arm_data(const struct probe *p, u64 far)
{
    want.fetch = 0;
    want.write = p->write;
    want.elr = (u64)p->at;
    want.far = far;
    want.armed = 1;
    dsb(sy);
}

static void arm_fetch(u64 target)
{
    want.fetch = 1;
    want.write = 0;
    want.elr = target;
    want.far = target;
    want.armed = 1;
    dsb(sy);
}

static void expect_taken(const char *what, u64 addr)
{
    if (want.armed) {
        want.armed = 0;
        if (want.bad++ < 10)
            printf("BAD: %s at 0x%lx took no exception\n", what, addr);
    }
}

/* One round of every data probe at `va` (FAR = va + offset) and a jump to
 * `fetch_va`. */
static void el1_round(u64 va, u64 fetch_va)
{
    for (unsigned i = 0; i < N_PROBES; i++) {
        const struct probe *p = &probes[i];
        arm_data(p, va + p->far_offset);
        u64 back = p->fn(va);
        expect_taken(p->name, va);
        if (back != va && want.bad++ < 10)
            printf("BAD: %s wrote its base back (0x%lx -> 0x%lx)\n", p->name, va, back);
    }
    arm_fetch(fetch_va);
    ((void (*)(void))fetch_va)();
    expect_taken("fetch", fetch_va);
}

static u8 data_window[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 code_window[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 user_stack[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 user_data_window[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 user_code_window[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static void el0_round(u64 data_va, u64 code_va)
{
    u64 sp = (u64)user_stack + PAGE_SIZE;
    want.el0 = 1;
    want.fetch = 0;
    want.write = 0;
    want.elr = (u64)u_load_at;
    want.far = data_va;
    want.armed = 1;
    run_el0((u64)u_load, sp, data_va);
    expect_taken("el0 load", data_va);
    want.write = 1;
    want.elr = (u64)u_store_at;
    want.armed = 1;
    run_el0((u64)u_store, sp, data_va);
    expect_taken("el0 store", data_va);
    arm_fetch(code_va);
    run_el0((u64)u_call, sp, code_va);
    expect_taken("el0 fetch", code_va);
    want.el0 = 0;
}

int main(void)
{
    u64 ram_end = plat.mem_base + plat.mem_size;
    /* Stay below 4 GiB: the MMU phase maps only the low 4 GiB. */
    u64 beyond = ram_end < 0xFFF00000UL ? ram_end : 0;
    printf("outside: RAM ends at 0x%lx; holes 0x%lx, 0x%lx, beyond RAM 0x%lx\n", ram_end,
           HOLE_A, HOLE_B, beyond);
    exc_set_handler(handler);

    /* Offsets move around each page so different TLB entries and pages are used. */
    for (int r = 0; r < ROUNDS; r++) {
        u64 off = (u64)(r * 0x1230) & 0xFFF0;
        el1_round(HOLE_A + off, HOLE_B + off + 0x124);
        el1_round(HOLE_B + off, HOLE_A + off);
        if (beyond)
            el1_round(beyond + off, beyond + off + 0x40);
    }
    unsigned long mmu_off = want.taken;

    /* MMU on: RAM pages whose PA is in a hole; FAR must be the VA. */
    mmu_init();
    mmu_set_page((u64)data_window, HOLE_A + 0x5000, PROT_KERNEL_RW);
    mmu_set_page((u64)code_window, HOLE_B + 0x7000, PROT_KERNEL_RW);
    mmu_map_range((u64)__user_text_start, (u64)__user_text_end, PROT_USER_RX);
    mmu_set_page((u64)user_stack, (u64)user_stack, PROT_USER_RW);
    mmu_set_page((u64)user_data_window, HOLE_B + 0x9000, PROT_USER_RW);
    mmu_set_page((u64)user_code_window, HOLE_A + 0xB000, PROT_USER_RX);
    mmu_enable();
    for (int r = 0; r < ROUNDS; r++) {
        u64 off = (u64)(r * 0x130) & 0xFF0;
        el1_round((u64)data_window + off, (u64)code_window + off);
        if (beyond)
            el1_round(beyond + 0x10000 + off, beyond + 0x20000 + off);
    }
    unsigned long mmu_on = want.taken - mmu_off;
    for (int r = 0; r < ROUNDS; r++) {
        u64 off = (u64)(r * 0x130) & 0xFF0;
        el0_round((u64)user_data_window + off, (u64)user_code_window + off);
    }
    unsigned long el0 = want.taken - mmu_off - mmu_on;

    unsigned long per_round = N_PROBES + 1;
    unsigned long expect_off = ROUNDS * per_round * (beyond ? 3 : 2);
    unsigned long expect_on = ROUNDS * per_round * (beyond ? 2 : 1);
    printf("outside: aborts taken mmu off %lu, mmu on %lu, el0 %lu; bad %lu\n", mmu_off, mmu_on,
           el0, want.bad);
    check_eq("aborts with the MMU off", (s64)mmu_off, (s64)expect_off);
    check_eq("aborts with the MMU on", (s64)mmu_on, (s64)expect_on);
    check_eq("aborts from EL0", (s64)el0, (s64)ROUNDS * 3);
    check_eq("bad aborts", (s64)want.bad, 0);
    return 0;
}
