/*
 * log.c - messages from the shim, without stdio or allocation: formatted
 * into a stack buffer with a small printf subset and written to stderr with
 * one write(2). Safe in signal handlers and inside hooks.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* Appends the decimal or hex digits of 'v' to buf at *n (within cap). */
static void put_unsigned(char *buf, size_t cap, size_t *n, unsigned long long v, unsigned base)
{
    char tmp[24];
    size_t k = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[k++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (k && *n + 1 < cap)
        buf[(*n)++] = tmp[--k];
}

static size_t vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (const char *p = fmt; *p && n + 1 < cap; p++) {
        if (*p != '%') {
            buf[n++] = *p;
            continue;
        }
        p++;
        int longs = 0, size_t_arg = 0;
        while (*p == 'l') {
            longs++;
            p++;
        }
        if (*p == 'z') {
            size_t_arg = 1;
            p++;
        }
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            while (*s && n + 1 < cap)
                buf[n++] = *s++;
            break;
        }
        case 'd': {
            long long v = longs ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) {
                buf[n++] = '-';
                v = -v;
            }
            put_unsigned(buf, cap, &n, (unsigned long long)v, 10);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = size_t_arg ? va_arg(ap, size_t)
                                 : longs == 2 ? va_arg(ap, unsigned long long)
                                 : longs ? va_arg(ap, unsigned long)
                                         : va_arg(ap, unsigned);
            put_unsigned(buf, cap, &n, v, *p == 'x' ? 16 : 10);
            break;
        }
        case 'p':
            if (n + 3 < cap) {
                buf[n++] = '0';
                buf[n++] = 'x';
            }
            put_unsigned(buf, cap, &n, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%':
            buf[n++] = '%';
            break;
        default:
            buf[n] = '\0'; /* unknown conversion: stop rather than misread args */
            return n;
        }
    }
    buf[n] = '\0';
    return n;
}

size_t shim_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void shim_log(const char *fmt, ...)
{
    char buf[512];
    int saved = errno;
    size_t n = shim_format(buf, sizeof buf, "mlmem[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vformat(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    errno = saved;
}
