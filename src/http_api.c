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

static json_int_t load(const atomic_ullong *v)
{
    return (json_int_t)atomic_load_explicit(v, memory_order_relaxed);
}

json_t *tb_http_error(const char *code)
{
    return json_pack("{s:s}", "error", code);
}

static json_t *refused_by_reason(const tb_stats_t *s)
{
    json_t *o = json_object();
    for (int r = 0; r < TB_REFUSE_N; r++)
        json_object_set_new(o, tb_refuse_reason_name((tb_refuse_reason_t)r),
                            json_integer(load(&s->handshakes_refused[r])));
    return o;
}

static json_t *refused_json(const tb_stats_t *s)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "handshake_unauthorized",
                          load(&s->handshakes_unauthorized), "handshake_over_capacity",
                          load(&s->handshakes_over_capacity), "handshake_origin",
                          load(&s->handshakes_forbidden_origin), "handshake_rate_limited",
                          load(&s->handshakes_rate_limited), "handshake_too_large",
                          load(&s->handshakes_too_large), "client_message_too_big",
                          load(&s->client_too_big));
    if (o)
        json_object_set_new(o, "handshake_by_reason", refused_by_reason(s));
    return o;
}

static json_t *invalid_by_reason(const tb_stats_t *s)
{
    json_t *o = json_object();
    for (int r = 0; r < TB_INVALID_N; r++)
        json_object_set_new(o, tb_invalid_reason_name((tb_invalid_reason_t)r),
                            json_integer(load(&s->invalid_by_reason[r])));
    return o;
}

/* The last-value store, the history, and what subscribes and alerts made of them. */
static json_t *state_json(const tb_hub_t *hub)
{
    const tb_hub_counters_t *hc = tb_hub_counters(hub);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "devices",
                     (json_int_t)tb_hub_devices(hub), "device_evictions",
                     (json_int_t)hc->lastvalue_evictions, "history_messages",
                     (json_int_t)tb_hub_history_held(hub), "snapshot_frames",
                     (json_int_t)hc->snapshot_frames, "replayed", (json_int_t)hc->replayed,
                     "alerts", (json_int_t)hc->alerts, "published", (json_int_t)hc->published);
}

json_t *tb_http_stats_json(const tb_http_ctx_t *ctx)
{
    const tb_hub_counters_t *hc = tb_hub_counters(ctx->hub);
    const tb_stats_t *s = ctx->stats;
    json_int_t dropped = (json_int_t)hc->dropped + load(&s->dropped_queue_full);
    json_t *o = json_pack("{s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "connections",
                          (json_int_t)tb_hub_connections(ctx->hub), "rooms",
                          (json_int_t)tb_hub_rooms(ctx->hub), "mqtt_connected",
                          atomic_load(&s->mqtt_connected) != 0, "messages_in",
                          load(&s->messages_in), "messages_out", (json_int_t)hc->messages_out,
                          "dropped", dropped, "invalid_mqtt", load(&s->invalid_mqtt),
                          "slow_consumer_disconnects", (json_int_t)hc->slow_consumer_disconnects,
                          "uptime_s", (json_int_t)((tb_mono_ms() - ctx->started_mono_ms) / 1000));
    if (!o)
        return NULL;
    json_object_set_new(o, "invalid_mqtt_by_reason", invalid_by_reason(s));
    json_object_set_new(o, "refused", refused_json(s));
    json_object_set_new(
        o, "details",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "device_messages",
                  (json_int_t)hc->device_messages, "deliveries", (json_int_t)hc->deliveries,
                  "dropped_queue_full", load(&s->dropped_queue_full), "client_messages",
                  (json_int_t)hc->client_messages, "client_errors", (json_int_t)hc->client_errors,
                  "rate_limited", (json_int_t)hc->rate_limited, "connections_total",
                  (json_int_t)hc->connections_total, "expired_closes",
                  (json_int_t)hc->expired_closes, "mqtt_connects", load(&s->mqtt_connects), "epoch",
                  tb_hub_epoch(ctx->hub)));
    json_t *state = state_json(ctx->hub);
    json_object_update(json_object_get(o, "details"), state);
    json_decref(state);
    return o;
}

