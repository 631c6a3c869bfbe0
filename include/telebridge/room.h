/*
 * room — room names and room-grant patterns.
 *
 * Rooms are "device:<id>", "group:<name>" or "global", with ids as tb_id_valid(). Patterns (a
 * token's `rooms` claim, auth.default_rooms) are a room, a room prefix ending in '*'
 * ("device:sensor-*", "device:*", "group:*"), or "*" for every room. This is the one
 * matching function used by subscribe, recovery and publish.
 */
#ifndef TELEBRIDGE_ROOM_H
#define TELEBRIDGE_ROOM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { TB_ROOM_INVALID = 0, TB_ROOM_DEVICE, TB_ROOM_GROUP, TB_ROOM_GLOBAL } tb_room_kind_t;

/* Longest room name: "device:" + TB_ID_MAX. */
#define TB_ROOM_MAX (7 + 128)

/* Classifies room[0..len). On a valid device or group room *id and *idlen (may be NULL)
 * point at the id inside room. TB_ROOM_INVALID for anything else. */
tb_room_kind_t tb_room_parse(const char *room, size_t len, const char **id, size_t *idlen);

/* A syntactically valid grant pattern (see above). */
bool tb_room_pattern_valid(const char *pattern);

/* True when pattern grants room. Both NUL-terminated; room assumed valid. */
bool tb_room_pattern_match(const char *pattern, const char *room);

#endif
