/* ws_server — the libwebsockets transport; see include/telebridge/ws_server.h. */
#include "telebridge/ws_server.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "telebridge/hub.h"
#include "telebridge/log.h"
#include "telebridge/util.h"
#include "telebridge/wsdeflate.h"
#include "telebridge/wsguard.h"
#include "ws_internal.h"

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
/*
 * lws's header store (HTTP_HEADER_DATA_MAX, the most its 16-bit setting holds) is kept well
 * above HTTP_URI_MAX and HTTP_HEADERS_MAX (ws_internal.h): only a request of more than 64 KiB
 * is still dropped unanswered. Each store exists only while a request is parsed (at most
 * HTTP_HEADER_POOL at once), never per connection.
 */
#define HTTP_HEADER_DATA_MAX 65535
#define HTTP_HEADER_POOL 64
#define TICK_US (1000 * LWS_US_PER_MS)
/*
 * The dashboard's files are served by lws's own file mount at "/". lws builds "<root>/<uri>"
 * in a 256-byte buffer, so the root is bounded to leave the URI room.
 */
#define WEB_ROOT_MAX 160
#define WEB_INDEX "index.html"
/* Browsers may reuse a file this long, then revalidate it with its ETag (304 when unchanged). */
#define WEB_CACHE_MAX_AGE_S 60

/* ---- WebSocket traffic: the receive path ---------------------------------------------------- */

static int close_too_big(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    atomic_fetch_add(&s->stats->client_too_big, 1);
    return tb_ws_write_close(wsi, pss, TB_CLOSE_TOO_BIG, "message too big");
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
            return tb_ws_write_close(wsi, pss, LWS_CLOSE_STATUS_PROTOCOL_ERR, "bad deflate data");
        if (rc)
            return -1;
    }
    if (!lws_frame_is_binary(wsi) && !tb_utf8_valid(msg, len))
        return tb_ws_write_close(wsi, pss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid utf-8");
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
    if (tb_ws_rx_len(pss) + len > max)
        return close_too_big(s, wsi, pss);
    if (final && tb_ws_rx_len(pss) == 0)
        return deliver(s, wsi, pss, in, len);
    if (!pss->rx && !(pss->rx = tb_ws_rx_new(max)))
        return -1;
    memcpy(pss->rx->data + pss->rx->len, in, len);
    pss->rx->len += (uint32_t)len;
    if (!final)
        return 0;
    rc = deliver(s, wsi, pss, pss->rx->data, pss->rx->len);
    tb_ws_rx_free(pss);
    return rc;
}

static void on_closed(tb_server_t *s, pss_t *pss)
{
    if (pss->conn && pss->deflate)
        atomic_fetch_sub(&s->stats->deflate_connections, 1);
    tb_hub_conn_close(s->hub, pss->conn);
    pss->conn = NULL;
    tb_ws_rx_free(pss);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    tb_server_t *s = lws_context_user(lws_get_context(wsi));
    pss_t *pss = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        return tb_ws_handshake_refuse_oversize(s, wsi, false);
    case LWS_CALLBACK_HTTP:
        return tb_ws_http_on_http(s, wsi, pss, in);
    case LWS_CALLBACK_HTTP_BODY:
        return tb_ws_http_on_post_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return tb_ws_http_on_post_complete(s, wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
        /* A connection reset before its request was read has no per-session data yet. */
        if (pss)
            tb_ws_rx_free(pss);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return tb_ws_handshake_confirm_upgrade(s, wsi);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return tb_ws_handshake_confirm_extension(s, wsi, pss, in);
    case LWS_CALLBACK_ADD_HEADERS:
        return tb_ws_handshake_add_headers(pss, in);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        pss->closing = true; /* lws answers with Close */
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return tb_ws_handshake_established(s, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(s, wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->conn)
            tb_hub_conn_alive(s->hub, pss->conn, tb_mono_ms());
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return tb_ws_write_on_writeable(s, wsi, pss);
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
        if (s)
            tb_bridge_service(s->bridge); /* a requested reload, then the MQTT queue */
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
        return tb_ws_handshake_refuse_oversize(s, wsi, false);
    case LWS_CALLBACK_HTTP:
        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
            return tb_ws_http_refuse(wsi, TB_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed");
        return tb_ws_http_on_get(s, wsi, in, true);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if ((rc = tb_ws_handshake_refuse_oversize(s, wsi, true)))
            return rc;
        return tb_ws_http_send(wsi, TB_HTTP_NOT_FOUND, tb_http_error("not_found"), true) ? -1 : 1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols admin_protocols[] = {
    {"telebridge-admin", admin_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

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
    info->extensions = s->z ? tb_ws_handshake_extensions : NULL;
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

/* The bridge's wake-up (bridge.h): thread-safe, lws_cancel_service() is. */
static void server_wake(void *arg)
{
    tb_server_t *s = arg;
    lws_cancel_service(s->ctx);
}

tb_server_t *tb_server_create(const tb_server_opts_t *opts, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    tb_bridge_transport_t t = {.wake = server_wake};
    tb_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = opts->cfg;
    s->stats = opts->stats;
    s->listen_fd = -1;
    s->bridge = opts->bridge;
    tb_ws_write_transport(s, &t);
    if (!tb_ws_write_scratch(s, WS_COALESCE_MAX) || create_deflate(s)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tb_bridge_attach(s->bridge, &t, err, errlen))
        goto fail;
    s->hub = tb_bridge_hub(s->bridge);
    if (tb_wsguard_start(tb_ws_handshake_guard_fail)) {
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
    /* listen.reuse_port: a vhost without a listener, serving what ws_listen.c accepts. */
    if (s->cfg->listen.reuse_port)
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    if (!(s->vhost = lws_create_vhost(s->ctx, &info))) {
        tb_ws_listen_explain(s, err, errlen);
        goto fail;
    }
    if (s->cfg->listen.reuse_port && tb_ws_listen_open(s, err, errlen))
        goto fail;
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
    if (s->cfg->listen.reuse_port)
        return s->listen_port;
    return lws_get_vhost_listen_port(s->vhost);
}

void tb_server_request_stop(tb_server_t *s)
{
    atomic_store(&s->stop, 1);
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
    /* A shared port's new connections go to the other bridges from now on, not into a backlog
     * nobody accepts from while the MQTT side stops and the drain runs. */
    tb_ws_listen_close(s);
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
    /* Route what the MQTT thread left queued (the bridge drains it on each cancelled wait). */
    while (tb_queue_depth(tb_bridge_queue(s->bridge)) > 0 && tb_mono_ms() < deadline) {
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
     * hub: the bridge, which owns it, is destroyed after the server. */
    tb_ws_listen_close(s);
    if (s->ctx)
        lws_context_destroy(s->ctx); /* stops its watchers on the loop, which goes after */
    if (s->guarded)
        tb_wsguard_stop();
    if (s->loop)
        ev_loop_destroy(s->loop);
    tb_wsdeflate_destroy(s->z);
    free(s->scratch);
    free(s->pending);
    free(s);
}
