/* config — defaults, strict JSON loading and CLI overrides; see include/telebridge/config.h. */
#include "telebridge/config.h"

#include "config_internal.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/alerts.h"
#include "telebridge/auth.h"
#include "telebridge/keys.h"
#include "telebridge/room.h"
#include "telebridge/topic.h"
#include "telebridge/util.h"

/* Hard bounds on what a config may hold. */
#define CFG_FILE_MAX (1024 * 1024)          /* a larger config file is refused */
#define TB_CONFIG_STR_MAX 1024              /* longest ordinary string value */
#define CFG_HOST_MAX 255                    /* longest host name (the DNS limit) */
#define CFG_CLIENT_ID_MAX 256               /* MQTT allows more; nobody needs it */
#define CFG_PATH_MAX 4096                   /* longest file path, before and after resolution */
#define TB_CONFIG_KEY_MAX TB_CONFIG_ERR_LEN /* a dotted key such as "alerts[3].devices[0]" */
#define PORT_MIN 1
#define PORT_MAX 65535
#define PORT_DIGITS_MAX 5

/* Shown by tb_config_to_json() instead of the secret the environment holds. */
#define JWT_SECRET_SHOWN "(from " TB_KEYS_SECRET_ENV ")"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef enum {
    K_INT,       /* integer in [lo, hi] */
    K_BOOL,      /* true or false, stored as bool */
    K_STR,       /* string of 1..hi bytes */
    K_HOST,      /* K_STR of visible ASCII (a host name or address) */
    K_STR_NULL,  /* K_STR, or null for unset */
    K_PATH_NULL, /* K_STR_NULL, resolved against the config file's folder */
    K_TOPIC,     /* K_STR accepted by tb_topic_tpl_parse() */
    K_ALGORITHM, /* K_STR, one of algorithm_names */
    K_SLOW,      /* one of slow_names, stored as tb_slow_policy_t */
    K_ORIGINS,   /* array of non-empty strings */
    K_ROOMS,     /* array of room patterns (tb_room_pattern_valid) */
} kind_t;

typedef struct {
    const char *key;
    kind_t kind;
    size_t off;          /* the value inside its section struct */
    size_t n_off;        /* arrays: their element count */
    long long lo, hi;    /* K_INT: the value's range; string kinds: hi is the longest length */
    int def_int;         /* K_INT, K_BOOL and K_SLOW default */
    const char *def_str; /* string kinds default; NULL is unset. Arrays default to empty. */
} field_t;

/* clang-format off */
#define F_INT(T, k, lo, hi, def) {#k, K_INT, offsetof(T, k), 0, lo, hi, def, NULL}
#define F_BOOL(T, k, def) {#k, K_BOOL, offsetof(T, k), 0, 0, 1, def, NULL}
#define F_STR(T, k, kind, maxlen, def) {#k, kind, offsetof(T, k), 0, 1, maxlen, 0, def}
#define F_ARR(T, k, kind) {#k, kind, offsetof(T, k), offsetof(T, n_##k), 0, 0, 0, NULL}
/* clang-format on */

/*
 * Every key of the file with its rule and its default (docs/configuration.md → Keys and
 * defaults): the one place defaults live. groups and alerts default to empty; log_level (not
 * in the file) to info.
 */
static const field_t listen_fields[] = {
    F_STR(tb_config_listen_t, host, K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_listen_t, port, PORT_MIN, PORT_MAX, 8080),
    F_ARR(tb_config_listen_t, allowed_origins, K_ORIGINS),
    F_STR(tb_config_listen_t, web_root, K_PATH_NULL, CFG_PATH_MAX, TB_WEB_ROOT_DEFAULT),
};

/* admin.port must also differ from listen.port (check_cross). */
static const field_t admin_fields[] = {
    F_STR(tb_config_admin_t, host, K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_admin_t, port, 0, PORT_MAX, 0),
};

