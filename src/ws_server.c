/* ws_server — the libwebsockets transport; see include/telebridge/ws_server.h. */
#include "telebridge/ws_server.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "telebridge/http_api.h"
#include "telebridge/hub.h"
#include "telebridge/log.h"
#include "telebridge/msg.h"
#include "telebridge/ratelimit.h"
#include "telebridge/ticket.h"
#include "telebridge/util.h"
#include "telebridge/wsdeflate.h"
#include "telebridge/wsguard.h"

_Static_assert(LWS_PRE <= TB_FRAME_HEADROOM, "frames must leave LWS_PRE bytes of headroom");

/*
 * lws allocates rx_buffer_size bytes per connection for its whole life, so it is kept small
 * (a subscribe naming a few rooms fits; what it saves per idle connection is in
 * docs/performance.md → Memory per idle connection); a client message longer than one chunk is
 * assembled in a buffer that exists only while that message arrives (at most
 * limits.max_message_bytes).
 */
#define WS_RX_CHUNK 128
/*
 * lws caps every send() at tx_packet_size (defaulting to rx_buffer_size), which would
 * split each frame into several syscalls and poll rounds. It is only a cap, nothing is
 * allocated for it, so it is set above any frame the bridge builds.
 */
#define WS_TX_PACKET_MAX (1u << 20)
/* Bytes of queued frames gathered into one write (the service thread's one scratch buffer). */
#define WS_COALESCE_MAX (64 * 1024)
/*
 * What a request may carry (docs/security.md → Abuse): a URI with its query of HTTP_URI_MAX
 * bytes (room for a token of TB_AUTH_TOKEN_MAX in ?token=), HTTP_HEADERS_MAX in all; past them
 * the answer is 414 or 431. lws closes a request that overflows its own header store without a
 * word, so that store (HTTP_HEADER_DATA_MAX, the most its 16-bit setting holds) is kept well
 * above both: only a request of more than 64 KiB is still dropped unanswered. Each store exists
 * only while a request is parsed (at most HTTP_HEADER_POOL at once), never per connection.
 */
#define HTTP_URI_MAX (TB_AUTH_TOKEN_MAX + 1024)
#define HTTP_HEADERS_MAX (TB_AUTH_TOKEN_MAX + 4096)
#define HTTP_HEADER_DATA_MAX 65535
#define HTTP_HEADER_POOL 64
#define HTTP_HEADERS_OUT_MAX 512
/* Seconds a connection asked to close may take to take its close frame. */
#define CLOSE_GRACE_S 2
/* The payload of the bridge's pings (a client's pong echoes it). */
#define PING_PAYLOAD "tb"
/* Most queue messages routed per wake-up before the loop services sockets again. */
#define DRAIN_BATCH_MAX 4096
/* First size of the array of connections a batch gave frames to (doubled as needed). */
#define PENDING_MIN 64
#define TICK_US (1000 * LWS_US_PER_MS)
#define URI_MAX 256
#define PEER_MAX 64
/*
 * The dashboard's files are served by lws's own file mount at "/". lws builds "<root>/<uri>"
 * in a 256-byte buffer, so the root is bounded to leave the URI room.
 */
#define WEB_ROOT_MAX 160
#define WEB_INDEX "index.html"
/* Browsers may reuse a file this long, then revalidate it with its ETag (304 when unchanged). */
#define WEB_CACHE_MAX_AGE_S 60

/* Digits of a Content-Length header we read (TB_HTTP_BODY_MAX has far fewer). */
#define CONTENT_LENGTH_MAX_DIGITS 20
/* Retry-After of a 429: the handshake limiter refills at least one token a second. */
#define RETRY_AFTER_S "1"

struct tb_server {
    const tb_config_t *cfg;
    tb_stats_t *stats;
    tb_auth_t *auth;
    tb_server_reload_fn reload;
    void *reload_arg;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_vhost *admin; /* the admin listener; NULL when admin.port is 0 */
    struct ev_loop *loop;    /* the service thread's loop, lws's "foreign" libev loop */
    void *loops[1];          /* {loop}, as lws_create_context() takes it */
    ev_timer deadline;       /* wakes tb_server_drain()'s last wait at its deadline */
    tb_queue_t *queue;
    tb_hub_t *hub;
    tb_http_ctx_t http;
    tb_tickets_t *tickets;
    tb_ratelimit_t *handshakes; /* per-IP handshake limiter; NULL when off */
    tb_wsdeflate_t *z;          /* the one deflater and inflater; NULL: compression off */
    unsigned char *scratch;     /* LWS_PRE + scratch_cap bytes for gathered writes */
    size_t scratch_cap;         /* >= WS_COALESCE_MAX */
    lws_sorted_usec_list_t tick;
    struct lws_http_mount web; /* the file mount at "/", unused without listen.web_root */
    atomic_int stop;
    atomic_int reload_requested;
    bool draining;
    bool guarded;         /* this server started the frame guard (wsguard.h) */
    bool routing;         /* inside drain_queue: want_write defers to flush_pending */
    struct lws **pending; /* connections given frames by the batch being routed */
    size_t n_pending;
    size_t cap_pending;
};

/* Per-WebSocket state lws allocates for us (kept small: it exists for every connection). */
typedef struct {
    tb_conn_t *conn;
    char *rx; /* assembly buffer of a multi-chunk message or of a POST body, else NULL */
    uint32_t rx_len;
    uint32_t rx_cap;     /* a POST body's declared length */
    bool deflate;        /* permessage-deflate negotiated: RSV1 allowed on client messages */
    bool rx_deflated;    /* the client message being received is compressed (RSV1) */
    bool closing;        /* a Close frame was sent or answered: nothing more is written */
    bool ping_due;       /* the hub asked for a ping: the next WRITEABLE sends it */
    uint8_t window_bits; /* deflate: the client's server_max_window_bits (else 15) */
} pss_t;

/* ---- HTTP answers ------------------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
    switch (status) {
    case TB_HTTP_UNAUTHORIZED:
        return "Unauthorized";
    case TB_HTTP_FORBIDDEN:
        return "Forbidden";
    case TB_HTTP_NOT_FOUND:
        return "Not Found";
    case TB_HTTP_TOO_MANY:
        return "Too Many Requests";
    case TB_HTTP_URI_TOO_LONG:
        return "URI Too Long";
    case TB_HTTP_HEADERS_TOO_LARGE:
        return "Request Header Fields Too Large";
    case TB_HTTP_SERVER_ERROR:
        return "Internal Server Error";
    default:
        return "Service Unavailable";
    }
}

/*
 * The status line. lws records a request's HTTP version only on its plain-HTTP path, so for an
 * upgrade request it would answer "HTTP/1.0", which WebSocket clients reject as malformed; a
 * handshake is always HTTP/1.1, so the refusal's status line is written here.
 */
