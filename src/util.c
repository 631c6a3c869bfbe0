/* util — time, RFC 3339 and identifier helpers; see include/telebridge/util.h. */
#include "telebridge/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The proleptic Gregorian calendar in 400-year eras (H. Hinnant, "chrono-Compatible Low-Level
 * Date Algorithms"): exact for every day count, no table, no locale, no lock. */
#define DAYS_PER_ERA 146097
#define DAYS_0000_TO_1970 719468
#define MS_PER_DAY 86400000LL
#define RFC3339_YEAR_MAX 9999

typedef struct {
    int64_t year;
    unsigned month, day;
} civil_t;

static civil_t civil_from_days(int64_t z)
{
    z += DAYS_0000_TO_1970;
    int64_t era = (z >= 0 ? z : z - (DAYS_PER_ERA - 1)) / DAYS_PER_ERA;
    unsigned doe = (unsigned)(z - era * DAYS_PER_ERA);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    civil_t c = {.day = doy - (153 * mp + 2) / 5 + 1, .month = mp < 10 ? mp + 3 : mp - 9};
    c.year = (int64_t)yoe + era * 400 + (c.month <= 2);
    return c;
}

/* Writes v as exactly width decimal digits (v < 10^width); returns the end. */
static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* No stdio on this path: it runs twice per device message (payload and envelope). */
void tb_format_rfc3339_ms(int64_t ms, char out[TB_RFC3339_LEN])
{
    static const char clamped[] = "9999-12-31T23:59:59.999Z";
    int64_t days = (ms >= 0 ? ms : ms - (MS_PER_DAY - 1)) / MS_PER_DAY;
    unsigned in_day = (unsigned)(ms - days * MS_PER_DAY);
    civil_t c = civil_from_days(days);
    /* Years outside 0..9999 cannot be written in RFC 3339; clamp rather than overflow. */
    if (c.year > RFC3339_YEAR_MAX || c.year < 0) {
        memcpy(out, clamped, sizeof(clamped));
        return;
    }
    char *p = put_digits(out, (unsigned)c.year, 4);
    *p++ = '-';
    p = put_digits(p, c.month, 2);
    *p++ = '-';
    p = put_digits(p, c.day, 2);
    *p++ = 'T';
    p = put_digits(p, in_day / 3600000, 2);
    *p++ = ':';
    p = put_digits(p, in_day / 60000 % 60, 2);
    *p++ = ':';
    p = put_digits(p, in_day / 1000 % 60, 2);
    *p++ = '.';
    p = put_digits(p, in_day % 1000, 3);
    *p++ = 'Z';
    *p = '\0';
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * DAYS_PER_ERA + (int64_t)doe - DAYS_0000_TO_1970;
}

/* Reads exactly width digits at *p (within end) into *v; false when they are not there. */
static bool get_digits(const char **p, const char *end, int width, unsigned *v)
{
    if (end - *p < width)
        return false;
    *v = 0;
    for (int i = 0; i < width; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        *v = *v * 10 + (unsigned)(c - '0');
    }
    *p += width;
    return true;
}

/* True when *p is at c (either case for letters), stepping over it. */
static bool get_char(const char **p, const char *end, char c)
{
    if (*p == end || (**p != c && **p != (c | 0x20)))
        return false;
    (*p)++;
    return true;
}

static unsigned days_in_month(unsigned year, unsigned month)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Fraction digits after the point; milliseconds keep the first three (truncated). */
#define RFC3339_FRACTION_MAX 9

/* ".d…" at *p: its milliseconds into *ms (0 when there is no fraction). False when malformed. */
static bool get_fraction(const char **p, const char *end, unsigned *ms)
{
    *ms = 0;
    if (*p == end || **p != '.')
        return true;
    (*p)++;
    int n = 0;
    for (unsigned scale = 100; *p < end && **p >= '0' && **p <= '9'; (*p)++, n++, scale /= 10)
        *ms += (unsigned)(**p - '0') * scale;
    return n >= 1 && n <= RFC3339_FRACTION_MAX;
}

/* "Z" or "+HH:MM"/"-HH:MM" at *p: the offset east of UTC in minutes into *min. */
static bool get_offset(const char **p, const char *end, int *min)
{
    unsigned hh, mm;
    *min = 0;
    if (get_char(p, end, 'Z'))
        return true;
    if (*p == end || (**p != '+' && **p != '-'))
        return false;
    int sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (!get_digits(p, end, 2, &hh) || !get_char(p, end, ':') || !get_digits(p, end, 2, &mm) ||
        hh > 23 || mm > 59)
        return false;
    *min = sign * (int)(hh * 60 + mm);
    return true;
}

int tb_parse_rfc3339_ms(const char *s, size_t len, int64_t *ms)
{
    const char *p = s, *end = s + len;
    unsigned y, mo, d, hh, mi, ss, frac;
    int off;
    if (!get_digits(&p, end, 4, &y) || !get_char(&p, end, '-') || !get_digits(&p, end, 2, &mo) ||
        !get_char(&p, end, '-') || !get_digits(&p, end, 2, &d) || !get_char(&p, end, 'T') ||
        !get_digits(&p, end, 2, &hh) || !get_char(&p, end, ':') || !get_digits(&p, end, 2, &mi) ||
        !get_char(&p, end, ':') || !get_digits(&p, end, 2, &ss) || !get_fraction(&p, end, &frac) ||
        !get_offset(&p, end, &off) || p != end)
        return -1;
    /* Second 60 is a leap second (RFC 3339 §5.7). */
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || hh > 23 || mi > 59 || ss > 60)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)hh * 3600 + (int64_t)mi * 60 + ss;
    *ms = (secs - (int64_t)off * 60) * 1000 + frac;
    return 0;
}

bool tb_prefix_pattern_match(const char *pattern, const char *s)
{
    size_t plen = strlen(pattern);
    if (plen > 0 && pattern[plen - 1] == '*')
        return strncmp(pattern, s, plen - 1) == 0;
    return strcmp(pattern, s) == 0;
}

void tb_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

int tb_read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int rc;
    if (!f)
        return -errno;
    if (!(buf = malloc(max + 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    errno = 0;
    n = fread(buf, 1, max + 1, f); /* one byte more than max tells "too large" */
    if (ferror(f)) {
        rc = errno ? -errno : -EIO;
        goto fail;
    }
    if (n > max) {
        rc = -EFBIG;
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf)
        tb_wipe(buf, max + 1);
    free(buf);
    fclose(f);
    return rc;
}

void tb_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool tb_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > TB_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence starting with lead byte c, or 0 when c cannot start one. */
static size_t utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

bool tb_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(p[i]);
        if (n == 0 || i + n > len)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        /* Overlong 3/4-byte forms, UTF-16 surrogates and code points above U+10FFFF. */
        if (n == 3 && p[i] == 0xE0 && p[i + 1] < 0xA0)
            return false;
        if (n == 3 && p[i] == 0xED && p[i + 1] >= 0xA0)
            return false;
        if (n == 4 && p[i] == 0xF0 && p[i + 1] < 0x90)
            return false;
        if (n == 4 && p[i] == 0xF4 && p[i + 1] >= 0x90)
            return false;
        i += n;
    }
    return true;
}

uint32_t tb_hash_fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

uint64_t tb_hash_fnv1a64(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211u;
    }
    return h;
}
