/* PL011 output (ARM DDI0183) and a small printf. Lines are formatted into a
 * buffer first and written under a lock, so CPUs never interleave a line. */
#include "guest.h"

#define UARTDR 0x000
#define UARTFR 0x018
#define UARTCR 0x030
#define UARTFR_TXFF (1U << 5)
/* UARTCR: UARTEN (bit 0), TXE (bit 8), RXE (bit 9). */
#define UARTCR_ENABLE 0x301U

static spinlock_t uart_lock;

static inline volatile u32 *uart_reg(unsigned off)
{
    return (volatile u32 *)(UART_BASE + off);
}

void uart_init(void)
{
    *uart_reg(UARTCR) = UARTCR_ENABLE;
}

void uart_putc(char c)
{
    while (*uart_reg(UARTFR) & UARTFR_TXFF)
        ;
    *uart_reg(UARTDR) = (u32)(u8)c;
}

static void uart_write(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            uart_putc('\r');
        uart_putc(*s);
    }
}

void uart_puts(const char *s)
{
    spin_lock(&uart_lock);
    uart_write(s);
    spin_unlock(&uart_lock);
}

struct out {
    char *buf;
    size_t size, len;
};

static void emit(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void emit_num(struct out *o, u64 v, unsigned base, int neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    if (neg)
        tmp[n++] = '-';
    for (int i = n; i < width; i++)
        emit(o, pad);
    while (n)
        emit(o, tmp[--n]);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            lng = 1;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);
            emit_num(&o, v < 0 ? (u64)-v : (u64)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
            emit_num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, 0, width, pad);
            break;
        case 'x':
            emit_num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, 0, width, pad);
            break;
        case 'p':
            emit(&o, '0');
            emit(&o, 'x');
            emit_num(&o, (u64)va_arg(ap, void *), 16, 0, width, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int n = (int)strlen(s);
            for (int i = n; i < width; i++)
                emit(&o, ' ');
            while (*s)
                emit(&o, *s++);
            break;
        }
        case 'c':
            emit(&o, (char)va_arg(ap, int));
            break;
        case '%':
            emit(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            emit(&o, '%');
            emit(&o, *fmt);
        }
    }
    if (o.size)
        o.buf[o.len < o.size ? o.len : o.size - 1] = '\0';
    return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    uart_puts(buf);
}
