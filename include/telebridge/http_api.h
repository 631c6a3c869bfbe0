/*
 * http_api — the JSON endpoints served beside the WebSocket: GET health, readiness, stats,
 * rooms; POST ticket (and whatever is added to the POST route table).
 *
 * Who may read what (docs/security.md → Operator endpoints): /healthz and /readyz are open;
 * the operator endpoints (/stats, /api/v1/ws/stats, /rooms, /metrics) need, on the public
 * listener, a Bearer token whose scope has TB_HTTP_ADMIN_SCOPE (401 without a valid one, 403
 * without the scope). The admin listener (admin.port) serves the operator endpoints and health
 * without a credential, and nothing else (404).
 *
 * Transport-free so it can be tested without sockets: ws_http.c maps a request to
 * tb_http_get() or tb_http_post() and writes the answer. Every answer is a JSON body; errors
 * are {"error": "<short_code>"} and say nothing more (which check failed is only logged).
 *
 * POST plumbing (ws_http.c): a POST must carry Content-Length (else 411 length_required) of
 * at most TB_HTTP_BODY_MAX bytes (else 413 body_too_large, the connection is closed without
 * reading the body); the body is gathered into one buffer of exactly that size and handed to
 * tb_http_post() with the path (query removed) and the Bearer credential.
 *
 * Adding a POST endpoint: write `static int post_x(tb_http_ctx_t *ctx, const tb_http_req_t
 * *req, json_t **body)` in http_api.c returning the HTTP status and a new body, and add one
 * line to its post_routes[] table. tb_http_authenticate() and tb_http_json_body() do the usual
 * first steps (401 / 400 answers included).
 */
#ifndef TELEBRIDGE_HTTP_API_H
#define TELEBRIDGE_HTTP_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/auth.h"
#include "telebridge/config.h"
#include "telebridge/hub.h"
#include "telebridge/metrics.h"
#include "telebridge/queue.h"
#include "telebridge/ratelimit.h"
#include "telebridge/stats.h"
#include "telebridge/ticket.h"

/* Largest POST body accepted, in bytes. */
#define TB_HTTP_BODY_MAX 65536

/* The scope a token needs to read the operator endpoints on the public listener. */
#define TB_HTTP_ADMIN_SCOPE "admin"

/* Statuses the endpoints answer with. */
#define TB_HTTP_OK 200
#define TB_HTTP_ACCEPTED 202
#define TB_HTTP_BAD_REQUEST 400
#define TB_HTTP_UNAUTHORIZED 401
#define TB_HTTP_FORBIDDEN 403
#define TB_HTTP_NOT_FOUND 404
#define TB_HTTP_METHOD_NOT_ALLOWED 405
#define TB_HTTP_LENGTH_REQUIRED 411
#define TB_HTTP_TOO_LARGE 413
#define TB_HTTP_URI_TOO_LONG 414
#define TB_HTTP_TOO_MANY 429
#define TB_HTTP_HEADERS_TOO_LARGE 431
#define TB_HTTP_SERVER_ERROR 500
#define TB_HTTP_UNAVAILABLE 503

/* What the endpoints read and act on; every pointer is borrowed from the server. */
typedef struct {
    const tb_config_t *cfg;
    tb_hub_t *hub;
    const tb_stats_t *stats;
    const tb_queue_t *queue; /* the MQTT -> hub queue, for its depth */
    const tb_auth_t *auth;   /* the verifier in use; the server updates it on reload */
    tb_ticket_store_t *tickets;
    tb_ratelimit_t *handshakes; /* the per-address handshake limiter; NULL when off */
    int64_t started_mono_ms;    /* tb_mono_ms() at start, for uptime_s */
} tb_http_ctx_t;

/* One request as the transport hands it over (a GET has no body). */
typedef struct {
    const char *path;   /* without the query */
    const char *bearer; /* the credential of "Authorization: Bearer …", NULL when absent */
    const char *body;   /* body_len bytes, not NUL-terminated; NULL when body_len is 0 */
    size_t body_len;    /* <= TB_HTTP_BODY_MAX */
    int64_t now_ms;     /* wall clock */
    const char *peer;   /* the client's address, "" when unknown */
    bool admin;         /* it came in on the admin listener */
} tb_http_req_t;

/*
 * Who may read GET req->path on the listener it came in on (see the top of this file). Returns
 * 0 when it may be answered, else the status to answer with its body in *body (caller owns it):
 * 401 {"error": missing_token | invalid_token | token_expired}, 403 {"error": "forbidden"},
 * 404 {"error": "not_found"} on the admin listener, 500 when out of memory.
 */
int tb_http_gate(const tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);

/*
 * Answers GET req->path (without query), after tb_http_gate(). Returns the HTTP status and
 * stores a new JSON body in *body (caller owns it); an unknown path gives 404 {"error":
 * "not_found"}, a POST-only path 405 {"error": "method_not_allowed"}. /metrics is not JSON:
 * the transport answers it with tb_http_metrics() once tb_http_gate() let it through.
 */
int tb_http_get(const tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);

/* Copies every value /metrics exposes into *snap. */
void tb_http_metrics_snapshot(const tb_http_ctx_t *ctx, tb_metrics_snapshot_t *snap);

/*
 * The /metrics text (TB_METRICS_CONTENT_TYPE) in buf (cap bytes; TB_METRICS_TEXT_MAX is
 * enough), its length in *len. Returns the HTTP status: 200, or 500 when it did not fit.
 */
int tb_http_metrics(const tb_http_ctx_t *ctx, char *buf, size_t cap, size_t *len);

/*
 * Answers a POST. Returns the HTTP status and stores a new JSON body in *body (caller owns it);
 * an unknown path gives 404 {"error": "not_found"}. Never fails otherwise: out of memory is a
 * 500 {"error": "server_error"} (or a NULL body the transport answers as 500).
 */
int tb_http_post(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);

/*
 * Verifies req->bearer. Returns 0 with a new grant in *grant (caller frees it), or the status
 * to answer (401 with {"error": missing_token | invalid_token | token_expired}, 500 when out of
 * memory) with its body in *body.
 */
int tb_http_authenticate(const tb_http_ctx_t *ctx, const tb_http_req_t *req, tb_grant_t **grant,
                         json_t **body);

/*
 * Parses the body as one JSON object. Returns 0 with a new object in *obj (caller owns it), or
 * 400 with {"error": "bad_request"} in *body.
 */
int tb_http_json_body(const tb_http_req_t *req, json_t **obj, json_t **body);

/* {"error": code}; caller owns it. */
json_t *tb_http_error(const char *code);

/* The /stats document. Caller owns it. */
json_t *tb_http_stats_json(const tb_http_ctx_t *ctx);

#endif
