/*
 * config — the bridge's settings: defaults, the JSON file, command-line overrides.
 *
 * tb_config_t is plain data, public on purpose: every module reads its own section. All
 * defaults live in tb_config_defaults() (config.c) and nowhere else. Every string and array in
 * a tb_config_t is owned by it and released by tb_config_free(). Paths (secret_file,
 * public_key_file, password_file, web_root) are stored already resolved against the config
 * file's folder.
 *
 * Loading is strict: an unknown key, a wrong type or an impossible value fails with a message
 * that names the key by its dotted path ("limits.max_connections: must be >= 1").
 */
#ifndef TELEBRIDGE_CONFIG_H
#define TELEBRIDGE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "telebridge/log.h"

/* An error buffer size that holds any message the loading functions write. */
#define TB_CONFIG_ERR_LEN 256
/* Longest host name or address (the DNS limit), without brackets. */
#define TB_CONFIG_HOST_MAX 255
/* Longest MQTT client id once its placeholders are expanded (tb_config_client_id()). */
#define TB_CONFIG_CLIENT_ID_MAX 1024
/* Longest file path, before and after resolution (history.file: and after expansion). */
#define TB_CONFIG_PATH_MAX 4096

/* Where the dashboard's files are installed (listen.web_root's default); set by the build. */
#ifndef TB_WEB_ROOT_DEFAULT
#define TB_WEB_ROOT_DEFAULT "/usr/local/share/telebridge/web"
#endif

typedef struct {
    char *host;
    int port;
    char **allowed_origins; /* NULL-terminated array, may be empty */
    size_t n_allowed_origins;
    char *web_root;  /* folder served at GET / (the dashboard); NULL: none. Resolved path */
    bool reuse_port; /* SO_REUSEPORT: several processes share the port (ws_listen.c) */
} tb_config_listen_t;

/* The admin listener: the operator endpoints without a credential, for a private address. */
typedef struct {
    char *host;
    int port; /* 0: no admin listener */
} tb_config_admin_t;

/* The broker: mqtt.hosts when not empty (a cluster's nodes, tried in order then round; host and
 * port are then unused), else host:port. */
typedef struct {
    char *host;
    int port;
    char **hosts; /* "host:port" / "[v6]:port" entries, validated; NULL-terminated, may be empty */
    size_t n_hosts;
    char *client_id;     /* may hold {hostname} and {port}: expand with tb_config_client_id() */
    char *username;      /* NULL when unset */
    char *password_file; /* NULL when unset; resolved path */
    int keepalive_s;
    int qos; /* 0, 1 or 2 */
    char *telemetry_topic;
    char *status_topic;
} tb_config_mqtt_t;

typedef struct {
    char *algorithm;       /* "HS256" … as configured; validated against the supported list */
    char *secret_file;     /* NULL when unset; resolved path */
    char *public_key_file; /* NULL when unset; resolved path */
    char *issuer;          /* NULL when unset */
    char *audience;        /* NULL when unset */
    int leeway_s;
    char **default_rooms; /* room patterns for tokens without a `rooms` claim; NULL-terminated */
    size_t n_default_rooms;
    int expiry_warning_s;
    int ticket_ttl_s;
    /* NULL when unset; resolved path. The secret ticket keys derive from (any algorithm); unset:
     * the HS* secret, or none for RS256/ES256 (tickets then stay on their bridge). */
    char *ticket_secret_file;
} tb_config_auth_t;

typedef struct {
    char *name;
    char **patterns; /* exact device ids or "prefix-*"; NULL-terminated */
    size_t n_patterns;
} tb_config_group_t;

/* limits.slow_consumer: close 1008, drop the oldest telemetry, or conflate (docs/protocol.md). */
typedef enum { TB_SLOW_DISCONNECT = 0, TB_SLOW_DROP_OLDEST, TB_SLOW_CONFLATE } tb_slow_policy_t;

typedef struct {
    int max_connections;
    int max_message_bytes;
    int max_rooms_per_connection;
    int send_queue_messages;
    tb_slow_policy_t slow_consumer;
    int max_mqtt_payload_bytes;
    int client_messages_per_s;
    int handshakes_per_ip_per_s;
    int handshake_burst;
    int handshake_timeout_s; /* a connection must finish its HTTP request / upgrade in this */
} tb_config_limits_t;

typedef struct {
    int ping_interval_s;
    int pong_timeout_s;
} tb_config_heartbeat_t;

