/* config — the table of keys, defaults and strict JSON loading; see include/telebridge/config.h.
 * Reading the file is config_file.c, the dump config_dump.c, the command-line overrides and the
 * host:port parser config_cli.c, mqtt.client_id's placeholders config_mqtt.c, the shared helpers
 * config_keys.c (all through config_internal.h). */
#include "telebridge/config.h"

#include "config_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/alerts.h"
#include "telebridge/auth.h"
#include "telebridge/room.h"
#include "telebridge/topic.h"
#include "telebridge/util.h"

/* Hard bounds on what a config may hold. */
#define CFG_HOST_MAX TB_CONFIG_HOST_MAX
#define CFG_CLIENT_ID_MAX 256 /* MQTT allows more; nobody needs it */
#define CFG_PATH_MAX TB_CONFIG_PATH_MAX

/* clang-format off */
#define F_INT(T, k, lo, hi, def) {#k, CONFIG_K_INT, offsetof(T, k), 0, lo, hi, def, NULL}
#define F_BOOL(T, k, def) {#k, CONFIG_K_BOOL, offsetof(T, k), 0, 0, 1, def, NULL}
#define F_STR(T, k, kind, maxlen, def) {#k, kind, offsetof(T, k), 0, 1, maxlen, 0, def}
#define F_ARR(T, k, kind) {#k, kind, offsetof(T, k), offsetof(T, n_##k), 0, 0, 0, NULL}
/* clang-format on */

/*
 * Every key of the file with its rule and its default (docs/configuration.md → Keys and
 * defaults): the one place defaults live. groups and alerts default to empty; log_level (not
 * in the file) to info.
 */
static const config_field_t listen_fields[] = {
    F_STR(tb_config_listen_t, host, CONFIG_K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_listen_t, port, CONFIG_PORT_MIN, CONFIG_PORT_MAX, 8080),
    F_ARR(tb_config_listen_t, allowed_origins, CONFIG_K_ORIGINS),
    F_STR(tb_config_listen_t, web_root, CONFIG_K_PATH_NULL, CFG_PATH_MAX, TB_WEB_ROOT_DEFAULT),
    F_BOOL(tb_config_listen_t, reuse_port, 0),
};

/* admin.port must also differ from listen.port (config_check_cross). */
static const config_field_t admin_fields[] = {
    F_STR(tb_config_admin_t, host, CONFIG_K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_admin_t, port, 0, CONFIG_PORT_MAX, 0),
};

static const config_field_t mqtt_fields[] = {
    F_STR(tb_config_mqtt_t, host, CONFIG_K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_mqtt_t, port, CONFIG_PORT_MIN, CONFIG_PORT_MAX, 1883),
    F_ARR(tb_config_mqtt_t, hosts, CONFIG_K_HOSTPORTS),
    F_STR(tb_config_mqtt_t, client_id, CONFIG_K_CLIENT_ID, CFG_CLIENT_ID_MAX, "telebridge"),
    F_STR(tb_config_mqtt_t, username, CONFIG_K_STR_NULL, CONFIG_STR_MAX, NULL),
    F_STR(tb_config_mqtt_t, password_file, CONFIG_K_PATH_NULL, CFG_PATH_MAX, NULL),
    /* Not 0 (libmosquitto's "off"): without keepalive a half-open broker connection is never
     * noticed, and the bridge would stay "ready" while receiving nothing. */
    F_INT(tb_config_mqtt_t, keepalive_s, 5, 65535, 30),
    F_INT(tb_config_mqtt_t, qos, 0, 2, 1),
    F_STR(tb_config_mqtt_t, telemetry_topic, CONFIG_K_TOPIC, CONFIG_STR_MAX,
          "devices/{device}/telemetry"),
    F_STR(tb_config_mqtt_t, status_topic, CONFIG_K_TOPIC, CONFIG_STR_MAX,
          "devices/{device}/status"),
};

