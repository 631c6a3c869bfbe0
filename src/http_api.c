/* http_api — JSON endpoints; see include/telebridge/http_api.h. */
#include "telebridge/http_api.h"

#include <string.h>

#include "telebridge/publish.h"
#include "telebridge/util.h"

/* A POST endpoint: see "Adding a POST endpoint" in http_api.h. */
typedef int (*post_fn)(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);

static int post_ticket(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);
static int post_publish(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body);

static const struct {
    const char *path;
    post_fn fn;
} post_routes[] = {
    {"/api/v1/ws/ticket", post_ticket},
    {"/api/v1/publish", post_publish},
};

#define N_POST_ROUTES (sizeof(post_routes) / sizeof(post_routes[0]))

json_t *tb_http_error(const char *code)
{
    return json_pack("{s:s}", "error", code);
}

/* The DERIVED entries of TB_COUNTERS. */
static void snapshot_derived(const tb_http_ctx_t *ctx, tb_metrics_snapshot_t *m)
{
    uint64_t open = tb_hub_connections(ctx->hub);
    uint64_t deflate = atomic_load_explicit(&ctx->stats->deflate_connections, memory_order_relaxed);
    m->connections[TB_COMPRESSION_DEFLATE] = deflate < open ? deflate : open;
    m->connections[TB_COMPRESSION_NONE] = open - m->connections[TB_COMPRESSION_DEFLATE];
    m->rooms = tb_hub_rooms(ctx->hub);
    m->dropped[TB_DROP_INGEST_QUEUE_FULL] =
        atomic_load_explicit(&ctx->stats->dropped_queue_full, memory_order_relaxed);
    m->dropped[TB_DROP_SEND_QUEUE_FULL] = tb_hub_counters(ctx->hub)->dropped;
    if (ctx->queue) {
        m->queue_depth = tb_queue_depth(ctx->queue);
        m->queue_capacity = tb_queue_capacity(ctx->queue);
    }
    m->mqtt_reconnects = m->mqtt_connects ? m->mqtt_connects - 1 : 0;
    m->uptime_seconds = (uint64_t)((tb_mono_ms() - ctx->started_mono_ms) / 1000);
    m->history_messages = tb_hub_history_held(ctx->hub);
    m->history_file_writing = tb_hub_history_file(ctx->hub, &m->history_file_bytes);
    m->devices = tb_hub_devices(ctx->hub);
    m->send_queue_over_half = tb_hub_queues_over_half(ctx->hub);
}

void tb_http_metrics_snapshot(const tb_http_ctx_t *ctx, tb_metrics_snapshot_t *snap)
{
    const tb_stats_t *s = ctx->stats;
    const tb_hub_counters_t *hc = tb_hub_counters(ctx->hub);
    *snap = (tb_metrics_snapshot_t){0};
#define COPY_C_INGEST(name) snap->name = atomic_load_explicit(&s->name, memory_order_relaxed);
#define COPY_C_HUB(name) snap->name = hc->name;
#define COPY_C_DERIVED(name)
#define COPY_V_INGEST(name, end)                                                                   \
    for (int i = 0; i < (end); i++)                                                                \
        snap->name[i] = atomic_load_explicit(&s->name[i], memory_order_relaxed);
#define COPY_V_HUB(name, end) memcpy(snap->name, hc->name, sizeof(snap->name));
#define COPY_V_DERIVED(name, end)
#define COPY_C(name, type, owner, section, help) COPY_C_##owner(name)
#define COPY_V(name, type, owner, section, label, first, end, label_name, help)                    \
    COPY_V_##owner(name, end)
    TB_COUNTERS(COPY_C, COPY_V)
    snap->delivery_latency = hc->delivery_latency;
    snapshot_derived(ctx, snap);
}

json_t *tb_http_stats_json(const tb_http_ctx_t *ctx)
{
    tb_metrics_snapshot_t snap;
    tb_http_metrics_snapshot(ctx, &snap);
    json_t *o = tb_metrics_stats_json(&snap);
    if (o)
        json_object_set_new(json_object_get(o, "details"), "epoch",
                            json_string(tb_hub_epoch(ctx->hub)));
    return o;
}

