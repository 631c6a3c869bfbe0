/* config_dump — the effective configuration as JSON (--check-config), with the secret masked;
 * see include/telebridge/config.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/alerts.h"
#include "telebridge/keys.h"
#include "telebridge/log.h"

/* Shown by tb_config_to_json() instead of the secret the environment holds. */
#define JWT_SECRET_SHOWN "(from " TB_KEYS_SECRET_ENV ")"

/* The file's top-level keys, in docs/configuration.md's order (tb_config_to_json keeps it). */
static const char *const top_keys[] = {"listen", "admin",     "mqtt",        "auth",    "groups",
                                       "limits", "heartbeat", "compression", "history", "alerts"};

/* Doubles up to 2^53 hold integers exactly: show 30, not 30.0, for a threshold written 30. */
#define EXACT_INT_LIMIT 9007199254740992.0

json_t *config_number_json(double x)
{
    if (x > -EXACT_INT_LIMIT && x < EXACT_INT_LIMIT && (double)(json_int_t)x == x)
        return json_integer((json_int_t)x);
    return json_real(x);
}

json_t *config_strv_json(char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, json_string(v[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The effective client id and history file are the expanded ones; the template when one
 * cannot be expanded. */
static json_t *client_id_to_json(const tb_config_t *cfg)
{
    char id[TB_CONFIG_CLIENT_ID_MAX + 1];
    if (tb_config_client_id(cfg, id, sizeof(id), NULL, 0) != 0)
        return json_string(cfg->mqtt.client_id);
    return json_string(id);
}

static json_t *history_file_to_json(const tb_config_t *cfg)
{
    char path[TB_CONFIG_PATH_MAX + 1];
    if (!cfg->history.file)
        return json_null();
    if (tb_config_history_file(cfg, path, sizeof(path), NULL, 0) != 0)
        return json_string(cfg->history.file);
    return json_string(path);
}

static json_t *field_to_json(const tb_config_t *cfg, const char *sect, const config_field_t *f)
{
    const void *p = sect + f->off;
    const char *s = NULL;
    switch (f->kind) {
    case CONFIG_K_CLIENT_ID:
        return client_id_to_json(cfg);
    case CONFIG_K_HISTORY_FILE:
        return history_file_to_json(cfg);
    case CONFIG_K_INT:
        return json_integer(*(const int *)p);
    case CONFIG_K_BOOL:
        return json_boolean(*(const bool *)p);
    case CONFIG_K_SLOW:
        return json_string(config_slow_name(*(const tb_slow_policy_t *)p));
    case CONFIG_K_ORIGINS:
    case CONFIG_K_ROOMS:
    case CONFIG_K_HOSTPORTS:
        return config_strv_json(*(char *const *const *)p,
                                *(const size_t *)(const void *)(sect + f->n_off));
    default:
        s = *(const char *const *)p;
        return s ? json_string(s) : json_null();
    }
}

static json_t *section_to_json(const tb_config_t *cfg, const config_section_t *s)
{
    const char *sect = (const char *)cfg + s->off;
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < s->n_fields; i++) {
        if (json_object_set_new(obj, s->fields[i].key, field_to_json(cfg, sect, &s->fields[i])) !=
            0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *groups_to_json(const tb_config_t *cfg)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < cfg->n_groups; i++) {
        const tb_config_group_t *g = &cfg->groups[i];
        if (json_object_set_new(obj, g->name, config_strv_json(g->patterns, g->n_patterns)) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* The secret itself is never shown, only where it comes from. */
static int add_secret_source(json_t *root)
{
    const char *env = getenv(TB_KEYS_SECRET_ENV);
    json_t *auth = json_object_get(root, "auth");
    if (!env || !env[0])
        return 0;
    return json_object_set_new(auth, "secret", json_string(JWT_SECRET_SHOWN));
}

/* One top-level key of the file, by name. */
static json_t *top_to_json(const tb_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < config_n_sections; i++)
        if (strcmp(config_sections[i].name, name) == 0)
            return section_to_json(cfg, &config_sections[i]);
    return strcmp(name, "groups") == 0 ? groups_to_json(cfg)
                                       : tb_alerts_to_json(cfg->alerts, cfg->n_alerts);
}

json_t *tb_config_to_json(const tb_config_t *cfg)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    for (size_t i = 0; i < CONFIG_COUNT(top_keys); i++)
        if (json_object_set_new(root, top_keys[i], top_to_json(cfg, top_keys[i])) != 0)
            goto fail;
    if (json_object_set_new(root, "log_level", json_string(tb_log_level_name(cfg->log_level))) !=
            0 ||
        add_secret_source(root) != 0)
        goto fail;
    return root;
fail:
    json_decref(root);
    return NULL;
}