static const field_t mqtt_fields[] = {
    F_STR(tb_config_mqtt_t, host, K_HOST, CFG_HOST_MAX, "127.0.0.1"),
    F_INT(tb_config_mqtt_t, port, PORT_MIN, PORT_MAX, 1883),
    F_STR(tb_config_mqtt_t, client_id, K_STR, CFG_CLIENT_ID_MAX, "telebridge"),
    F_STR(tb_config_mqtt_t, username, K_STR_NULL, TB_CONFIG_STR_MAX, NULL),
    F_STR(tb_config_mqtt_t, password_file, K_PATH_NULL, CFG_PATH_MAX, NULL),
    /* Not 0 (libmosquitto's "off"): without keepalive a half-open broker connection is never
     * noticed, and the bridge would stay "ready" while receiving nothing. */
    F_INT(tb_config_mqtt_t, keepalive_s, 5, 65535, 30),
    F_INT(tb_config_mqtt_t, qos, 0, 2, 1),
    F_STR(tb_config_mqtt_t, telemetry_topic, K_TOPIC, TB_CONFIG_STR_MAX,
          "devices/{device}/telemetry"),
    F_STR(tb_config_mqtt_t, status_topic, K_TOPIC, TB_CONFIG_STR_MAX, "devices/{device}/status"),
};

static const field_t auth_fields[] = {
    F_STR(tb_config_auth_t, algorithm, K_ALGORITHM, TB_CONFIG_STR_MAX, "HS256"),
    F_STR(tb_config_auth_t, secret_file, K_PATH_NULL, CFG_PATH_MAX, NULL),
    F_STR(tb_config_auth_t, public_key_file, K_PATH_NULL, CFG_PATH_MAX, NULL),
    F_STR(tb_config_auth_t, issuer, K_STR_NULL, TB_CONFIG_STR_MAX, NULL),
    F_STR(tb_config_auth_t, audience, K_STR_NULL, TB_CONFIG_STR_MAX, NULL),
    F_INT(tb_config_auth_t, leeway_s, 0, 3600, 30),
    F_ARR(tb_config_auth_t, default_rooms, K_ROOMS),
    F_INT(tb_config_auth_t, expiry_warning_s, 0, INT_MAX, 60),
    F_INT(tb_config_auth_t, ticket_ttl_s, 1, 3600, 30),
};

static const field_t limits_fields[] = {
    F_INT(tb_config_limits_t, max_connections, 1, INT_MAX, 10000),
    F_INT(tb_config_limits_t, max_message_bytes, 64, 1048576, 8192),
    F_INT(tb_config_limits_t, max_rooms_per_connection, 1, INT_MAX, 64),
    F_INT(tb_config_limits_t, send_queue_messages, 1, 65536, 256),
    {"slow_consumer", K_SLOW, offsetof(tb_config_limits_t, slow_consumer), 0, 0, 0,
     TB_SLOW_DISCONNECT, NULL},
    F_INT(tb_config_limits_t, max_mqtt_payload_bytes, 64, 16777216, 65536),
    F_INT(tb_config_limits_t, client_messages_per_s, 1, INT_MAX, 200),
    F_INT(tb_config_limits_t, handshakes_per_ip_per_s, 0, INT_MAX, 0),
    F_INT(tb_config_limits_t, handshake_burst, 0, INT_MAX, 0),
    F_INT(tb_config_limits_t, handshake_timeout_s, 1, 3600, 10),
};

/* pong_timeout_s must also exceed ping_interval_s (check_cross). */
static const field_t heartbeat_fields[] = {
    F_INT(tb_config_heartbeat_t, ping_interval_s, 1, 3600, 30),
    F_INT(tb_config_heartbeat_t, pong_timeout_s, 1, 7200, 60),
};

/* permessage-deflate (docs/performance.md has the figures behind the defaults). */
static const field_t compression_fields[] = {
    F_BOOL(tb_config_compression_t, enabled, 1),
    F_INT(tb_config_compression_t, level, 1, 9, 1),
    F_INT(tb_config_compression_t, min_bytes, 0, 16777216, 128),
};