/* permessage-deflate: offered at all, libdeflate level, the smallest frame worth compressing. */
typedef struct {
    bool enabled;
    int level;
    int min_bytes;
} tb_config_compression_t;

/* Most points of one field's series a device keeps (history.series_points's upper bound). */
#define TB_CONFIG_SERIES_POINTS_MAX 1000

typedef struct {
    int messages;
    int devices;
    int series_points; /* values kept per numeric field and device for `series`; 0: none */
    char *file;        /* where the history and epoch persist across restarts (resolved; may
                          hold {hostname} and {port}: tb_config_history_file()); NULL: memory
                          only */
} tb_config_history_t;

typedef enum { TB_OP_GT = 0, TB_OP_GE, TB_OP_LT, TB_OP_LE, TB_OP_EQ, TB_OP_NE } tb_alert_op_t;

typedef struct {
    char *name;
    char *field;
    tb_alert_op_t op;
    double threshold;
    bool has_clear_below;
    double clear_below;
    bool has_clear_above;
    double clear_above;
    char *severity; /* default "warning" */
    char **devices; /* patterns, default {"*"}; NULL-terminated */
    size_t n_devices;
} tb_config_alert_t;

typedef struct {
    tb_config_listen_t listen;
    tb_config_admin_t admin;
    tb_config_mqtt_t mqtt;
    tb_config_auth_t auth;
    tb_config_group_t *groups;
    size_t n_groups;
    tb_config_limits_t limits;
    tb_config_heartbeat_t heartbeat;
    tb_config_compression_t compression;
    tb_config_history_t history;
    tb_config_alert_t *alerts;
    size_t n_alerts;
    tb_log_level_t log_level; /* not in the file; set by --log-level, default info */
    char *path;               /* the file loaded, or NULL */
} tb_config_t;

/* Fills *cfg with the defaults. Returns 0, or -1 when out of memory (cfg then freeable). */
int tb_config_defaults(tb_config_t *cfg);

/*
 * Applies the JSON text over *cfg (which holds defaults or an earlier load). Relative paths
 * resolve against base_dir (NULL: the current directory). On error returns -1, writes a
 * message naming the key into err (errlen bytes; TB_CONFIG_ERR_LEN holds any), and *cfg is
 * left valid but partly updated: discard it with tb_config_free().
 */
int tb_config_apply_json(tb_config_t *cfg, const char *text, const char *base_dir, char *err,
                         size_t errlen);

/* Reads `path` and applies it as above, base_dir being the file's folder; sets cfg->path. */
int tb_config_load_file(tb_config_t *cfg, const char *path, char *err, size_t errlen);

/* "HOST:PORT" overrides for --listen and --mqtt ("[::1]:8080" for IPv6); --listen also takes
 * ":PORT", keeping listen.host. -1 + err on error.
 * --mqtt also empties mqtt.hosts: the command line wins over the file. */
int tb_config_set_listen(tb_config_t *cfg, const char *hostport, char *err, size_t errlen);
int tb_config_set_mqtt(tb_config_t *cfg, const char *hostport, char *err, size_t errlen);

/* "HOST:PORT" or "[V6ADDR]:PORT" (an mqtt.hosts entry) into host (hostlen bytes, without the
 * brackets; TB_CONFIG_HOST_MAX + 1 holds any) and *port (1-65535). 0, or -1 when s is not one
 * or host does not fit. */
int tb_config_hostport(const char *s, char *host, size_t hostlen, int *port);

/*
 * mqtt.client_id with {hostname} (gethostname()) and {port} (listen.port, after --listen)
 * expanded, into out (outlen bytes; TB_CONFIG_CLIENT_ID_MAX + 1 holds any). 0, or -1 with err
 * when it does not fit or the host name cannot be read.
 */
int tb_config_client_id(const tb_config_t *cfg, char *out, size_t outlen, char *err, size_t errlen);

/*
 * history.file with the same placeholders expanded (so that the instances of one config keep a
 * file each), into out (TB_CONFIG_PATH_MAX + 1 holds any); "" when history.file is unset. 0, or
 * -1 with err as tb_config_client_id().
 */
int tb_config_history_file(const tb_config_t *cfg, char *out, size_t outlen, char *err,
                           size_t errlen);

/* The effective configuration as JSON with secrets masked; caller owns the result. */
json_t *tb_config_to_json(const tb_config_t *cfg);

/* Releases everything *cfg owns and zeroes it. Safe on a zeroed or partly loaded config. */
void tb_config_free(tb_config_t *cfg);

#endif
