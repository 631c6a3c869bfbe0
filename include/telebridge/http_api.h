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
#include "telebridge/stats.h"

typedef struct {
    const tb_hub_t *hub;
    const tb_stats_t *stats;
    int64_t started_mono_ms; /* tb_mono_ms() at start, for uptime_s */
} tb_http_ctx_t;

/*
 * Answers GET path (without query). Returns the HTTP status and stores a new JSON body in
 * *body (caller owns it); an unknown path gives 404 with {"error": "not_found"}.
 */
int tb_http_get(const tb_http_ctx_t *ctx, const char *path, json_t **body);

/* The /stats document. Caller owns it. */
json_t *tb_http_stats_json(const tb_http_ctx_t *ctx);

#endif
