/*
 * stats — the one list of counters (TB_COUNTERS), the reason lists they are split by, and the
 * counters shared between the MQTT thread and the service thread.
 *
 * TB_COUNTERS generates tb_stats_t (owner INGEST), the hub's tb_hub_counters_t (owner HUB), the
 * metrics snapshot, the /metrics families and the /stats document (metrics.h). Adding a counter
 * is one line there, then the line that counts it. docs/operations.md lists them all.
 *
 * Every tb_stats_t field is atomic (relaxed): the MQTT thread writes the ingest counters, the
 * service thread the handshake ones and reads them all for /stats. Counters that only the
 * service thread touches per delivery live in the hub as plain integers, to keep the hot path
 * free of locked instructions. Zero-initialise a tb_stats_t before use.
 *
 * Reason enums start at 1 (0 is "none"), so an error return can be -reason; arrays indexed by
 * a reason have TB_..._END slots, slot 0 unused.
 */
#ifndef TELEBRIDGE_STATS_H
#define TELEBRIDGE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/auth.h"
#include "telebridge/frame.h"
#include "telebridge/msg.h"
#include "telebridge/ticket.h"

/* Why an MQTT message was refused: X(NAME, reason name). */
#define TB_INVALID_REASONS(X)                                                                      \
    X(NOT_JSON, "not_json")     /* payload is not JSON (telemetry) */                              \
    X(NOT_OBJECT, "not_object") /* JSON, but not an object */                                      \
    X(TOO_LARGE, "too_large")   /* over limits.max_mqtt_payload_bytes */                           \
    X(BAD_UTF8, "bad_utf8")     /* not well-formed UTF-8 */                                        \
    X(BAD_TOPIC, "bad_topic")   /* topic matches no template, or its device id/group is invalid */ \
    X(BAD_VALUE, "bad_value")   /* JSON object, but no usable fields / status */

typedef enum {
    TB_INVALID_NONE = 0,
#define TB_INVALID_ENUM(name, str) TB_INVALID_##name,
    TB_INVALID_REASONS(TB_INVALID_ENUM)
#undef TB_INVALID_ENUM
        TB_INVALID_END
} tb_invalid_reason_t;

/* Short snake_case name of a reason ("not_json", …), for logs, /stats and /metrics; "unknown"
 * out of range. */
const char *tb_invalid_reason_name(tb_invalid_reason_t reason);

/* The answer a handshake refusal gets: X(NAME, class name), the `reason` label of
 * telebridge_handshake_failures_total. */
#define TB_REFUSE_CLASSES(X)                                                                       \
    X(UNAUTHORIZED, "unauthorized")         /* 401 */                                              \
    X(FORBIDDEN_ORIGIN, "forbidden_origin") /* 403 */                                              \
    X(OVER_CAPACITY, "over_capacity")       /* 503 */                                              \
    X(RATE_LIMITED, "rate_limited")         /* 429 */                                              \
    X(TOO_LARGE, "too_large")               /* 414, 431: any request */

typedef enum {
    TB_REFUSE_CLASS_NONE = 0, /* counted by reason only (out of memory, a 500) */
#define TB_REFUSE_CLASS_ENUM(name, str) TB_REFUSE_CLASS_##name,
    TB_REFUSE_CLASSES(TB_REFUSE_CLASS_ENUM)
#undef TB_REFUSE_CLASS_ENUM
        TB_REFUSE_CLASS_END
} tb_refuse_class_t;

/* "unauthorized", …; "unknown" out of range. */
const char *tb_refuse_class_name(tb_refuse_class_t c);

/* Refusals that are neither a bad JWT nor a bad ticket: X(NAME, reason name, class). The last
 * two count every over-long request, whether it asked for an upgrade or not. */
#define TB_REFUSE_OTHER(X)                                                                         \
    X(ORIGIN, "origin", FORBIDDEN_ORIGIN)            /* Origin not in listen.allowed_origins */    \
    X(OVER_CAPACITY, "over_capacity", OVER_CAPACITY) /* limits.max_connections, shutting down */   \
    X(RATE_LIMITED, "rate_limited", RATE_LIMITED)    /* limits.handshakes_per_ip_per_s */          \
    X(URI_TOO_LONG, "uri_too_long", TOO_LARGE)       /* docs/security.md */                        \
    X(HEADERS_LARGE, "headers_too_large", TOO_LARGE)

