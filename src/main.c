/*
 * telebridge — MQTT → WebSocket fan-out bridge.
 *
 * main wires the modules together: config → auth → bridge (hub, queue, auth, tickets, limiter)
 * → server (lws) → MQTT ingest, then serves until SIGTERM/SIGINT and tears down in reverse
 * order.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "telebridge/auth.h"
#include "telebridge/bridge.h"
#include "telebridge/config.h"
#include "telebridge/groups.h"
#include "telebridge/keys.h"
#include "telebridge/log.h"
#include "telebridge/mqtt_ingest.h"
#include "telebridge/signals.h"
#include "telebridge/ws_server.h"

#define DEFAULT_CONFIG "config/telebridge.json"
#define EXIT_USAGE 2

typedef struct {
    const char *config;
    bool config_given;
    bool check_only;
    const char *listen;
    const char *mqtt;
    const char *log_level;
} options_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: telebridge [--config FILE] [--check-config] [--listen HOST:PORT]\n"
                 "                  [--mqtt HOST:PORT] [--log-level debug|info|warn|error]\n"
                 "                  [--version] [--help]\n"
                 "\n"
                 "  --config FILE     JSON configuration (default " DEFAULT_CONFIG ")\n"
                 "  --check-config    validate, print the effective config (secrets masked), exit\n"
                 "  --listen [H]:P    WebSocket/HTTP address, overrides listen.host/port (:P: the port only)\n"
                 "  --mqtt H:P        broker address, overrides mqtt.host/port\n"
                 "  --log-level L     log threshold (default info)\n"
                 "  --version         print the version\n"
                 "\n"
                 "The JWT secret comes from auth.secret_file or " TB_KEYS_SECRET_ENV ".\n");
}

/* Returns 0 to run, 1 when the process should exit 0 (help/version), -1 on a usage error. */
static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"listen", required_argument, NULL, 'l'},
        {"mqtt", required_argument, NULL, 'm'},
        {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    *o = (options_t){.config = DEFAULT_CONFIG};
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            o->config_given = true;
            break;
        case 'k':
            o->check_only = true;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'm':
            o->mqtt = optarg;
            break;
        case 'L':
            o->log_level = optarg;
            break;
        case 'V':
            printf("telebridge %s\n", TB_VERSION);
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telebridge: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Defaults, then the file (optional only when it is the default path), then the flags. */
static int load_config(const options_t *o, tb_config_t *cfg, char *err, size_t errlen)
{
    struct stat st;
    if (tb_config_defaults(cfg)) {
        tb_set_err(err, errlen, "out of memory");
        return -1;
    }
    if ((o->config_given || stat(o->config, &st) == 0) &&
        tb_config_load_file(cfg, o->config, err, errlen))
        return -1;
    if (o->listen && tb_config_set_listen(cfg, o->listen, err, errlen))
        return -1;
    if (o->mqtt && tb_config_set_mqtt(cfg, o->mqtt, err, errlen))
        return -1;
    if (o->log_level && tb_log_level_parse(o->log_level, &cfg->log_level)) {
        tb_set_err(err, errlen, "--log-level: expected debug, info, warn or error");
        return -1;
    }
    return 0;
}

static int print_effective(const tb_config_t *cfg)
{
    json_t *j = tb_config_to_json(cfg);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!text)
        return 1;
    printf("%s\n", text);
    free(text);
    return 0;
}

/* What the signal thread acts on. */
typedef struct {
    tb_bridge_t *bridge;
    tb_server_t *server;
} running_t;

/* On the signal thread (see signals.h): both calls are thread-safe. */
static void on_signal(void *arg, int sig)
{
    const running_t *r = arg;
    if (sig == SIGHUP)
        tb_bridge_request_reload(r->bridge);
    else
        tb_server_request_stop(r->server);
}

/*
 * The SIGHUP hook: reads the file and flags again, as at start-up, and hands over the parts
 * that may change while running (the group map, the auth keys, the alert rules). Anything else
 * changed in the file takes a restart.
 */
static int reload(void *arg, tb_bridge_reload_t *out, char *err, size_t errlen)
{
    const options_t *o = arg;
    tb_config_t cfg;
    int rc = -1;
    memset(&cfg, 0, sizeof(cfg));
    if (load_config(o, &cfg, err, errlen))
        goto done;
    if (!(out->auth = tb_auth_create(&cfg.auth, err, errlen)))
        goto done;
    if (!(out->groups = tb_groups_create(cfg.groups, cfg.n_groups))) {
        tb_auth_destroy(out->auth);
        out->auth = NULL;
        tb_set_err(err, errlen, "out of memory");
        goto done;
    }
    out->alerts = cfg.alerts; /* taken out of cfg */
    out->n_alerts = cfg.n_alerts;
    cfg.alerts = NULL;
    cfg.n_alerts = 0;
    rc = 0;
done:
    tb_config_free(&cfg);
    return rc;
}

