/*
 * metrics — the Prometheus text exposition (format 0.0.4) served at GET /metrics.
 *
 * Transport- and hub-free: the caller copies the counters into a tb_metrics_snapshot_t
 * (http_api.c does, on the service thread) and tb_metrics_render() writes the text into a
 * caller-owned buffer of bounded size. Every family has a HELP and a TYPE line; names carry the
 * "telebridge_" prefix and counters end in "_total". Label values come from the modules' fixed
 * reason/kind name tables, which hold only [a-z0-9_] names, so none needs escaping.
 *
 * docs/operations.md lists every family.
 */
#ifndef TELEBRIDGE_METRICS_H
#define TELEBRIDGE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"
#include "telebridge/msg.h"
#include "telebridge/stats.h"

/* The Content-Type of the exposition. */
#define TB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Room for the whole exposition, with a wide margin over what it needs (about 6 KiB). */
#define TB_METRICS_TEXT_MAX (32 * 1024)

#define TB_METRICS_E_SPACE (-1) /* the text did not fit in the buffer */

/* Handshake refusals, the `reason` label of telebridge_handshake_failures_total. */
typedef enum {
    TB_METRICS_HS_UNAUTHORIZED = 0, /* 401 */
    TB_METRICS_HS_FORBIDDEN_ORIGIN, /* 403 */
    TB_METRICS_HS_OVER_CAPACITY,    /* 503 */
    TB_METRICS_HS_RATE_LIMITED,     /* 429 */
    TB_METRICS_HS_TOO_LARGE,        /* 414, 431: any request */
    TB_METRICS_HS_N
} tb_metrics_hs_reason_t;

/* A consistent-enough copy of every value exposed (plain numbers, no pointers). */
typedef struct {
    uint64_t connections;         /* open WebSockets */
    uint64_t connections_deflate; /* of which permessage-deflate (at most connections) */
    uint64_t connections_total;   /* opened since start */
    uint64_t rooms;
    uint64_t messages_in[TB_MSG_KIND_N];    /* MQTT messages queued for the hub, by kind */
    uint64_t messages_out[TB_FRAME_KIND_N]; /* frames written to clients, by kind */
    uint64_t deliveries;                    /* device-message frames queued to clients */
    uint64_t invalid_mqtt[TB_INVALID_N];    /* MQTT messages refused, by reason */
    uint64_t dropped_ingest_queue_full;     /* lost: the MQTT -> hub queue stayed full */
    uint64_t dropped_send_queue_full;       /* lost: a client's send queue was full */
    uint64_t slow_consumer_disconnects;     /* closed with 1008 */
    uint64_t handshake_failures[TB_METRICS_HS_N];
    uint64_t handshake_refusals[TB_REFUSE_N]; /* the same refusals by their exact reason */
    uint64_t client_messages;                 /* client messages received */
    uint64_t client_errors;                   /* `error` answers sent */
    uint64_t rate_limited;                    /* client messages refused by the rate limit */
    uint64_t client_too_big;                  /* connections closed with 1009 */
    uint64_t token_expired;                   /* connections closed with 4001 */
    uint64_t queue_depth;                     /* MQTT -> hub queue, now */
    uint64_t queue_depth_max;                 /* highest depth seen */
    uint64_t queue_capacity;
    bool mqtt_connected;
    uint64_t mqtt_connects;         /* broker sessions established, the first included */
    uint64_t mqtt_connect_failures; /* attempts that ended without a session */
    uint64_t history_messages;      /* device messages held for `since` recovery */
    uint64_t devices;               /* devices in the last-value store */
    uint64_t device_evictions;      /* devices evicted from it when full */
    uint64_t snapshot_frames;       /* snapshot messages queued after subscribes */
    uint64_t replayed;              /* history messages queued by recovery and catch-up */
    uint64_t alerts;                /* alert messages routed */
    uint64_t published;             /* messages accepted by POST /api/v1/publish */
    uint64_t uptime_s;
} tb_metrics_snapshot_t;

/* "unauthorized", "forbidden_origin", "over_capacity", "rate_limited"; "unknown" out of range. */
const char *tb_metrics_hs_reason_name(tb_metrics_hs_reason_t reason);

/*
 * Writes the exposition of snap into buf (cap bytes, NUL-terminated) and its length, without
 * the NUL, into *len. Returns 0, or TB_METRICS_E_SPACE when cap is too small (buf then holds a
 * truncated prefix that must not be served).
 */
int tb_metrics_render(const tb_metrics_snapshot_t *snap, char *buf, size_t cap, size_t *len);

#endif
