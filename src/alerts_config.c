/* alerts_config — the `alerts` rules of the configuration file: parsed and checked (with the
 * keys config.c's loader uses to name errors), shown, freed; see include/telebridge/alerts.h. */
#include "telebridge/alerts.h"

#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* An alert's optional members: severity, and the devices it watches (every one). */
#define ALERT_DEFAULT_SEVERITY "warning"
#define ALERT_DEFAULT_DEVICES "*"

/* Indexed by tb_alert_op_t. */
static const char *const op_names[] = {">", ">=", "<", "<=", "==", "!="};
#define N_OPS (sizeof(op_names) / sizeof(op_names[0]))

static const char *const alert_keys[] = {"name",        "field",       "op",       "threshold",
                                         "clear_below", "clear_above", "severity", "devices"};
#define N_ALERT_KEYS (sizeof(alert_keys) / sizeof(alert_keys[0]))

void tb_alerts_free(tb_config_alert_t *alerts, size_t n)
{
    for (size_t i = 0; alerts && i < n; i++) {
        free(alerts[i].name);
        free(alerts[i].field);
        free(alerts[i].severity);
        config_strv_free(alerts[i].devices);
    }
    free(alerts);
}

const char *tb_alerts_op_name(tb_alert_op_t op)
{
    return ((size_t)op < N_OPS) ? op_names[op] : "?";
}

static int alert_number(json_t *obj, const char *akey, const char *name, bool required, double *out,
                        bool *present, char *err, size_t errlen)
{
    char key[CONFIG_KEY_MAX];
    json_t *v;
    if (config_member(obj, akey, name, required, &v, key, err, errlen) != 0)
        return -1;
    if (present)
        *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_number(v))
        return config_fail(err, errlen, key, "must be a number");
    *out = json_number_value(v);
    return 0;
}

static int alert_text(json_t *obj, const char *akey, tb_config_alert_t *a, char *err, size_t errlen)
{
    char key[CONFIG_KEY_MAX];
    json_t *v;
    if (config_member(obj, akey, "name", true, &v, key, err, errlen) != 0 ||
        config_dup_string(v, key, CONFIG_STR_MAX, &a->name, err, errlen) != 0)
        return -1;
    if (config_member(obj, akey, "field", true, &v, key, err, errlen) != 0 ||
        config_dup_string(v, key, CONFIG_STR_MAX, &a->field, err, errlen) != 0)
        return -1;
    if (config_member(obj, akey, "severity", false, &v, key, err, errlen) != 0)
        return -1;
    if (v)
        return config_dup_string(v, key, CONFIG_STR_MAX, &a->severity, err, errlen);
    a->severity = strdup(ALERT_DEFAULT_SEVERITY);
    return a->severity ? 0 : config_fail(err, errlen, key, "out of memory");
}

/* A clear level is hysteresis on the side the rule fires from, so it must not cross the
 * threshold; it means nothing for == and !=. */
static int alert_check_clear(const tb_config_alert_t *a, const char *akey, char *err, size_t errlen)
{
    bool fires_above = a->op == TB_OP_GT || a->op == TB_OP_GE;
    bool fires_below = a->op == TB_OP_LT || a->op == TB_OP_LE;
    char key[CONFIG_KEY_MAX];
    if (a->has_clear_below) {
        config_key_join(key, akey, "clear_below");
        if (!fires_above)
            return config_fail(err, errlen, key, "only applies to op > and >=");
        if (a->clear_below > a->threshold)
            return config_fail(err, errlen, key, "must be <= threshold");
    }
    if (a->has_clear_above) {
        config_key_join(key, akey, "clear_above");
        if (!fires_below)
            return config_fail(err, errlen, key, "only applies to op < and <=");
        if (a->clear_above < a->threshold)
            return config_fail(err, errlen, key, "must be >= threshold");
    }
    return 0;
}

