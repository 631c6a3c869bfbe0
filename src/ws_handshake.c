/* ws_handshake — the transport's handshake policy; see src/ws_internal.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "telebridge/http_api.h"
#include "telebridge/hub.h"
#include "telebridge/log.h"
#include "telebridge/util.h"
#include "telebridge/wsguard.h"
#include "ws_internal.h"

/* ---- pure policy ---------------------------------------------------------------------------- */

int tb_ws_handshake_content_length(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > CONTENT_LENGTH_MAX_DIGITS)
        return -1;
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (*out <= TB_HTTP_BODY_MAX)
            *out = *out * 10 + (uint64_t)(s[i] - '0');
    }
    return 0;
}

const char *tb_ws_handshake_bearer(const char *header)
{
    static const char bearer[] = "Bearer ";
    if (strncasecmp(header, bearer, sizeof(bearer) - 1) != 0)
        return NULL;
    const char *t = header + sizeof(bearer) - 1;
    while (*t == ' ')
        t++;
    return *t ? t : NULL;
}

tb_refuse_reason_t tb_ws_handshake_oversize(size_t path_len, int args_len, size_t headers)
{
    if (path_len + (args_len > 0 ? 1 + (size_t)args_len : 0) > HTTP_URI_MAX)
        return TB_REFUSE_URI_TOO_LONG;
    return headers > HTTP_HEADERS_MAX ? TB_REFUSE_HEADERS_LARGE : TB_REFUSE_NONE;
}

tb_ws_refusal_t tb_ws_handshake_size_refusal(tb_refuse_reason_t why)
{
    if (why == TB_REFUSE_URI_TOO_LONG)
        return (tb_ws_refusal_t){TB_HTTP_URI_TOO_LONG, "uri_too_long", why};
    return (tb_ws_refusal_t){TB_HTTP_HEADERS_TOO_LARGE, "headers_too_large", why};
}

tb_ws_refusal_t tb_ws_handshake_ticket_refusal(int rc)
{
    if (rc == TB_TICKET_E_BUSY)
        return (tb_ws_refusal_t){TB_HTTP_UNAVAILABLE, "too_many_tickets", TB_REFUSE_TICKET_BUSY};
    if (rc == TB_TICKET_E_NOMEM)
        return (tb_ws_refusal_t){TB_HTTP_SERVER_ERROR, "server_error", TB_REFUSE_NOMEM};
    return (tb_ws_refusal_t){TB_HTTP_UNAUTHORIZED, "invalid_ticket", tb_refuse_from_ticket(rc)};
}

tb_ws_refusal_t tb_ws_handshake_auth_refusal(int rc)
{
    return (tb_ws_refusal_t){rc == TB_AUTH_E_NOMEM ? TB_HTTP_SERVER_ERROR : TB_HTTP_UNAUTHORIZED,
                             tb_auth_err_code(rc), tb_refuse_from_auth(rc)};
}

/* ---- on the connection ---------------------------------------------------------------------- */

bool tb_ws_handshake_is_ws_path(const char *path)
{
    return strcmp(path, "/ws") == 0 || strcmp(path, "/api/v1/ws") == 0;
}

static void log_refusal(struct lws *wsi, const char *code, const char *reason)
{
    char peer[PEER_MAX];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    tb_log(TB_LOG_INFO, "handshake refused", "why=%s reason=%s peer=%s", code, reason, peer);
}

/*
 * The credential of "Authorization: Bearer …" copied into buf, or NULL. A buf of
 * HTTP_HEADERS_MAX + 1 holds any header refuse_oversize let through, so a credential too long
 * to accept reaches tb_auth_verify (malformed) instead of reading as none.
 */
const char *tb_ws_handshake_find_bearer(struct lws *wsi, char *buf, size_t len)
{
    if (lws_hdr_copy(wsi, buf, (int)len, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
        return NULL;
    return tb_ws_handshake_bearer(buf);
}

/*
 * The request against HTTP_URI_MAX and HTTP_HEADERS_MAX. lws holds the path and the query
 * apart (its "&" counted, not its "?"), both decoded.
 */
static tb_refuse_reason_t oversize(struct lws *wsi)
{
    char *uri = NULL;
    int path = 0;
    size_t all = 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &path) < 0 || path < 0)
        path = 0;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        int n = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        all += n > 0 ? (size_t)n : 0;
    }
    return tb_ws_handshake_oversize((size_t)path,
                                    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS), all);
}

/*
 * Refuses a request over the size limits, upgrade or not, with 414 or 431 and a JSON body,
 * counting and logging it. 0 when it fits; else what the callback returns (an upgrade's
 * refusal ends the transaction, a plain request's closes the connection).
 */
int tb_ws_handshake_refuse_oversize(tb_server_t *s, struct lws *wsi, bool upgrade)
{
    tb_refuse_reason_t why = oversize(wsi);
    if (why == TB_REFUSE_NONE)
        return 0;
    tb_ws_refusal_t r = tb_ws_handshake_size_refusal(why);
    tb_stats_refused(s->stats, why);
    if (upgrade) {
        log_refusal(wsi, r.code, tb_refuse_reason_name(why));
    } else {
        char peer[PEER_MAX];
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        tb_log(TB_LOG_INFO, "request refused", "why=%s peer=%s", r.code, peer);
    }
    int rc = tb_ws_http_send(wsi, r.status, tb_http_error(r.code), true);
    return upgrade && !rc ? 1 : -1;
}

