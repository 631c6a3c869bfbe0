/*
 * ws_server — the libwebsockets side: one context, one vhost, one protocol serving both the
 * WebSocket endpoint (/ws, /api/v1/ws) and the HTTP endpoints, on the service thread; with
 * listen.web_root set, lws's file mount at "/" serves that folder's files first (the dashboard)
 * and passes paths without a file on to the HTTP endpoints. tb_server_create() fails when
 * web_root is longer than lws's path buffer allows.
 *
 * lws runs on a libev loop (epoll) that the server creates and the service thread runs in
 * tb_server_run(); lws loads its libev plugin for it, and tb_server_create() fails with a message
 * naming the package (libwebsockets-evlib-ev) when that plugin is missing.
 *
 * It owns the hub and the MQTT→hub queue. The queue's producer side belongs to whoever the
 * caller hands it to (the MQTT ingest thread). tb_server_wake(), tb_server_request_stop() and
 * tb_server_request_reload() are the only functions here that may be called from another
 * thread. None is async-signal-safe (lws_cancel_service() may log): call them from a thread,
 * as main does from its signal thread (signals.h), never from a signal handler.
 */
#ifndef TELEBRIDGE_WS_SERVER_H
#define TELEBRIDGE_WS_SERVER_H

#include <stddef.h>

#include "telebridge/auth.h"
#include "telebridge/config.h"
#include "telebridge/groups.h"
#include "telebridge/queue.h"
#include "telebridge/stats.h"

/* Capacity of the MQTT → hub queue, in messages. */
#define TB_SERVER_QUEUE_CAP 16384
/* Longest a graceful stop waits for clients to take their close frames, in ms. */
#define TB_SERVER_DRAIN_MS 3000

typedef struct tb_server tb_server_t;

/* What a reload hands over; the server takes all of it, whether it applies it or not. */
typedef struct {
    tb_groups_t *groups;
    tb_auth_t *auth;
    tb_config_alert_t *alerts; /* freed with tb_alerts_free() */
    size_t n_alerts;
} tb_server_reload_t;

/*
 * Reload hook, run on the service thread after tb_server_request_reload(): re-reads what may
 * change without a restart. Returns 0 with every member of *out set, or -1 with a message in
 * err (errlen bytes) and nothing in *out. The server then applies all of it or, when
 * the hub refuses the alert rules (tb_hub_set_alerts()), none of it.
 */
typedef int (*tb_server_reload_fn)(void *arg, tb_server_reload_t *out, char *err, size_t errlen);

typedef struct {
    const tb_config_t *cfg;     /* must outlive the server */
    tb_stats_t *stats;          /* must outlive the server */
    tb_auth_t *auth;            /* taken by the server, even when create fails */
    tb_server_reload_fn reload; /* NULL: SIGHUP-style reloads are refused */
    void *reload_arg;
} tb_server_opts_t;

/* Creates the context and starts listening. NULL with a message in err (errlen bytes). */
tb_server_t *tb_server_create(const tb_server_opts_t *opts, char *err, size_t errlen);
/* The port actually listened on (useful with port 0). */
int tb_server_port(const tb_server_t *s);
tb_queue_t *tb_server_queue(tb_server_t *s);

/* Wakes the service loop; safe from any thread. arg is the tb_server_t. */
void tb_server_wake(void *arg);
/* Asks run() to return after a graceful close; safe from any thread. */
void tb_server_request_stop(tb_server_t *s);
/* Asks the service thread to call the reload hook; safe from any thread. */
void tb_server_request_reload(tb_server_t *s);

/* Serves until a stop is requested. Returns 0, or -1 when the event loop failed. */
int tb_server_run(tb_server_t *s);

/*
 * The graceful stop, after run() returned and once the producer has stopped (so nothing it
 * acknowledged to the broker is lost): refuses new connections with 503, routes what is still
 * queued, then closes every WebSocket with 1001 after its queued frames; all within
 * TB_SERVER_DRAIN_MS.
 */
void tb_server_drain(tb_server_t *s);

/* Frees everything, dropping messages still queued. Call after the producer has stopped. */
void tb_server_destroy(tb_server_t *s);

#endif