static int status_line(struct lws *wsi, int status, bool upgrade, unsigned char **p,
                       unsigned char *end)
{
    if (!upgrade)
        return lws_add_http_header_status(wsi, (unsigned)status, p, end);
    int n = lws_snprintf((char *)*p, (size_t)(end - *p), "HTTP/1.1 %d %s\x0d\x0a", status,
                         reason_phrase(status));
    *p += n;
    return *p >= end ? -1 : 0;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Writes the headers of a response of len bytes of type ctype. 0, or -1. */
static int write_headers(struct lws *wsi, int status, const char *ctype, size_t len, bool upgrade)
{
    unsigned char hdr[LWS_PRE + HTTP_HEADERS_OUT_MAX];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    if (status_line(wsi, status, upgrade, &p, end) ||
        add_header(wsi, "content-type:", ctype, &p, end) ||
        lws_add_http_header_content_length(wsi, len, &p, end) ||
        add_header(wsi, "cache-control:", "no-store", &p, end))
        return -1;
    if (status == TB_HTTP_UNAUTHORIZED && add_header(wsi, "www-authenticate:", "Bearer", &p, end))
        return -1;
    if (status == TB_HTTP_TOO_MANY && add_header(wsi, "retry-after:", RETRY_AFTER_S, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end);
}

/* Writes a complete response whose len bytes of body are at out + LWS_PRE. 0, or -1. */
static int http_write(struct lws *wsi, int status, const char *ctype, unsigned char *out,
                      size_t len, bool upgrade)
{
    if (write_headers(wsi, status, ctype, len, upgrade))
        return -1;
    return lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) < (int)len ? -1 : 0;
}

/*
 * Writes a complete JSON response, taking body. upgrade: the answer refuses a WebSocket
 * handshake. 0, or -1 when the connection must be dropped.
 */
static int http_send(struct lws *wsi, int status, json_t *body, bool upgrade)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;
    unsigned char *out = malloc(LWS_PRE + len + 1);
    int rc = -1;
    json_decref(body);
    if (!body)
        status = TB_HTTP_SERVER_ERROR; /* the endpoint ran out of memory making it */
    if (!text || !out)
        goto done;
    memcpy(out + LWS_PRE, text, len);
    rc = http_write(wsi, status, "application/json", out, len, upgrade);
done:
    free(out);
    free(text);
    return rc;
}

/* GET /metrics: the Prometheus text, built in a buffer of TB_METRICS_TEXT_MAX. 0, or -1. */
static int http_send_metrics(tb_server_t *s, struct lws *wsi)
{
    unsigned char *out = malloc(LWS_PRE + TB_METRICS_TEXT_MAX);
    size_t len = 0;
    if (!out)
        return -1;
    int status = tb_http_metrics(&s->http, (char *)out + LWS_PRE, TB_METRICS_TEXT_MAX, &len);
    if (status != TB_HTTP_OK)
        len = 0;
    int rc = http_write(wsi, status, TB_METRICS_CONTENT_TYPE, out, len, false);
    free(out);
    return rc;
}

static bool is_ws_path(const char *path)
{
    return strcmp(path, "/ws") == 0 || strcmp(path, "/api/v1/ws") == 0;
}

/* Answers and ends the HTTP transaction (the connection may serve the next one). */
static int http_answer(struct lws *wsi, int status, json_t *body)
{
    if (http_send(wsi, status, body, false))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void log_refusal(struct lws *wsi, const char *code, const char *reason)
{
    char peer[PEER_MAX];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    tb_log(TB_LOG_INFO, "handshake refused", "why=%s reason=%s peer=%s", code, reason, peer);
}

/* Answers and closes the connection, leaving a body it did not want unread. */
static int http_refuse(struct lws *wsi, int status, const char *code)
{
    http_send(wsi, status, tb_http_error(code), false);
    return -1;
}

/*
 * The declared Content-Length: 0, or -1 when absent, longer than CONTENT_LENGTH_MAX_DIGITS or
 * not a plain decimal number. Past TB_HTTP_BODY_MAX the value saturates (it is refused anyway),
 * so no digit string can wrap around to a small length.
 */
static int content_length(struct lws *wsi, uint64_t *out)
{
    char buf[CONTENT_LENGTH_MAX_DIGITS + 1];
    int n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n <= 0)
        return -1;
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        if (*out <= TB_HTTP_BODY_MAX)
            *out = *out * 10 + (uint64_t)(buf[i] - '0');
    }
    return 0;
}

/* A POST's headers arrived: checks the declared length and readies the body buffer. */
static int on_post_start(struct lws *wsi, pss_t *pss)
{
    uint64_t len;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return http_refuse(wsi, TB_HTTP_LENGTH_REQUIRED, "length_required");
    if (content_length(wsi, &len))
        return http_refuse(wsi, TB_HTTP_BAD_REQUEST, "bad_request");
    if (len > TB_HTTP_BODY_MAX)
        return http_refuse(wsi, TB_HTTP_TOO_LARGE, "body_too_large");
    free(pss->rx);
    pss->rx = len ? malloc(len) : NULL;
    if (len && !pss->rx)
        return http_refuse(wsi, TB_HTTP_SERVER_ERROR, "server_error");
    pss->rx_len = 0;
    pss->rx_cap = (uint32_t)len;
    return 0; /* lws now calls LWS_CALLBACK_HTTP_BODY, then _BODY_COMPLETION */
}

static int on_post_body(pss_t *pss, const void *in, size_t len)
{
    if (len > pss->rx_cap - pss->rx_len)
        return -1; /* lws never passes more than Content-Length; a guard, not a path */
    if (len)
        memcpy(pss->rx + pss->rx_len, in, len);
    pss->rx_len += (uint32_t)len;
    return 0;
}

/*
 * The credential of "Authorization: Bearer …" copied into buf, or NULL. A buf of
 * HTTP_HEADERS_MAX + 1 holds any header refuse_oversize let through, so a credential too long
 * to accept reaches tb_auth_verify (malformed) instead of reading as none.
 */
static const char *find_bearer(struct lws *wsi, char *buf, size_t len)
{
    static const char bearer[] = "Bearer ";
    if (lws_hdr_copy(wsi, buf, (int)len, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
        return NULL;
    if (strncasecmp(buf, bearer, sizeof(bearer) - 1) != 0)
        return NULL;
    const char *t = buf + sizeof(bearer) - 1;
    while (*t == ' ')
        t++;
    return *t ? t : NULL;
}

static int on_post_complete(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    char path[URI_MAX], auth[HTTP_HEADERS_MAX + 1], peer[PEER_MAX];
    json_t *body = NULL;
    int status = TB_HTTP_NOT_FOUND;
    tb_http_req_t req = {.path = path, .body = pss->rx, .body_len = pss->rx_len, .peer = peer};
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_POST_URI) > 0) {
        req.bearer = find_bearer(wsi, auth, sizeof(auth));
        req.now_ms = tb_now_ms();
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        status = tb_http_post(&s->http, &req, &body);
    } else {
        body = tb_http_error("not_found");
    }
    tb_wipe(auth, sizeof(auth));
    free(pss->rx);
    pss->rx = NULL;
    pss->rx_len = pss->rx_cap = 0;
    return http_answer(wsi, status, body);
}

