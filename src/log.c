/* log — key=value lines on stderr; see include/telebridge/log.h. */
#include "telebridge/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "telebridge/util.h"

static atomic_int g_level = TB_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int tb_log_level_parse(const char *name, tb_log_level_t *out)
{
    for (int i = 0; i <= TB_LOG_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (tb_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = TB_LOG_WARN;
        return 0;
    }
    return -1;
}

const char *tb_log_level_name(tb_log_level_t level)
{
    return (level >= TB_LOG_DEBUG && level <= TB_LOG_ERROR) ? level_names[level] : "info";
}

void tb_log_set_level(tb_log_level_t level)
{
    atomic_store(&g_level, (int)level);
}

bool tb_log_enabled(tb_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&g_level, memory_order_relaxed);
}

void tb_log(tb_log_level_t level, const char *msg, const char *kv_fmt, ...)
{
    if (!tb_log_enabled(level))
        return;
    char line[2048];
    char ts[TB_RFC3339_LEN];
    tb_format_rfc3339_ms(tb_now_ms(), ts);
    int n = snprintf(line, sizeof(line), "level=%s msg=\"%s\"", tb_log_level_name(level), msg);
    if (kv_fmt && n >= 0 && (size_t)n < sizeof(line) - 1) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, kv_fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, kv_fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
    }
    if (n < 0 || (size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    line[n] = '\0';
    /* One fprintf per line: stdio locks the stream, so threads never interleave lines. */
    fprintf(stderr, "%s ts=%s\n", line, ts);
}

/* True when the query parameter starting at p (after '?' or '&') is a credential. */
static bool is_secret_param(const char *p)
{
    return strncmp(p, "token=", 6) == 0 || strncmp(p, "ticket=", 7) == 0;
}

char *tb_log_redact_query(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    bool in_query = false;
    if (outlen == 0)
        return out;
    for (const char *p = in; *p && o + 1 < outlen; p++) {
        out[o++] = *p;
        if (*p == '?')
            in_query = true;
        if (in_query && (*p == '?' || *p == '&') && is_secret_param(p + 1)) {
            const char *eq = strchr(p + 1, '=');
            while (p + 1 <= eq && o + 1 < outlen)
                out[o++] = *++p;
            for (const char *r = "REDACTED"; *r && o + 1 < outlen; r++)
                out[o++] = *r;
            while (p[1] && p[1] != '&' && p[1] != '#')
                p++;
        }
    }
    out[o] = '\0';
    return out;
}

bool tb_log_ratelimit(tb_log_ratelimit_t *rl, unsigned *suppressed)
{
    long long now = (long long)(tb_mono_ms() / 1000);
    long long last = atomic_load(&rl->last_s);
    if (now != last && atomic_compare_exchange_strong(&rl->last_s, &last, now)) {
        *suppressed = atomic_exchange(&rl->suppressed, 0);
        return true;
    }
    atomic_fetch_add(&rl->suppressed, 1);
    return false;
}