static void snapshot_handshakes(const tb_stats_t *s, tb_metrics_snapshot_t *m)
{
    m->handshake_failures[TB_METRICS_HS_UNAUTHORIZED] = load(&s->handshakes_unauthorized);
    m->handshake_failures[TB_METRICS_HS_FORBIDDEN_ORIGIN] = load(&s->handshakes_forbidden_origin);
    m->handshake_failures[TB_METRICS_HS_OVER_CAPACITY] = load(&s->handshakes_over_capacity);
    m->handshake_failures[TB_METRICS_HS_RATE_LIMITED] = load(&s->handshakes_rate_limited);
    m->handshake_failures[TB_METRICS_HS_TOO_LARGE] = load(&s->handshakes_too_large);
    for (int r = 0; r < TB_REFUSE_N; r++)
        m->handshake_refusals[r] = load(&s->handshakes_refused[r]);
}

static void snapshot_ingest(const tb_stats_t *s, tb_metrics_snapshot_t *m)
{
    for (int k = 0; k < TB_MSG_KIND_N; k++)
        m->messages_in[k] = load(&s->messages_in_by_kind[k]);
    for (int r = 0; r < TB_INVALID_N; r++)
        m->invalid_mqtt[r] = load(&s->invalid_by_reason[r]);
    m->dropped_ingest_queue_full = load(&s->dropped_queue_full);
    m->client_too_big = load(&s->client_too_big);
    m->connections_deflate = load(&s->deflate_connections);
    m->queue_depth_max = load(&s->queue_depth_max);
    m->mqtt_connected = atomic_load(&s->mqtt_connected) != 0;
    m->mqtt_connects = load(&s->mqtt_connects);
    m->mqtt_connect_failures = load(&s->mqtt_connect_failures);
}

static void snapshot_hub(const tb_hub_t *hub, tb_metrics_snapshot_t *m)
{
    const tb_hub_counters_t *hc = tb_hub_counters(hub);
    m->connections = tb_hub_connections(hub);
    m->connections_total = hc->connections_total;
    m->rooms = tb_hub_rooms(hub);
    for (int k = 0; k < TB_FRAME_KIND_N; k++)
        m->messages_out[k] = hc->messages_out_by_kind[k];
    m->deliveries = hc->deliveries;
    m->dropped_send_queue_full = hc->dropped;
    m->slow_consumer_disconnects = hc->slow_consumer_disconnects;
    m->client_messages = hc->client_messages;
    m->client_errors = hc->client_errors;
    m->rate_limited = hc->rate_limited;
    m->token_expired = hc->expired_closes;
    m->history_messages = tb_hub_history_held(hub);
    m->devices = tb_hub_devices(hub);
    m->device_evictions = hc->lastvalue_evictions;
    m->snapshot_frames = hc->snapshot_frames;
    m->replayed = hc->replayed;
    m->alerts = hc->alerts;
    m->published = hc->published;
}

void tb_http_metrics_snapshot(const tb_http_ctx_t *ctx, tb_metrics_snapshot_t *snap)
{
    *snap = (tb_metrics_snapshot_t){0};
    snapshot_hub(ctx->hub, snap);
    snapshot_ingest(ctx->stats, snap);
    snapshot_handshakes(ctx->stats, snap);
    if (ctx->queue) {
        snap->queue_depth = tb_queue_depth(ctx->queue);
        snap->queue_capacity = tb_queue_capacity(ctx->queue);
    }
    snap->uptime_s = (uint64_t)((tb_mono_ms() - ctx->started_mono_ms) / 1000);
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
    char ticket[TB_TICKET_LEN + 1];
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
    int rc = tb_tickets_issue(ctx->tickets, grant, req->now_ms, ttl_ms, ticket, &expires_ms);
    tb_grant_free(grant);
    if (rc == TB_TICKET_E_FULL) {
        *body = tb_http_error("too_many_tickets");
        return TB_HTTP_UNAVAILABLE;
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
