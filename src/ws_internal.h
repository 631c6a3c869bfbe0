/*
 * ws_internal — what the files of the transport share (ws_server.h is its public side):
 *
 *   ws_server.c     the lws context, its protocol callbacks (dispatch), the receive path, the
 *                   dashboard's file mount, the libev loop, life and stop;
 *   ws_http.c       HTTP answers and the POST body: writing responses, the GET/POST endpoints;
 *   ws_handshake.c  the handshake policy: request size limits, credentials, origin, rate,
 *                   capacity, and the permessage-deflate negotiation; its pure parts
 *                   (tb_ws_handshake_content_length, _bearer, _oversize, the refusal mapping)
 *                   have unit tests (tests/unit/test_ws_handshake.c);
 *   ws_write.c      the write path: raw frame writes, pings, closes, the batch flush, and the
 *                   hub's I/O hooks.
 *
 * Everything here runs on the service thread only (inside lws callbacks or the loop). The
 * application (hub, queue, verifier, tickets, limiter) belongs to the bridge (bridge.h); the
 * transport borrows it and caches only the hub, which lives as long as the bridge.
 */
#ifndef TELEBRIDGE_WS_INTERNAL_H
#define TELEBRIDGE_WS_INTERNAL_H

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "telebridge/bridge.h"
#include "telebridge/stats.h"
#include "telebridge/ws_server.h"
#include "telebridge/wsdeflate.h"

/* Bytes of queued frames gathered into one write (the service thread's one scratch buffer). */
#define WS_COALESCE_MAX (64 * 1024)
/*
 * What a request may carry (docs/security.md → Abuse): a URI with its query of HTTP_URI_MAX
 * bytes (room for a token of TB_AUTH_TOKEN_MAX in ?token=), HTTP_HEADERS_MAX in all; past them
 * the answer is 414 or 431. lws closes a request that overflows its own header store without a
 * word, so that store (HTTP_HEADER_DATA_MAX, ws_server.c) is kept well above both.
 */
#define HTTP_URI_MAX (TB_AUTH_TOKEN_MAX + 1024)
#define HTTP_HEADERS_MAX (TB_AUTH_TOKEN_MAX + 4096)
#define URI_MAX 256
#define PEER_MAX 64
/* RFC 7692 §6: RSV1 marks the first frame of a compressed message. */
#define WS_RSV1 0x40
/* Digits of a Content-Length header we read (TB_HTTP_BODY_MAX has far fewer). */
#define CONTENT_LENGTH_MAX_DIGITS 20

struct tb_server {
    const tb_config_t *cfg;
    tb_stats_t *stats;
    tb_bridge_t *bridge; /* borrowed: the application (bridge.h) */
    tb_hub_t *hub;       /* the bridge's, cached: it lives as long as the bridge */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_vhost *admin; /* the admin listener; NULL when admin.port is 0 */
    struct ev_loop *loop;    /* the service thread's loop, lws's "foreign" libev loop */
    void *loops[1];          /* {loop}, as lws_create_context() takes it */
    ev_timer deadline;       /* wakes tb_server_drain()'s last wait at its deadline */
    int listen_fd;           /* listen.reuse_port: the shared listener (ws_listen.c); else -1 */
    int listen_port;         /* its port, kept after it closes */
    ev_io accept_io;         /* its readiness */
    ev_timer accept_pause;   /* restarts accept_io after a pause for descriptors */
    tb_wsdeflate_t *z;       /* the one deflater and inflater; NULL: compression off */
    unsigned char *scratch;  /* LWS_PRE + scratch_cap bytes for gathered writes */
    size_t scratch_cap;      /* >= WS_COALESCE_MAX */
    lws_sorted_usec_list_t tick;
    lws_sorted_usec_list_t conflate; /* tb_hub_send_held()'s next due time (ops.wake_at) */
    struct lws_http_mount web;       /* the file mount at "/", unused without listen.web_root */
    atomic_int stop;
    bool draining;
    bool guarded;         /* this server started the frame guard (wsguard.h) */
    bool routing;         /* inside a bridge batch: want_write defers to the batch's flush */
    struct lws **pending; /* connections given frames by the batch being routed */
    size_t n_pending;
    size_t cap_pending;
    /* The delivery latency being counted (ws_write.c): the frames of arrival stamp lat_key
     * the hub counted as sent since it counted lat_from, written since the clock read lat_now;
     * one histogram observation when the stamp changes. */
    int64_t lat_now, lat_key;
    uint64_t lat_from;
};

