/*
 * bridge — the application behind the transport: it owns the hub, the MQTT → hub queue, the
 * verifier (auth), the tickets, the per-address handshake limiter and the HTTP endpoints'
 * context; it applies a reload as one transaction and routes what the MQTT thread queued into
 * the hub. It knows nothing of libwebsockets: the transport (ws_server.h) attaches itself with
 * tb_bridge_attach() and calls tb_bridge_service() on each wake-up of its loop.
 *
 * Life: tb_bridge_create() (no hub yet) → tb_bridge_attach() by the transport (the hub is
 * created with the transport's hooks) → serving → the transport is destroyed (it closes its
 * connections through the hub) → tb_bridge_destroy().
 *
 * Ownership: the bridge owns everything it creates and the verifier it is given (from create
 * on, even when create fails; a reload's verifier from the reload on). It is the one owner of
 * the verifier in use: the hub and the HTTP endpoints borrow it, and the bridge updates both
 * when a reload replaces it. Pointers returned by the accessors are borrowed: the hub, queue,
 * tickets and limiter live until tb_bridge_destroy(); the verifier until the next reload.
 *
 * Threads: every function runs on the service thread, except the two marked THREAD-SAFE:
 * tb_bridge_wake() (the MQTT thread's wake-up) and tb_bridge_request_reload() (the signal
 * thread's). Neither is async-signal-safe: call them from a thread, never a signal handler.
 */
#ifndef TELEBRIDGE_BRIDGE_H
#define TELEBRIDGE_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "telebridge/auth.h"
#include "telebridge/config.h"
#include "telebridge/groups.h"
#include "telebridge/http_api.h"
#include "telebridge/hub.h"
#include "telebridge/queue.h"
#include "telebridge/ratelimit.h"
#include "telebridge/stats.h"
#include "telebridge/ticket.h"

/* Capacity of the MQTT → hub queue, in messages. */
#define TB_BRIDGE_QUEUE_CAP 16384

typedef struct tb_bridge tb_bridge_t;

/* What a reload hands over; the bridge takes all of it, whether it applies it or not. */
typedef struct {
    tb_groups_t *groups;
    tb_auth_t *auth;
    tb_config_alert_t *alerts; /* freed with tb_alerts_free() */
    size_t n_alerts;
} tb_bridge_reload_t;

/*
 * Reload hook, run on the service thread after tb_bridge_request_reload(): re-reads what may
 * change without a restart. Returns 0 with every member of *out set, or -1 with a message in
 * err (errlen bytes) and nothing in *out. The bridge then applies all of it or, when
 * the hub refuses the alert rules (tb_hub_set_alerts()), none of it.
 */
typedef int (*tb_bridge_reload_fn)(void *arg, tb_bridge_reload_t *out, char *err, size_t errlen);

typedef struct {
    const tb_config_t *cfg;     /* must outlive the bridge */
    tb_stats_t *stats;          /* must outlive the bridge */
    tb_auth_t *auth;            /* taken by the bridge, even when create fails */
    tb_bridge_reload_fn reload; /* NULL: reloads are refused */
    void *reload_arg;
} tb_bridge_opts_t;

/* What the transport hands the bridge; every hook gets `transport` as its first argument. */
typedef struct {
    tb_hub_ops_t ops; /* given to the hub */
    void *transport;
    /* Around each batch of routed messages: frames the hub queues between the two may be
     * written at batch_end, all at once. */
    void (*batch_start)(void *transport);
    void (*batch_end)(void *transport);
    /* THREAD-SAFE: makes the service thread call tb_bridge_service() soon. */
    void (*wake)(void *transport);
} tb_bridge_transport_t;

/* Creates the queue, the tickets and the limiter, taking opts->auth. NULL with a message in
 * err (errlen bytes); opts->auth is freed then. */
tb_bridge_t *tb_bridge_create(const tb_bridge_opts_t *opts, char *err, size_t errlen);
/* Creates the hub on the transport's hooks (*t is copied); once, before serving. 0, or -1
 * with a message in err (errlen bytes), the bridge unchanged. */
int tb_bridge_attach(tb_bridge_t *b, const tb_bridge_transport_t *t, char *err, size_t errlen);
/* Frees everything, dropping messages still queued. After the transport and the producer
 * have stopped. NULL is a no-op. */
void tb_bridge_destroy(tb_bridge_t *b);

/* NULL before tb_bridge_attach(). */
tb_hub_t *tb_bridge_hub(const tb_bridge_t *b);
/* The producer side belongs to whoever the caller hands it to (the MQTT ingest thread). */
tb_queue_t *tb_bridge_queue(const tb_bridge_t *b);
/* The verifier in use (replaced by a reload). */
const tb_auth_t *tb_bridge_auth(const tb_bridge_t *b);
tb_ticket_store_t *tb_bridge_tickets(const tb_bridge_t *b);
/* NULL when limits.handshakes_per_ip_per_s is 0. */
tb_ratelimit_t *tb_bridge_limiter(const tb_bridge_t *b);
/* What the HTTP endpoints read and act on (http_api.h). NULL before tb_bridge_attach(). */
tb_http_ctx_t *tb_bridge_http(tb_bridge_t *b);

/*
 * THREAD-SAFE. The MQTT thread's wake-up (tb_ingest_opts_t.wake; arg is the tb_bridge_t):
 * asks the transport to call tb_bridge_service() soon.
 */
void tb_bridge_wake(void *arg);
/* THREAD-SAFE. Asks for the reload hook to run on the service thread (SIGHUP). */
void tb_bridge_request_reload(tb_bridge_t *b);

/*
 * On each wake-up of the service loop: runs a requested reload, then routes what the MQTT
 * thread queued, a bounded batch at a time (half limits.send_queue_messages, so one batch alone
 * never makes a reader that keeps up look like a slow consumer); when more is waiting after a
 * batch it wakes the transport and returns, so sockets are serviced in between. No-op before
 * tb_bridge_attach().
 */
void tb_bridge_service(tb_bridge_t *b);

#endif