static int alert_rule(json_t *obj, const char *akey, tb_config_alert_t *a, char *err, size_t errlen)
{
    char key[CONFIG_KEY_MAX];
    json_t *v;
    int op;
    if (config_member(obj, akey, "op", true, &v, key, err, errlen) != 0)
        return -1;
    op = json_is_string(v) ? config_name_index(op_names, N_OPS, json_string_value(v)) : -1;
    if (op < 0)
        return config_fail_one_of(err, errlen, key, op_names, N_OPS);
    a->op = (tb_alert_op_t)op;
    if (alert_number(obj, akey, "threshold", true, &a->threshold, NULL, err, errlen) != 0 ||
        alert_number(obj, akey, "clear_below", false, &a->clear_below, &a->has_clear_below, err,
                     errlen) != 0 ||
        alert_number(obj, akey, "clear_above", false, &a->clear_above, &a->has_clear_above, err,
                     errlen) != 0)
        return -1;
    return alert_check_clear(a, akey, err, errlen);
}

static int alert_devices(json_t *obj, const char *akey, tb_config_alert_t *a, char *err,
                         size_t errlen)
{
    char key[CONFIG_KEY_MAX];
    json_t *v;
    if (config_member(obj, akey, "devices", false, &v, key, err, errlen) != 0)
        return -1;
    if (v && json_is_array(v) && json_array_size(v) == 0)
        return config_fail(err, errlen, key, "must not be empty (leave it out for every device)");
    if (v)
        return config_strv(v, key, config_device_pattern_valid, "device pattern", &a->devices,
                           &a->n_devices, err, errlen);
    a->devices = calloc(2, sizeof(*a->devices));
    if (!a->devices || !(a->devices[0] = strdup(ALERT_DEFAULT_DEVICES)))
        return config_fail(err, errlen, key, "out of memory");
    a->n_devices = 1;
    return 0;
}

static int parse_alert(json_t *obj, const char *akey, tb_config_alert_t *a, char *err,
                       size_t errlen)
{
    if (!json_is_object(obj))
        return config_fail(err, errlen, akey, "must be an object");
    if (config_known_keys(obj, akey, alert_keys, N_ALERT_KEYS, err, errlen) != 0 ||
        alert_text(obj, akey, a, err, errlen) != 0 || alert_rule(obj, akey, a, err, errlen) != 0 ||
        alert_devices(obj, akey, a, err, errlen) != 0)
        return -1;
    return 0;
}

int tb_alerts_parse(const json_t *arr, tb_config_alert_t **out, size_t *n_out, char *err,
                    size_t errlen)
{
    tb_config_alert_t *alerts = NULL;
    size_t n, i;
    json_t *obj;
    if (!json_is_array(arr))
        return config_fail(err, errlen, "alerts", "must be an array");
    n = json_array_size(arr);
    if (n > 0 && !(alerts = calloc(n, sizeof(*alerts))))
        return config_fail(err, errlen, "alerts", "out of memory");
    json_array_foreach((json_t *)arr, i, obj)
    {
        char akey[CONFIG_KEY_MAX];
        char key[CONFIG_KEY_MAX];
        config_key_index(akey, "alerts", i);
        if (parse_alert(obj, akey, &alerts[i], err, errlen) != 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(alerts[j].name, alerts[i].name) != 0)
                continue;
            config_key_join(key, akey, "name");
            config_fail(err, errlen, key, "duplicate alert name \"%s\"", alerts[i].name);
            goto fail;
        }
    }
    *out = alerts;
    *n_out = n;
    return 0;
fail:
    tb_alerts_free(alerts, n);
    return -1;
}

static json_t *alert_to_json(const tb_config_alert_t *a)
{
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:o}", "name", a->name, "field", a->field, "op",
                  tb_alerts_op_name(a->op), "threshold", config_number_json(a->threshold));
    if (obj && a->has_clear_below &&
        json_object_set_new(obj, "clear_below", config_number_json(a->clear_below)) != 0)
        goto fail;
    if (obj && a->has_clear_above &&
        json_object_set_new(obj, "clear_above", config_number_json(a->clear_above)) != 0)
        goto fail;
    if (obj &&
        (json_object_set_new(obj, "severity", json_string(a->severity)) != 0 ||
         json_object_set_new(obj, "devices", config_strv_json(a->devices, a->n_devices)) != 0))
        goto fail;
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

json_t *tb_alerts_to_json(const tb_config_alert_t *alerts, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, alert_to_json(&alerts[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
