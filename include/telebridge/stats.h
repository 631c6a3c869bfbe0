/*
 * stats — counters shared between the MQTT thread and the service thread.
 *
 * Every field is atomic (relaxed increments): the MQTT thread writes the ingest counters, the
 * service thread reads them for /stats. Counters that only the service thread touches per
 * delivery live in the hub as plain integers (see tb_hub_counters_t) to keep the hot path free
 * of locked instructions. Zero-initialise a tb_stats_t before use.
 */
#ifndef TELEBRIDGE_STATS_H
#define TELEBRIDGE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "telebridge/msg.h"

/* Why an MQTT message was refused; indexes tb_stats_t.invalid_by_reason. */
typedef enum {
    TB_INVALID_NOT_JSON = 0, /* payload is not JSON (telemetry) */
    TB_INVALID_NOT_OBJECT,   /* JSON, but not an object */
    TB_INVALID_TOO_LARGE,    /* over limits.max_mqtt_payload_bytes */
    TB_INVALID_BAD_UTF8,     /* not well-formed UTF-8 */
    TB_INVALID_BAD_TOPIC,    /* topic matches no template, or its device id/group is invalid */
    TB_INVALID_BAD_VALUE,    /* JSON object, but no usable fields / status */
    TB_INVALID_N
} tb_invalid_reason_t;

/* Short snake_case name of a reason ("not_json", …), for logs, /stats and /metrics. */
const char *tb_invalid_reason_name(tb_invalid_reason_t reason);

typedef struct {
    atomic_ullong messages_in;  /* MQTT messages normalised and queued for the hub */
    atomic_ullong messages_in_by_kind[TB_MSG_KIND_N]; /* messages_in split by tb_msg_kind_t */
    atomic_ullong invalid_mqtt; /* MQTT messages refused, all reasons */
    atomic_ullong invalid_by_reason[TB_INVALID_N];
    atomic_ullong dropped_queue_full; /* valid messages lost because the hub queue stayed full */
    atomic_int mqtt_connected;        /* 1 while the broker session is up */
    atomic_ullong mqtt_connects;      /* successful broker connections, including the first */
    atomic_ullong mqtt_connect_failures; /* attempts that ended without a session */
    atomic_ullong queue_depth_max;    /* highest hub queue depth seen by the producer */
    /* Service thread, rare events (kept here so every refusal is visible in one place). */
    atomic_ullong handshakes_unauthorized;     /* upgrades refused with 401 */
    atomic_ullong handshakes_over_capacity;    /* upgrades refused with 503 */
    atomic_ullong handshakes_forbidden_origin; /* upgrades refused with 403 */
    atomic_ullong client_too_big; /* connections closed 1009 for an oversized message */
} tb_stats_t;

/* Counts one refused MQTT message under `reason`. */
void tb_stats_invalid(tb_stats_t *s, tb_invalid_reason_t reason);

#endif