/*
 * Why a WebSocket handshake was refused, the `reason` label of
 * telebridge_handshake_refusals_total: every TB_AUTH_ERRORS entry (TB_REFUSE_<NAME>), every
 * TB_TICKET_REDEEM_ERRORS entry (TB_REFUSE_TICKET_<NAME>), then TB_REFUSE_OTHER.
 */
typedef enum {
    TB_REFUSE_NONE = 0,
#define TB_REFUSE_AUTH_ENUM(name, reason, code) TB_REFUSE_##name,
    TB_AUTH_ERRORS(TB_REFUSE_AUTH_ENUM)
#undef TB_REFUSE_AUTH_ENUM
#define TB_REFUSE_TICKET_ENUM(name, reason) TB_REFUSE_TICKET_##name,
        TB_TICKET_REDEEM_ERRORS(TB_REFUSE_TICKET_ENUM)
#undef TB_REFUSE_TICKET_ENUM
#define TB_REFUSE_OTHER_ENUM(name, reason, cls) TB_REFUSE_##name,
            TB_REFUSE_OTHER(TB_REFUSE_OTHER_ENUM)
#undef TB_REFUSE_OTHER_ENUM
                TB_REFUSE_END
} tb_refuse_reason_t;

/* Short snake_case name of a refusal reason ("expired", "ticket_used", …), for logs, /stats
 * and /metrics; "unknown" out of range. */
const char *tb_refuse_reason_name(tb_refuse_reason_t reason);
/* The refusal of a tb_auth_err_t (TB_REFUSE_MALFORMED for anything not in the table). */
tb_refuse_reason_t tb_refuse_from_auth(int auth_err);
/* The refusal of a tb_ticket_err_t (TB_REFUSE_TICKET_UNKNOWN for anything else). */
tb_refuse_reason_t tb_refuse_from_ticket(int ticket_err);

/* Why a device message was lost: X(NAME, reason name), the `reason` of telebridge_dropped_total. */
#define TB_DROP_REASONS(X)                                                                         \
    X(INGEST_QUEUE_FULL, "ingest_queue_full") /* the MQTT -> hub queue stayed full */              \
    X(SEND_QUEUE_FULL, "send_queue_full")     /* a client's send queue bound */

typedef enum {
    TB_DROP_NONE = 0,
#define TB_DROP_ENUM(name, str) TB_DROP_##name,
    TB_DROP_REASONS(TB_DROP_ENUM)
#undef TB_DROP_ENUM
        TB_DROP_END
} tb_drop_reason_t;

const char *tb_drop_reason_name(tb_drop_reason_t reason);

/* Whether a connection compresses: X(NAME, name), the `compression` of telebridge_connections. */
#define TB_COMPRESSIONS(X)                                                                         \
    X(DEFLATE, "deflate") /* permessage-deflate negotiated */                                      \
    X(NONE, "none")

typedef enum {
    TB_COMPRESSION_UNSET = 0,
#define TB_COMPRESSION_ENUM(name, str) TB_COMPRESSION_##name,
    TB_COMPRESSIONS(TB_COMPRESSION_ENUM)
#undef TB_COMPRESSION_ENUM
        TB_COMPRESSION_END
} tb_compression_t;

const char *tb_compression_name(tb_compression_t c);

/*
 * The buckets of telebridge_delivery_latency_seconds, the time from a message's arrival (MQTT,
 * or POST /api/v1/publish) to the write of its frame to a client's socket:
 * X(upper bound in microseconds, its `le` label in seconds). Fixed, so observing allocates
 * nothing; a last +Inf bucket follows.
 */
#define TB_LATENCY_BUCKETS(X)                                                                      \
    X(100, "0.0001")                                                                               \
    X(250, "0.00025")                                                                              \
    X(500, "0.0005")                                                                               \
    X(1000, "0.001")                                                                               \
    X(2500, "0.0025")                                                                              \
    X(5000, "0.005")                                                                               \
    X(10000, "0.01")                                                                               \
    X(25000, "0.025")                                                                              \
    X(50000, "0.05")                                                                               \
    X(100000, "0.1")                                                                               \
    X(250000, "0.25")                                                                              \
    X(500000, "0.5")                                                                               \
    X(1000000, "1")                                                                                \
    X(2500000, "2.5")                                                                              \
    X(5000000, "5")                                                                                \
    X(10000000, "10")

