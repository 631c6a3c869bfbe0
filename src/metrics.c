/* metrics — Prometheus text exposition and the /stats document; see
 * include/telebridge/metrics.h. */
#include "telebridge/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "telebridge_"

/* The TYPE of each TB_COUNTERS type. */
#define TYPE_COUNTER "counter"
#define TYPE_GAUGE "gauge"
#define TYPE_FLAG "gauge"

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow; /* sticky: once set, nothing more is written */
} writer_t;

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

/* The suffix a family name takes: "_total" for a counter not already named so. */
static const char *suffix(const char *name, const char *type)
{
    size_t n = strlen(name);
    bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
    return strcmp(type, TYPE_COUNTER) == 0 && !total ? "_total" : "";
}

/* The HELP and TYPE lines of family name (without the prefix). */
static void family(writer_t *w, const char *name, const char *type, const char *help)
{
    const char *sfx = suffix(name, type);
    put(w, "# HELP " PREFIX "%s%s %s\n# TYPE " PREFIX "%s%s %s\n", name, sfx, help, name, sfx,
        type);
}

static void scalar(writer_t *w, const char *name, const char *type, const char *help, uint64_t v)
{
    family(w, name, type, help);
    put(w, PREFIX "%s%s %" PRIu64 "\n", name, suffix(name, type), v);
}

/* value comes from a fixed name table ([a-z0-9_]+), so it needs no escaping. */
static void labelled(writer_t *w, const char *name, const char *type, const char *label,
                     const char *value, uint64_t v)
{
    put(w, PREFIX "%s%s{%s=\"%s\"} %" PRIu64 "\n", name, suffix(name, type), label, value, v);
}

#define LATENCY_FAMILY PREFIX "delivery_latency_seconds"

/* The delivery latency histogram: cumulative buckets, the sum in seconds, the count. */
static void histogram(writer_t *w, const tb_latency_t *h)
{
    uint64_t cumulative = 0;
    put(w, "# HELP " LATENCY_FAMILY " %s\n# TYPE " LATENCY_FAMILY " histogram\n",
        "Time from a message's arrival (MQTT or publish) to the write of its frame to a client.");
    for (int i = 0; i <= TB_LATENCY_N; i++) {
        cumulative += h->bucket[i];
        put(w, LATENCY_FAMILY "_bucket{le=\"%s\"} %" PRIu64 "\n", tb_latency_le(i), cumulative);
    }
    put(w, LATENCY_FAMILY "_sum %" PRIu64 ".%06" PRIu64 "\n", h->sum_us / 1000000,
        h->sum_us % 1000000);
    put(w, LATENCY_FAMILY "_count %" PRIu64 "\n", cumulative);
}