static const config_field_t auth_fields[] = {
    F_STR(tb_config_auth_t, algorithm, CONFIG_K_ALGORITHM, CONFIG_STR_MAX, "HS256"),
    F_STR(tb_config_auth_t, secret_file, CONFIG_K_PATH_NULL, CFG_PATH_MAX, NULL),
    F_STR(tb_config_auth_t, public_key_file, CONFIG_K_PATH_NULL, CFG_PATH_MAX, NULL),
    F_STR(tb_config_auth_t, issuer, CONFIG_K_STR_NULL, CONFIG_STR_MAX, NULL),
    F_STR(tb_config_auth_t, audience, CONFIG_K_STR_NULL, CONFIG_STR_MAX, NULL),
    F_INT(tb_config_auth_t, leeway_s, 0, 3600, 30),
    F_ARR(tb_config_auth_t, default_rooms, CONFIG_K_ROOMS),
    F_INT(tb_config_auth_t, expiry_warning_s, 0, INT_MAX, 60),
    F_INT(tb_config_auth_t, ticket_ttl_s, 1, 3600, 30),
    F_STR(tb_config_auth_t, ticket_secret_file, CONFIG_K_PATH_NULL, CFG_PATH_MAX, NULL),
};

static const config_field_t limits_fields[] = {
    F_INT(tb_config_limits_t, max_connections, 1, INT_MAX, 10000),
    F_INT(tb_config_limits_t, max_message_bytes, 64, 1048576, 8192),
    F_INT(tb_config_limits_t, max_rooms_per_connection, 1, INT_MAX, 64),
    F_INT(tb_config_limits_t, send_queue_messages, 1, 65536, 256),
    {"slow_consumer", CONFIG_K_SLOW, offsetof(tb_config_limits_t, slow_consumer), 0, 0, 0,
     TB_SLOW_DISCONNECT, NULL},
    F_INT(tb_config_limits_t, max_mqtt_payload_bytes, 64, 16777216, 65536),
    F_INT(tb_config_limits_t, client_messages_per_s, 1, INT_MAX, 200),
    F_INT(tb_config_limits_t, handshakes_per_ip_per_s, 0, INT_MAX, 0),
    F_INT(tb_config_limits_t, handshake_burst, 0, INT_MAX, 0),
    F_INT(tb_config_limits_t, handshake_timeout_s, 1, 3600, 10),
};

/* pong_timeout_s must also exceed ping_interval_s (config_check_cross). */
static const config_field_t heartbeat_fields[] = {
    F_INT(tb_config_heartbeat_t, ping_interval_s, 1, 3600, 30),
    F_INT(tb_config_heartbeat_t, pong_timeout_s, 1, 7200, 60),
};

/* permessage-deflate (docs/performance.md has the figures behind the defaults). */
static const config_field_t compression_fields[] = {
    F_BOOL(tb_config_compression_t, enabled, 1),
    F_INT(tb_config_compression_t, level, 1, 9, 1),
    F_INT(tb_config_compression_t, min_bytes, 0, 16777216, 128),
};

static const config_field_t history_fields[] = {
    F_INT(tb_config_history_t, messages, 0, 16777216, 65536),
    F_INT(tb_config_history_t, devices, 0, 10000000, 100000),
    F_INT(tb_config_history_t, series_points, 0, TB_CONFIG_SERIES_POINTS_MAX, 60),
    F_STR(tb_config_history_t, file, CONFIG_K_HISTORY_FILE, CFG_PATH_MAX, NULL),
};

/* clang-format off */
#define SECTION(s) {#s, offsetof(tb_config_t, s), s##_fields, CONFIG_COUNT(s##_fields)}
/* clang-format on */

const config_section_t config_sections[] = {
    SECTION(listen), SECTION(admin),     SECTION(mqtt),        SECTION(auth),
    SECTION(limits), SECTION(heartbeat), SECTION(compression), SECTION(history),
};
const size_t config_n_sections = CONFIG_COUNT(config_sections);

static const char *const algorithm_names[] = {TB_AUTH_ALGORITHMS(TB_AUTH_ALG_NAME)};
/* Indexed by tb_slow_policy_t. */
static const char *const slow_names[] = {"disconnect", "drop_oldest", "conflate"};