/*
 * The request against HTTP_URI_MAX and HTTP_HEADERS_MAX: TB_REFUSE_NONE when it fits, else why.
 * lws holds the path and the query apart (its "&" counted, not its "?"), both decoded.
 */
static tb_refuse_reason_t oversize(struct lws *wsi)
{
    char *uri = NULL;
    int path = 0;
    size_t all = 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &path) < 0 || path < 0)
        path = 0;
    int args = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if ((size_t)path + (args > 0 ? 1 + (size_t)args : 0) > HTTP_URI_MAX)
        return TB_REFUSE_URI_TOO_LONG;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        int n = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        all += n > 0 ? (size_t)n : 0;
    }
    return all > HTTP_HEADERS_MAX ? TB_REFUSE_HEADERS_LARGE : TB_REFUSE_NONE;
}

/*
 * Refuses a request over the size limits, upgrade or not, with 414 or 431 and a JSON body,
 * counting and logging it. 0 when it fits; else what the callback returns (an upgrade's
 * refusal ends the transaction, a plain request's closes the connection).
 */
static int refuse_oversize(tb_server_t *s, struct lws *wsi, bool upgrade)
{
    tb_refuse_reason_t why = oversize(wsi);
    if (why == TB_REFUSE_NONE)
        return 0;
    bool uri = why == TB_REFUSE_URI_TOO_LONG;
    const char *code = uri ? "uri_too_long" : "headers_too_large";
    tb_stats_refused(s->stats, why);
    if (upgrade) {
        log_refusal(wsi, code, tb_refuse_reason_name(why));
    } else {
        char peer[PEER_MAX];
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        tb_log(TB_LOG_INFO, "request refused", "why=%s peer=%s", code, peer);
    }
    int rc = http_send(wsi, uri ? TB_HTTP_URI_TOO_LONG : TB_HTTP_HEADERS_TOO_LARGE,
                       tb_http_error(code), true);
    return upgrade && !rc ? 1 : -1;
}

/* A GET on either listener: /metrics once tb_http_gate() lets it through, else tb_http_get(). */
static int on_get(tb_server_t *s, struct lws *wsi, const char *path, bool admin)
{
    char auth[HTTP_HEADERS_MAX + 1];
    json_t *body = NULL;
    tb_http_req_t req = {.path = path, .now_ms = tb_now_ms(), .admin = admin};
    req.bearer = find_bearer(wsi, auth, sizeof(auth));
    bool metrics = strcmp(path, "/metrics") == 0;
    int status = metrics ? tb_http_gate(&s->http, &req, &body) : tb_http_get(&s->http, &req, &body);
    tb_wipe(auth, sizeof(auth));
    if (!metrics || status)
        return http_answer(wsi, status, body);
    if (http_send_metrics(s, wsi))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_http(tb_server_t *s, struct lws *wsi, pss_t *pss, const char *path)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return on_post_start(wsi, pss);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return http_answer(wsi, TB_HTTP_METHOD_NOT_ALLOWED, tb_http_error("method_not_allowed"));
    if (is_ws_path(path))
        return http_answer(wsi, TB_HTTP_BAD_REQUEST, tb_http_error("websocket_upgrade_required"));
    return on_get(s, wsi, path, false);
}

/* ---- handshake ----------------------------------------------------------------------------- */

/* A non-empty query argument ("token=", "ticket=") copied into buf, or NULL. */
static const char *query_arg(struct lws *wsi, const char *name, char *buf, size_t len)
{
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, (int)len);
    return v && *v ? v : NULL;
}

/* Rejects an upgrade with an HTTP answer, counting it; the value to return from the callback. */
static int refuse(tb_server_t *s, struct lws *wsi, int status, const char *code,
                  tb_refuse_reason_t reason)
{
    tb_stats_refused(s->stats, reason);
    log_refusal(wsi, code, tb_refuse_reason_name(reason));
    return http_send(wsi, status, tb_http_error(code), true) ? -1 : 1;
}

/*
 * Finds and checks the credential: ?ticket=… (redeemed: one use), else ?token=…, else
 * "Authorization: Bearer …". 0 with a new grant in *grant, or the callback's return value
 * after refusing.
 */
static int check_credential(tb_server_t *s, struct lws *wsi, tb_grant_t **grant)
{
    /* Any one query argument fits (refuse_oversize bounded the URI first): a token too long to
     * accept is refused as malformed by tb_auth_verify, not mistaken for a missing one. */
    char buf[HTTP_URI_MAX + 1];
    int rc;
    const char *ticket = query_arg(wsi, "ticket=", buf, sizeof(buf));
    if (ticket) {
        rc = tb_tickets_redeem(s->tickets, ticket, strlen(ticket), tb_now_ms(), grant);
        tb_wipe(buf, sizeof(buf));
        return rc == TB_TICKET_OK ? 0
                                  : refuse(s, wsi, TB_HTTP_UNAUTHORIZED, "invalid_ticket",
                                           tb_refuse_from_ticket(rc));
    }
    const char *token = query_arg(wsi, "token=", buf, sizeof(buf));
    if (!token)
        token = find_bearer(wsi, buf, sizeof(buf));
    if (token)
        rc = tb_auth_verify(s->auth, token, strlen(token), tb_now_ms() / 1000, grant);
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= (int)sizeof(buf))
        rc = TB_AUTH_E_MALFORMED; /* longer than any token accepted */
    else
        rc = TB_AUTH_E_MISSING;
    tb_wipe(buf, sizeof(buf));
    if (rc == TB_AUTH_OK)
        return 0;
    return refuse(s, wsi, rc == TB_AUTH_E_NOMEM ? TB_HTTP_SERVER_ERROR : TB_HTTP_UNAUTHORIZED,
                  tb_auth_err_code(rc), tb_refuse_from_auth(rc));
}

static int authenticate(tb_server_t *s, struct lws *wsi)
{
    tb_grant_t *grant = NULL;
    int rc = check_credential(s, wsi, &grant);
    if (rc)
        return rc;
    /* lws frees the HTTP per-session data on upgrade, so the grant rides on the wsi itself
     * until LWS_CALLBACK_ESTABLISHED (or LWS_CALLBACK_WSI_DESTROY if it never gets there). */
    lws_set_opaque_user_data(wsi, grant);
    return 0;
}

/* limits.handshakes_per_ip_per_s: true when the peer's address may try a handshake now. */
static bool handshake_rate_ok(tb_server_t *s, struct lws *wsi)
{
    char peer[PEER_MAX];
    if (!s->handshakes)
        return true;
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    return tb_ratelimit_allow(s->handshakes, peer, tb_mono_ms());
}

