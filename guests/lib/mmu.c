/* Identity-mapped stage 1 translation for EL1&0 (VMSAv8-64, Arm ARM D8):
 * 4 KiB granule, 32-bit VA (T0SZ = 32, walks start at level 1).
 *   L1[0]  0x00000000-0x3FFFFFFF  1 GiB block, Device-nGnRnE (MMIO)
 *   L1[1]  RAM's first GiB through an L2 table: the first MMU_FINE_SIZE in
 *          L3 pages (the image lives there, tests map/unmap its pages),
 *          the rest in 2 MiB blocks
 *   L1[2], L1[3]  1 GiB Normal blocks (more RAM)
 * Every CPU uses the same tables. */
#include "guest.h"

#define DESC_TABLE 0x3UL
#define DESC_BLOCK 0x1UL
#define N_L3 (MMU_FINE_SIZE >> 21)
/* MAIR_EL1 (D17.2.97): attr0 Device-nGnRnE, attr1 Normal WB RA WA. */
#define MAIR_VALUE 0xFF00UL
/* TCR_EL1 (D17.2.131): T0SZ=32, IRGN0=ORGN0=WB WA, SH0=inner, TG0=4K,
 * EPD1 (no TTBR1 walks), IPS=32 bits. */
#define TCR_VALUE (32UL | (1UL << 8) | (1UL << 10) | (3UL << 12) | (1UL << 23))
/* SCTLR_EL1: ARMv8.0 RES1 bits, M (bit 0), C (bit 2), I (bit 12). */
#define SCTLR_MMU_ON (0x30D00800UL | 1UL | (1UL << 2) | (1UL << 12))
#define BLOCK_NORMAL (DESC_BLOCK | PTE_ATTR(MAIR_IDX_NORMAL) | PTE_SH_INNER | PTE_AF)
#define BLOCK_DEVICE (DESC_BLOCK | PTE_ATTR(MAIR_IDX_DEVICE) | PTE_AF | PTE_UXN | PTE_PXN)

static u64 l1[512] __attribute__((aligned(4096)));
static u64 l2[512] __attribute__((aligned(4096)));
static u64 l3[N_L3][512] __attribute__((aligned(4096)));
static volatile u32 mmu_on;

void mmu_init(void)
{
    l1[0] = 0x00000000UL | BLOCK_DEVICE;
    l1[1] = (u64)l2 | DESC_TABLE;
    l1[2] = 0x80000000UL | BLOCK_NORMAL;
    l1[3] = 0xC0000000UL | BLOCK_NORMAL;
    for (u64 i = 0; i < 512; i++) {
        u64 pa = RAM_BASE + (i << 21);
        l2[i] = i < N_L3 ? ((u64)l3[i] | DESC_TABLE) : (pa | BLOCK_NORMAL);
    }
    for (u64 t = 0; t < N_L3; t++)
        for (u64 i = 0; i < 512; i++)
            l3[t][i] = (RAM_BASE + (t << 21) + (i << 12)) | PROT_KERNEL_RW;
    dsb(sy);
}

void mmu_enable(void)
{
    __asm__ volatile("tlbi vmalle1\n dsb nsh\n"
                     "msr mair_el1, %0\n msr tcr_el1, %1\n msr ttbr0_el1, %2\n isb\n"
                     "msr sctlr_el1, %3\n isb\n"
                     ::"r"(MAIR_VALUE), "r"(TCR_VALUE), "r"((u64)l1), "r"(SCTLR_MMU_ON)
                     : "memory");
    if (this_cpu() == 0)
        store_release32(&mmu_on, 1);
}

int mmu_enabled(void)
{
    return (int)load_acquire32(&mmu_on);
}

u64 *mmu_pte(u64 va)
{
    if (va < RAM_BASE || va >= RAM_BASE + MMU_FINE_SIZE)
        return 0;
    u64 off = va - RAM_BASE;
    return &l3[off >> 21][(off >> 12) & 511];
}

void tlbi_va_is(u64 va)
{
    __asm__ volatile("dsb ishst\n tlbi vae1is, %0\n dsb ish\n isb"
                     ::"r"(va >> 12) : "memory");
}

void mmu_set_page(u64 va, u64 pa, u64 prot)
{
    volatile u64 *pte = mmu_pte(va);
    if (!pte)
        fail("mmu_set_page: 0x%lx outside the 4K-mapped region", va);
    if (*pte & PTE_VALID) {
        /* Break-before-make (Arm ARM D8.14.1). */
        *pte = 0;
        tlbi_va_is(va);
    }
    *pte = (pa & ~(PAGE_SIZE - 1)) | prot;
    dsb(ishst);
    isb();
}

void mmu_unmap_page(u64 va)
{
    volatile u64 *pte = mmu_pte(va);
    if (!pte)
        fail("mmu_unmap_page: 0x%lx outside the 4K-mapped region", va);
    *pte = 0;
    tlbi_va_is(va);
}

void mmu_map_range(u64 start, u64 end, u64 prot)
{
    for (u64 va = start & ~(PAGE_SIZE - 1); va < end; va += PAGE_SIZE)
        mmu_set_page(va, va, prot);
}
