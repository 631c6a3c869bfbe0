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

/* Parses "debug", "info", "warn"/"warning" or "error". Returns 0, or -1 (out untouched). */
int tb_log_level_parse(const char *name, tb_log_level_t *out);
const char *tb_log_level_name(tb_log_level_t level);
void tb_log_set_level(tb_log_level_t level);
bool tb_log_enabled(tb_log_level_t level);

/*
 * Writes `level=… msg="msg" ` followed by `kv_fmt` formatted printf-style (for example
 * "host=%s port=%d"), then a newline. kv_fmt may be NULL. Values containing spaces should be
 * quoted by the caller's format ("reason=\"%s\""); quotes and control characters inside
 * strings passed through tb_log_str() are escaped.
 */
void tb_log(tb_log_level_t level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copies `in` into `out` (size outlen, always NUL-terminated) with every value of the query
 * parameters `token` and `ticket` replaced by "REDACTED". Returns out.
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