static const field_t history_fields[] = {
    F_INT(tb_config_history_t, messages, 0, 16777216, 65536),
    F_INT(tb_config_history_t, devices, 0, 10000000, 100000),
};

typedef struct {
    const char *name;
    size_t off; /* the section inside tb_config_t */
    const field_t *fields;
    size_t n_fields;
} section_t;

/* clang-format off */
#define SECTION(s) {#s, offsetof(tb_config_t, s), s##_fields, COUNT(s##_fields)}
/* clang-format on */

static const section_t sections[] = {
    SECTION(listen), SECTION(admin),     SECTION(mqtt),        SECTION(auth),
    SECTION(limits), SECTION(heartbeat), SECTION(compression), SECTION(history),
};

/* The file's top-level keys, in docs/configuration.md's order (tb_config_to_json keeps it). */
static const char *const top_keys[] = {"listen", "admin",     "mqtt",        "auth",    "groups",
                                       "limits", "heartbeat", "compression", "history", "alerts"};

static const char *const algorithm_names[] = {TB_AUTH_ALGORITHMS(TB_AUTH_ALG_NAME)};
/* Indexed by tb_slow_policy_t. */
static const char *const slow_names[] = {"disconnect", "drop_oldest"};

typedef struct {
    const char *base_dir; /* relative paths resolve against it; NULL: leave them relative */
    char *err;            /* errlen bytes, may be NULL */
    size_t errlen;
} ctx_t;

/* Writes "key: message" (or just the message when key is NULL) into err; returns -1. */
__attribute__((format(printf, 4, 5))) int tb_config_fail(char *err, size_t errlen, const char *key,
                                                         const char *fmt, ...)
{
    size_t used = 0;
    va_list ap;
    if (!err || errlen == 0)
        return -1;
    if (key) {
        int n = snprintf(err, errlen, "%s: ", key);
        used = n < 0 ? 0 : (size_t)n;
        if (used >= errlen)
            return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
    return -1;
}

/* Appends s to out[TB_CONFIG_KEY_MAX] at *used; a too-long key is cut, as it only names errors. */
static void key_append(char out[TB_CONFIG_KEY_MAX], size_t *used, const char *s)
{
    size_t n = strnlen(s, TB_CONFIG_KEY_MAX - 1 - *used);
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
}

/* "parent.key", or "key" at the top level. */
void tb_config_key_join(char out[TB_CONFIG_KEY_MAX], const char *parent, const char *key)
{
    size_t used = 0;
    key_append(out, &used, parent);
    key_append(out, &used, parent[0] ? "." : "");
    key_append(out, &used, key);
}

/* "parent[i]". */
void tb_config_key_index(char out[TB_CONFIG_KEY_MAX], const char *parent, size_t i)
{
    char index[sizeof("[]") + 20]; /* 20 digits hold any 64-bit size_t */
    size_t used = 0;
    snprintf(index, sizeof(index), "[%zu]", i);
    key_append(out, &used, parent);
    key_append(out, &used, index);
}

/* Index of name in names[0..n), or -1. */
int tb_config_name_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* Fails with "key: must be one of A, B, C". */
int tb_config_fail_one_of(char *err, size_t errlen, const char *key, const char *const *names,
                          size_t n)
{
    char list[TB_CONFIG_ERR_LEN] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
        used += w < 0 ? 0 : (size_t)w;
    }
    return tb_config_fail(err, errlen, key, "must be one of %s", list);
}

/* A range up to INT_MAX reads as "no upper bound" unless the value passed it. */
static int fail_range(char *err, size_t errlen, const char *key, long long x, long long lo,
                      long long hi)
{
    if (hi == INT_MAX && x < lo)
        return tb_config_fail(err, errlen, key, "must be >= %lld", lo);
    return tb_config_fail(err, errlen, key, "must be between %lld and %lld", lo, hi);
}

void tb_config_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void free_groups(tb_config_group_t *groups, size_t n)
{
    for (size_t i = 0; groups && i < n; i++) {
        free(groups[i].name);
        tb_config_strv_free(groups[i].patterns);
    }
    free(groups);
}

