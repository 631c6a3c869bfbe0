/*
 * alerts — threshold rules (config `alerts`) evaluated on each telemetry sample.
 *
 * A rule watches one field of the devices its patterns match. It starts to hold when
 * `value op threshold`; it then stays firing until the value clears: the condition no longer
 * holds and, when the rule has hysteresis bounds, the value is below `clear_below` or above
 * `clear_above`. Noise between the threshold and a clear bound changes nothing. One event is
 * produced per transition (firing, then resolved), never one per sample.
 *
 * The functions are stateless: the caller keeps one word per rule per device (0: not firing,
 * otherwise any non-zero mark such as the firing message's seq) and applies the events. A
 * sample without the field, or whose field is not a number, leaves the rule's state alone.
 */
#ifndef TELEBRIDGE_ALERTS_H
#define TELEBRIDGE_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/config.h"

typedef struct {
    size_t rule; /* index into the rules */
    bool firing; /* true: started to hold; false: resolved */
    double value;
} tb_alert_event_t;

/*
 * Evaluates rules[0..n) for device's sample fields (a JSON object) against state[0..n), and
 * stores the transitions, in rule order, in out[0..n). Returns how many. state is not changed.
 */
size_t tb_alerts_eval(const tb_config_alert_t *rules, size_t n, const char *device,
                      const json_t *fields, const uint64_t *state, tb_alert_event_t *out);

/*
 * The `alert` message payload {"alert_id","device_id","rule_name","severity","field","value",
 * "threshold","timestamp","state"} for ev of rule; caller owns it. NULL when out of memory.
 */
json_t *tb_alerts_payload(const tb_config_alert_t *rule, const tb_alert_event_t *ev,
                          const char *device, const char *alert_id, const char *timestamp);

/*
 * The `alerts` array of the configuration file (alerts_config.c; config.c calls it, and
 * docs/configuration.md describes the rules): parsed and checked into a new array in *out
 * (n_out rules; free with tb_alerts_free()). -1 with "alerts[i].key: …" in err (errlen bytes)
 * and nothing allocated when a rule is malformed or two share a name.
 */
int tb_alerts_parse(const json_t *arr, tb_config_alert_t **out, size_t *n_out, char *err,
                    size_t errlen);
/* The rules as the configuration file would hold them (defaults filled in); caller owns it,
 * NULL when out of memory. */
json_t *tb_alerts_to_json(const tb_config_alert_t *alerts, size_t n);
/* Frees alerts[0..n) and the rules' strings. NULL is a no-op. */
void tb_alerts_free(tb_config_alert_t *alerts, size_t n);
/* The operator's text (">", ">=", …), "?" out of range. */
const char *tb_alerts_op_name(tb_alert_op_t op);

#endif