int tb_http_metrics(const tb_http_ctx_t *ctx, char *buf, size_t cap, size_t *len)
{
    tb_metrics_snapshot_t snap;
    tb_http_metrics_snapshot(ctx, &snap);
    return tb_metrics_render(&snap, buf, cap, len) == 0 ? TB_HTTP_OK : TB_HTTP_SERVER_ERROR;
}

/* The endpoints that show what the bridge carries (rooms, devices, counters). */
static bool is_operator_path(const char *path)
{
    return strcmp(path, "/stats") == 0 || strcmp(path, "/api/v1/ws/stats") == 0 ||
           strcmp(path, "/rooms") == 0 || strcmp(path, "/metrics") == 0;
}

static bool is_health_path(const char *path)
{
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
}

int tb_http_gate(const tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body)
{
    tb_grant_t *grant = NULL;
    if (req->admin) {
        if (is_operator_path(req->path) || is_health_path(req->path))
            return 0;
        *body = tb_http_error("not_found");
        return TB_HTTP_NOT_FOUND;
    }
    if (!is_operator_path(req->path))
        return 0;
    int status = tb_http_authenticate(ctx, req, &grant, body);
    if (status)
        return status;
    if (!tb_grant_has_scope(grant, TB_HTTP_ADMIN_SCOPE)) {
        *body = tb_http_error("forbidden");
        status = TB_HTTP_FORBIDDEN;
    }
    tb_grant_free(grant);
    return status;
}

int tb_http_get(const tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body)
{
    const char *path = req->path;
    int status = tb_http_gate(ctx, req, body);
    if (status)
        return status;
    if (strcmp(path, "/healthz") == 0) {
        *body = json_pack("{s:s}", "status", "ok");
        return TB_HTTP_OK;
    }
    if (strcmp(path, "/readyz") == 0) {
        bool up = atomic_load(&ctx->stats->mqtt_connected) != 0;
        *body = json_pack("{s:s, s:b}", "status", up ? "ready" : "mqtt_disconnected",
                          "mqtt_connected", up);
        return up ? TB_HTTP_OK : TB_HTTP_UNAVAILABLE;
    }
    if (strcmp(path, "/stats") == 0 || strcmp(path, "/api/v1/ws/stats") == 0) {
        *body = tb_http_stats_json(ctx);
        return TB_HTTP_OK;
    }
    if (strcmp(path, "/rooms") == 0) {
        *body = tb_hub_rooms_json(ctx->hub);
        return TB_HTTP_OK;
    }
    for (size_t i = 0; i < N_POST_ROUTES; i++) {
        if (strcmp(path, post_routes[i].path) == 0) {
            *body = tb_http_error("method_not_allowed");
            return TB_HTTP_METHOD_NOT_ALLOWED;
        }
    }
    *body = tb_http_error("not_found");
    return TB_HTTP_NOT_FOUND;
}

int tb_http_post(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body)
{
    for (size_t i = 0; i < N_POST_ROUTES; i++)
        if (strcmp(req->path, post_routes[i].path) == 0)
            return post_routes[i].fn(ctx, req, body);
    *body = tb_http_error("not_found");
    return TB_HTTP_NOT_FOUND;
}

int tb_http_authenticate(const tb_http_ctx_t *ctx, const tb_http_req_t *req, tb_grant_t **grant,
                         json_t **body)
{
    const char *t = req->bearer;
    int rc =
        t ? tb_auth_verify(ctx->auth, t, strlen(t), req->now_ms / 1000, grant) : TB_AUTH_E_MISSING;
    if (rc == TB_AUTH_OK)
        return 0;
    *body = tb_http_error(tb_auth_err_code(rc));
    return rc == TB_AUTH_E_NOMEM ? TB_HTTP_SERVER_ERROR : TB_HTTP_UNAUTHORIZED;
}

int tb_http_json_body(const tb_http_req_t *req, json_t **obj, json_t **body)
{
    /* Without JSON_ALLOW_NUL: a body holding a NUL is refused, so C strings see all of it. */
    json_t *v =
        req->body_len ? json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (json_is_object(v)) {
        *obj = v;
        return 0;
    }
    json_decref(v);
    *body = tb_http_error("bad_request");
    return TB_HTTP_BAD_REQUEST;
}

/*
 * POST /api/v1/ws/ticket: a one-time ticket carrying the Bearer token's grant. Asking for a
 * ticket is the first half of a handshake: it spends a token of the per-address handshake
 * limiter (429 past it) before the Bearer token is looked at.
 */