typedef struct {
    const char *base_dir; /* relative paths resolve against it; NULL: leave them relative */
    char *err;            /* errlen bytes, may be NULL */
    size_t errlen;
} ctx_t;

/* A range up to INT_MAX reads as "no upper bound" unless the value passed it. */
static int fail_range(char *err, size_t errlen, const char *key, long long x, long long lo,
                      long long hi)
{
    if (hi == INT_MAX && x < lo)
        return config_fail(err, errlen, key, "must be >= %lld", lo);
    return config_fail(err, errlen, key, "must be between %lld and %lld", lo, hi);
}

static void free_groups(tb_config_group_t *groups, size_t n)
{
    for (size_t i = 0; groups && i < n; i++) {
        free(groups[i].name);
        config_strv_free(groups[i].patterns);
    }
    free(groups);
}

static bool is_array_kind(config_kind_t kind)
{
    return kind == CONFIG_K_ORIGINS || kind == CONFIG_K_ROOMS || kind == CONFIG_K_HOSTPORTS;
}

static bool is_string_kind(config_kind_t kind)
{
    return kind != CONFIG_K_INT && kind != CONFIG_K_BOOL && kind != CONFIG_K_SLOW &&
           !is_array_kind(kind);
}

/* Replaces a NULL-terminated string array and its count, freeing the old one. */
static void replace_strv(void *sect, const config_field_t *f, char **v, size_t n)
{
    char ***slot = (char ***)(void *)((char *)sect + f->off);
    config_strv_free(*slot);
    *slot = v;
    *(size_t *)(void *)((char *)sect + f->n_off) = n;
}

static void replace_str(void *sect, const config_field_t *f, char *s)
{
    char **slot = (char **)(void *)((char *)sect + f->off);
    free(*slot);
    *slot = s;
}

static int set_field_default(void *sect, const config_field_t *f)
{
    void *p = (char *)sect + f->off;
    if (f->kind == CONFIG_K_INT) {
        *(int *)p = f->def_int;
    } else if (f->kind == CONFIG_K_BOOL) {
        *(bool *)p = f->def_int != 0;
    } else if (f->kind == CONFIG_K_SLOW) {
        *(tb_slow_policy_t *)p = (tb_slow_policy_t)f->def_int;
    } else if (is_array_kind(f->kind)) {
        char **empty = calloc(1, sizeof(*empty));
        if (!empty)
            return -1;
        replace_strv(sect, f, empty, 0);
    } else if (f->def_str) {
        char *s = strdup(f->def_str);
        if (!s)
            return -1;
        replace_str(sect, f, s);
    }
    return 0;
}

int tb_config_defaults(tb_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = TB_LOG_INFO;
    for (size_t s = 0; s < CONFIG_COUNT(config_sections); s++) {
        void *sect = (char *)cfg + config_sections[s].off;
        for (size_t i = 0; i < config_sections[s].n_fields; i++)
            if (set_field_default(sect, &config_sections[s].fields[i]) != 0)
                return -1;
    }
    return 0;
}

