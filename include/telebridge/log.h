/*
 * log — one line per event on stderr: `level=L msg="…" key=value …`.
 *
 * Thread-safe: each call writes its line with a single locked stdio write, so lines from the
 * MQTT thread and the service thread never interleave. Callers must never pass a token, ticket
 * or secret as a value (docs/security.md → Logs and counters: no log line holds a
 * credential); use tb_log_redact_query() on anything that may carry `?token=`.
 */
#ifndef TELEBRIDGE_LOG_H
#define TELEBRIDGE_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { TB_LOG_DEBUG = 0, TB_LOG_INFO, TB_LOG_WARN, TB_LOG_ERROR } tb_log_level_t;

/* Parses "debug", "info", "warn"/"warning" or "error", in any case. Returns 0, or -1 (out
 * untouched). */
int tb_log_level_parse(const char *name, tb_log_level_t *out);
/* The level's name as tb_log_level_parse() reads it (a static string); "info" for a value that
 * is not a level. */
const char *tb_log_level_name(tb_log_level_t level);
/* The lowest level written from now on, for every thread (atomic; info until set). */
void tb_log_set_level(tb_log_level_t level);
/* True when a line of this level would be written: lets a caller skip building its values. */
bool tb_log_enabled(tb_log_level_t level);

/*
 * Writes `level=… msg="msg" ` followed by `kv_fmt` formatted printf-style (for example
 * "host=%s port=%d"), then ` ts=<RFC 3339>` and a newline, when level is enabled. kv_fmt may be
 * NULL. Nothing is escaped: values are written as formatted, so the caller quotes those that may
 * hold spaces ("reason=\"%s\"") and must not pass text that may hold a quote or a control
 * character (a newline would start a forged line) unless it has cleaned it first. A line
 * longer than 2 KiB is cut there. Writing never fails visibly: a stderr that cannot be written
 * loses the line.
 */
void tb_log(tb_log_level_t level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies `in` into `out` (size outlen, always NUL-terminated when outlen > 0, truncated when
 * short) with every value of the query parameters `token` and `ticket` replaced by "REDACTED".
 * Returns out. Any thread.
 */
char *tb_log_redact_query(const char *in, char *out, size_t outlen);

/*
 * At most one event per second for a noisy source (bad MQTT payloads): returns true when the
 * caller may log now, and stores in *suppressed how many calls were refused since the last
 * true. Safe from any thread. Zero-initialise the struct.
 */
typedef struct {
    _Atomic long long last_s;
    atomic_uint suppressed;
} tb_log_ratelimit_t;

bool tb_log_ratelimit(tb_log_ratelimit_t *rl, unsigned *suppressed);

#endif
