/* PL011 receive by interrupt (DDI0183 3.4 interrupts, 3.3.13 UARTIMSC):
 * RXIM | RTIM unmasked, the UART's level-sensitive SPI 1 (INTID 33 on
 * QEMU virt) routed to CPU 0, and CPU 0 sleeps in WFI. The handler drains
 * UARTDR while UARTFR.RXFE is clear and queues each completed line; the main
 * loop echoes "rx: <line>" and stops after the line "quit". Nothing outside
 * the handler looks at UARTFR's receive side, so every byte that arrives
 * came in through the interrupt. The virtual timer bounds the wait. */
#include "guest.h"

#define UARTDR 0x000
#define UARTFR 0x018
#define UARTIMSC 0x038
#define UARTMIS 0x040
#define UARTICR 0x044
#define UARTFR_RXFE (1U << 4)
#define UART_INT_RX (1U << 4)      /* RXIM / RXMIS / RXIC */
#define UART_INT_RT (1U << 6)      /* RTIM / RTMIS / RTIC */
#define UART_INT_ALL 0x7FFU
#define INTID_UART 33              /* SPI 1: hw/arm/virt.c VIRT_UART irq 1 */
#define PPI_VTIMER 27
#define TIMEOUT_S 30
#define MAX_LINES 32
#define LINE_LEN 80

struct rx_state {
    char lines[MAX_LINES][LINE_LEN];
    volatile u32 head;         /* lines completed by the handler */
    char cur[LINE_LEN];
    u32 cur_len;
    u32 irqs, bytes, irqs_without_rx, overflow;
};
static struct rx_state st;

static inline volatile u32 *uart_reg(unsigned off) { return (volatile u32 *)(UART_BASE + off); }

static void end_line(void)
{
    if (!st.cur_len)
        return;   /* the second half of a CR LF pair */
    st.cur[st.cur_len] = 0;
    u32 h = st.head;
    if (h < MAX_LINES) {
        memcpy(st.lines[h], st.cur, st.cur_len + 1);
        store_release32(&st.head, h + 1);
    } else {
        st.overflow++;
    }
    st.cur_len = 0;
}

static void on_uart(u32 intid, struct exc_frame *f)
{
    st.irqs++;
    if (!(*uart_reg(UARTMIS) & (UART_INT_RX | UART_INT_RT)))
        st.irqs_without_rx++;
    /* Acknowledge before draining, never after: a byte that lands between
     * the last RXFE check and a late RXIC write would keep its interrupt
     * cleared while it sits in the (one-deep, FIFO off) holding register,
     * and nothing more can arrive to raise it again. Reading also lowers
     * RXINTR, so nothing stays asserted once the FIFO is empty. */
    *uart_reg(UARTICR) = UART_INT_RX | UART_INT_RT;
    while (!(*uart_reg(UARTFR) & UARTFR_RXFE)) {
        char c = (char)(*uart_reg(UARTDR) & 0xFF);
        st.bytes++;
        if (c == '\n' || c == '\r')
            end_line();
        else if (st.cur_len < LINE_LEN - 1)
            st.cur[st.cur_len++] = c;
    }
}

static void on_timeout(u32 intid, struct exc_frame *f)
{
    fail("no \"quit\" line within %d s (%u rx interrupts, %u bytes, %u lines)", TIMEOUT_S,
         st.irqs, st.bytes, st.head);
}

int main(void)
{
    gic_dist_init();
    gic_cpu_init();
    gic_set_handler(INTID_UART, on_uart);
    gic_set_handler(PPI_VTIMER, on_timeout);
    gic_set_edge(INTID_UART, 0);
    gic_route_spi(INTID_UART, gic_irouter_for(cpu_mpidr(0)));
    gic_enable_irq(INTID_UART);
    gic_enable_irq(PPI_VTIMER);
    __asm__ volatile("msr cntv_tval_el0, %0; msr cntv_ctl_el0, %1; isb"
                     ::"r"(read_cntfrq() * TIMEOUT_S), "r"(1UL) : "memory");

    /* Not RXIC/RTIC: bytes that came in before now would keep their
     * interrupt cleared while they sit in the FIFO, and with the FIFO full
     * nothing new arrives to raise it again. */
    *uart_reg(UARTICR) = UART_INT_ALL & ~(UART_INT_RX | UART_INT_RT);
    *uart_reg(UARTIMSC) = UART_INT_RX | UART_INT_RT;
    printf("uart_rx: waiting for lines on the UART (RX interrupt, INTID %d); \"quit\" ends\n",
           INTID_UART);

    u32 shown = 0;
    int quit = 0;
    while (!quit) {
        /* Sleep with IRQs masked, as an idle loop must: an interrupt taken
         * between the check and the WFI would otherwise be a lost wake-up.
         * A pending IRQ still ends the WFI; it is taken on unmasking. */
        irq_disable();
        if (shown == load_acquire32(&st.head))
            wfi();
        irq_enable();
        while (!quit && shown < load_acquire32(&st.head)) {
            const char *line = st.lines[shown++];
            printf("rx: %s\n", line);
            if (strcmp(line, "quit") == 0)
                quit = 1;
        }
    }
    irq_disable();
    *uart_reg(UARTIMSC) = 0;
    __asm__ volatile("msr cntv_ctl_el0, xzr; isb" ::: "memory");
    printf("uart_rx: %u lines, %u bytes, %u rx interrupts\n", shown, st.bytes, st.irqs);
    check_true("rx interrupts", st.irqs > 0, "%u", st.irqs);
    check_eq("rx interrupts with nothing to read", st.irqs_without_rx, 0);
    check_eq("lines dropped", st.overflow, 0);
    return 0;
}