/* With listen.allowed_origins set, the Origin header must be one of them (exactly). */
static bool origin_allowed(const tb_server_t *s, struct lws *wsi)
{
    char origin[URI_MAX];
    const tb_config_listen_t *l = &s->cfg->listen;
    if (l->n_allowed_origins == 0)
        return true;
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return false;
    for (size_t i = 0; i < l->n_allowed_origins; i++)
        if (strcmp(origin, l->allowed_origins[i]) == 0)
            return true;
    return false;
}

static int on_confirm_upgrade(tb_server_t *s, struct lws *wsi)
{
    char uri[URI_MAX];
    int rc = refuse_oversize(s, wsi, true);
    if (rc)
        return rc;
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || !is_ws_path(uri)) {
        log_refusal(wsi, "not_found", "path");
        return http_send(wsi, TB_HTTP_NOT_FOUND, tb_http_error("not_found"), true) ? -1 : 1;
    }
    /* Cheapest check first: a flood is turned away before any header or signature work. */
    if (!handshake_rate_ok(s, wsi))
        return refuse(s, wsi, TB_HTTP_TOO_MANY, "rate_limited", TB_REFUSE_RATE_LIMITED);
    if (!origin_allowed(s, wsi))
        return refuse(s, wsi, TB_HTTP_FORBIDDEN, "origin_not_allowed", TB_REFUSE_ORIGIN);
    if (s->draining || tb_hub_connections(s->hub) >= (size_t)s->cfg->limits.max_connections)
        return refuse(s, wsi, TB_HTTP_UNAVAILABLE, "too_many_connections", TB_REFUSE_OVER_CAPACITY);
    return authenticate(s, wsi);
}

static int on_established(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    static const char early[] = "frames before the handshake answer";
    tb_grant_t *grant = lws_get_opaque_user_data(wsi);
    int rc;
    lws_set_opaque_user_data(wsi, NULL);
    if (!grant)
        return -1;
    /* First: a connection the guard cannot check is refused before the hub knows it. */
    if ((rc = tb_wsguard_attach(lws_get_socket_fd(wsi), wsi))) {
        tb_grant_free(grant);
        if (rc == TB_WSGUARD_E_EARLY)
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)early,
                             sizeof(early) - 1);
        return -1;
    }
    pss->conn = tb_hub_conn_open(s->hub, wsi, grant);
    if (pss->conn && pss->deflate)
        atomic_fetch_add(&s->stats->deflate_connections, 1);
    return pss->conn ? 0 : -1;
}

/* The frame guard's verdict (wsguard.h): lws closes with this reason once recv() returned 0,
 * and nothing else is written to the connection. */
static void on_guard_fail(void *arg, int code, const char *reason)
{
    pss_t *pss = lws_wsi_user(arg);
    if (pss)
        pss->closing = true;
    lws_close_reason(arg, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
}

/* ---- permessage-deflate negotiation ------------------------------------------------------- */

/* RFC 7692 §6: RSV1 marks the first frame of a compressed message. */
#define WS_RSV1 0x40
/* The Sec-WebSocket-Extensions value read (lws itself parses at most 255 bytes of it). */
#define EXT_HEADER_MAX 512
#define PMD_ANSWER_MAX 128
#define PMD_NAME "permessage-deflate"

/*
 * LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 accepts the client's first permessage-deflate offer
 * (tb_wsdeflate_offer() checks its parameters), 1 declines it and any later one, leaving the
 * connection uncompressed.
 */
static int on_confirm_extension(const tb_server_t *s, struct lws *wsi, pss_t *pss, const char *name)
{
    char hdr[EXT_HEADER_MAX];
    unsigned bits;
    if (!s->z || !pss || strcmp(name, PMD_NAME) != 0 ||
        lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_EXTENSIONS) <= 0 ||
        tb_wsdeflate_offer(hdr, &bits) != 0)
        return 1;
    pss->deflate = true;
    pss->window_bits = (uint8_t)bits;
    return 0;
}

/*
 * LWS_CALLBACK_ADD_HEADERS of an accepted upgrade. lws 4.1.6 (server-ws.c, handshake_0405)
 * has just ended the answer's "Sec-WebSocket-Extensions: permessage-deflate" line (it adds no
 * parameters: the extension declares no lws options); the answer's parameters
 * (server_no_context_takeover, client_no_context_takeover, server_max_window_bits) go in
 * before that line's CRLF. Anything else there fails the handshake rather than answer wrongly.
 */
static int on_add_headers(const pss_t *pss, struct lws_process_html_args *args)
{
    static const char line_end[] = PMD_NAME "\r\n";
    const size_t n = sizeof(line_end) - 1;
    char params[PMD_ANSWER_MAX];
    if (!pss || !pss->deflate)
        return 0;
    int len = tb_wsdeflate_answer(pss->window_bits, params, sizeof(params));
    if (len < 0 || args->max_len < len || memcmp(args->p - n, line_end, n) != 0)
        return -1;
    memcpy(args->p - 2, params, (size_t)len);
    memcpy(args->p - 2 + len, "\r\n", 2);
    args->p += len;
    args->max_len -= len;
    return 0;
}

static const struct lws_ext_options pmd_no_options[] = {{NULL, EXTARG_NONE}};

/*
 * permessage-deflate as lws sees it: an active extension, so lws accepts RSV1 on the
 * connection (ops-ws.c refuses RSV bits without one), and nothing more. It keeps no state
 * (lws's per-connection extension pointer stays NULL) and returns 0 for every payload callback,
 * which lws treats as no extension: client frames reach LWS_CALLBACK_RECEIVE as they came
 * (on_receive inflates compressed messages with the shared inflater) and lws's own frames
 * (close, pong) leave as they are. Data frames never go through lws_write (write_raw).
 */
static int pmd_callback(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    (void)ctx;
    (void)ext;
    (void)wsi;
    (void)user;
    (void)len;
    if (reason == LWS_EXT_CB_CONSTRUCT)
        *(const struct lws_ext_options **)in = pmd_no_options;
    return 0;
}

static const struct lws_extension extensions[] = {
    {PMD_NAME, pmd_callback, PMD_NAME "; client_max_window_bits"},
    {NULL, NULL, NULL},
};

/* ---- WebSocket traffic ----------------------------------------------------------------------- */

/*
 * Asks lws to close with code (it sends the Close frame when the callback returns -1, then
 * waits for the client's); from here on nothing else is written to the connection.
 */
static int close_with(struct lws *wsi, pss_t *pss, int code, const char *why)
{
    pss->closing = true;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
    return -1;
}

static int close_too_big(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    atomic_fetch_add(&s->stats->client_too_big, 1);
    return close_with(wsi, pss, TB_CLOSE_TOO_BIG, "message too big");
}

