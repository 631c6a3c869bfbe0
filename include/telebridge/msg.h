/*
 * msg — the owned record the MQTT thread hands to the hub through the queue.
 *
 * Ownership: created by the MQTT thread, pushed into the queue, then owned by the hub, which
 * frees it with tb_msg_free() once encoded. `payload` is the normalised payload object (see
 * normalize.h) and is owned by the record.
 */
#ifndef TELEBRIDGE_MSG_H
#define TELEBRIDGE_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "telebridge/util.h"

typedef enum { TB_MSG_TELEMETRY = 0, TB_MSG_STATUS, TB_MSG_KIND_N } tb_msg_kind_t;

/* "telemetry" or "status", for /metrics; "unknown" out of range. */
const char *tb_msg_kind_name(tb_msg_kind_t kind);

typedef struct tb_msg {
    tb_msg_kind_t kind;
    bool retained;                 /* delivered by the broker as a retained message */
    int64_t ingest_ms;             /* wall clock when the bridge received it */
    char device_id[TB_ID_MAX + 1]; /* validated with tb_id_valid() */
    char group[TB_ID_MAX + 1];     /* from a {group} in the topic, "" when none */
    json_t *payload;               /* owned; never NULL in a queued record */
} tb_msg_t;

/* Allocates a zeroed record. NULL when out of memory. */
tb_msg_t *tb_msg_new(void);
/* Releases the record and its payload. NULL is a no-op. */
void tb_msg_free(tb_msg_t *m);

#endif
