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

/*
 * Why a WebSocket handshake was refused; indexes tb_stats_t.handshakes_refused. The first
 * eleven mirror tb_auth_err_t (a bad or missing JWT), then tickets, then the other checks; the
 * last two count every over-long request, whether it asked for an upgrade or not.
 */
typedef enum {
    TB_REFUSE_MISSING = 0,    /* 401: no credential */
    TB_REFUSE_MALFORMED,      /* 401: not a JWT, bad base64/JSON, too long */
    TB_REFUSE_ALG,            /* 401: alg none or not the configured one */
    TB_REFUSE_SIGNATURE,      /* 401 */
    TB_REFUSE_NO_EXP,         /* 401 */
    TB_REFUSE_EXPIRED,        /* 401 */
    TB_REFUSE_NOT_YET_VALID,  /* 401: nbf in the future */
    TB_REFUSE_ISSUER,         /* 401 */
    TB_REFUSE_AUDIENCE,       /* 401 */
    TB_REFUSE_CLAIMS,         /* 401: rooms/scope/sub of the wrong shape */
    TB_REFUSE_NOMEM,          /* 500 */
    TB_REFUSE_TICKET_UNKNOWN, /* 401 */
    TB_REFUSE_TICKET_USED,    /* 401 */
    TB_REFUSE_TICKET_EXPIRED, /* 401 */
    TB_REFUSE_ORIGIN,         /* 403: Origin not in listen.allowed_origins */
    TB_REFUSE_OVER_CAPACITY,  /* 503: limits.max_connections, or shutting down */
    TB_REFUSE_RATE_LIMITED,   /* 429: limits.handshakes_per_ip_per_s */
    TB_REFUSE_URI_TOO_LONG,   /* 414: any request, upgrade or not (docs/security.md) */
    TB_REFUSE_HEADERS_LARGE,  /* 431: any request, upgrade or not */
    TB_REFUSE_N
} tb_refuse_reason_t;

/* Short snake_case name of a refusal reason ("expired", "ticket_used", …), for logs, /stats
 * and /metrics; "unknown" out of range. */
const char *tb_refuse_reason_name(tb_refuse_reason_t reason);

typedef struct {
    atomic_ullong messages_in; /* MQTT messages normalised and queued for the hub */
    atomic_ullong messages_in_by_kind[TB_MSG_KIND_N]; /* messages_in split by tb_msg_kind_t */
    atomic_ullong invalid_mqtt;                       /* MQTT messages refused, all reasons */
    atomic_ullong invalid_by_reason[TB_INVALID_N];
    atomic_ullong dropped_queue_full;    /* valid messages lost because the hub queue stayed full */
    atomic_int mqtt_connected;           /* 1 while the broker session is up */
    atomic_ullong mqtt_connects;         /* successful broker connections, including the first */
    atomic_ullong mqtt_connect_failures; /* attempts that ended without a session */
    atomic_ullong queue_depth_max;       /* highest hub queue depth seen by the producer */
    /* Service thread, rare events (kept here so every refusal is visible in one place). */
    atomic_ullong handshakes_unauthorized;         /* upgrades refused with 401 */
    atomic_ullong handshakes_over_capacity;        /* upgrades refused with 503 */
    atomic_ullong handshakes_forbidden_origin;     /* upgrades refused with 403 */
    atomic_ullong handshakes_rate_limited;         /* upgrades refused with 429 */
    atomic_ullong handshakes_too_large;            /* requests refused with 414 or 431 */
    atomic_ullong handshakes_refused[TB_REFUSE_N]; /* every refused upgrade, by reason */
    atomic_ullong client_too_big;      /* connections closed 1009 for an oversized message */
    atomic_ullong deflate_connections; /* open WebSockets with permessage-deflate (a gauge) */
} tb_stats_t;

/* Counts one refused MQTT message under `reason`. */
void tb_stats_invalid(tb_stats_t *s, tb_invalid_reason_t reason);

/* Counts one refused handshake under `reason` and in its status's total (handshakes_*). */
void tb_stats_refused(tb_stats_t *s, tb_refuse_reason_t reason);

#endif