/*
 * A complete client message, inflated first when compressed: past limits.max_message_bytes
 * inflated it closes with 1009 as a plain one would; DEFLATE data that does not inflate fails
 * the connection (1002). It goes to the hub only when it is UTF-8 (RFC 6455 §8.1: else the
 * connection fails with 1007). Checked here, on the complete message after inflating, and not by
 * lws's LWS_SERVER_OPTION_VALIDATE_UTF8, which would see the compressed bytes.
 */
static int deliver(tb_server_t *s, struct lws *wsi, pss_t *pss, const char *msg, size_t len)
{
    if (pss->rx_deflated) {
        int rc = s->z ? tb_wsdeflate_inflate(s->z, msg, len, &msg, &len) : -EINVAL;
        if (rc == -E2BIG)
            return close_too_big(s, wsi, pss);
        if (rc == -EINVAL)
            return close_with(wsi, pss, LWS_CLOSE_STATUS_PROTOCOL_ERR, "bad deflate data");
        if (rc)
            return -1;
    }
    if (!lws_frame_is_binary(wsi) && !tb_utf8_valid(msg, len))
        return close_with(wsi, pss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid utf-8");
    tb_hub_conn_receive(s->hub, pss->conn, msg, len);
    return 0;
}

/*
 * Client data, in chunks of at most WS_RX_CHUNK bytes. A message in one chunk is handled in
 * place; a longer one is assembled in pss->rx (at most limits.max_message_bytes, compressed or
 * not: over it closes with 1009).
 */
static int on_receive(tb_server_t *s, struct lws *wsi, pss_t *pss, const char *in, size_t len)
{
    int rc;
    size_t max = (size_t)s->cfg->limits.max_message_bytes;
    bool final = lws_is_final_fragment(wsi);
    if (!pss->conn)
        return -1;
    tb_hub_conn_alive(s->hub, pss->conn, tb_mono_ms());
    if (lws_is_first_fragment(wsi))
        pss->rx_deflated = (lws_get_reserved_bits(wsi) & WS_RSV1) != 0;
    if (pss->rx_len + len > max)
        return close_too_big(s, wsi, pss);
    if (final && pss->rx_len == 0)
        return deliver(s, wsi, pss, in, len);
    if (!pss->rx && !(pss->rx = malloc(max)))
        return -1;
    memcpy(pss->rx + pss->rx_len, in, len);
    pss->rx_len += (uint32_t)len;
    if (!final)
        return 0;
    rc = deliver(s, wsi, pss, pss->rx, pss->rx_len);
    free(pss->rx);
    pss->rx = NULL;
    pss->rx_len = 0;
    return rc;
}

/* The scratch buffer with room for len bytes after LWS_PRE, grown when needed (it only grows
 * past WS_COALESCE_MAX for a frame larger than that). NULL when out of memory. */
static unsigned char *scratch(tb_server_t *s, size_t len)
{
    if (len > s->scratch_cap) {
        unsigned char *p = realloc(s->scratch, LWS_PRE + len);
        if (!p)
            return NULL;
        s->scratch = p;
        s->scratch_cap = len;
    }
    return s->scratch + LWS_PRE;
}

/*
 * Sends len raw bytes: straight to the socket while lws holds nothing for it, since lws_write
 * runs the extension chain even for LWS_WRITE_RAW, a cost paid on every delivery
 * (docs/performance.md → Instructions per delivery). What the kernel does not take goes through
 * lws_write, which keeps it and sends it first when the socket drains. Returns 0, or -1 on a
 * socket error.
 */
static int send_raw(struct lws *wsi, unsigned char *buf, size_t len)
{
    ssize_t n = 0;
    if (!lws_partial_buffered(wsi)) {
        n = send(lws_get_socket_fd(wsi), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (n < 0)
            n = 0;
        if ((size_t)n == len)
            return 0;
    }
    size_t rest = len - (size_t)n;
    return lws_write(wsi, buf + n, rest, LWS_WRITE_RAW) < (int)rest ? -1 : 0;
}

/*
 * The bytes of f for this connection: its compressed copy on a permessage-deflate connection
 * (made by the first such recipient, shared by the rest), else — and for frames that stay
 * plain — the frame as built.
 */
static const unsigned char *conn_wire(tb_server_t *s, const pss_t *pss, tb_frame_t *f, size_t *len)
{
    const unsigned char *wire =
        pss->deflate ? tb_frame_wire_deflate(f, s->z, pss->window_bits, len) : NULL;
    return wire ? wire : tb_frame_wire(f, len);
}

/*
 * Every connection, compressing or not: the frames carry their own WebSocket headers, so the
 * queued ones leave in one raw write — straight from the shared frame when only one fits, else
 * gathered into the scratch buffer (a copy, no allocation) up to WS_COALESCE_MAX bytes.
 * Returns the frames written, or -1.
 */
static int write_raw(tb_server_t *s, struct lws *wsi, const pss_t *pss)
{
    const tb_conn_t *c = pss->conn;
    size_t len, used = 0;
    int n = 0;
    const unsigned char *wire = conn_wire(s, pss, tb_hub_conn_at(c, 0), &len);
    if (tb_hub_conn_queued(c) == 1 || len > WS_COALESCE_MAX / 2)
        return send_raw(wsi, (unsigned char *)wire, len) ? -1 : 1;
    for (size_t i = 0; i < tb_hub_conn_queued(c); i++) {
        wire = conn_wire(s, pss, tb_hub_conn_at(c, i), &len);
        if (used + len > WS_COALESCE_MAX)
            break;
        memcpy(s->scratch + LWS_PRE + used, wire, len); /* scratch_cap >= WS_COALESCE_MAX */
        used += len;
        n++;
    }
    return send_raw(wsi, s->scratch + LWS_PRE, used) ? -1 : n;
}

/*
 * A ping, before any queued frame: lws frames it (it goes through no extension) and keeps what
 * the kernel does not take. It carries PING_PAYLOAD because lws 4.1.6 does not pass a pong with
 * an empty payload to the callback (LWS_CALLBACK_RECEIVE_PONG), and the pong is the sign of
 * life. One write per callback, so the queue waits for the next one.
 */
static int write_ping(struct lws *wsi, pss_t *pss)
{
    unsigned char buf[LWS_PRE + sizeof(PING_PAYLOAD)];
    size_t len = sizeof(PING_PAYLOAD) - 1;
    pss->ping_due = false;
    memcpy(buf + LWS_PRE, PING_PAYLOAD, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_PING) < (int)len)
        return -1;
    if (tb_hub_conn_queued(pss->conn) || tb_hub_conn_close_code(pss->conn))
        lws_callback_on_writable(wsi);
    return 0;
}

/*
 * One lws_write per WRITEABLE callback, carrying as many queued frames as fit: a reader that
 * keeps up drains its queue every loop iteration, so only a socket that stays full lets the
 * queue reach its bound.
 */
static int on_writeable(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    if (!pss->conn || pss->closing)
        return 0;
    if (pss->ping_due)
        return write_ping(wsi, pss);
    if (tb_hub_conn_queued(pss->conn)) {
        int n = write_raw(s, wsi, pss);
        if (n < 0)
            return -1;
        while (n-- > 0)
            tb_hub_conn_sent(s->hub, pss->conn);
        if (tb_hub_conn_queued(pss->conn) || tb_hub_conn_close_code(pss->conn))
            lws_callback_on_writable(wsi);
        return 0;
    }
    int code = tb_hub_conn_close_code(pss->conn);
    return code ? close_with(wsi, pss, code, tb_hub_close_reason(code)) : 0;
}

static void on_closed(tb_server_t *s, pss_t *pss)
{
    if (pss->conn && pss->deflate)
        atomic_fetch_sub(&s->stats->deflate_connections, 1);
    tb_hub_conn_close(s->hub, pss->conn);
    pss->conn = NULL;
    free(pss->rx);
    pss->rx = NULL;
}

/*
 * Runs the reload hook and applies its result all at once; on any failure (the file, the keys,
 * alert rules the hub cannot take) the running configuration stays as it was.
 */
static void reload(tb_server_t *s)
{
    char err[TB_CONFIG_ERR_LEN];
    tb_server_reload_t r = {0};
    if (!s->reload || s->reload(s->reload_arg, &r, err, sizeof(err)) ||
        tb_hub_set_alerts(s->hub, r.alerts, r.n_alerts, err, sizeof(err))) {
        tb_log(TB_LOG_WARN, "reload refused, keeping the running configuration", "error=\"%s\"",
               s->reload ? err : "no reload hook");
        tb_groups_destroy(r.groups);
        tb_auth_destroy(r.auth);
        return;
    }
    tb_hub_set_groups(s->hub, r.groups);
    tb_hub_set_auth(s->hub, r.auth);
    s->http.auth = r.auth;
    tb_auth_destroy(s->auth);
    s->auth = r.auth;
    tb_log(TB_LOG_INFO, "reloaded groups, auth keys and alert rules", "alerts=%zu", r.n_alerts);
}

/*
 * Writes what each connection got from the batch just routed, at once: one raw write each,
 * not a poll round later from WRITEABLE (a reader that keeps up has room in its socket). lws
 * keeps whatever the kernel does not take and sends it first; connections with such bytes
 * still held, those closing, and any frames left after the write go through WRITEABLE as
 * before. Nothing is written once a Close frame has been sent or answered.
 */
static void flush_pending(tb_server_t *s)
{
    for (size_t i = 0; i < s->n_pending; i++) {
        struct lws *wsi = s->pending[i];
        pss_t *pss = lws_wsi_user(wsi);
        tb_conn_t *c = pss->conn;
        if (c && !pss->closing && !lws_partial_buffered(wsi) && !tb_hub_conn_close_code(c) &&
            tb_hub_conn_queued(c)) {
            int n = write_raw(s, wsi, pss);
            if (n < 0) {
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                continue;
            }
            while (n-- > 0)
                tb_hub_conn_sent(s->hub, c);
            if (!tb_hub_conn_queued(c))
                continue;
        }
        lws_callback_on_writable(wsi);
    }
    s->n_pending = 0;
}

/* Routes one batch of at most max queued MQTT messages; false when the queue ran empty. */
static bool route_batch(tb_server_t *s, int max)
{
    tb_msg_t *m = NULL;
    s->routing = true;
    for (int n = 0; n < max; n++) {
        if (!(m = tb_queue_pop(s->queue)))
            break;
        tb_hub_ingest(s->hub, m);
    }
    s->routing = false;
    flush_pending(s);
    return m != NULL;
}

/* Routes what the MQTT thread queued, a bounded batch per wake-up. */
static void drain_queue(tb_server_t *s)
{
    /* Half the send-queue bound per batch: one batch alone can never make a reader that keeps
     * up look like a slow consumer. */
    int batch = s->cfg->limits.send_queue_messages / 2;
    if (batch < 1)
        batch = 1;
    if (batch > DRAIN_BATCH_MAX)
        batch = DRAIN_BATCH_MAX;
    for (;;) {
        if (route_batch(s, batch)) {
            /* More is waiting: let sockets be serviced, then come back. */
            lws_cancel_service(s->ctx);
            return;
        }
        if (tb_queue_consumer_idle(s->queue))
            return;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    tb_server_t *s = lws_context_user(lws_get_context(wsi));
    pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return refuse_oversize(s, wsi, false);
    case LWS_CALLBACK_HTTP:
        return on_http(s, wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_post_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_post_complete(s, wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
        /* A connection reset before its request was read has no per-session data yet. */
        if (pss) {
            free(pss->rx);
            pss->rx = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(s, wsi);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return on_confirm_extension(s, wsi, pss, in);
    case LWS_CALLBACK_ADD_HEADERS:
        return on_add_headers(pss, in);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        pss->closing = true; /* lws answers with Close */
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(s, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(s, wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->conn)
            tb_hub_conn_alive(s->hub, pss->conn, tb_mono_ms());
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(s, wsi, pss);
    case LWS_CALLBACK_CLOSED:
        tb_wsguard_detach(lws_get_socket_fd(wsi), wsi);
        on_closed(s, pss);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        tb_wsguard_detach(lws_get_socket_fd(wsi), wsi);
        tb_grant_free(lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && atomic_load(&s->stop))
            ev_break(s->loop, EVBREAK_ALL); /* tb_server_run() returns */
        if (s && s->hub && atomic_exchange(&s->reload_requested, 0))
            reload(s);
        if (s && s->hub)
            drain_queue(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"telebridge", callback, sizeof(pss_t), WS_RX_CHUNK, 0, NULL, WS_TX_PACKET_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/*
 * The admin listener (admin.port): GETs of the operator endpoints and health without a
 * credential (tb_http_gate), 404 for any other path, 405 for any other method, and no
 * WebSocket. It has no per-session data and ignores the service thread's wake-ups.
 */
static int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    tb_server_t *s = lws_context_user(lws_get_context(wsi));
    int rc;
    switch (reason) {
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return refuse_oversize(s, wsi, false);
    case LWS_CALLBACK_HTTP:
        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
            return http_refuse(wsi, TB_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed");
        return on_get(s, wsi, in, true);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if ((rc = refuse_oversize(s, wsi, true)))
            return rc;
        return http_send(wsi, TB_HTTP_NOT_FOUND, tb_http_error("not_found"), true) ? -1 : 1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols admin_protocols[] = {
    {"telebridge-admin", admin_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- hub I/O ------------------------------------------------------------------------------- */

/* Remembers wsi for flush_pending; -1 when out of memory. */
static int pending_push(tb_server_t *s, struct lws *wsi)
{
    if (s->n_pending == s->cap_pending) {
        size_t cap = s->cap_pending ? 2 * s->cap_pending : PENDING_MIN;
        struct lws **p = realloc(s->pending, cap * sizeof(*p));
        if (!p)
            return -1;
        s->pending = p;
        s->cap_pending = cap;
    }
    s->pending[s->n_pending++] = wsi;
    return 0;
}

static void io_want_write(void *transport, void *io)
{
    tb_server_t *s = transport;
    if (s->routing && pending_push(s, io) == 0)
        return;
    lws_callback_on_writable(io);
}

static void io_ping(void *transport, void *io)
{
    (void)transport;
    pss_t *pss = lws_wsi_user(io);
    pss->ping_due = true;
    lws_callback_on_writable(io);
}

/* lws closes it when its timers next run, after the hub's walk (that is what ASYNC is for). */
static void io_drop(void *transport, void *io)
{
    (void)transport;
    lws_set_timeout(io, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void io_close(void *transport, void *io, int code)
{
    (void)transport;
    (void)code;
    /* A slow consumer may never become writable again: bound the wait for the close frame. */
    lws_set_timeout(io, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    lws_callback_on_writable(io);
}

/* ---- static files ---------------------------------------------------------------------------- */

/* Text types name their charset; everything else keeps lws's built-in table. */
static const struct lws_protocol_vhost_options mime_css = {NULL, NULL, ".css",
                                                           "text/css; charset=utf-8"};
static const struct lws_protocol_vhost_options mime_js = {&mime_css, NULL, ".js",
                                                          "text/javascript; charset=utf-8"};
static const struct lws_protocol_vhost_options mime_html = {&mime_js, NULL, ".html",
                                                            "text/html; charset=utf-8"};

/*
 * GET /path is looked up as <web_root>/path (lws has already decoded the URI and removed any
 * "." and ".." segments, so nothing outside the root is reachable); "/" is index.html. A path
 * with no such file falls through to the callback, which answers the JSON endpoints or 404.
 */
static int mount_web(tb_server_t *s, char *err, size_t errlen)
{
    const char *root = s->cfg->listen.web_root;
    if (!root)
        return 0;
    if (strlen(root) > WEB_ROOT_MAX) {
        snprintf(err, errlen, "listen.web_root: must be at most %d bytes", WEB_ROOT_MAX);
        return -1;
    }
    s->web = (struct lws_http_mount){
        .mountpoint = "/",
        .mountpoint_len = 1,
        .origin = root,
        .def = WEB_INDEX,
        .extra_mimetypes = &mime_html,
        .cache_max_age = WEB_CACHE_MAX_AGE_S,
        .cache_reusable = 1,
        .cache_revalidate = 1,
        .origin_protocol = LWSMPRO_FILE,
    };
    return 0;
}

/* A root without an index.html is served all the same (files may arrive later); say so. */
static void check_web_root(const char *root)
{
    char index[WEB_ROOT_MAX + sizeof("/" WEB_INDEX)];
    if (!root)
        return;
    snprintf(index, sizeof(index), "%s/%s", root, WEB_INDEX);
    if (access(index, R_OK) != 0)
        tb_log(TB_LOG_WARN, "no dashboard: listen.web_root has no readable index.html",
               "web_root=\"%s\"", root);
}

/* ---- life ---------------------------------------------------------------------------------- */

static void on_tick(lws_sorted_usec_list_t *sul)
{
    tb_server_t *s = lws_container_of(sul, tb_server_t, tick);
    tb_hub_tick(s->hub, tb_now_ms());
    tb_hub_heartbeat(s->hub, tb_mono_ms());
    lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
}

static void lws_log_emit(int level, const char *line)
{
    char clean[512], redacted[512];
    size_t n = 0;
    /* lws may quote a URI: a credential in its query never reaches the log. */
    tb_log_redact_query(line, redacted, sizeof(redacted));
    for (const char *p = redacted; *p && n + 1 < sizeof(clean); p++)
        if (*p != '\n' && *p != '"')
            clean[n++] = *p;
    clean[n] = '\0';
    tb_log(level == LLL_ERR ? TB_LOG_ERROR : TB_LOG_WARN, "libwebsockets", "detail=\"%s\"", clean);
}

/*
 * lws gives every WebSocket a validity timer in its sorted timer list (re-sorted on each message
 * received) unless the vhost's policy has no hangup time; without a policy it uses its default
 * (300 s). Heartbeats come from the tick instead (tb_hub_heartbeat()): one timestamp per
 * connection.
 */
static const lws_retry_bo_t no_validity_timers = {.secs_since_valid_hangup = 0};

static void fill_context_info(tb_server_t *s, struct lws_context_creation_info *info)
{
    memset(info, 0, sizeof(*info));
    info->port = s->cfg->listen.port;
    info->iface = s->cfg->listen.host;
    info->protocols = protocols;
    info->extensions = s->z ? extensions : NULL;
    info->user = s;
    info->vhost_name = "telebridge";
    info->retry_and_idle_policy = &no_validity_timers;
    info->max_http_header_data = HTTP_HEADER_DATA_MAX;
    info->max_http_header_pool = HTTP_HEADER_POOL;
    /* lws bounds an accepted connection's first bytes by timeout_secs and, once its request
     * has begun, the whole request by timeout_secs_ah_idle: both are the handshake bound. */
    info->timeout_secs = (unsigned)s->cfg->limits.handshake_timeout_s;
    info->timeout_secs_ah_idle = (unsigned)s->cfg->limits.handshake_timeout_s;
    /* lws loads its libev plugin (libwebsockets-evlib-ev) and runs on s->loop: each wake-up
     * costs what the ready sockets cost (epoll), not a poll() over every connection. */
    info->options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBEV;
    info->foreign_loops = s->loops;
    if (s->web.origin)
        info->mounts = &s->web;
}

/* The admin listener on admin.host:admin.port, when admin.port is not 0. 0, or -1 + err. */
static int create_admin(tb_server_t *s, char *err, size_t errlen)
{
    const tb_config_admin_t *a = &s->cfg->admin;
    struct lws_context_creation_info info = {
        .port = a->port,
        .iface = a->host,
        .protocols = admin_protocols,
        .vhost_name = "telebridge-admin",
        .timeout_secs_ah_idle = (unsigned)s->cfg->limits.handshake_timeout_s,
    };
    if (!a->port)
        return 0;
    if (!(s->admin = lws_create_vhost(s->ctx, &info))) {
        snprintf(err, errlen, "cannot listen on %s:%d (admin)", a->host, a->port);
        return -1;
    }
    tb_log(TB_LOG_INFO, "admin listener", "host=%s port=%d", a->host,
           lws_get_vhost_listen_port(s->admin));
    return 0;
}

/* The deflater and inflater, unless compression.enabled is false. 0, or -1. */
static int create_deflate(tb_server_t *s)
{
    const tb_config_compression_t *c = &s->cfg->compression;
    if (!c->enabled)
        return 0;
    s->z = tb_wsdeflate_create(c->level, (size_t)c->min_bytes,
                               (size_t)s->cfg->limits.max_message_bytes);
    return s->z ? 0 : -1;
}

/* The per-IP handshake limiter, when limits.handshakes_per_ip_per_s is not 0. 0, or -1. */
static int create_limiter(tb_server_t *s)
{
    const tb_config_limits_t *l = &s->cfg->limits;
    if (l->handshakes_per_ip_per_s == 0)
        return 0;
    s->handshakes =
        tb_ratelimit_create(l->handshakes_per_ip_per_s, l->handshake_burst, TB_RATELIMIT_KEYS_MAX);
    return s->handshakes ? 0 : -1;
}

static int create_hub(tb_server_t *s)
{
    tb_hub_opts_t ho = {
        .cfg = s->cfg,
        .auth = s->auth,
        .io = {.want_write = io_want_write, .close = io_close, .ping = io_ping, .drop = io_drop},
        .transport = s,
    };
    s->hub = tb_hub_create(&ho);
    s->http = (tb_http_ctx_t){.cfg = s->cfg,
                              .hub = s->hub,
                              .stats = s->stats,
                              .queue = s->queue,
                              .auth = s->auth,
                              .tickets = s->tickets,
                              .handshakes = s->handshakes,
                              .started_mono_ms = tb_mono_ms()};
    return s->hub ? 0 : -1;
}

/* The service thread's libev loop (epoll on Linux), which lws runs on as a foreign loop.
 * EVFLAG_NOSIGMASK: libev leaves the signal mask alone (signals.c's thread takes them). */
static int create_loop(tb_server_t *s, char *err, size_t errlen)
{
    if (!(s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK))) {
        snprintf(err, errlen, "cannot create the event loop (libev)");
        return -1;
    }
    s->loops[0] = s->loop;
    return 0;
}

tb_server_t *tb_server_create(const tb_server_opts_t *opts, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    tb_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        tb_auth_destroy(opts->auth);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = opts->cfg;
    s->stats = opts->stats;
    s->auth = opts->auth;
    s->reload = opts->reload;
    s->reload_arg = opts->reload_arg;
    if (!scratch(s, WS_COALESCE_MAX) || !(s->queue = tb_queue_create(TB_SERVER_QUEUE_CAP)) ||
        !(s->tickets = tb_tickets_create(TB_TICKETS_MAX, TB_TICKETS_PER_SUB)) ||
        create_limiter(s) || create_deflate(s) || create_hub(s)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tb_wsguard_start(on_guard_fail)) {
        snprintf(err, errlen, "cannot start the frame guard (out of memory, or a second server)");
        goto fail;
    }
    s->guarded = true;
    if (mount_web(s, err, errlen))
        goto fail;
    check_web_root(s->web.origin);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    if (create_loop(s, err, errlen))
        goto fail;
    fill_context_info(s, &info);
    if (!(s->ctx = lws_create_context(&info))) {
        snprintf(err, errlen,
                 "cannot start the event loop: lws needs its libev plugin (Debian package "
                 "libwebsockets-evlib-ev) in " LWS_INSTALL_LIBDIR);
        goto fail;
    }
    if (!(s->vhost = lws_create_vhost(s->ctx, &info))) {
        snprintf(err, errlen, "cannot listen on %s:%d", s->cfg->listen.host, s->cfg->listen.port);
        goto fail;
    }
    if (create_admin(s, err, errlen))
        goto fail;
    lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
    /* lws arms its libev timer for its timer list (the tick's) only after an I/O event: the
     * wake-up is the first one. */
    lws_cancel_service(s->ctx);
    return s;
fail:
    tb_server_destroy(s);
    return NULL;
}

int tb_server_port(const tb_server_t *s)
{
    return lws_get_vhost_listen_port(s->vhost);
}

tb_queue_t *tb_server_queue(tb_server_t *s)
{
    return s->queue;
}

void tb_server_wake(void *arg)
{
    tb_server_t *s = arg;
    lws_cancel_service(s->ctx);
}

void tb_server_request_stop(tb_server_t *s)
{
    atomic_store(&s->stop, 1);
    lws_cancel_service(s->ctx);
}

void tb_server_request_reload(tb_server_t *s)
{
    atomic_store(&s->reload_requested, 1);
    lws_cancel_service(s->ctx);
}

int tb_server_run(tb_server_t *s)
{
    /* ev_run() returns on the ev_break() of a stop request (seen when lws_cancel_service()'s
     * wake-up arrives), or when no watcher is left: the listener and lws's wake-up pipe are
     * always watched, so that means the loop failed. */
    while (!atomic_load(&s->stop))
        if (!ev_run(s->loop, 0) && !atomic_load(&s->stop))
            return -1;
    return 0;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* its firing is the point: ev_run(EVRUN_ONCE) returns */
}

void tb_server_drain(tb_server_t *s)
{
    int64_t deadline = tb_mono_ms() + TB_SERVER_DRAIN_MS;
    s->draining = true;
    /* Each ev_run(EVRUN_ONCE) waits for one event; this timer bounds the last wait. */
    ev_timer_init(&s->deadline, on_deadline, TB_SERVER_DRAIN_MS / 1000.0, 0.0);
    ev_timer_start(s->loop, &s->deadline);
    /* Route what the MQTT thread left queued (drain_queue runs on each cancelled wait). */
    while (tb_queue_depth(s->queue) > 0 && tb_mono_ms() < deadline) {
        lws_cancel_service(s->ctx);
        ev_run(s->loop, EVRUN_ONCE);
    }
    tb_hub_close_all(s->hub, TB_CLOSE_GOING_AWAY);
    while (tb_hub_connections(s->hub) > 0 && tb_mono_ms() < deadline)
        ev_run(s->loop, EVRUN_ONCE);
    ev_timer_stop(s->loop, &s->deadline);
}

void tb_server_destroy(tb_server_t *s)
{
    if (!s)
        return;
    /* Destroying the context closes every connection through the callback, which needs the
     * hub; the hub goes after. */
    if (s->ctx)
        lws_context_destroy(s->ctx); /* stops its watchers on the loop, which goes after */
    if (s->guarded)
        tb_wsguard_stop();
    if (s->loop)
        ev_loop_destroy(s->loop);
    tb_hub_destroy(s->hub);
    tb_tickets_destroy(s->tickets);
    tb_ratelimit_destroy(s->handshakes);
    tb_wsdeflate_destroy(s->z);
    tb_auth_destroy(s->auth);
    free(s->scratch);
    free(s->pending);
    if (s->queue) {
        tb_msg_t *m;
        while ((m = tb_queue_pop(s->queue)))
            tb_msg_free(m);
        tb_queue_destroy(s->queue);
    }
    free(s);
}
