/* A guest that reads and writes outside its RAM, as a VM would to reach
 * another VM's or the host's memory. Each access must end in a synchronous
 * external abort at EL1 (EC 0x25, DFSC 0x10, FAR = the address, WnR for the
 * stores); the handler skips the instruction. The host side of the test
 * checks that the other VM's RAM did not change. */
#include "guest.h"

#define EC_DABT_CUR 0x25
#define DFSC_SYNC_EXTERNAL 0x10
#define MARK 0xBADC0FFEE0DDF00DUL

static volatile u32 aborts, wrong;
static volatile u64 expect_far, expect_wnr;

static int on_abort(struct exc_frame *f, unsigned vec)
{
    u64 ec = f->esr >> 26, dfsc = f->esr & 0x3F, wnr = (f->esr >> 6) & 1;
    if (ec != EC_DABT_CUR || dfsc != DFSC_SYNC_EXTERNAL || f->far != expect_far ||
        wnr != expect_wnr) {
        printf("unexpected: esr 0x%lx far 0x%lx (want far 0x%lx wnr %lu)\n", f->esr, f->far,
               expect_far, expect_wnr);
        wrong++;
    }
    aborts++;
    f->elr += 4;
    return 1;
}

static void store(u64 address)
{
    expect_far = address, expect_wnr = 1;
    *(volatile u64 *)address = MARK;
}

static u64 load(u64 address)
{
    expect_far = address, expect_wnr = 0;
    return *(volatile u64 *)address;
}

int main(void)
{
    exc_set_handler(on_abort);
    u64 end = plat.mem_base + plat.mem_size;
    /* Just past this VM's RAM, where a second VM's RAM would follow if RAM
     * were one flat host buffer; then far above it, and below RAM. */
    u64 targets[] = {end, end + 0x1000, end + (64UL << 20), 0x80000000UL, 0x30000000UL};
    unsigned n = sizeof(targets) / sizeof(targets[0]);
    printf("vm_isolation: RAM 0x%lx..0x%lx, touching %u addresses outside it\n",
           plat.mem_base, end, n);
    for (unsigned i = 0; i < n; i++) {
        store(targets[i]);
        load(targets[i]);
    }
    check_eq("aborts taken", aborts, 2 * n);
    check_eq("aborts with the wrong syndrome", wrong, 0);
    finish();
}
