/*
 * room — room names and room-grant patterns.
 *
 * Rooms are "device:<id>", "group:<name>", "global", with ids as tb_id_valid(), or the personal
 * room "user:<sub>" of a token's subject (tb_room_user_sub_valid()). Patterns (a token's `rooms`
 * claim, auth.default_rooms) are a room, a room prefix ending in '*' ("device:sensor-*",
 * "device:*", "group:*", "user:*"), or "*" for every room. This is the one matching function
 * used by subscribe, recovery and publish; which user: rooms a grant reaches (its own always, no
 * other through "*") is grant.h's rule.
 */
#ifndef TELEBRIDGE_ROOM_H
#define TELEBRIDGE_ROOM_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TB_ROOM_INVALID = 0,
    TB_ROOM_DEVICE,
    TB_ROOM_GROUP,
    TB_ROOM_GLOBAL,
    TB_ROOM_USER
} tb_room_kind_t;

/* Longest room name: "device:" + TB_ID_MAX ("user:" + TB_ID_MAX is shorter). */
#define TB_ROOM_MAX (7 + 128)

/* The prefix of a personal room, "user:<sub>". */
#define TB_ROOM_USER_PREFIX "user:"
#define TB_ROOM_USER_PREFIX_LEN 5

/*
 * A token subject that names a personal room: 1..TB_ID_MAX bytes of printable ASCII other than
 * space, '"', '\\' and '*' (so e-mail addresses, "auth0|abc", UUIDs and URLs qualify, and the
 * room name needs no JSON escaping and cannot be read as a pattern). A token whose sub does not
 * qualify has no personal room.
 */
bool tb_room_user_sub_valid(const char *sub, size_t len);

/* Classifies room[0..len). On a valid device, group or user room *id and *idlen (may be NULL)
 * point at the id (the sub of a user room) inside room. TB_ROOM_INVALID for anything else. */
tb_room_kind_t tb_room_parse(const char *room, size_t len, const char **id, size_t *idlen);

/* A syntactically valid grant pattern (see above). */
bool tb_room_pattern_valid(const char *pattern);

/* True when pattern grants room. Both NUL-terminated; room assumed valid. */
bool tb_room_pattern_match(const char *pattern, const char *room);

#endif
