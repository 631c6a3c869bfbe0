/* metrics — Prometheus text exposition; see include/telebridge/metrics.h. */
#include "telebridge/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#define PREFIX "telebridge_"

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow; /* sticky: once set, nothing more is written */
} writer_t;

static const char *const hs_reason_names[TB_METRICS_HS_N] = {
    "unauthorized", "forbidden_origin", "over_capacity", "rate_limited", "too_large",
};

const char *tb_metrics_hs_reason_name(tb_metrics_hs_reason_t reason)
{
    return (reason >= 0 && reason < TB_METRICS_HS_N) ? hs_reason_names[reason] : "unknown";
}

static void put(writer_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(writer_t *w, const char *fmt, ...)
{
    if (w->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    w->len += (size_t)n;
}

/* The HELP and TYPE lines of family name (without the prefix). */
static void family(writer_t *w, const char *name, const char *type, const char *help)
{
    put(w, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

static void sample(writer_t *w, const char *name, uint64_t value)
{
    put(w, PREFIX "%s %" PRIu64 "\n", name, value);
}

/* value comes from a fixed name table ([a-z0-9_]+), so it needs no escaping. */
static void labelled(writer_t *w, const char *name, const char *label, const char *value,
                     uint64_t v)
{
    put(w, PREFIX "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, value, v);
}

static void gauge(writer_t *w, const char *name, const char *help, uint64_t v)
{
    family(w, name, "gauge", help);
    sample(w, name, v);
}

static void counter(writer_t *w, const char *name, const char *help, uint64_t v)
{
    family(w, name, "counter", help);
    sample(w, name, v);
}

static void render_connections(writer_t *w, const tb_metrics_snapshot_t *s)
{
    uint64_t deflate =
        s->connections_deflate < s->connections ? s->connections_deflate : s->connections;
    family(w, "connections", "gauge",
           "Open WebSocket connections, by compression (permessage-deflate or none).");
    labelled(w, "connections", "compression", "deflate", deflate);
    labelled(w, "connections", "compression", "none", s->connections - deflate);
    counter(w, "connections_total", "WebSocket connections opened since start.",
            s->connections_total);
    gauge(w, "rooms", "Rooms with at least one subscriber.", s->rooms);
    family(w, "handshake_failures_total", "counter", "WebSocket upgrades refused, by reason.");
    for (int r = 0; r < TB_METRICS_HS_N; r++)
        labelled(w, "handshake_failures_total", "reason",
                 tb_metrics_hs_reason_name((tb_metrics_hs_reason_t)r), s->handshake_failures[r]);
    family(w, "handshake_refusals_total", "counter",
           "WebSocket upgrades refused, by exact reason (which credential check failed).");
    for (int r = 0; r < TB_REFUSE_N; r++)
        labelled(w, "handshake_refusals_total", "reason",
                 tb_refuse_reason_name((tb_refuse_reason_t)r), s->handshake_refusals[r]);
}

static void render_messages(writer_t *w, const tb_metrics_snapshot_t *s)
{
    family(w, "messages_in_total", "counter", "Device messages received from MQTT, by type.");
    for (int k = 0; k < TB_MSG_KIND_N; k++)
        labelled(w, "messages_in_total", "type", tb_msg_kind_name((tb_msg_kind_t)k),
                 s->messages_in[k]);
    family(w, "messages_out_total", "counter", "Frames written to WebSocket clients, by type.");
    for (int k = 0; k < TB_FRAME_KIND_N; k++)
        labelled(w, "messages_out_total", "type", tb_frame_kind_name((tb_frame_kind_t)k),
                 s->messages_out[k]);
    counter(w, "deliveries_total", "Device-message frames queued to clients.", s->deliveries);
    family(w, "mqtt_invalid_total", "counter", "MQTT messages refused, by reason.");
    for (int r = 0; r < TB_INVALID_N; r++)
        labelled(w, "mqtt_invalid_total", "reason", tb_invalid_reason_name((tb_invalid_reason_t)r),
                 s->invalid_mqtt[r]);
    family(w, "dropped_total", "counter", "Device messages lost, by reason.");
    labelled(w, "dropped_total", "reason", "ingest_queue_full", s->dropped_ingest_queue_full);
    labelled(w, "dropped_total", "reason", "send_queue_full", s->dropped_send_queue_full);
}

static void render_clients(writer_t *w, const tb_metrics_snapshot_t *s)
{
    counter(w, "slow_consumer_disconnects_total", "Clients closed with 1008 as slow consumers.",
            s->slow_consumer_disconnects);
    counter(w, "client_messages_total", "Client messages received.", s->client_messages);
    counter(w, "client_errors_total", "Error answers sent to clients.", s->client_errors);
    counter(w, "rate_limited_total", "Client messages refused by the rate limit.", s->rate_limited);
    counter(w, "client_too_big_total", "Clients closed with 1009 for an oversized message.",
            s->client_too_big);
    counter(w, "token_expired_total", "Clients closed with 4001 when their token expired.",
            s->token_expired);
}

static void render_ingest(writer_t *w, const tb_metrics_snapshot_t *s)
{
    gauge(w, "queue_depth", "Messages waiting in the MQTT-to-hub queue.", s->queue_depth);
    gauge(w, "queue_depth_max", "Highest MQTT-to-hub queue depth seen.", s->queue_depth_max);
    gauge(w, "queue_capacity", "Capacity of the MQTT-to-hub queue.", s->queue_capacity);
    gauge(w, "mqtt_connected", "1 while the MQTT broker session is up.", s->mqtt_connected);
    counter(w, "mqtt_connects_total", "MQTT broker sessions established, the first included.",
            s->mqtt_connects);
    counter(w, "mqtt_reconnects_total", "MQTT broker sessions established after the first.",
            s->mqtt_connects ? s->mqtt_connects - 1 : 0);
    counter(w, "mqtt_connect_failures_total", "MQTT connection attempts that failed.",
            s->mqtt_connect_failures);
    gauge(w, "uptime_seconds", "Seconds since the bridge started.", s->uptime_s);
}

static void render_state(writer_t *w, const tb_metrics_snapshot_t *s)
{
    gauge(w, "history_messages", "Device messages held for since recovery.", s->history_messages);
    gauge(w, "devices", "Devices in the last-value store.", s->devices);
    counter(w, "device_evictions_total", "Devices evicted from the full last-value store.",
            s->device_evictions);
    counter(w, "snapshot_messages_total", "Snapshot messages queued after subscribes.",
            s->snapshot_frames);
    counter(w, "replayed_total", "History messages queued by since recovery and catch-up.",
            s->replayed);
    counter(w, "alerts_total", "Alert messages routed, firing and resolved.", s->alerts);
    counter(w, "published_total", "Messages accepted by POST /api/v1/publish.", s->published);
}

int tb_metrics_render(const tb_metrics_snapshot_t *snap, char *buf, size_t cap, size_t *len)
{
    writer_t w = {.buf = buf, .cap = cap, .len = 0, .overflow = cap == 0};
    render_connections(&w, snap);
    render_messages(&w, snap);
    render_clients(&w, snap);
    render_ingest(&w, snap);
    render_state(&w, snap);
    *len = w.len;
    return w.overflow ? TB_METRICS_E_SPACE : 0;
}
