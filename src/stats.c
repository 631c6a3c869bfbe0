/* stats — shared counters; see include/telebridge/stats.h. */
#include "telebridge/stats.h"

#include <stddef.h>

static const char *const reason_names[TB_INVALID_N] = {
    "not_json", "not_object", "too_large", "bad_utf8", "bad_topic", "bad_value",
};

const char *tb_invalid_reason_name(tb_invalid_reason_t reason)
{
    return (reason >= 0 && reason < TB_INVALID_N) ? reason_names[reason] : "unknown";
}

void tb_stats_invalid(tb_stats_t *s, tb_invalid_reason_t reason)
{
    atomic_fetch_add_explicit(&s->invalid_mqtt, 1, memory_order_relaxed);
    if (reason >= 0 && reason < TB_INVALID_N)
        atomic_fetch_add_explicit(&s->invalid_by_reason[reason], 1, memory_order_relaxed);
}

static const char *const refuse_names[TB_REFUSE_N] = {
    "missing",       "malformed",      "alg",          "signature",         "no_exp",
    "expired",       "not_yet_valid",  "issuer",       "audience",          "claims",
    "nomem",         "ticket_unknown", "ticket_used",  "ticket_expired",    "origin",
    "over_capacity", "rate_limited",   "uri_too_long", "headers_too_large",
};

const char *tb_refuse_reason_name(tb_refuse_reason_t reason)
{
    return (reason >= 0 && reason < TB_REFUSE_N) ? refuse_names[reason] : "unknown";
}

/* The status total a reason also counts in (NULL: none, out of memory is not a refusal
 * worth a total). */
static atomic_ullong *refuse_total(tb_stats_t *s, tb_refuse_reason_t reason)
{
    switch (reason) {
    case TB_REFUSE_NOMEM:
        return NULL;
    case TB_REFUSE_ORIGIN:
        return &s->handshakes_forbidden_origin;
    case TB_REFUSE_OVER_CAPACITY:
        return &s->handshakes_over_capacity;
    case TB_REFUSE_RATE_LIMITED:
        return &s->handshakes_rate_limited;
    case TB_REFUSE_URI_TOO_LONG:
    case TB_REFUSE_HEADERS_LARGE:
        return &s->handshakes_too_large;
    default:
        return &s->handshakes_unauthorized;
    }
}

void tb_stats_refused(tb_stats_t *s, tb_refuse_reason_t reason)
{
    if (reason < 0 || reason >= TB_REFUSE_N)
        return;
    atomic_fetch_add_explicit(&s->handshakes_refused[reason], 1, memory_order_relaxed);
    atomic_ullong *total = refuse_total(s, reason);
    if (total)
        atomic_fetch_add_explicit(total, 1, memory_order_relaxed);
}
