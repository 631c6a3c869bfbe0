/*
 * publish — validation of a POST /api/v1/publish body.
 *
 * The body is one JSON object with exactly the members
 *   "room":    a valid room name (tb_room_parse: device:<id>, group:<name>, global),
 *   "type":    one of "alert", "notice", "telemetry", "device_status" (server-to-client types
 *              a back end may originate; control types such as "subscribed" are refused),
 *   "payload": a JSON object whose compact encoding is at most max_payload bytes.
 * Authorization (Bearer token with scope `publish`) is the endpoint's business, not this one's.
 */
#ifndef TELEBRIDGE_PUBLISH_H
#define TELEBRIDGE_PUBLISH_H

#include <jansson.h>
#include <stddef.h>

/* The scope a token needs to publish. */
#define TB_PUBLISH_SCOPE "publish"

/* Error codes of a refused body (the `error` member of the 400/413 answer). */
#define TB_PUBLISH_E_ROOM "invalid_room"
#define TB_PUBLISH_E_TYPE "invalid_type"
#define TB_PUBLISH_E_PAYLOAD "invalid_payload"
#define TB_PUBLISH_E_MEMBER "unknown_member"
#define TB_PUBLISH_E_TOO_LARGE "payload_too_large"

/* The parts of a valid body, borrowed from it. */
typedef struct {
    const char *room;
    const char *type;
    const json_t *payload;
} tb_publish_msg_t;

/*
 * Checks body. Returns NULL and fills *out when it is valid, else the error code (one of
 * TB_PUBLISH_E_*, a static string): the first of room, type, payload, extra members, size
 * that is wrong.
 */
const char *tb_publish_check(const json_t *body, size_t max_payload, tb_publish_msg_t *out);

#endif
