/* stats — shared counters and reason lists; see include/telebridge/stats.h. */
#include "telebridge/stats.h"

/* const char *fn(type v): the name of v in LIST (entries ENTRY(name, str)), "unknown" out of
 * range. */
#define NAME_FN(fn, type, end, LIST, ENTRY)                                                        \
    const char *fn(type v)                                                                         \
    {                                                                                              \
        static const char *const names[end] = {LIST(ENTRY)};                                       \
        return (int)v > 0 && (int)v < (end) ? names[v] : "unknown";                                \
    }

#define INVALID_NAME(name, str) [TB_INVALID_##name] = str,
#define CLASS_NAME(name, str) [TB_REFUSE_CLASS_##name] = str,
#define DROP_NAME(name, str) [TB_DROP_##name] = str,
#define COMPRESSION_NAME(name, str) [TB_COMPRESSION_##name] = str,
NAME_FN(tb_invalid_reason_name, tb_invalid_reason_t, TB_INVALID_END, TB_INVALID_REASONS,
        INVALID_NAME)
NAME_FN(tb_refuse_class_name, tb_refuse_class_t, TB_REFUSE_CLASS_END, TB_REFUSE_CLASSES, CLASS_NAME)
NAME_FN(tb_drop_reason_name, tb_drop_reason_t, TB_DROP_END, TB_DROP_REASONS, DROP_NAME)
NAME_FN(tb_compression_name, tb_compression_t, TB_COMPRESSION_END, TB_COMPRESSIONS,
        COMPRESSION_NAME)

/* The name and the class of every refusal reason, from the auth, ticket and other tables. */
static const struct {
    const char *name;
    tb_refuse_class_t cls;
} refusals[TB_REFUSE_END] = {
#define AUTH_REFUSAL(name, reason, code)                                                           \
    [TB_REFUSE_##name] = {reason, TB_AUTH_E_##name == TB_AUTH_E_NOMEM                              \
                                      ? TB_REFUSE_CLASS_NONE                                       \
                                      : TB_REFUSE_CLASS_UNAUTHORIZED},
    TB_AUTH_ERRORS(AUTH_REFUSAL)
#undef AUTH_REFUSAL
#define TICKET_REFUSAL(name, reason)                                                               \
    [TB_REFUSE_TICKET_##name] = {reason, TB_TICKET_E_##name == TB_TICKET_E_BUSY                    \
                                             ? TB_REFUSE_CLASS_OVER_CAPACITY                       \
                                             : TB_REFUSE_CLASS_UNAUTHORIZED},
        TB_TICKET_REDEEM_ERRORS(TICKET_REFUSAL)
#undef TICKET_REFUSAL
#define OTHER_REFUSAL(name, reason, cls) [TB_REFUSE_##name] = {reason, TB_REFUSE_CLASS_##cls},
            TB_REFUSE_OTHER(OTHER_REFUSAL)
#undef OTHER_REFUSAL
};

const char *tb_refuse_reason_name(tb_refuse_reason_t reason)
{
    return reason > 0 && reason < TB_REFUSE_END ? refusals[reason].name : "unknown";
}

/* tb_refuse_reason_t fn(int err): the refusal of each error in LIST (by CASE), else fallback. */
#define FROM_FN(fn, LIST, CASE, fallback)                                                          \
    tb_refuse_reason_t fn(int err)                                                                 \
    {                                                                                              \
        switch (err) {                                                                             \
            LIST(CASE)                                                                             \
        default:                                                                                   \
            return fallback;                                                                       \
        }                                                                                          \
    }

#define AUTH_CASE(name, reason, code)                                                              \
    case TB_AUTH_E_##name:                                                                         \
        return TB_REFUSE_##name;
#define TICKET_CASE(name, reason)                                                                  \
    case TB_TICKET_E_##name:                                                                       \
        return TB_REFUSE_TICKET_##name;
FROM_FN(tb_refuse_from_auth, TB_AUTH_ERRORS, AUTH_CASE, TB_REFUSE_MALFORMED)
FROM_FN(tb_refuse_from_ticket, TB_TICKET_REDEEM_ERRORS, TICKET_CASE, TB_REFUSE_TICKET_UNKNOWN)

uint64_t tb_stats_sum(const atomic_ullong *v, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += atomic_load_explicit(&v[i], memory_order_relaxed);
    return sum;
}

void tb_stats_invalid(tb_stats_t *s, tb_invalid_reason_t reason)
{
    if (reason > 0 && reason < TB_INVALID_END)
        atomic_fetch_add_explicit(&s->mqtt_invalid[reason], 1, memory_order_relaxed);
}

void tb_stats_refused(tb_stats_t *s, tb_refuse_reason_t reason)
{
    if (reason <= 0 || reason >= TB_REFUSE_END)
        return;
    atomic_fetch_add_explicit(&s->handshake_refusals[reason], 1, memory_order_relaxed);
    tb_refuse_class_t cls = refusals[reason].cls;
    if (cls != TB_REFUSE_CLASS_NONE)
        atomic_fetch_add_explicit(&s->handshake_failures[cls], 1, memory_order_relaxed);
}

/* Upper bounds of the finite latency buckets, in microseconds, and their labels. */
#define LATENCY_BOUND(us, le) us,
#define LATENCY_LE(us, le) le,
static const int64_t latency_bounds[TB_LATENCY_N] = {TB_LATENCY_BUCKETS(LATENCY_BOUND)};
static const char *const latency_les[TB_LATENCY_N + 1] = {TB_LATENCY_BUCKETS(LATENCY_LE) "+Inf"};

void tb_latency_observe(tb_latency_t *h, int64_t us, uint64_t n)
{
    int i = 0;
    if (us < 0)
        us = 0;
    while (i < TB_LATENCY_N && us > latency_bounds[i])
        i++;
    h->bucket[i] += n;
    h->sum_us += (uint64_t)us * n;
}

const char *tb_latency_le(int i)
{
    return i >= 0 && i <= TB_LATENCY_N ? latency_les[i] : "unknown";
}

uint64_t tb_latency_count(const tb_latency_t *h)
{
    uint64_t n = 0;
    for (int i = 0; i <= TB_LATENCY_N; i++)
        n += h->bucket[i];
    return n;
}
