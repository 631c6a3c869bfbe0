/* ws_http — HTTP answers and the POST body of the transport; see src/ws_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "telebridge/http_api.h"
#include "telebridge/util.h"
#include "ws_internal.h"

#define HTTP_HEADERS_OUT_MAX 512
/* Retry-After of a 429: the handshake limiter refills at least one token a second. */
#define RETRY_AFTER_S "1"

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
int tb_ws_http_send(struct lws *wsi, int status, json_t *body, bool upgrade)
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
    int status = tb_http_metrics(tb_bridge_http(s->bridge), (char *)out + LWS_PRE,
                                 TB_METRICS_TEXT_MAX, &len);
    if (status != TB_HTTP_OK)
        len = 0;
    int rc = http_write(wsi, status, TB_METRICS_CONTENT_TYPE, out, len, false);
    free(out);
    return rc;
}

/* Answers and ends the HTTP transaction (the connection may serve the next one). */
int tb_ws_http_answer(struct lws *wsi, int status, json_t *body)
{
    if (tb_ws_http_send(wsi, status, body, false))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Answers and closes the connection, leaving a body it did not want unread. */
int tb_ws_http_refuse(struct lws *wsi, int status, const char *code)
{
    tb_ws_http_send(wsi, status, tb_http_error(code), false);
    return -1;
}

/* A POST's headers arrived: checks the declared length and readies the body buffer. */
static int on_post_start(struct lws *wsi, pss_t *pss)
{
    char digits[CONTENT_LENGTH_MAX_DIGITS + 1];
    uint64_t len;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return tb_ws_http_refuse(wsi, TB_HTTP_LENGTH_REQUIRED, "length_required");
    int n = lws_hdr_copy(wsi, digits, sizeof(digits), WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (n <= 0 || tb_ws_handshake_content_length(digits, (size_t)n, &len))
        return tb_ws_http_refuse(wsi, TB_HTTP_BAD_REQUEST, "bad_request");
    if (len > TB_HTTP_BODY_MAX)
        return tb_ws_http_refuse(wsi, TB_HTTP_TOO_LARGE, "body_too_large");
    tb_ws_rx_free(pss);
    if (len && !(pss->rx = tb_ws_rx_new((size_t)len)))
        return tb_ws_http_refuse(wsi, TB_HTTP_SERVER_ERROR, "server_error");
    return 0; /* lws now calls LWS_CALLBACK_HTTP_BODY, then _BODY_COMPLETION */
}

int tb_ws_http_on_post_body(pss_t *pss, const void *in, size_t len)
{
    if (len > (pss->rx ? pss->rx->cap - pss->rx->len : 0))
        return -1; /* lws never passes more than Content-Length; a guard, not a path */
    if (len) {
        memcpy(pss->rx->data + pss->rx->len, in, len);
        pss->rx->len += (uint32_t)len;
    }
    return 0;
}

int tb_ws_http_on_post_complete(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    char path[URI_MAX], auth[HTTP_HEADERS_MAX + 1], peer[PEER_MAX];
    json_t *body = NULL;
    int status = TB_HTTP_NOT_FOUND;
    tb_http_req_t req = {.path = path,
                         .body = pss->rx ? pss->rx->data : NULL,
                         .body_len = tb_ws_rx_len(pss),
                         .peer = peer};
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_POST_URI) > 0) {
        req.bearer = tb_ws_handshake_find_bearer(wsi, auth, sizeof(auth));
        req.now_ms = tb_now_ms();
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        status = tb_http_post(tb_bridge_http(s->bridge), &req, &body);
    } else {
        body = tb_http_error("not_found");
    }
    tb_wipe(auth, sizeof(auth));
    tb_ws_rx_free(pss);
    return tb_ws_http_answer(wsi, status, body);
}

/* A GET on either listener: /metrics once tb_http_gate() lets it through, else tb_http_get(). */
int tb_ws_http_on_get(tb_server_t *s, struct lws *wsi, const char *path, bool admin)
{
    char auth[HTTP_HEADERS_MAX + 1];
    json_t *body = NULL;
    tb_http_ctx_t *http = tb_bridge_http(s->bridge);
    tb_http_req_t req = {.path = path, .now_ms = tb_now_ms(), .admin = admin};
    req.bearer = tb_ws_handshake_find_bearer(wsi, auth, sizeof(auth));
    bool metrics = strcmp(path, "/metrics") == 0;
    int status = metrics ? tb_http_gate(http, &req, &body) : tb_http_get(http, &req, &body);
    tb_wipe(auth, sizeof(auth));
    if (!metrics || status)
        return tb_ws_http_answer(wsi, status, body);
    if (http_send_metrics(s, wsi))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int tb_ws_http_on_http(tb_server_t *s, struct lws *wsi, pss_t *pss, const char *path)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return on_post_start(wsi, pss);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return tb_ws_http_answer(wsi, TB_HTTP_METHOD_NOT_ALLOWED,
                                 tb_http_error("method_not_allowed"));
    if (tb_ws_handshake_is_ws_path(path))
        return tb_ws_http_answer(wsi, TB_HTTP_BAD_REQUEST,
                                 tb_http_error("websocket_upgrade_required"));
    return tb_ws_http_on_get(s, wsi, path, false);
}