#define TB_LATENCY_COUNT_ONE(us, le) +1
/* Finite buckets; the +Inf one is bucket[TB_LATENCY_N]. */
#define TB_LATENCY_N (0 TB_LATENCY_BUCKETS(TB_LATENCY_COUNT_ONE))

/*
 * A latency histogram: bucket[i] counts the observations in (bound[i-1], bound[i]] (not
 * cumulative; the exposition sums them), sum_us their total. Service thread only: a plain
 * struct, zero-initialised.
 */
typedef struct {
    uint64_t bucket[TB_LATENCY_N + 1];
    uint64_t sum_us;
} tb_latency_t;

/* Counts n observations of us microseconds (a negative one as 0). */
void tb_latency_observe(tb_latency_t *h, int64_t us, uint64_t n);
/* The `le` label of bucket i ("0.0001", …, "+Inf"). */
const char *tb_latency_le(int i);
/* Observations in all (the +Inf bucket's cumulative count). */
uint64_t tb_latency_count(const tb_latency_t *h);

/*
 * The counters, in /metrics order.
 *   C(name, type, owner, section, help)                               one number
 *   V(name, type, owner, section, label, first, end, label_name, help) split by one label
 * type: COUNTER, GAUGE, or FLAG (a 0/1 gauge, a boolean in /stats).
 * owner: INGEST (an atomic field of tb_stats_t), HUB (a field of tb_hub_counters_t), DERIVED
 *   (computed when read: http_api.c fills it into the snapshot).
 * section: where the number goes in /stats: TOP (the document), DETAILS or REFUSED (the
 *   "details" and "refused" objects).
 * /metrics: "telebridge_" name, and "_total" after a counter's name unless it ends so; a V is
 *   one sample per label value from first to end - 1 (label_name gives the value). /stats: a C
 *   under its name, a V as an object {value: n} under name "_by_" label (its sum, under its
 *   older name, is among the older keys of metrics.c).
 */
