/*
 * http_api — the JSON endpoints served beside the WebSocket (health, readiness, stats, rooms).
 *
 * Transport-free so it can be tested without sockets: ws_server.c maps a request to
 * tb_http_get() and writes the answer.
 */
#ifndef TELEBRIDGE_HTTP_API_H
#define TELEBRIDGE_HTTP_API_H

#include <jansson.h>
#include <stdint.h>

#include "telebridge/hub.h"
#include "telebridge/metrics.h"
#include "telebridge/queue.h"
#include "telebridge/stats.h"

typedef struct {
    const tb_hub_t *hub;
    const tb_stats_t *stats;
    const tb_queue_t *queue; /* the MQTT -> hub queue, for its depth */
    int64_t started_mono_ms; /* tb_mono_ms() at start, for uptime_s */
} tb_http_ctx_t;

/*
 * Answers GET path (without query). Returns the HTTP status and stores a new JSON body in
 * *body (caller owns it); an unknown path gives 404 with {"error": "not_found"}.
 */
int tb_http_get(const tb_http_ctx_t *ctx, const char *path, json_t **body);

/* Copies every value /metrics exposes into *snap. */
void tb_http_metrics_snapshot(const tb_http_ctx_t *ctx, tb_metrics_snapshot_t *snap);

/*
 * The /metrics text (TB_METRICS_CONTENT_TYPE) in buf (cap bytes; TB_METRICS_TEXT_MAX is
 * enough), its length in *len. Returns the HTTP status: 200, or 500 when it did not fit.
 */
int tb_http_metrics(const tb_http_ctx_t *ctx, char *buf, size_t cap, size_t *len);

/* The /stats document. Caller owns it. */
json_t *tb_http_stats_json(const tb_http_ctx_t *ctx);

#endif