static bool is_array_kind(kind_t kind)
{
    return kind == K_ORIGINS || kind == K_ROOMS;
}

static bool is_string_kind(kind_t kind)
{
    return kind != K_INT && kind != K_BOOL && kind != K_SLOW && !is_array_kind(kind);
}

/* Replaces a NULL-terminated string array and its count, freeing the old one. */
static void replace_strv(void *sect, const field_t *f, char **v, size_t n)
{
    char ***slot = (char ***)(void *)((char *)sect + f->off);
    tb_config_strv_free(*slot);
    *slot = v;
    *(size_t *)(void *)((char *)sect + f->n_off) = n;
}

static void replace_str(void *sect, const field_t *f, char *s)
{
    char **slot = (char **)(void *)((char *)sect + f->off);
    free(*slot);
    *slot = s;
}

static int set_field_default(void *sect, const field_t *f)
{
    void *p = (char *)sect + f->off;
    if (f->kind == K_INT) {
        *(int *)p = f->def_int;
    } else if (f->kind == K_BOOL) {
        *(bool *)p = f->def_int != 0;
    } else if (f->kind == K_SLOW) {
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
    for (size_t s = 0; s < COUNT(sections); s++) {
        void *sect = (char *)cfg + sections[s].off;
        for (size_t i = 0; i < sections[s].n_fields; i++)
            if (set_field_default(sect, &sections[s].fields[i]) != 0)
                return -1;
    }
    return 0;
}

void tb_config_free(tb_config_t *cfg)
{
    for (size_t s = 0; s < COUNT(sections); s++) {
        char *sect = (char *)cfg + sections[s].off;
        for (size_t i = 0; i < sections[s].n_fields; i++) {
            const field_t *f = &sections[s].fields[i];
            if (is_array_kind(f->kind))
                tb_config_strv_free(*(char ***)(void *)(sect + f->off));
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
static bool host_valid(const char *s, size_t len)
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

/* "*", a device id, or an id prefix with one trailing '*' ("sensor-hum-*"). */
bool tb_config_device_pattern_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 1 && s[0] == '*')
        return true;
    if (len > 1 && s[len - 1] == '*')
        len--;
    return tb_id_valid(s, len);
}

/* A string of 1..maxlen bytes; *s then points into v. */
static int check_string(json_t *v, const char *key, size_t maxlen, const char **s, char *err,
                        size_t errlen)
{
    if (!json_is_string(v))
        return tb_config_fail(err, errlen, key, "must be a string");
    if (json_string_length(v) == 0)
        return tb_config_fail(err, errlen, key, "must not be empty");
    if (json_string_length(v) > maxlen)
        return tb_config_fail(err, errlen, key, "must be at most %zu bytes", maxlen);
    *s = json_string_value(v);
    return 0;
}

int tb_config_dup_string(json_t *v, const char *key, size_t maxlen, char **out, char *err,
                         size_t errlen)
{
    const char *s = NULL;
    if (check_string(v, key, maxlen, &s, err, errlen) != 0)
        return -1;
    *out = strdup(s);
    return *out ? 0 : tb_config_fail(err, errlen, key, "out of memory");
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
        return tb_config_fail(err, errlen, key, "path longer than %d bytes", CFG_PATH_MAX);
    *out = malloc(dlen + slen + plen + 1);
    if (!*out)
        return tb_config_fail(err, errlen, key, "out of memory");
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
        return tb_config_fail(err, errlen, key, "%s", reason);
    tb_topic_tpl_free(t);
    return 0;
}

/* The checks beyond "a string of the right length" that some string kinds add. */
static int check_string_value(const field_t *f, const char *s, const char *key, char *err,
                              size_t errlen)
{
    switch (f->kind) {
    case K_HOST:
        return host_valid(s, strlen(s))
                   ? 0
                   : tb_config_fail(err, errlen, key, "must be a host name or address");
    case K_ALGORITHM:
        if (tb_config_name_index(algorithm_names, COUNT(algorithm_names), s) < 0)
            return tb_config_fail_one_of(err, errlen, key, algorithm_names, COUNT(algorithm_names));
        return 0;
    case K_TOPIC:
        return check_topic(s, key, err, errlen);
    default:
        return 0;
    }
}

static int apply_string(void *sect, const field_t *f, json_t *v, const char *key, const ctx_t *ctx)
{
    bool nullable = f->kind == K_STR_NULL || f->kind == K_PATH_NULL;
    const char *s = NULL;
    char *copy;
    if (nullable && json_is_null(v)) {
        replace_str(sect, f, NULL);
        return 0;
    }
    if (nullable && !json_is_string(v))
        return tb_config_fail(ctx->err, ctx->errlen, key, "must be a string or null");
    if (check_string(v, key, (size_t)f->hi, &s, ctx->err, ctx->errlen) != 0 ||
        check_string_value(f, s, key, ctx->err, ctx->errlen) != 0)
        return -1;
    if (f->kind == K_PATH_NULL) {
        if (resolve_path(ctx->base_dir, s, key, &copy, ctx->err, ctx->errlen) != 0)
            return -1;
    } else if (!(copy = strdup(s))) {
        return tb_config_fail(ctx->err, ctx->errlen, key, "out of memory");
    }
    replace_str(sect, f, copy);
    return 0;
}

static int apply_int(void *sect, const field_t *f, json_t *v, const char *key, char *err,
                     size_t errlen)
{
    json_int_t x;
    if (!json_is_integer(v))
        return tb_config_fail(err, errlen, key, "must be an integer");
    x = json_integer_value(v);
    if (x < f->lo || x > f->hi)
        return fail_range(err, errlen, key, x, f->lo, f->hi);
    *(int *)(void *)((char *)sect + f->off) = (int)x;
    return 0;
}

static int apply_bool(void *sect, const field_t *f, json_t *v, const char *key, char *err,
                      size_t errlen)
{
    if (!json_is_boolean(v))
        return tb_config_fail(err, errlen, key, "must be true or false");
    *(bool *)(void *)((char *)sect + f->off) = json_is_true(v);
    return 0;
}

static int apply_slow(void *sect, const field_t *f, json_t *v, const char *key, char *err,
                      size_t errlen)
{
    int i = json_is_string(v)
                ? tb_config_name_index(slow_names, COUNT(slow_names), json_string_value(v))
                : -1;
    if (i < 0)
        return tb_config_fail_one_of(err, errlen, key, slow_names, COUNT(slow_names));
    *(tb_slow_policy_t *)(void *)((char *)sect + f->off) = (tb_slow_policy_t)i;
    return 0;
}

/* An array of strings each passing ok(), as a NULL-terminated copy; what names one element. */
int tb_config_strv(json_t *v, const char *key, tb_config_str_check_fn ok, const char *what,
                   char ***out, size_t *n_out, char *err, size_t errlen)
{
    char elkey[TB_CONFIG_KEY_MAX];
    size_t n, i;
    json_t *el;
    char **arr;
    if (!json_is_array(v))
        return tb_config_fail(err, errlen, key, "must be an array of strings");
    n = json_array_size(v);
    arr = calloc(n + 1, sizeof(*arr));
    if (!arr)
        return tb_config_fail(err, errlen, key, "out of memory");
    json_array_foreach(v, i, el)
    {
        const char *s;
        tb_config_key_index(elkey, key, i);
        if (!json_is_string(el)) {
            tb_config_fail(err, errlen, elkey, "must be a string");
            goto fail;
        }
        s = json_string_value(el);
        if (json_string_length(el) > TB_CONFIG_STR_MAX || !ok(s)) {
            tb_config_fail(err, errlen, elkey, "\"%s\" is not a valid %s", s, what);
            goto fail;
        }
        if (!(arr[i] = strdup(s))) {
            tb_config_fail(err, errlen, elkey, "out of memory");
            goto fail;
        }
    }
    *out = arr;
    *n_out = n;
    return 0;
fail:
    tb_config_strv_free(arr);
    return -1;
}

static int apply_field(void *sect, const field_t *f, json_t *v, const char *key, const ctx_t *ctx)
{
    bool rooms = f->kind == K_ROOMS;
    char **arr = NULL;
    size_t n = 0;
    switch (f->kind) {
    case K_INT:
        return apply_int(sect, f, v, key, ctx->err, ctx->errlen);
    case K_BOOL:
        return apply_bool(sect, f, v, key, ctx->err, ctx->errlen);
    case K_SLOW:
        return apply_slow(sect, f, v, key, ctx->err, ctx->errlen);
    case K_ORIGINS:
    case K_ROOMS:
        if (tb_config_strv(v, key, rooms ? tb_room_pattern_valid : origin_valid,
                           rooms ? "room pattern" : "origin", &arr, &n, ctx->err, ctx->errlen) != 0)
            return -1;
        replace_strv(sect, f, arr, n);
        return 0;
    default:
        return apply_string(sect, f, v, key, ctx);
    }
}

static int apply_section(tb_config_t *cfg, const section_t *s, json_t *obj, const ctx_t *ctx)
{
    void *sect = (char *)cfg + s->off;
    const char *name;
    json_t *v;
    if (!json_is_object(obj))
        return tb_config_fail(ctx->err, ctx->errlen, s->name, "must be an object");
    json_object_foreach(obj, name, v)
    {
        char key[TB_CONFIG_KEY_MAX];
        const field_t *f = NULL;
        tb_config_key_join(key, s->name, name);
        for (size_t i = 0; i < s->n_fields && !f; i++)
            if (strcmp(s->fields[i].key, name) == 0)
                f = &s->fields[i];
        if (!f)
            return tb_config_fail(ctx->err, ctx->errlen, key, "unknown key");
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
        return tb_config_fail(err, errlen, "groups", "must be an object");
    n = json_object_size(obj);
    if (n > 0 && !(groups = calloc(n, sizeof(*groups))))
        return tb_config_fail(err, errlen, "groups", "out of memory");
    json_object_foreach(obj, name, v)
    {
        char key[TB_CONFIG_KEY_MAX];
        tb_config_key_join(key, "groups", name);
        if (!tb_id_valid(name, strlen(name))) {
            tb_config_fail(err, errlen, key, "not a valid group name");
            goto fail;
        }
        if (!(groups[i].name = strdup(name))) {
            tb_config_fail(err, errlen, key, "out of memory");
            goto fail;
        }
        if (tb_config_strv(v, key, tb_config_device_pattern_valid, "device pattern",
                           &groups[i].patterns, &groups[i].n_patterns, err, errlen) != 0)
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

int tb_config_known_keys(json_t *obj, const char *parent, const char *const *names, size_t n,
                         char *err, size_t errlen)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        char key[TB_CONFIG_KEY_MAX];
        if (tb_config_name_index(names, n, name) >= 0)
            continue;
        tb_config_key_join(key, parent, name);
        return tb_config_fail(err, errlen, key, "unknown key");
    }
    return 0;
}

/* obj[name] into *v, its dotted key into key; absent: an error when required, else *v NULL. */
int tb_config_member(json_t *obj, const char *parent, const char *name, bool required, json_t **v,
                     char key[TB_CONFIG_KEY_MAX], char *err, size_t errlen)
{
    tb_config_key_join(key, parent, name);
    *v = json_object_get(obj, name);
    if (!*v && required)
        return tb_config_fail(err, errlen, key, "is required");
    return 0;
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
static int check_cross(const tb_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->admin.port != 0 && cfg->admin.port == cfg->listen.port)
        return tb_config_fail(err, errlen, "admin.port", "must differ from listen.port (%d)",
                              cfg->listen.port);
    if (cfg->heartbeat.pong_timeout_s <= cfg->heartbeat.ping_interval_s)
        return tb_config_fail(err, errlen, "heartbeat.pong_timeout_s",
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
        const section_t *s = NULL;
        int rc;
        for (size_t i = 0; i < COUNT(sections) && !s; i++)
            if (strcmp(sections[i].name, name) == 0)
                s = &sections[i];
        if (s)
            rc = apply_section(cfg, s, v, ctx);
        else if (strcmp(name, "groups") == 0)
            rc = apply_groups(cfg, v, ctx->err, ctx->errlen);
        else if (strcmp(name, "alerts") == 0)
            rc = apply_alerts(cfg, v, ctx->err, ctx->errlen);
        else
            rc = tb_config_fail(ctx->err, ctx->errlen, name, "unknown key");
        if (rc != 0)
            return -1;
    }
    return check_cross(cfg, ctx->err, ctx->errlen);
}

int tb_config_apply_json(tb_config_t *cfg, const char *text, const char *base_dir, char *err,
                         size_t errlen)
{
    ctx_t ctx = {base_dir, err, errlen};
    json_error_t jerr;
    json_t *root;
    int rc;
    if (!text)
        return tb_config_fail(err, errlen, NULL, "no configuration text");
    root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return tb_config_fail(err, errlen, NULL, "line %d, column %d: %s", jerr.line, jerr.column,
                              jerr.text);
    if (json_is_object(root))
        rc = apply_root(cfg, root, &ctx);
    else
        rc = tb_config_fail(err, errlen, NULL, "the top level must be a JSON object");
    json_decref(root);
    return rc;
}

static int fail_errno(char *err, size_t errlen, const char *key, int errnum)
{
    char msg[TB_CONFIG_ERR_LEN];
    if (strerror_r(errnum, msg, sizeof(msg)) != 0)
        snprintf(msg, sizeof(msg), "error %d", errnum);
    return tb_config_fail(err, errlen, key, "%s", msg);
}

/* The file as a NUL-terminated heap string of at most CFG_FILE_MAX bytes, or NULL + err. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n;
    int rc = tb_read_file(path, CFG_FILE_MAX, &buf, &n);
    if (rc == -EFBIG)
        tb_config_fail(err, errlen, path, "larger than %d bytes", CFG_FILE_MAX);
    else if (rc == -ENOMEM)
        tb_config_fail(err, errlen, path, "out of memory");
    else if (rc)
        fail_errno(err, errlen, path, -rc);
    else if (memchr(buf, '\0', n))
        tb_config_fail(err, errlen, path, "contains a NUL byte");
    else
        return buf;
    free(buf);
    return NULL;
}

int tb_config_load_file(tb_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char reason[TB_CONFIG_ERR_LEN];
    char *text = NULL;
    char *dir_copy = NULL; /* dirname() may modify its argument */
    char *path_copy = NULL;
    int rc = -1;
    if (!path)
        return tb_config_fail(err, errlen, NULL, "no config file given");
    if (!(text = read_file(path, err, errlen)))
        goto out;
    if (!(dir_copy = strdup(path)) || !(path_copy = strdup(path))) {
        tb_config_fail(err, errlen, path, "out of memory");
        goto out;
    }
    free(cfg->path);
    cfg->path = path_copy;
    path_copy = NULL;
    rc = tb_config_apply_json(cfg, text, dirname(dir_copy), reason, sizeof(reason));
    if (rc != 0)
        tb_config_fail(err, errlen, path, "%s", reason);
out:
    free(text);
    free(dir_copy);
    free(path_copy);
    return rc;
}

/* Digits only, without sign or spaces; -1 when s is not a number of at most 5 digits. */
static int parse_port_digits(const char *s, int *out)
{
    size_t n = strlen(s);
    int v = 0;
    if (n == 0 || n > PORT_DIGITS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[V6ADDR]:PORT" into *host (without brackets) and *port; flag names errors. */
static int set_hostport(char **host, int *port, const char *flag, const char *hp, char *err,
                        size_t errlen)
{
    const char *h = hp, *h_end, *p;
    char *copy;
    int num;
    if (!hp)
        return tb_config_fail(err, errlen, flag, "expected HOST:PORT or [IPv6]:PORT");
    if (hp[0] == '[') {
        h = hp + 1;
        h_end = strchr(h, ']');
        p = (h_end && h_end[1] == ':') ? h_end + 2 : NULL;
    } else {
        h_end = strrchr(hp, ':');
        /* A second colon means an IPv6 address without brackets: ambiguous. */
        p = (h_end && !memchr(hp, ':', (size_t)(h_end - hp))) ? h_end + 1 : NULL;
    }
    if (!p || !host_valid(h, (size_t)(h_end - h)) || parse_port_digits(p, &num) != 0)
        return tb_config_fail(err, errlen, flag, "expected HOST:PORT or [IPv6]:PORT, got \"%s\"",
                              hp);
    if (num < PORT_MIN || num > PORT_MAX)
        return tb_config_fail(err, errlen, flag, "port must be between %d and %d", PORT_MIN,
                              PORT_MAX);
    if (!(copy = strndup(h, (size_t)(h_end - h))))
        return tb_config_fail(err, errlen, flag, "out of memory");
    free(*host);
    *host = copy;
    *port = num;
    return 0;
}

/* Checked against the rest of the configuration before it replaces anything. */
int tb_config_set_listen(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    tb_config_t next = *cfg; /* shallow: only next.listen.host is its own */
    next.listen.host = NULL;
    if (set_hostport(&next.listen.host, &next.listen.port, "--listen", hostport, err, errlen) != 0)
        return -1;
    if (check_cross(&next, err, errlen) != 0) {
        free(next.listen.host);
        return -1;
    }
    free(cfg->listen.host);
    cfg->listen.host = next.listen.host;
    cfg->listen.port = next.listen.port;
    return 0;
}

int tb_config_set_mqtt(tb_config_t *cfg, const char *hostport, char *err, size_t errlen)
{
    return set_hostport(&cfg->mqtt.host, &cfg->mqtt.port, "--mqtt", hostport, err, errlen);
}

/* Doubles up to 2^53 hold integers exactly: show 30, not 30.0, for a threshold written 30. */
#define EXACT_INT_LIMIT 9007199254740992.0

json_t *tb_config_number_json(double x)
{
    if (x > -EXACT_INT_LIMIT && x < EXACT_INT_LIMIT && (double)(json_int_t)x == x)
        return json_integer((json_int_t)x);
    return json_real(x);
}

json_t *tb_config_strv_json(char *const *v, size_t n)
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

static const char *slow_name(tb_slow_policy_t policy)
{
    return (size_t)policy < COUNT(slow_names) ? slow_names[policy] : slow_names[0];
}

static json_t *field_to_json(const char *sect, const field_t *f)
{
    const void *p = sect + f->off;
    const char *s = NULL;
    switch (f->kind) {
    case K_INT:
        return json_integer(*(const int *)p);
    case K_BOOL:
        return json_boolean(*(const bool *)p);
    case K_SLOW:
        return json_string(slow_name(*(const tb_slow_policy_t *)p));
    case K_ORIGINS:
    case K_ROOMS:
        return tb_config_strv_json(*(char *const *const *)p,
                                   *(const size_t *)(const void *)(sect + f->n_off));
    default:
        s = *(const char *const *)p;
        return s ? json_string(s) : json_null();
    }
}

static json_t *section_to_json(const tb_config_t *cfg, const section_t *s)
{
    const char *sect = (const char *)cfg + s->off;
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < s->n_fields; i++) {
        if (json_object_set_new(obj, s->fields[i].key, field_to_json(sect, &s->fields[i])) != 0) {
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
        if (json_object_set_new(obj, g->name, tb_config_strv_json(g->patterns, g->n_patterns)) !=
            0) {
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
    for (size_t i = 0; i < COUNT(sections); i++)
        if (strcmp(sections[i].name, name) == 0)
            return section_to_json(cfg, &sections[i]);
    return strcmp(name, "groups") == 0 ? groups_to_json(cfg)
                                       : tb_alerts_to_json(cfg->alerts, cfg->n_alerts);
}

json_t *tb_config_to_json(const tb_config_t *cfg)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    for (size_t i = 0; i < COUNT(top_keys); i++)
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
