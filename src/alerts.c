/* alerts — threshold rules with hysteresis; see include/telebridge/alerts.h. */
#include "telebridge/alerts.h"

#include "telebridge/util.h"

static bool holds(tb_alert_op_t op, double v, double t)
{
    switch (op) {
    case TB_OP_GT:
        return v > t;
    case TB_OP_GE:
        return v >= t;
    case TB_OP_LT:
        return v < t;
    case TB_OP_LE:
        return v <= t;
    case TB_OP_EQ:
        return v == t;
    case TB_OP_NE:
        return v != t;
    }
    return false;
}

/* A firing rule resolves once it no longer holds and v is past a configured clear bound. */
static bool clears(const tb_config_alert_t *r, double v)
{
    if (holds(r->op, v, r->threshold))
        return false;
    if (!r->has_clear_below && !r->has_clear_above)
        return true;
    return (r->has_clear_below && v < r->clear_below) || (r->has_clear_above && v > r->clear_above);
}

static bool watches(const tb_config_alert_t *r, const char *device)
{
    for (size_t i = 0; i < r->n_devices; i++)
        if (tb_prefix_pattern_match(r->devices[i], device))
            return true;
    return false;
}

size_t tb_alerts_eval(const tb_config_alert_t *rules, size_t n, const char *device,
                      const json_t *fields, const uint64_t *state, tb_alert_event_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *f = json_object_get(fields, rules[i].field);
        if (!json_is_number(f) || !watches(&rules[i], device))
            continue;
        double v = json_number_value(f);
        bool firing = state[i] != 0;
        if (!firing && holds(rules[i].op, v, rules[i].threshold))
            out[k++] = (tb_alert_event_t){.rule = i, .firing = true, .value = v};
        else if (firing && clears(&rules[i], v))
            out[k++] = (tb_alert_event_t){.rule = i, .firing = false, .value = v};
    }
    return k;
}

json_t *tb_alerts_payload(const tb_config_alert_t *rule, const tb_alert_event_t *ev,
                          const char *device, const char *alert_id, const char *timestamp)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:s, s:s}", "alert_id", alert_id,
                     "device_id", device, "rule_name", rule->name, "severity", rule->severity,
                     "field", rule->field, "value", ev->value, "threshold", rule->threshold,
                     "timestamp", timestamp, "state", ev->firing ? "firing" : "resolved");
}
