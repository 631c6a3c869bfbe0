/*
 * protocol — the WebSocket wire protocol: parsing client messages, building server envelopes.
 *
 * Client → server: one JSON object per text frame,
 *   {"type": "subscribe"|"unsubscribe"|"ping"|"refresh", "request_id"?: string|integer,
 *    "payload"?: {…}}
 * Server → client envelope: {"type", "room"?, "payload", "timestamp", "request_id"?, "seq"?}
 * with `timestamp` the bridge's send time (RFC 3339 UTC, milliseconds).
 */
#ifndef TELEBRIDGE_PROTOCOL_H
#define TELEBRIDGE_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"

/* Longest request_id string echoed back; a longer one is a bad_request. */
#define TB_REQUEST_ID_MAX 128

/*
 * Subscribe options (docs/protocol.md → Subscribe options), their limits defined here once:
 * max_hz from TB_PROTOCOL_MAX_HZ_MIN to TB_PROTOCOL_MAX_HZ_MAX; fields at most
 * TB_PROTOCOL_FIELDS_MAX distinct names of 1 to TB_PROTOCOL_FIELD_NAME_MAX bytes.
 */
#define TB_PROTOCOL_MAX_HZ_MIN 0.1
#define TB_PROTOCOL_MAX_HZ_MAX 100.0
#define TB_PROTOCOL_FIELDS_MAX 64
#define TB_PROTOCOL_FIELD_NAME_MAX 128
/* Room for an error message that names a payload key (cut to 48 bytes). */
#define TB_PROTOCOL_ERR_LEN 128

typedef enum {
    TB_PROTOCOL_CMSG_SUBSCRIBE = 0,
    TB_PROTOCOL_CMSG_UNSUBSCRIBE,
    TB_PROTOCOL_CMSG_PING,
    TB_PROTOCOL_CMSG_REFRESH,
} tb_protocol_cmsg_type_t;

/* Error codes of the `error` message (payload.code). */
#define TB_ERR_BAD_REQUEST "bad_request"
#define TB_ERR_FORBIDDEN "forbidden"
#define TB_ERR_TOO_MANY_ROOMS "too_many_rooms"
#define TB_ERR_RATE_LIMITED "rate_limited"
#define TB_ERR_UNKNOWN_TYPE "unknown_type"
#define TB_ERR_INTERNAL "internal_error"

/*
 * A parsed client message. All json_t pointers borrow from `root`, which the message owns;
 * release with tb_protocol_cmsg_clear().
 */
typedef struct {
    tb_protocol_cmsg_type_t type;
    json_t *root;
    json_t *request_id; /* string or integer, or NULL */
    json_t *rooms;      /* subscribe/unsubscribe: array of strings (possibly empty) */
    bool has_since;     /* subscribe: "since" present and well-formed */
    const char *since_epoch;
    uint64_t since_seq;
    bool has_since_time;   /* subscribe: "since" also had a valid "time" */
    int64_t since_time_ms; /* its Unix epoch milliseconds */
    const char *token;     /* refresh: payload.token */
    /* subscribe options, validated; each 0 / NULL when absent */
    double max_hz;   /* TB_PROTOCOL_MAX_HZ_MIN..TB_PROTOCOL_MAX_HZ_MAX */
    json_t *fields;  /* 1..TB_PROTOCOL_FIELDS_MAX distinct strings, 1..FIELD_NAME_MAX bytes */
    uint32_t series; /* >= 1; the hub checks it against history.series_points */
    char err[TB_PROTOCOL_ERR_LEN]; /* holds *err_msg when it names a payload key */
} tb_protocol_cmsg_t;

/*
 * Parses buf[0..len). Returns 0 and fills *out, or -1 and sets *err_code (one of TB_ERR_*) and
 * *err_msg (a static, human-readable reason). When the message had a usable request_id it is
 * still returned in *out->request_id (with out->root owning it) so the error can echo it: call
 * tb_protocol_cmsg_clear() after either outcome. A subscribe payload holds only rooms, since,
 * max_hz, fields and series: any other key, or a bad value of one, is a bad_request whose
 * message names it (*err_msg may then point into out->err, valid until the clear).
 */
int tb_protocol_cmsg_parse(const char *buf, size_t len, tb_protocol_cmsg_t *out,
                           const char **err_code, const char **err_msg);
void tb_protocol_cmsg_clear(tb_protocol_cmsg_t *m);

/*
 * Builds a control envelope {"type", "payload", "timestamp", "request_id"?} as a frame.
 * Steals the reference to payload (which may be NULL for {}). NULL when out of memory.
 */
tb_frame_t *tb_protocol_control(const char *type, json_t *payload, const json_t *request_id,
                                int64_t now_ms);

/* An `error` control frame with payload {"code", "message", "rooms"?}; steals rooms. */
tb_frame_t *tb_protocol_error(const char *code, const char *message, json_t *rooms,
                              const json_t *request_id, int64_t now_ms);

/*
 * Encodes a device message once: {"type", "room", "payload", "timestamp", "seq"} (its
 * snapshot copy is tb_protocol_snapshot()'s). payload is borrowed. NULL when out of memory.
 */
tb_frame_t *tb_protocol_device(const char *type, const char *room, const json_t *payload,
                               uint64_t seq, int64_t now_ms, tb_frame_kind_t kind);

/*
 * tb_protocol_device() from the payload's encoding (tb_frame_json_encode()) instead of its object:
 * the envelope is spliced from constant pieces, type, room, payload_json, the timestamp and seq,
 * with nothing parsed or encoded, and its bytes equal tb_protocol_device()'s for the same payload.
 * type and room must need no JSON escaping (printable ASCII without '"' or '\\', as device
 * ids and room names are, see tb_id_valid()); payload_json[0..payload_len) is one compact JSON
 * object, borrowed. NULL when out of memory or when type or room would need escaping.
 */
tb_frame_t *tb_protocol_device_spliced(const char *type, const char *room, const char *payload_json,
                                       size_t payload_len, uint64_t seq, int64_t now_ms,
                                       tb_frame_kind_t kind);

/*
 * The snapshot copy of a device-message frame f made by tb_protocol_device() or
 * tb_protocol_device_spliced(): the same envelope (seq, kind and timestamp — when the bridge first
 * sent that message — included) with "snapshot": true as its last member. A byte copy, nothing
 * parsed or encoded. NULL when out of memory.
 */
tb_frame_t *tb_protocol_snapshot(const tb_frame_t *f);

/* True when f is a tb_protocol_snapshot() copy. */
bool tb_protocol_is_snapshot(const tb_frame_t *f);

/*
 * The `room` of a frame made by tb_protocol_device(), tb_protocol_device_spliced() or
 * tb_protocol_snapshot(), copied with its NUL into out (TB_ROOM_MAX + 1 bytes); its length, or 0
 * when f is not such a frame (a control frame). Reads only the envelope's first two members.
 */
size_t tb_protocol_device_room(const tb_frame_t *f, char *out);

#endif
