/* The few libc routines GCC may emit calls to in freestanding code. Byte
 * loops: with the MMU off all data is Device memory, where unaligned or
 * DC ZVA accesses would fault. */
#include "guest.h"

void *memset(void *dst, int c, size_t n)
{
    volatile u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    volatile u8 *d = dst;
    const volatile u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (u8)*a - (u8)*b;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
