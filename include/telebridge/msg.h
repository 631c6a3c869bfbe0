/*
 * msg — the owned record the MQTT thread hands to the hub through the queue.
 *
 * Ownership: created by the MQTT thread, pushed into the queue, then owned by the hub, which
 * frees it with tb_msg_free() once encoded. `payload` is the normalised payload object (see
 * normalize.h), and `payload_json` its encoding, made once by the MQTT thread so that the
 * service thread splices it into the envelope (tb_protocol_device_spliced()) instead of encoding
 * the object; both are owned by the record and set together by tb_msg_set_payload(). The object
 * stays for the last-value merge and alert rules, which read its members.
 */
#ifndef TELEBRIDGE_MSG_H
#define TELEBRIDGE_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/util.h"

typedef enum { TB_MSG_TELEMETRY = 0, TB_MSG_STATUS, TB_MSG_KIND_N } tb_msg_kind_t;

/* "telemetry" or "status", for /metrics; "unknown" out of range. */
const char *tb_msg_kind_name(tb_msg_kind_t kind);

typedef struct tb_msg {
    tb_msg_kind_t kind;
    bool retained;                 /* delivered by the broker as a retained message */
    int64_t ingest_ms;             /* wall clock when the bridge received it */
    int64_t ingest_us;             /* the same instant in microseconds (tb_now_us()) */
    char device_id[TB_ID_MAX + 1]; /* validated with tb_id_valid() */
    char group[TB_ID_MAX + 1];     /* from a {group} in the topic, "" when none */
    json_t *payload;               /* owned; never NULL in a queued record */
    char *payload_json;            /* owned, NUL-terminated; never NULL in a queued record */
    size_t payload_json_len;       /* bytes of payload_json, its NUL excluded */
} tb_msg_t;

/*
 * Bound of payload_json for MQTT payloads of at most max_payload bytes: normalising may add the
 * device_id, timestamp and tags members and write numbers and escapes out longer than the
 * device did ("1e9" becomes "1000000000.0").
 */
#define TB_MSG_JSON_GROWTH 8
#define TB_MSG_JSON_SLACK 1024
#define TB_MSG_JSON_MAX(max_payload) ((max_payload)*TB_MSG_JSON_GROWTH + TB_MSG_JSON_SLACK)

/* Allocates a zeroed record. NULL when out of memory. */
tb_msg_t *tb_msg_new(void);
/*
 * Makes payload (stolen, even on failure) the record's, with its encoding (at most max_json
 * bytes, see tb_frame_json_encode()). 0, or -E2BIG / -ENOMEM (then the record has no payload).
 */
int tb_msg_set_payload(tb_msg_t *m, json_t *payload, size_t max_json);
/* Releases the record and its payload. NULL is a no-op. */
void tb_msg_free(tb_msg_t *m);

#endif
