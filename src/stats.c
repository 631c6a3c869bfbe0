/* stats — shared counters; see include/telebridge/stats.h. */
#include "telebridge/stats.h"

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
