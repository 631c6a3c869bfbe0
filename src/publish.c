/* publish — POST /api/v1/publish body validation; see include/telebridge/publish.h. */
#include "telebridge/publish.h"

#include <string.h>

#include "telebridge/room.h"

static const char *const allowed_types[] = {"alert", "notice", "telemetry", "device_status"};

/* room, type and payload: the only members of a body. */
#define BODY_MEMBERS 3

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

const char *tb_publish_check(const json_t *body, size_t max_payload, tb_publish_msg_t *out)
{
    const json_t *room = json_object_get(body, "room");
    const json_t *type = json_object_get(body, "type");
    const json_t *payload = json_object_get(body, "payload");
    if (!json_is_string(room) || tb_room_parse(json_string_value(room), json_string_length(room),
                                               NULL, NULL) == TB_ROOM_INVALID)
        return TB_PUBLISH_E_ROOM;
    if (!json_is_string(type) ||
        !in_list(json_string_value(type), allowed_types, COUNT(allowed_types)))
        return TB_PUBLISH_E_TYPE;
    if (!json_is_object(payload))
        return TB_PUBLISH_E_PAYLOAD;
    if (json_object_size(body) != BODY_MEMBERS)
        return TB_PUBLISH_E_MEMBER;
    if (json_dumpb(payload, NULL, 0, JSON_COMPACT) > max_payload)
        return TB_PUBLISH_E_TOO_LARGE;
    *out = (tb_publish_msg_t){
        .room = json_string_value(room), .type = json_string_value(type), .payload = payload};
    return NULL;
}