/* Runs the bridge until a stop signal; takes auth. Returns the exit status. */
static int serve(const options_t *o, const tb_config_t *cfg, tb_auth_t *auth)
{
    static tb_stats_t stats;
    char err[TB_CONFIG_ERR_LEN];
    char broker[TB_CONFIG_HOST_MAX + sizeof("[]:65535")];
    int rc = 1;
    tb_ingest_t *ingest = NULL;
    tb_signals_t *sig = NULL;
    tb_server_t *server = NULL;
    tb_bridge_opts_t bo = {
        .cfg = cfg, .stats = &stats, .auth = auth, .reload = reload, .reload_arg = (void *)o};
    tb_bridge_t *bridge = tb_bridge_create(&bo, err, sizeof(err));
    tb_server_opts_t so = {.cfg = cfg, .stats = &stats, .bridge = bridge};
    if (!bridge || !(server = tb_server_create(&so, err, sizeof(err)))) {
        tb_log(TB_LOG_ERROR, "cannot start", "error=\"%s\"", err);
        tb_bridge_destroy(bridge);
        return 1;
    }
    running_t running = {.bridge = bridge, .server = server};
    tb_ingest_opts_t io = {.cfg = cfg,
                           .queue = tb_bridge_queue(bridge),
                           .stats = &stats,
                           .wake = tb_bridge_wake,
                           .wake_arg = bridge};
    if (!(ingest = tb_ingest_create(&io, err, sizeof(err))) || tb_ingest_start(ingest)) {
        tb_log(TB_LOG_ERROR, "cannot start mqtt", "error=\"%s\"", ingest ? "thread" : err);
        goto done;
    }
    if (!(sig = tb_signals_start(on_signal, &running))) {
        tb_log(TB_LOG_ERROR, "cannot start", "error=\"signal thread\"");
        goto done;
    }
    /* The broker: mqtt.hosts' first node, or mqtt.host:mqtt.port. */
    if (cfg->mqtt.n_hosts)
        snprintf(broker, sizeof(broker), "%s", cfg->mqtt.hosts[0]);
    else
        snprintf(broker, sizeof(broker), "%s:%d", cfg->mqtt.host, cfg->mqtt.port);
    tb_log(TB_LOG_INFO, "listening", "host=%s port=%d reuse_port=%s ws=/ws mqtt=%s mqtt_nodes=%zu",
           cfg->listen.host, tb_server_port(server), cfg->listen.reuse_port ? "true" : "false",
           broker, cfg->mqtt.n_hosts ? cfg->mqtt.n_hosts : 1);
    rc = tb_server_run(server) ? 1 : 0;
    tb_log(TB_LOG_INFO, "stopping", NULL);
    /* MQTT first: what arrives from now on stays with the broker for the persistent session,
     * and what was already acknowledged is still routed to the clients before they close. */
    tb_ingest_stop(ingest);
    tb_server_drain(server);
done:
    tb_signals_stop(sig);
    tb_ingest_stop(ingest);
    tb_server_destroy(server);
    tb_ingest_destroy(ingest);
    tb_bridge_destroy(bridge);
    return rc;
}

int main(int argc, char **argv)
{
    options_t o;
    tb_config_t cfg;
    char err[TB_CONFIG_ERR_LEN];
    tb_auth_t *auth;
    int rc;
    /* Before any thread exists, so that every thread inherits the mask (see signals.h). */
    if (tb_signals_block()) {
        perror("telebridge: signals");
        return 1;
    }
    rc = parse_args(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : EXIT_USAGE;
    memset(&cfg, 0, sizeof(cfg));
    rc = 1;
    if (load_config(&o, &cfg, err, sizeof(err)))
        goto fail;
    tb_log_set_level(cfg.log_level);
    if (!(auth = tb_auth_create(&cfg.auth, err, sizeof(err))))
        goto fail;
    if (o.check_only) {
        tb_auth_destroy(auth);
        rc = print_effective(&cfg);
    } else if ((rc = serve(&o, &cfg, auth)) == 0) {
        tb_log(TB_LOG_INFO, "stopped", NULL);
    }
    tb_config_free(&cfg);
    return rc;
fail:
    fprintf(stderr, "telebridge: %s\n", err);
    tb_log(TB_LOG_ERROR, "invalid configuration", NULL);
    tb_config_free(&cfg);
    return 1;
}