/* A non-empty query argument ("token=", "ticket=") copied into buf, or NULL. */
static const char *query_arg(struct lws *wsi, const char *name, char *buf, size_t len)
{
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, (int)len);
    return v && *v ? v : NULL;
}

/* Rejects an upgrade with an HTTP answer, counting it; the value to return from the callback. */
static int refuse(tb_server_t *s, struct lws *wsi, tb_ws_refusal_t r)
{
    tb_stats_refused(s->stats, r.reason);
    log_refusal(wsi, r.code, tb_refuse_reason_name(r.reason));
    return tb_ws_http_send(wsi, r.status, tb_http_error(r.code), true) ? -1 : 1;
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
        rc = tb_ticket_redeem(tb_bridge_tickets(s->bridge),
                              tb_auth_ticket_key(tb_bridge_auth(s->bridge)), ticket, strlen(ticket),
                              tb_now_ms(), grant);
        tb_wipe(buf, sizeof(buf));
        return rc == TB_TICKET_OK ? 0 : refuse(s, wsi, tb_ws_handshake_ticket_refusal(rc));
    }
    const char *token = query_arg(wsi, "token=", buf, sizeof(buf));
    if (!token)
        token = tb_ws_handshake_find_bearer(wsi, buf, sizeof(buf));
    if (token)
        rc = tb_auth_verify(tb_bridge_auth(s->bridge), token, strlen(token), tb_now_ms() / 1000,
                            grant);
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= (int)sizeof(buf))
        rc = TB_AUTH_E_MALFORMED; /* longer than any token accepted */
    else
        rc = TB_AUTH_E_MISSING;
    tb_wipe(buf, sizeof(buf));
    if (rc == TB_AUTH_OK)
        return 0;
    return refuse(s, wsi, tb_ws_handshake_auth_refusal(rc));
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
    tb_ratelimit_t *limiter = tb_bridge_limiter(s->bridge);
    if (!limiter)
        return true;
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    return tb_ratelimit_allow(limiter, peer, tb_mono_ms());
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

int tb_ws_handshake_confirm_upgrade(tb_server_t *s, struct lws *wsi)
{
    static const tb_ws_refusal_t rate_limited = {TB_HTTP_TOO_MANY, "rate_limited",
                                                 TB_REFUSE_RATE_LIMITED};
    static const tb_ws_refusal_t bad_origin = {TB_HTTP_FORBIDDEN, "origin_not_allowed",
                                               TB_REFUSE_ORIGIN};
    static const tb_ws_refusal_t full = {TB_HTTP_UNAVAILABLE, "too_many_connections",
                                         TB_REFUSE_OVER_CAPACITY};
    char uri[URI_MAX];
    int rc = tb_ws_handshake_refuse_oversize(s, wsi, true);
    if (rc)
        return rc;
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
        !tb_ws_handshake_is_ws_path(uri)) {
        log_refusal(wsi, "not_found", "path");
        return tb_ws_http_send(wsi, TB_HTTP_NOT_FOUND, tb_http_error("not_found"), true) ? -1 : 1;
    }
    /* Cheapest check first: a flood is turned away before any header or signature work. */
    if (!handshake_rate_ok(s, wsi))
        return refuse(s, wsi, rate_limited);
    if (!origin_allowed(s, wsi))
        return refuse(s, wsi, bad_origin);
    if (s->draining || tb_hub_connections(s->hub) >= (size_t)s->cfg->limits.max_connections)
        return refuse(s, wsi, full);
    return authenticate(s, wsi);
}

int tb_ws_handshake_established(tb_server_t *s, struct lws *wsi, pss_t *pss)
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
void tb_ws_handshake_guard_fail(void *arg, int code, const char *reason)
{
    pss_t *pss = lws_wsi_user(arg);
    if (pss)
        pss->closing = true;
    lws_close_reason(arg, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
}

/* ---- permessage-deflate negotiation ------------------------------------------------------- */

/* The Sec-WebSocket-Extensions value read (lws itself parses at most 255 bytes of it). */
#define EXT_HEADER_MAX 512
#define PMD_ANSWER_MAX 128
#define PMD_NAME "permessage-deflate"

/*
 * LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 accepts the client's first permessage-deflate offer
 * (tb_wsdeflate_offer() checks its parameters), 1 declines it and any later one, leaving the
 * connection uncompressed.
 */
int tb_ws_handshake_confirm_extension(const tb_server_t *s, struct lws *wsi, pss_t *pss,
                                      const char *name)
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
int tb_ws_handshake_add_headers(const pss_t *pss, struct lws_process_html_args *args)
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

const struct lws_extension tb_ws_handshake_extensions[] = {
    {PMD_NAME, pmd_callback, PMD_NAME "; client_max_window_bits"},
    {NULL, NULL, NULL},
};