/* The assembly buffer of a multi-chunk client message or of a POST body. */
typedef struct {
    uint32_t len;
    uint32_t cap; /* limits.max_message_bytes, or a POST body's declared length */
    char data[];
} tb_ws_rxbuf_t;

/* Per-WebSocket state lws allocates for us, one malloc each. Kept small, since it exists for
 * every connection: at most 24 bytes, glibc's 32-byte chunk (the lengths of what is being
 * assembled live in the tb_ws_rxbuf_t, which exists only meanwhile). */
typedef struct {
    tb_conn_t *conn;
    tb_ws_rxbuf_t *rx;   /* while a message or a POST body is assembled, else NULL */
    bool deflate;        /* permessage-deflate negotiated: RSV1 allowed on client messages */
    bool rx_deflated;    /* the client message being received is compressed (RSV1) */
    bool closing;        /* a Close frame was sent or answered: nothing more is written */
    bool ping_due;       /* the hub asked for a ping: the next WRITEABLE sends it */
    uint8_t window_bits; /* deflate: the client's server_max_window_bits (else 15) */
} pss_t;
_Static_assert(sizeof(pss_t) <= 24, "pss_t fits a 32-byte malloc chunk");

/* A new, empty rx buffer of cap bytes (the caller frees it, tb_ws_rx_free()), or NULL when out
 * of memory. */
static inline tb_ws_rxbuf_t *tb_ws_rx_new(size_t cap)
{
    tb_ws_rxbuf_t *b = malloc(sizeof(*b) + cap);
    if (b)
        *b = (tb_ws_rxbuf_t){.cap = (uint32_t)cap};
    return b;
}

/* Bytes assembled in pss's rx buffer (0 without one). */
static inline uint32_t tb_ws_rx_len(const pss_t *pss)
{
    return pss->rx ? pss->rx->len : 0;
}

static inline void tb_ws_rx_free(pss_t *pss)
{
    free(pss->rx);
    pss->rx = NULL;
}

/* ---- ws_listen.c: the shared listener (listen.reuse_port) ----------------------------------- */

/* Opens listen.host:listen.port with SO_REUSEADDR and SO_REUSEPORT and accepts on s->loop,
 * handing each connection to s->vhost (created with no listener of its own). 0, or -1 with
 * "cannot listen on HOST:PORT: reason" in err. */
int tb_ws_listen_open(tb_server_t *s, char *err, size_t errlen);
/* "cannot listen on HOST:PORT: reason" into err after lws failed to listen there (without
 * reuse_port), the reason found by binding a socket the same way (the address in use, not
 * ours…); without one when that bind works. */
void tb_ws_listen_explain(const tb_server_t *s, char *err, size_t errlen);
/* Stops accepting and closes the socket: new connections go to the other processes on the
 * port. No-op when not open. */
void tb_ws_listen_close(tb_server_t *s);

/* ---- ws_http.c: each returns what the lws callback returns (0 goes on, -1 drops) ---------- */

/*
 * Writes a complete JSON response, taking body (NULL: a 500, its maker ran out of memory).
 * upgrade: the answer refuses a WebSocket handshake. 0, or -1 when the connection must be
 * dropped.
 */
int tb_ws_http_send(struct lws *wsi, int status, json_t *body, bool upgrade);
/* Answers and ends the HTTP transaction (the connection may serve the next one). */
int tb_ws_http_answer(struct lws *wsi, int status, json_t *body);
/* Answers {"error": code} and closes the connection, leaving a body it did not want unread. */
int tb_ws_http_refuse(struct lws *wsi, int status, const char *code);
/* LWS_CALLBACK_HTTP on the public listener: a POST's start, or a GET. */
int tb_ws_http_on_http(tb_server_t *s, struct lws *wsi, pss_t *pss, const char *path);
/* A GET on either listener (admin: the admin listener's, no credential needed). */
int tb_ws_http_on_get(tb_server_t *s, struct lws *wsi, const char *path, bool admin);
/* LWS_CALLBACK_HTTP_BODY: len bytes more of the POST body. */
int tb_ws_http_on_post_body(pss_t *pss, const void *in, size_t len);
/* LWS_CALLBACK_HTTP_BODY_COMPLETION: answers the POST and frees its body. */
int tb_ws_http_on_post_complete(tb_server_t *s, struct lws *wsi, pss_t *pss);