static int post_ticket(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body)
{
    tb_grant_t *grant = NULL;
    char ticket[TB_TICKET_TEXT_MAX + 1];
    int64_t expires_ms;
    if (ctx->handshakes &&
        !tb_ratelimit_allow(ctx->handshakes, req->peer ? req->peer : "", tb_mono_ms())) {
        *body = tb_http_error("rate_limited");
        return TB_HTTP_TOO_MANY;
    }
    int status = tb_http_authenticate(ctx, req, &grant, body);
    if (status)
        return status;
    int64_t ttl_ms = (int64_t)ctx->cfg->auth.ticket_ttl_s * 1000;
    int rc = tb_ticket_issue(ctx->tickets, tb_auth_ticket_key(ctx->auth), grant, req->now_ms,
                             ttl_ms, ticket, &expires_ms);
    tb_grant_free(grant);
    if (rc == TB_TICKET_E_FULL) {
        *body = tb_http_error("too_many_tickets");
        return TB_HTTP_UNAVAILABLE;
    }
    if (rc == TB_TICKET_E_TOOBIG) {
        *body = tb_http_error("grant_too_large");
        return TB_HTTP_BAD_REQUEST;
    }
    if (rc != TB_TICKET_OK) {
        *body = tb_http_error("server_error");
        return TB_HTTP_SERVER_ERROR;
    }
    /* Whole seconds left, rounded down so a client never counts past the real expiry (0 when
     * the token itself expires within the second, or is inside its leeway). */
    int64_t left_s = expires_ms > req->now_ms ? (expires_ms - req->now_ms) / 1000 : 0;
    *body = json_pack("{s:s, s:I}", "ticket", ticket, "expires_in", (json_int_t)left_s);
    tb_wipe(ticket, sizeof(ticket));
    return TB_HTTP_OK;
}

/* Routes a valid publish body: 202 {"seq", "room"}, or 500 when out of memory. */
static int publish_valid(tb_http_ctx_t *ctx, const tb_publish_msg_t *msg, json_t **body)
{
    uint64_t seq = tb_hub_publish(ctx->hub, msg->room, msg->type, msg->payload);
    if (!seq) {
        *body = tb_http_error("server_error");
        return TB_HTTP_SERVER_ERROR;
    }
    *body = json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "room", msg->room);
    return TB_HTTP_ACCEPTED;
}

/* The body of an authorised publish: validated, its room granted, then routed. */
static int publish_checked(tb_http_ctx_t *ctx, const tb_grant_t *grant, const json_t *obj,
                           json_t **body)
{
    tb_publish_msg_t msg;
    const char *err = tb_publish_check(obj, (size_t)ctx->cfg->limits.max_mqtt_payload_bytes, &msg);
    if (err) {
        *body = tb_http_error(err);
        return strcmp(err, TB_PUBLISH_E_TOO_LARGE) == 0 ? TB_HTTP_TOO_LARGE : TB_HTTP_BAD_REQUEST;
    }
    if (!tb_grant_allows_room(grant, msg.room)) {
        *body = tb_http_error("forbidden");
        return TB_HTTP_FORBIDDEN;
    }
    return publish_valid(ctx, &msg, body);
}

/*
 * POST /api/v1/publish: a Bearer token whose scope has `publish` (else 401 / 403), a valid
 * body (publish.h; else 400, or 413 for a payload over limits.max_mqtt_payload_bytes), a room
 * the token's rooms grant, by the same rule as subscribe (else 403). The message is routed at
 * once: this runs on the service thread, as the hub does.
 */
static int post_publish(tb_http_ctx_t *ctx, const tb_http_req_t *req, json_t **body)
{
    tb_grant_t *grant = NULL;
    json_t *obj = NULL;
    int status = tb_http_authenticate(ctx, req, &grant, body);
    if (status)
        return status;
    if (!tb_grant_has_scope(grant, TB_PUBLISH_SCOPE)) {
        *body = tb_http_error("forbidden");
        status = TB_HTTP_FORBIDDEN;
    } else if (!(status = tb_http_json_body(req, &obj, body))) {
        status = publish_checked(ctx, grant, obj, body);
    }
    tb_grant_free(grant);
    json_decref(obj);
    return status;
}