int tb_metrics_render(const tb_metrics_snapshot_t *snap, char *buf, size_t cap, size_t *len)
{
    writer_t w = {.buf = buf, .cap = cap, .len = 0, .overflow = cap == 0};
#define RENDER_C(name, type, owner, section, help) scalar(&w, #name, TYPE_##type, help, snap->name);
#define RENDER_V(name, type, owner, section, label, first, end, label_name, help)                  \
    family(&w, #name, TYPE_##type, help);                                                          \
    for (int i = first; i < end; i++)                                                              \
        labelled(&w, #name, TYPE_##type, #label, label_name(i), snap->name[i]);
    TB_COUNTERS(RENDER_C, RENDER_V)
#undef RENDER_C
#undef RENDER_V
    histogram(&w, &snap->delivery_latency);
    *len = w.len;
    return w.overflow ? TB_METRICS_E_SPACE : 0;
}

static json_t *number(uint64_t v)
{
    return json_integer((json_int_t)v);
}

#define JSON_COUNTER number
#define JSON_GAUGE number
#define JSON_FLAG(v) json_boolean((v) != 0)

/* {label value: n} of a V's samples; its sum in *sum. */
#define BY_LABEL(snap, name, first, end, label_name, sum)                                          \
    do {                                                                                           \
        json_t *o_ = json_object();                                                                \
        for (int i = first; i < end; i++) {                                                        \
            json_object_set_new(o_, label_name(i), number((snap)->name[i]));                       \
            sum += (snap)->name[i];                                                                \
        }                                                                                          \
        by_label = o_;                                                                             \
    } while (0)

/*
 * Keys /stats had before TB_COUNTERS, kept because tests and docs/ read them (the table's names
 * are the /metrics ones; docs/operations.md → Stats lists both). Each is one table entry under
 * its old name, or the sum of a V.
 */
static void add_legacy(json_t *doc, json_t *refused, json_t *details,
                       const tb_metrics_snapshot_t *s, const uint64_t sums[5])
{
    json_object_set_new(doc, "connections", number(sums[4]));
    json_object_set_new(doc, "messages_in", number(sums[0]));
    json_object_set_new(doc, "messages_out", number(sums[1]));
    json_object_set_new(doc, "dropped", number(sums[2]));
    json_object_set_new(doc, "invalid_mqtt", number(sums[3]));
    json_object_set_new(doc, "uptime_s", number(s->uptime_seconds));
    json_object_set(doc, "invalid_mqtt_by_reason", json_object_get(doc, "mqtt_invalid_by_reason"));
    const uint64_t *hs = s->handshake_failures;
    json_object_set_new(refused, "handshake_unauthorized",
                        number(hs[TB_REFUSE_CLASS_UNAUTHORIZED]));
    json_object_set_new(refused, "handshake_over_capacity",
                        number(hs[TB_REFUSE_CLASS_OVER_CAPACITY]));
    json_object_set_new(refused, "handshake_rate_limited",
                        number(hs[TB_REFUSE_CLASS_RATE_LIMITED]));
    json_object_set_new(refused, "handshake_too_large", number(hs[TB_REFUSE_CLASS_TOO_LARGE]));
    json_object_set_new(refused, "client_message_too_big", number(s->client_too_big));
    json_object_set(refused, "handshake_by_reason",
                    json_object_get(refused, "handshake_refusals_by_reason"));
    json_object_set_new(details, "expired_closes", number(s->token_expired));
    json_object_set_new(details, "snapshot_frames", number(s->snapshot_messages));
}

/* {"le": {bound: cumulative count, …, "+Inf": n}, "sum": seconds, "count": n}. */
static json_t *latency_json(const tb_latency_t *h)
{
    json_t *le = json_object();
    uint64_t cumulative = 0;
    for (int i = 0; i <= TB_LATENCY_N; i++) {
        cumulative += h->bucket[i];
        json_object_set_new(le, tb_latency_le(i), number(cumulative));
    }
    return json_pack("{s:o, s:f, s:I}", "le", le, "sum", (double)h->sum_us / 1e6, "count",
                     (json_int_t)cumulative);
}

json_t *tb_metrics_stats_json(const tb_metrics_snapshot_t *snap)
{
    json_t *doc = json_object(), *refused = json_object(), *details = json_object();
    json_t *section[] = {doc, details, refused}, *by_label = NULL;
    enum { TOP, DETAILS, REFUSED };
    /* The sums of messages_in, messages_out, dropped, mqtt_invalid, connections (add_legacy()). */
    uint64_t sums[5] = {0}, ignored = 0;
    if (!doc || !refused || !details) {
        json_decref(doc);
        json_decref(refused);
        json_decref(details);
        return NULL;
    }
#define SUM_messages_in sums[0]
#define SUM_messages_out sums[1]
#define SUM_dropped sums[2]
#define SUM_mqtt_invalid sums[3]
#define SUM_connections sums[4]
#define SUM_handshake_failures ignored
#define SUM_handshake_refusals ignored
#define STATS_C(name, type, owner, sec, help)                                                      \
    json_object_set_new(section[sec], #name, JSON_##type(snap->name));
#define STATS_V(name, type, owner, sec, label, first, end, label_name, help)                       \
    BY_LABEL(snap, name, first, end, label_name, SUM_##name);                                      \
    json_object_set_new(section[sec], #name "_by_" #label, by_label);
    TB_COUNTERS(STATS_C, STATS_V)
#undef STATS_C
#undef STATS_V
    (void)ignored;
    add_legacy(doc, refused, details, snap, sums);
    json_object_set_new(details, "delivery_latency_seconds", latency_json(&snap->delivery_latency));
    json_object_set_new(doc, "refused", refused);
    json_object_set_new(doc, "details", details);
    return doc;
}