#define TB_COUNTERS(C, V)                                                                          \
    V(connections, GAUGE, DERIVED, TOP, compression, 1, TB_COMPRESSION_END, tb_compression_name,   \
      "Open WebSocket connections, by compression (permessage-deflate or none).")                  \
    C(connections_total, COUNTER, HUB, DETAILS, "WebSocket connections opened since start.")       \
    C(rooms, GAUGE, DERIVED, TOP, "Rooms with at least one subscriber.")                           \
    V(handshake_failures, COUNTER, INGEST, REFUSED, reason, 1, TB_REFUSE_CLASS_END,                \
      tb_refuse_class_name, "WebSocket upgrades refused, by reason.")                              \
    V(handshake_refusals, COUNTER, INGEST, REFUSED, reason, 1, TB_REFUSE_END,                      \
      tb_refuse_reason_name,                                                                       \
      "WebSocket upgrades refused, by exact reason (which credential check failed).")              \
    V(messages_in, COUNTER, INGEST, TOP, type, 0, TB_MSG_KIND_N, tb_msg_kind_name,                 \
      "Device messages received from MQTT, by type.")                                              \
    V(messages_out, COUNTER, HUB, TOP, type, 0, TB_FRAME_KIND_N, tb_frame_kind_name,               \
      "Frames written to WebSocket clients, by type.")                                             \
    C(deliveries, COUNTER, HUB, DETAILS, "Device-message frames queued to clients.")               \
    C(conflated, COUNTER, HUB, DETAILS,                                                            \
      "Telemetry held back by max_hz or slow_consumer conflate, folded into a later send.")        \
    V(mqtt_invalid, COUNTER, INGEST, TOP, reason, 1, TB_INVALID_END, tb_invalid_reason_name,       \
      "MQTT messages refused, by reason.")                                                         \
    V(dropped, COUNTER, DERIVED, TOP, reason, 1, TB_DROP_END, tb_drop_reason_name,                 \
      "Device messages lost, by reason.")                                                          \
    C(slow_consumer_disconnects, COUNTER, HUB, TOP, "Clients closed with 1008 as slow consumers.") \
    C(send_queue_over_half, GAUGE, DERIVED, DETAILS,                                               \
      "Connections whose send queue holds more than half of limits.send_queue_messages.")          \
    C(client_messages, COUNTER, HUB, DETAILS, "Client messages received.")                         \
    C(client_errors, COUNTER, HUB, DETAILS, "Error answers sent to clients.")                      \
    C(rate_limited, COUNTER, HUB, DETAILS, "Client messages refused by the rate limit.")           \
    C(client_too_big, COUNTER, INGEST, REFUSED,                                                    \
      "Clients closed with 1009 for an oversized message.")                                        \
    C(token_expired, COUNTER, HUB, DETAILS, "Clients closed with 4001 when their token expired.")  \
    C(queue_depth, GAUGE, DERIVED, DETAILS, "Messages waiting in the MQTT-to-hub queue.")          \
    C(queue_depth_max, GAUGE, INGEST, DETAILS, "Highest MQTT-to-hub queue depth seen.")            \
    C(queue_capacity, GAUGE, DERIVED, DETAILS, "Capacity of the MQTT-to-hub queue.")               \
    C(mqtt_connected, FLAG, INGEST, TOP, "1 while the MQTT broker session is up.")                 \
    C(mqtt_connects, COUNTER, INGEST, DETAILS,                                                     \
      "MQTT broker sessions established, the first included.")                                     \
    C(mqtt_reconnects, COUNTER, DERIVED, DETAILS,                                                  \
      "MQTT broker sessions established after the first.")                                         \
    C(mqtt_connect_failures, COUNTER, INGEST, DETAILS, "MQTT connection attempts that failed.")    \
    C(mqtt_node, GAUGE, INGEST, DETAILS,                                                           \
      "Index in mqtt.hosts of the broker node in use or being tried (0 without mqtt.hosts).")      \
    C(uptime_seconds, GAUGE, DERIVED, TOP, "Seconds since the bridge started.")                    \
    C(history_messages, GAUGE, DERIVED, DETAILS, "Device messages held for since recovery.")       \
    C(history_file_writing, GAUGE, DERIVED, DETAILS,                                               \
      "1 while history.file is written, 0 without one or after a write error turned it off.")      \
    C(history_file_bytes, GAUGE, DERIVED, DETAILS,                                                 \
      "Bytes of history.file's current segment (the previous one is at most as long).")           \
    C(devices, GAUGE, DERIVED, DETAILS, "Devices in the last-value store.")                        \
    C(device_evictions, COUNTER, HUB, DETAILS, "Devices evicted from the full last-value store.")  \
    C(snapshot_messages, COUNTER, HUB, DETAILS, "Snapshot messages queued after subscribes.")      \
    C(series_messages, COUNTER, HUB, DETAILS, "Series messages queued after subscribes.")          \
    C(replayed, COUNTER, HUB, DETAILS, "History messages queued by since recovery and catch-up.")  \
    C(alerts, COUNTER, HUB, DETAILS, "Alert messages routed, firing and resolved.")                \
    C(published, COUNTER, HUB, DETAILS, "Messages accepted by POST /api/v1/publish.")              \
    C(device_messages, COUNTER, HUB, DETAILS, "Device messages routed, each given a seq.")

/* Field generators: a C or V of owner O becomes a field of the struct for O, else nothing. */
#define TB_STATS_T_COUNTER atomic_ullong
#define TB_STATS_T_GAUGE atomic_ullong
#define TB_STATS_T_FLAG atomic_int
#define TB_STATS_C_INGEST(name, type) TB_STATS_T_##type name;
#define TB_STATS_C_HUB(name, type)
#define TB_STATS_C_DERIVED(name, type)
#define TB_STATS_V_INGEST(name, end) atomic_ullong name[end];
#define TB_STATS_V_HUB(name, end)
#define TB_STATS_V_DERIVED(name, end)
#define TB_STATS_FIELD_C(name, type, owner, section, help) TB_STATS_C_##owner(name, type)
#define TB_STATS_FIELD_V(name, type, owner, section, label, first, end, label_name, help)          \
    TB_STATS_V_##owner(name, end)

typedef struct {
    TB_COUNTERS(TB_STATS_FIELD_C, TB_STATS_FIELD_V)
    /* Parts of DERIVED entries: valid messages lost because the hub queue stayed full
     * (`dropped`), open WebSockets with permessage-deflate (`connections`). */
    atomic_ullong dropped_queue_full;
    atomic_ullong deflate_connections;
} tb_stats_t;

/* The sum of n atomic counters (a V's samples). */
uint64_t tb_stats_sum(const atomic_ullong *v, size_t n);

/* Counts one refused MQTT message under `reason`. */
void tb_stats_invalid(tb_stats_t *s, tb_invalid_reason_t reason);

/* Counts one refused handshake under `reason` and under its class. */
void tb_stats_refused(tb_stats_t *s, tb_refuse_reason_t reason);

#endif
