/*
 * report_format.c - the small formatters the reports share with the TUI:
 * sizes, durations, end states and signal names.
 */
#define _GNU_SOURCE
#include "report.h"

#include <inttypes.h>
#include <string.h>

/* Binary units; an uint64_t never reaches ZiB. */
static const char *const report_units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

/* Below 1 KiB the count is exact. Above, the value is rounded to hundredths
 * in integer arithmetic (no double rounding surprises near unit edges). */
const char *report_format_bytes(uint64_t bytes, char *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return buf;
    if (bytes < 1024) {
        snprintf(buf, len, "%" PRIu64 " B", bytes);
        return buf;
    }
    unsigned unit = 1;
    while (unit < 6 && bytes >> (10 * (unit + 1)) != 0)
        unit++;
    /* hundredths = round(bytes * 100 / 1024^unit), computed without overflow:
     * whole part and remainder separately. */
    uint64_t scale = (uint64_t)1 << (10 * unit);
    uint64_t whole = bytes / scale;
    uint64_t rest = bytes % scale;
    uint64_t frac = (uint64_t)(((unsigned __int128)rest * 100 + scale / 2) / scale);
    if (frac >= 100) {
        whole++;
        frac -= 100;
    }
    if (whole >= 1024 && unit < 6) {   /* 1023.999 KiB shows as 1.00 MiB */
        unit++;
        scale <<= 10;
        whole = bytes / scale;
        rest = bytes % scale;
        frac = (uint64_t)(((unsigned __int128)rest * 100 + scale / 2) / scale);
        if (frac >= 100) {
            whole++;
            frac -= 100;
        }
    }
    snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 " %s", whole, frac, report_units[unit]);
    return buf;
}

/* Precision falls as the unit grows: three significant figures or so, then
 * whole minutes and hours. */
const char *report_format_duration(uint64_t ns, char *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return buf;
    if (ns < 1000)
        snprintf(buf, len, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, len, "%.2f ms", (double)ns / 1e6);
    else if (ns < UINT64_C(60000000000))
        snprintf(buf, len, "%.3f s", (double)ns / 1e9);
    else {
        uint64_t s = ns / 1000000000;
        if (s < 3600)
            snprintf(buf, len, "%" PRIu64 " min %02" PRIu64 " s", s / 60, s % 60);
        else
            snprintf(buf, len, "%" PRIu64 " h %02" PRIu64 " min", s / 3600, (s / 60) % 60);
    }
    return buf;
}

const char *report_end_name(prof_end_t end)
{
    switch (end) {
    case PROF_END_EXITED:
        return "exited";
    case PROF_END_SIGNALED:
        return "signaled";
    case PROF_END_EXEC:
        return "exec";
    case PROF_END_RUNNING:
        return "running";
    case PROF_END_UNKNOWN:
    default:
        return "unknown";
    }
}

/* sigabbrev_np (glibc 2.32) knows the names without the "SIG" prefix and
 * returns NULL for real-time and invalid numbers. */
const char *report_signal_name(int sig, char *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return buf;
    const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
    if (abbrev != NULL)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "SIG%d", sig);
    return buf;
}

size_t report_utf8_len(const unsigned char *p, size_t left, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        *cp = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        *cp = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (p[i] & 0x3F);
    }
    return n;
}

int report_char_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

size_t report_make_printable(char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t k = report_utf8_len((const unsigned char *)buf + i, len - i, &cp);
        if (k == 0 || report_char_unsafe(cp)) {
            buf[o++] = '?';
            i += k ? k : 1;
        } else {
            memmove(buf + o, buf + i, k);
            o += k;
            i += k;
        }
    }
    buf[o] = '\0';
    return o;
}