void tb_config_free(tb_config_t *cfg)
{
    for (size_t s = 0; s < CONFIG_COUNT(config_sections); s++) {
        char *sect = (char *)cfg + config_sections[s].off;
        for (size_t i = 0; i < config_sections[s].n_fields; i++) {
            const config_field_t *f = &config_sections[s].fields[i];
            if (is_array_kind(f->kind))
                config_strv_free(*(char ***)(void *)(sect + f->off));
            else if (is_string_kind(f->kind))
                free(*(char **)(void *)(sect + f->off));
        }
    }
    free_groups(cfg->groups, cfg->n_groups);
    tb_alerts_free(cfg->alerts, cfg->n_alerts);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

/* A host name or address: 1..CFG_HOST_MAX bytes of visible ASCII. */
bool config_host_valid(const char *s, size_t len)
{
    if (len == 0 || len > CFG_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static bool origin_valid(const char *s)
{
    return s[0] != '\0';
}

/* A string of 1..maxlen bytes; *s then points into v. */
static int check_string(json_t *v, const char *key, size_t maxlen, const char **s, char *err,
                        size_t errlen)
{
    if (!json_is_string(v))
        return config_fail(err, errlen, key, "must be a string");
    if (json_string_length(v) == 0)
        return config_fail(err, errlen, key, "must not be empty");
    if (json_string_length(v) > maxlen)
        return config_fail(err, errlen, key, "must be at most %zu bytes", maxlen);
    *s = json_string_value(v);
    return 0;
}

int config_dup_string(json_t *v, const char *key, size_t maxlen, char **out, char *err,
                      size_t errlen)
{
    const char *s = NULL;
    if (check_string(v, key, maxlen, &s, err, errlen) != 0)
        return -1;
    *out = strdup(s);
    return *out ? 0 : config_fail(err, errlen, key, "out of memory");
}

/* Joins a relative path to base_dir (absolute paths, or no base_dir: a copy). */
static int resolve_path(const char *base_dir, const char *path, const char *key, char **out,
                        char *err, size_t errlen)
{
    bool join = path[0] != '/' && base_dir && base_dir[0];
    const char *dir = join ? base_dir : "";
    size_t dlen = strlen(dir);
    size_t slen = (join && dir[dlen - 1] != '/') ? 1 : 0;
    size_t plen = strlen(path);
    if (dlen + slen + plen > CFG_PATH_MAX)
        return config_fail(err, errlen, key, "path longer than %d bytes", CFG_PATH_MAX);
    *out = malloc(dlen + slen + plen + 1);
    if (!*out)
        return config_fail(err, errlen, key, "out of memory");
    memcpy(*out, dir, dlen);
    memcpy(*out + dlen, "/", slen);
    memcpy(*out + dlen + slen, path, plen + 1);
    return 0;
}

static int check_topic(const char *tpl, const char *key, char *err, size_t errlen)
{
    char reason[TB_CONFIG_ERR_LEN];
    tb_topic_tpl_t *t = tb_topic_tpl_parse(tpl, reason, sizeof(reason));
    if (!t)
        return config_fail(err, errlen, key, "%s", reason);
    tb_topic_tpl_free(t);
    return 0;
}

/* The checks beyond "a string of the right length" that some string kinds add. */
static int check_string_value(const config_field_t *f, const char *s, const char *key, char *err,
                              size_t errlen)
{
    switch (f->kind) {
    case CONFIG_K_HOST:
        return config_host_valid(s, strlen(s))
                   ? 0
                   : config_fail(err, errlen, key, "must be a host name or address");
    case CONFIG_K_ALGORITHM:
        if (config_name_index(algorithm_names, CONFIG_COUNT(algorithm_names), s) < 0)
            return config_fail_one_of(err, errlen, key, algorithm_names,
                                      CONFIG_COUNT(algorithm_names));
        return 0;
    case CONFIG_K_TOPIC:
        return check_topic(s, key, err, errlen);
    case CONFIG_K_CLIENT_ID:
    case CONFIG_K_HISTORY_FILE:
        return config_placeholders_check(s, key, err, errlen);
    default:
        return 0;
    }
}

static int apply_string(void *sect, const config_field_t *f, json_t *v, const char *key,
                        const ctx_t *ctx)
{
    bool path = f->kind == CONFIG_K_PATH_NULL || f->kind == CONFIG_K_HISTORY_FILE;
    bool nullable = f->kind == CONFIG_K_STR_NULL || path;
    const char *s = NULL;
    char *copy;
    if (nullable && json_is_null(v)) {
        replace_str(sect, f, NULL);
        return 0;
    }
    if (nullable && !json_is_string(v))
        return config_fail(ctx->err, ctx->errlen, key, "must be a string or null");
    if (check_string(v, key, (size_t)f->hi, &s, ctx->err, ctx->errlen) != 0 ||
        check_string_value(f, s, key, ctx->err, ctx->errlen) != 0)
        return -1;
    if (path) {
        if (resolve_path(ctx->base_dir, s, key, &copy, ctx->err, ctx->errlen) != 0)
            return -1;
    } else if (!(copy = strdup(s))) {
        return config_fail(ctx->err, ctx->errlen, key, "out of memory");
    }
    replace_str(sect, f, copy);
    return 0;
}

static int apply_int(void *sect, const config_field_t *f, json_t *v, const char *key, char *err,
                     size_t errlen)
{
    json_int_t x;
    if (!json_is_integer(v))
        return config_fail(err, errlen, key, "must be an integer");
    x = json_integer_value(v);
    if (x < f->lo || x > f->hi)
        return fail_range(err, errlen, key, x, f->lo, f->hi);
    *(int *)(void *)((char *)sect + f->off) = (int)x;
    return 0;
}

static int apply_bool(void *sect, const config_field_t *f, json_t *v, const char *key, char *err,
                      size_t errlen)
{
    if (!json_is_boolean(v))
        return config_fail(err, errlen, key, "must be true or false");
    *(bool *)(void *)((char *)sect + f->off) = json_is_true(v);
    return 0;
}

static int apply_slow(void *sect, const config_field_t *f, json_t *v, const char *key, char *err,
                      size_t errlen)
{
    int i = json_is_string(v)
                ? config_name_index(slow_names, CONFIG_COUNT(slow_names), json_string_value(v))
                : -1;
    if (i < 0)
        return config_fail_one_of(err, errlen, key, slow_names, CONFIG_COUNT(slow_names));
    *(tb_slow_policy_t *)(void *)((char *)sect + f->off) = (tb_slow_policy_t)i;
    return 0;
}

/* The rule of an array kind's elements, and what names one in errors. */
static config_str_check_fn element_check(config_kind_t kind, const char **what)
{
    switch (kind) {
    case CONFIG_K_ROOMS:
        *what = "room pattern";
        return tb_room_pattern_valid;
    case CONFIG_K_HOSTPORTS:
        *what = "host:port";
        return config_hostport_valid;
    default:
        *what = "origin";
        return origin_valid;
    }
}

static int apply_field(void *sect, const config_field_t *f, json_t *v, const char *key,
                       const ctx_t *ctx)
{
    const char *what = NULL;
    config_str_check_fn ok;
    char **arr = NULL;
    size_t n = 0;
    switch (f->kind) {
    case CONFIG_K_INT:
        return apply_int(sect, f, v, key, ctx->err, ctx->errlen);
    case CONFIG_K_BOOL:
        return apply_bool(sect, f, v, key, ctx->err, ctx->errlen);
    case CONFIG_K_SLOW:
        return apply_slow(sect, f, v, key, ctx->err, ctx->errlen);
    case CONFIG_K_ORIGINS:
    case CONFIG_K_ROOMS:
    case CONFIG_K_HOSTPORTS:
        ok = element_check(f->kind, &what);
        if (config_strv(v, key, ok, what, &arr, &n, ctx->err, ctx->errlen) != 0)
            return -1;
        replace_strv(sect, f, arr, n);
        return 0;
    default:
        return apply_string(sect, f, v, key, ctx);
    }
}

static int apply_section(tb_config_t *cfg, const config_section_t *s, json_t *obj, const ctx_t *ctx)
{
    void *sect = (char *)cfg + s->off;
    const char *name;
    json_t *v;
    if (!json_is_object(obj))
        return config_fail(ctx->err, ctx->errlen, s->name, "must be an object");
    json_object_foreach(obj, name, v)
    {
        char key[CONFIG_KEY_MAX];
        const config_field_t *f = NULL;
        config_key_join(key, s->name, name);
        for (size_t i = 0; i < s->n_fields && !f; i++)
            if (strcmp(s->fields[i].key, name) == 0)
                f = &s->fields[i];
        if (!f)
            return config_fail(ctx->err, ctx->errlen, key, "unknown key");
        if (apply_field(sect, f, v, key, ctx) != 0)
            return -1;
    }
    return 0;
}

/* groups: {"name": ["device-id" | "prefix-*" | "*", …]}, replacing the whole map. */
static int apply_groups(tb_config_t *cfg, json_t *obj, char *err, size_t errlen)
{
    tb_config_group_t *groups = NULL;
    size_t n, i = 0;
    const char *name;
    json_t *v;
    if (!json_is_object(obj))
        return config_fail(err, errlen, "groups", "must be an object");
    n = json_object_size(obj);
    if (n > 0 && !(groups = calloc(n, sizeof(*groups))))
        return config_fail(err, errlen, "groups", "out of memory");
    json_object_foreach(obj, name, v)
    {
        char key[CONFIG_KEY_MAX];
        config_key_join(key, "groups", name);
        if (!tb_id_valid(name, strlen(name))) {
            config_fail(err, errlen, key, "not a valid group name");
            goto fail;
        }
        if (!(groups[i].name = strdup(name))) {
            config_fail(err, errlen, key, "out of memory");
            goto fail;
        }
        if (config_strv(v, key, config_device_pattern_valid, "device pattern", &groups[i].patterns,
                        &groups[i].n_patterns, err, errlen) != 0)
            goto fail;
        i++;
    }
    free_groups(cfg->groups, cfg->n_groups);
    cfg->groups = groups;
    cfg->n_groups = n;
    return 0;
fail:
    free_groups(groups, n);
    return -1;
}

/* alerts: the rules (alerts_config.c), replacing the whole list. */
static int apply_alerts(tb_config_t *cfg, json_t *arr, char *err, size_t errlen)
{
    tb_config_alert_t *alerts;
    size_t n;
    if (tb_alerts_parse(arr, &alerts, &n, err, errlen) != 0)
        return -1;
    tb_alerts_free(cfg->alerts, cfg->n_alerts);
    cfg->alerts = alerts;
    cfg->n_alerts = n;
    return 0;
}

/*
 * Rules that tie two keys together, checked on the effective values (after the file and after
 * --listen). The admin listener needs a port of its own: lws would otherwise share the public
 * socket between both and pick one by the Host header, which any client sets.
 */
int config_check_cross(const tb_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->admin.port != 0 && cfg->admin.port == cfg->listen.port)
        return config_fail(err, errlen, "admin.port", "must differ from listen.port (%d)",
                           cfg->listen.port);
    if (cfg->heartbeat.pong_timeout_s <= cfg->heartbeat.ping_interval_s)
        return config_fail(err, errlen, "heartbeat.pong_timeout_s",
                           "must be greater than heartbeat.ping_interval_s (%d)",
                           cfg->heartbeat.ping_interval_s);
    return 0;
}

static int apply_root(tb_config_t *cfg, json_t *root, const ctx_t *ctx)
{
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v)
    {
        const config_section_t *s = NULL;
        int rc;
        for (size_t i = 0; i < CONFIG_COUNT(config_sections) && !s; i++)
            if (strcmp(config_sections[i].name, name) == 0)
                s = &config_sections[i];
        if (s)
            rc = apply_section(cfg, s, v, ctx);
        else if (strcmp(name, "groups") == 0)
            rc = apply_groups(cfg, v, ctx->err, ctx->errlen);
        else if (strcmp(name, "alerts") == 0)
            rc = apply_alerts(cfg, v, ctx->err, ctx->errlen);
        else
            rc = config_fail(ctx->err, ctx->errlen, name, "unknown key");
        if (rc != 0)
            return -1;
    }
    return config_check_cross(cfg, ctx->err, ctx->errlen);
}

int tb_config_apply_json(tb_config_t *cfg, const char *text, const char *base_dir, char *err,
                         size_t errlen)
{
    ctx_t ctx = {base_dir, err, errlen};
    json_error_t jerr;
    json_t *root;
    int rc;
    if (!text)
        return config_fail(err, errlen, NULL, "no configuration text");
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return config_fail(err, errlen, NULL, "line %d, column %d: %s", jerr.line, jerr.column,
                           jerr.text);
    if (json_is_object(root))
        rc = apply_root(cfg, root, &ctx);
    else
        rc = config_fail(err, errlen, NULL, "the top level must be a JSON object");
    json_decref(root);
    return rc;
}

const char *config_slow_name(tb_slow_policy_t policy)
{
    return (size_t)policy < CONFIG_COUNT(slow_names) ? slow_names[policy] : slow_names[0];
}
