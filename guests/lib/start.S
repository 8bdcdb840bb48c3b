/* Entry points: boot CPU (_start), PSCI secondaries (secondary_entry,
 * ctx_probe_entry), SMCCC conduits and the EL1 <-> EL0 switch. */
#define STACK_SIZE 16384

/* Leaves EL2 for EL1h when the CPU starts there (QEMU with
 * virtualization=on starts every CPU at EL2). Keeps x0-x8 and x19-x28. */
.macro drop_to_el1
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.ne    8f
    /* HCR_EL2.RW (bit 31): EL1 runs AArch64; no other trap or routing bit. */
    mov     x9, #(1 << 31)
    msr     hcr_el2, x9
    /* CNTHCTL_EL2.EL1PCTEN|EL1PCEN: EL1 may use the physical counter. */
    mov     x9, #3
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    /* CPTR_EL2 with TFP=0 (and its RES1 bits): no FP/SIMD trap. */
    mov     x9, #0x33ff
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    msr     vttbr_el2, xzr
    /* EL1 reads VMPIDR_EL2/VPIDR_EL2 as its MPIDR/MIDR. */
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    /* ICC_SRE_EL2.SRE|Enable (IHI0069 12.7.12) when a GICv3 CPU interface
     * exists (ID_AA64PFR0_EL1.GIC), so EL1 can use the ICC_* registers. */
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4
    cbz     x9, 7f
    mrs     x9, S3_4_C12_C9_5
    mov     x10, #0x9
    orr     x9, x9, x10
    msr     S3_4_C12_C9_5, x9
    isb
7:
    /* SCTLR_EL1: ARMv8.0 RES1 bits only, MMU and caches off. */
    ldr     x9, =0x30D00800
    msr     sctlr_el1, x9
    /* SPSR_EL2 = EL1h with D, A, I, F masked. */
    mov     x9, #0x3c5
    msr     spsr_el2, x9
    adr     x9, 8f
    msr     elr_el2, x9
    isb
    eret
8:
.endm

.macro el1_setup
    ldr     x9, =vectors
    msr     vbar_el1, x9
    /* CPACR_EL1.FPEN = 0b11: FP/SIMD usable at EL1 and EL0. */
    mov     x9, #(3 << 20)
    msr     cpacr_el1, x9
    isb
.endm

    .section .text.boot, "ax"
    .globl  _start
_start:
    mov     x19, x0                 /* DTB address if the loader passed one */
    mrs     x20, CurrentEL
    drop_to_el1
    ldr     x9, =cpu_stacks
    add     x9, x9, #STACK_SIZE
    mov     sp, x9
    msr     tpidr_el1, xzr          /* logical CPU 0 */
    el1_setup
    ldr     x9, =__bss_start
    ldr     x10, =__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:  mov     x0, x19
    ubfx    x1, x20, #2, #2
    bl      boot_main
3:  wfi
    b       3b

    .text
/* PSCI CPU_ON entry for smp.c: x0 = context_id = &secondary_data[cpu]. */
    .globl  secondary_entry
    .balign 8
secondary_entry:
    mov     x19, x0
    mrs     x20, CurrentEL
    drop_to_el1
    ldr     x9, [x19, #0]           /* secondary_data.stack_top */
    mov     sp, x9
    ldr     x9, [x19, #8]           /* secondary_data.cpu */
    msr     tpidr_el1, x9
    el1_setup
    mov     x0, x19
    ubfx    x1, x20, #2, #2
    bl      secondary_main
1:  wfi
    b       1b

/* PSCI CPU_ON entry that needs no memory set up by the caller: stores the
 * context_id it got and powers itself off again. */
    .globl  ctx_probe_entry
    .balign 8
ctx_probe_entry:
    mov     x19, x0
    mrs     x20, CurrentEL
    drop_to_el1
    ubfx    x20, x20, #2, #2
    ldr     x9, =ctx_probe_el
    str     x20, [x9]
    ldr     x9, =ctx_probe_value
    str     x19, [x9]
    dsb     sy
    ldr     x0, =0x84000002         /* CPU_OFF */
    ldr     x9, =psci_use_hvc
    ldr     w9, [x9]
    cbnz    w9, 1f
    smc     #0
    b       2f
1:  hvc     #0
2:  wfi
    b       2b

/* SMCCC (DEN0028) calls: x0 = function ID, x1-x3 arguments, result in x0.
 * x4-x17 may be clobbered, which the C ABI already allows. */
    .globl  smc_call
smc_call:
    smc     #0
    ret
    .globl  hvc_call
hvc_call:
    hvc     #0
    ret

/* u64 run_el0(u64 entry, u64 sp, u64 arg): ERET to EL0t at entry with
 * SP_EL0 = sp and x0 = arg; returns when the EL0 code does SVC #0xFFFF
 * (or a handler calls exc_end_el0). */
    .globl  run_el0
run_el0:
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    mrs     x10, tpidr_el1
    ldr     x11, =el0_saved_sp
    mov     x9, sp
    str     x9, [x11, x10, lsl #3]
    msr     elr_el1, x0
    msr     sp_el0, x1
    /* SPSR_EL1: EL0t with D, A, I, F masked. */
    mov     x9, #0x3c0
    msr     spsr_el1, x9
    mov     x0, x2
    /* Do not leak kernel pointers into EL0's registers. */
    mov     x1, xzr
    mov     x2, xzr
    mov     x29, xzr
    mov     x30, xzr
    eret

    .globl  el0_return
el0_return:
    mrs     x10, tpidr_el1
    ldr     x11, =el0_saved_sp
    ldr     x9, [x11, x10, lsl #3]
    mov     sp, x9
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #96
    ret
