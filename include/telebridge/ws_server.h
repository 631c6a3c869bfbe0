/*
 * ws_server — the libwebsockets transport: one context, one vhost, one protocol serving both the
 * WebSocket endpoint (/ws, /api/v1/ws) and the HTTP endpoints, on the service thread; with
 * listen.web_root set, lws's file mount at "/" serves that folder's files first (the dashboard)
 * and passes paths without a file on to the HTTP endpoints. tb_server_create() fails when
 * web_root is longer than lws's path buffer allows.
 *
 * lws runs on a libev loop (epoll) that the server creates and the service thread runs in
 * tb_server_run(); lws loads its libev plugin for it, and tb_server_create() fails with a message
 * naming the package (libwebsockets-evlib-ev) when that plugin is missing.
 *
 * It owns the lws context, its loop, the deflater and its write buffers, and nothing of the
 * application: it borrows the bridge (bridge.h), attaching itself in tb_server_create(), and
 * hands each wake-up of its loop to tb_bridge_service(). The bridge must outlive the server.
 * Its files share src/ws_internal.h.
 *
 * Threads: tb_server_request_stop() is the one function here that may be called from another
 * thread. It is not async-signal-safe (lws_cancel_service() may log): call it from a thread,
 * as main does from its signal thread (signals.h), never from a signal handler.
 */
#ifndef TELEBRIDGE_WS_SERVER_H
#define TELEBRIDGE_WS_SERVER_H

#include <stddef.h>

#include "telebridge/bridge.h"
#include "telebridge/config.h"
#include "telebridge/stats.h"

/* Longest a graceful stop waits for clients to take their close frames, in ms. */
#define TB_SERVER_DRAIN_MS 3000

typedef struct tb_server tb_server_t;

typedef struct {
    const tb_config_t *cfg; /* must outlive the server */
    tb_stats_t *stats;      /* must outlive the server */
    tb_bridge_t *bridge;    /* not yet attached; must outlive the server */
} tb_server_opts_t;

/* Attaches to the bridge (tb_bridge_attach()), creates the context and starts listening. NULL
 * with a message in err (errlen bytes); the bridge may then hold a hub, freed with it. */
tb_server_t *tb_server_create(const tb_server_opts_t *opts, char *err, size_t errlen);
/* The port actually listened on (useful with port 0). */
int tb_server_port(const tb_server_t *s);

/* THREAD-SAFE. Asks run() to return (the graceful close is tb_server_drain()). */
void tb_server_request_stop(tb_server_t *s);

/* Serves until a stop is requested. Returns 0, or -1 when the event loop failed. On a stop
 * request the shared listener of listen.reuse_port is closed before it returns, so that the
 * other processes on the port take the new connections. */
int tb_server_run(tb_server_t *s);

/*
 * The graceful stop, after run() returned and once the producer has stopped (so nothing it
 * acknowledged to the broker is lost): refuses new connections with 503, routes what is still
 * queued, then closes every WebSocket with 1001 after its queued frames; all within
 * TB_SERVER_DRAIN_MS.
 */
void tb_server_drain(tb_server_t *s);

/* Closes every connection (through the bridge's hub) and frees what the server owns; before
 * tb_bridge_destroy(). NULL is a no-op. */
void tb_server_destroy(tb_server_t *s);

#endif
