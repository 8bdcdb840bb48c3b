/* C side of the EL1 vector table: EL0 exit calls, the test's handler, and a
 * clear FAIL line for anything nobody handled. */
#include "guest.h"

u64 el0_saved_sp[MAX_CPUS];
struct exc_frame el0_exit_frame[MAX_CPUS];
static exc_handler_t handler;
void el0_return(void);

void exc_set_handler(exc_handler_t h)
{
    handler = h;
    dsb(ish);
}

void exc_end_el0(struct exc_frame *f, u64 value)
{
    f->x[0] = value;
    f->elr = (u64)el0_return;
    f->spsr = 0x3c5;   /* EL1h, DAIF masked: back in run_el0's frame */
}

void exc_dispatch(struct exc_frame *f, u64 vec)
{
    if (vec == VEC_LOWER64_SYNC && ESR_EC(f->esr) == EC_SVC64 &&
        (f->esr & 0xFFFF) == EL0_EXIT_IMM) {
        el0_exit_frame[this_cpu()] = *f;
        exc_end_el0(f, f->x[0]);
        return;
    }
    if (handler && handler(f, (unsigned)vec))
        return;
    fail("cpu %u unhandled exception vec %lu esr 0x%lx elr 0x%lx far 0x%lx spsr 0x%lx",
         this_cpu(), vec, f->esr, f->elr, f->far, f->spsr);
}
