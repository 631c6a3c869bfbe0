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

int64_t tb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tb_format_rfc3339_ms(int64_t ms, char out[TB_RFC3339_LEN])
{
    time_t secs = (time_t)(ms / 1000);
    int millis = (int)(ms % 1000);
    struct tm tm;
    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    /* Years outside 0..9999 cannot be written in RFC 3339; clamp rather than overflow. */
    if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(out, TB_RFC3339_LEN, "%s", "9999-12-31T23:59:59.999Z");
        return;
    }
    /* gmtime_r keeps every field in range, so the unsigned casts only inform the compiler. */
    snprintf(out, TB_RFC3339_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)millis % 1000u);
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
