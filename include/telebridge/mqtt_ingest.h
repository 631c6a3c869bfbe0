/*
 * mqtt_ingest — the MQTT side: a libmosquitto client on its own thread.
 *
 * It connects with the configured client id (placeholders expanded) and clean session off to
 * the current node of mqtt_nodes.h (mqtt.hosts, or mqtt.host:port), subscribes to the
 * telemetry and status templates at the configured QoS, normalises every message once and
 * pushes an owned tb_msg_t into the hub queue, then calls wake(wake_arg) when the consumer
 * needs waking (the service thread passes a function calling lws_cancel_service()). When the
 * queue is full it waits (bounded, TB_INGEST_BACKPRESSURE_MS) before dropping and counting.
 * Broker down: reconnects with exponential backoff 1 s → 30 s with jitter, one log line per
 * attempt, each to the next node; stats->mqtt_connected follows the session, which is up once
 * the broker has granted both subscriptions (SUBACK), not at CONNACK: a cluster may take a
 * moment to set a subscription up, and nothing would arrive for it before.
 *
 * The retry delay after the n-th consecutive failure (a lost session counts as the first) is
 * "equal jitter": base = min(30 s, 1 s * 2^(n-1)), delay uniform in [base/2, base]. The
 * backoff restarts after every session that came up. Connecting is asynchronous, so stop() never
 * waits on a slow TCP connect; an unanswered connect is abandoned after keepalive_s.
 *
 * libmosquitto is used from the ingest thread only (the clean DISCONNECT at stop is sent by
 * that thread too). mosquitto_lib_init() runs once per process; mosquitto_lib_cleanup() is
 * never called, because it is process-wide and another client may still be alive.
 */
#ifndef TELEBRIDGE_MQTT_INGEST_H
#define TELEBRIDGE_MQTT_INGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "telebridge/config.h"
#include "telebridge/normalize.h"
#include "telebridge/queue.h"
#include "telebridge/stats.h"

/* How long a valid message waits for room in a full hub queue before it is dropped. */
#define TB_INGEST_BACKPRESSURE_MS 1000
/* tb_ingest_handle(): a valid message dropped (queue still full, or out of memory). */
#define TB_INGEST_DROPPED TB_NORMALIZE_ERR(TB_INVALID_END)

typedef struct tb_ingest tb_ingest_t;

typedef struct {
    const tb_config_t *cfg; /* must outlive the ingest */
    tb_queue_t *queue;      /* the producer side belongs to the ingest thread */
    tb_stats_t *stats;
    void (*wake)(void *arg);
    void *wake_arg;
    unsigned backpressure_ms; /* 0: TB_INGEST_BACKPRESSURE_MS */
} tb_ingest_opts_t;

/*
 * Creates the client (no network yet). opts->cfg is a configuration config.c has checked (host,
 * port, keepalive_s, qos and client_id are not checked again here). NULL with a message in err
 * (errlen bytes) naming the config key at fault (a bad topic template, an unreadable
 * mqtt.password_file, …).
 */
tb_ingest_t *tb_ingest_create(const tb_ingest_opts_t *opts, char *err, size_t errlen);
/* Starts the ingest thread, which connects and keeps reconnecting. 0, or -1 when the thread
 * cannot be created or is already running. */
int tb_ingest_start(tb_ingest_t *in);
/* Disconnects cleanly and joins the thread. Safe to call twice or without start. */
void tb_ingest_stop(tb_ingest_t *in);
/* Stops if needed and frees. NULL is a no-op. */
void tb_ingest_destroy(tb_ingest_t *in);

/*
 * Handles one received message as the thread would (match, normalise, count, queue). Exposed
 * for unit tests and fuzzing; call only from the producer thread. Returns 0 when queued,
 * TB_NORMALIZE_ERR(reason) (-reason) when refused (counted in stats->mqtt_invalid), or
 * TB_INGEST_DROPPED when the queue stayed full (counted in stats->dropped_queue_full) or memory
 * ran out.
 */
int tb_ingest_handle(tb_ingest_t *in, const char *topic, const void *payload, size_t len,
                     bool retained);

#endif