/* ---- ws_handshake.c: the pure policy ---------------------------------------------------- */

/* An answer refusing a request: its HTTP status, its {"error": code}, the counted reason. */
typedef struct {
    int status;
    const char *code;
    tb_refuse_reason_t reason;
} tb_ws_refusal_t;

/*
 * The Content-Length value s[0..n): 0 with the length in *out, or -1 when empty, longer than
 * CONTENT_LENGTH_MAX_DIGITS or not a plain decimal number. Past TB_HTTP_BODY_MAX the value
 * saturates (it is refused anyway), so no digit string can wrap around to a small length.
 */
int tb_ws_handshake_content_length(const char *s, size_t n, uint64_t *out);
/* The credential of an Authorization header's value "Bearer …" (scheme case-insensitive,
 * spaces after it skipped): a pointer into header, or NULL when none. */
const char *tb_ws_handshake_bearer(const char *header);
/* A request of path_len bytes of path, args_len of query ("&" counted, not "?"; <= 0: none),
 * headers bytes in all: TB_REFUSE_NONE when it fits HTTP_URI_MAX and HTTP_HEADERS_MAX, else
 * why (the URI first). */
tb_refuse_reason_t tb_ws_handshake_oversize(size_t path_len, int args_len, size_t headers);
/* The answers to a request over a size limit (why from _oversize), a ticket that does not
 * redeem (a TB_TICKET_* error) and a token that does not verify (a TB_AUTH_E_* error). */
tb_ws_refusal_t tb_ws_handshake_size_refusal(tb_refuse_reason_t why);
tb_ws_refusal_t tb_ws_handshake_ticket_refusal(int rc);
tb_ws_refusal_t tb_ws_handshake_auth_refusal(int rc);

/* ---- ws_handshake.c: on the connection -------------------------------------------------- */

bool tb_ws_handshake_is_ws_path(const char *path);
/* The credential of "Authorization: Bearer …" copied into buf (len bytes), or NULL. */
const char *tb_ws_handshake_find_bearer(struct lws *wsi, char *buf, size_t len);
/* Refuses a request over the size limits (414/431), upgrade or not: 0 when it fits, else what
 * the callback returns (1: an upgrade's refusal ends the transaction; -1: closes). */
int tb_ws_handshake_refuse_oversize(tb_server_t *s, struct lws *wsi, bool upgrade);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 lets the upgrade on (its grant rides on the wsi), else
 * the callback's value after refusing. */
int tb_ws_handshake_confirm_upgrade(tb_server_t *s, struct lws *wsi);
/* LWS_CALLBACK_ESTABLISHED: the frame guard and the hub take the connection. 0, or -1. */
int tb_ws_handshake_established(tb_server_t *s, struct lws *wsi, pss_t *pss);
/* The frame guard's verdict (tb_wsguard_start()'s hook); arg is the wsi. */
void tb_ws_handshake_guard_fail(void *arg, int code, const char *reason);
/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 accepts permessage-deflate, 1 declines. */
int tb_ws_handshake_confirm_extension(const tb_server_t *s, struct lws *wsi, pss_t *pss,
                                      const char *name);
/* LWS_CALLBACK_ADD_HEADERS: the permessage-deflate answer's parameters. 0, or -1. */
int tb_ws_handshake_add_headers(const pss_t *pss, struct lws_process_html_args *args);
/* The extension table for lws_context_creation_info.extensions (with compression on). */
extern const struct lws_extension tb_ws_handshake_extensions[];

/* ---- ws_write.c ---------------------------------------------------------------------------- */

/* Asks lws to close with code (it sends the Close frame when the callback returns -1, then
 * waits for the client's); from here on nothing else is written. Returns -1. */
int tb_ws_write_close(struct lws *wsi, pss_t *pss, int code, const char *why);
/* The scratch buffer with room for len bytes after LWS_PRE, grown when needed. NULL when out
 * of memory (the old one kept). */
unsigned char *tb_ws_write_scratch(tb_server_t *s, size_t len);
/* LWS_CALLBACK_SERVER_WRITEABLE. 0, or -1 to close. */
int tb_ws_write_on_writeable(tb_server_t *s, struct lws *wsi, pss_t *pss);
/* The hooks the bridge hands the hub and calls around its batches (bridge.h); wake is the
 * transport's thread-safe one. */
void tb_ws_write_transport(tb_server_t *s, tb_bridge_transport_t *t);

#endif
