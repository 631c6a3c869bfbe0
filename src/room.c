/* room — room names and grant patterns; see include/telebridge/room.h. */
#include "telebridge/room.h"

#include <string.h>

#include "telebridge/util.h"

static bool has_prefix(const char *s, size_t len, const char *prefix, size_t plen)
{
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

bool tb_room_user_sub_valid(const char *sub, size_t len)
{
    if (len == 0 || len > TB_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (sub[i] <= ' ' || sub[i] > '~' || sub[i] == '"' || sub[i] == '\\' || sub[i] == '*')
            return false;
    return true;
}

tb_room_kind_t tb_room_parse(const char *room, size_t len, const char **id, size_t *idlen)
{
    tb_room_kind_t kind;
    size_t skip;
    if (len == 6 && memcmp(room, "global", 6) == 0)
        return TB_ROOM_GLOBAL;
    if (has_prefix(room, len, "device:", 7)) {
        kind = TB_ROOM_DEVICE;
        skip = 7;
    } else if (has_prefix(room, len, "group:", 6)) {
        kind = TB_ROOM_GROUP;
        skip = 6;
    } else if (has_prefix(room, len, TB_ROOM_USER_PREFIX, TB_ROOM_USER_PREFIX_LEN)) {
        kind = TB_ROOM_USER;
        skip = TB_ROOM_USER_PREFIX_LEN;
    } else {
        return TB_ROOM_INVALID;
    }
    if (kind == TB_ROOM_USER ? !tb_room_user_sub_valid(room + skip, len - skip)
                             : !tb_id_valid(room + skip, len - skip))
        return TB_ROOM_INVALID;
    if (id)
        *id = room + skip;
    if (idlen)
        *idlen = len - skip;
    return kind;
}

bool tb_room_pattern_valid(const char *pattern)
{
    size_t len = strlen(pattern);
    if (len == 1 && pattern[0] == '*')
        return true;
    if (len > 0 && pattern[len - 1] == '*') {
        /* "device:*", "group:*", "user:*" or a prefix of a valid id: "device:sensor-*". */
        size_t plen = len - 1;
        if (plen == 7 && memcmp(pattern, "device:", 7) == 0)
            return true;
        if (plen == 6 && memcmp(pattern, "group:", 6) == 0)
            return true;
        if (plen == TB_ROOM_USER_PREFIX_LEN &&
            memcmp(pattern, TB_ROOM_USER_PREFIX, TB_ROOM_USER_PREFIX_LEN) == 0)
            return true;
        return tb_room_parse(pattern, plen, NULL, NULL) != TB_ROOM_INVALID &&
               !(plen == 6 && memcmp(pattern, "global", 6) == 0);
    }
    return tb_room_parse(pattern, len, NULL, NULL) != TB_ROOM_INVALID;
}

bool tb_room_pattern_match(const char *pattern, const char *room)
{
    return tb_prefix_pattern_match(pattern, room);
}
