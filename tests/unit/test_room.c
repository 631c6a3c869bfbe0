/* Unit tests for room: room names, grant patterns and their matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/room.h"
#include "telebridge/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* "device:" or "group:" followed by n 'a's, then tail. */
static const char *long_room(char *buf, size_t bufsz, const char *prefix, size_t n,
                             const char *tail)
{
    size_t plen = strlen(prefix);
    assert_true(plen + n + strlen(tail) < bufsz);
    memcpy(buf, prefix, plen);
    memset(buf + plen, 'a', n);
    strcpy(buf + plen + n, tail);
    return buf;
}

static void test_parse_table(void **state)
{
    static const struct {
        const char *room;
        tb_room_kind_t kind;
        const char *id; /* expected id for device/group rooms */
    } cases[] = {
        {"global", TB_ROOM_GLOBAL, NULL},
        {"device:sensor-1", TB_ROOM_DEVICE, "sensor-1"},
        {"device:A.b_c-9", TB_ROOM_DEVICE, "A.b_c-9"},
        {"group:building-a", TB_ROOM_GROUP, "building-a"},
        {"", TB_ROOM_INVALID, NULL},
        {"device:", TB_ROOM_INVALID, NULL},
        {"group:", TB_ROOM_INVALID, NULL},
        {"device", TB_ROOM_INVALID, NULL},
        {"devices:x", TB_ROOM_INVALID, NULL},
        {"Device:x", TB_ROOM_INVALID, NULL},
        {"device:a:b", TB_ROOM_INVALID, NULL},
        {"device:a b", TB_ROOM_INVALID, NULL},
        {"device:a/b", TB_ROOM_INVALID, NULL},
        {"device:*", TB_ROOM_INVALID, NULL},
        {"group:a+b", TB_ROOM_INVALID, NULL},
        {"global:", TB_ROOM_INVALID, NULL},
        {"globalx", TB_ROOM_INVALID, NULL},
        {"Global", TB_ROOM_INVALID, NULL},
        {"*", TB_ROOM_INVALID, NULL},
        {"device:caf\xc3\xa9", TB_ROOM_INVALID, NULL},
        {"user:alice", TB_ROOM_USER, "alice"},
        {"user:a.b+tag@example.com", TB_ROOM_USER, "a.b+tag@example.com"},
        {"user:auth0|5f3c", TB_ROOM_USER, "auth0|5f3c"},
        {"user:https://idp.example/u/1", TB_ROOM_USER, "https://idp.example/u/1"},
        {"user:", TB_ROOM_INVALID, NULL},
        {"user:a b", TB_ROOM_INVALID, NULL},
        {"user:a*", TB_ROOM_INVALID, NULL},
        {"user:a\"b", TB_ROOM_INVALID, NULL},
        {"user:a\\b", TB_ROOM_INVALID, NULL},
        {"user:caf\xc3\xa9", TB_ROOM_INVALID, NULL},
        {"User:alice", TB_ROOM_INVALID, NULL},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *id = NULL;
        size_t idlen = 0;
        tb_room_kind_t kind = tb_room_parse(cases[i].room, strlen(cases[i].room), &id, &idlen);
        if (kind != cases[i].kind)
            fail_msg("tb_room_parse(\"%s\") = %d, want %d", cases[i].room, kind, cases[i].kind);
        if (cases[i].id) {
            assert_int_equal(idlen, strlen(cases[i].id));
            assert_memory_equal(id, cases[i].id, idlen);
        }
    }
}

static void test_parse_uses_len_not_nul(void **state)
{
    const char *id = NULL;
    size_t idlen = 0;
    (void)state;
    /* Only the first len bytes count: a prefix of a longer buffer is a room of its own. */
    assert_int_equal(tb_room_parse("device:abcXYZ", 10, &id, &idlen), TB_ROOM_DEVICE);
    assert_int_equal(idlen, 3);
    assert_memory_equal(id, "abc", 3);
    assert_int_equal(tb_room_parse("globalx", 6, NULL, NULL), TB_ROOM_GLOBAL);
    assert_int_equal(tb_room_parse("global", 3, NULL, NULL), TB_ROOM_INVALID);
    /* An embedded NUL is not an id character. */
    assert_int_equal(tb_room_parse("device:a\0b", 10, NULL, NULL), TB_ROOM_INVALID);
    /* id and idlen are optional. */
    assert_int_equal(tb_room_parse("group:g", 7, NULL, NULL), TB_ROOM_GROUP);
}

static void test_parse_id_length_bound(void **state)
{
    char buf[TB_ROOM_MAX + 16];
    const char *id = NULL;
    size_t idlen = 0;
    (void)state;
    long_room(buf, sizeof(buf), "device:", TB_ID_MAX, "");
    assert_int_equal(strlen(buf), TB_ROOM_MAX);
    assert_int_equal(tb_room_parse(buf, strlen(buf), &id, &idlen), TB_ROOM_DEVICE);
    assert_int_equal(idlen, TB_ID_MAX);
    long_room(buf, sizeof(buf), "device:", TB_ID_MAX + 1, "");
    assert_int_equal(tb_room_parse(buf, strlen(buf), NULL, NULL), TB_ROOM_INVALID);
    long_room(buf, sizeof(buf), "group:", TB_ID_MAX, "");
    assert_int_equal(tb_room_parse(buf, strlen(buf), NULL, NULL), TB_ROOM_GROUP);
    long_room(buf, sizeof(buf), "group:", TB_ID_MAX + 1, "");
    assert_int_equal(tb_room_parse(buf, strlen(buf), NULL, NULL), TB_ROOM_INVALID);
}

static void test_pattern_valid_table(void **state)
{
    static const struct {
        const char *pattern;
        bool valid;
    } cases[] = {
        {"*", true},
        {"global", true},
        {"device:*", true},
        {"group:*", true},
        {"device:sensor-*", true},
        {"device:s*", true},
        {"group:building-*", true},
        {"device:sensor-1", true},
        {"group:building-a", true},
        {"", false},
        {"**", false},
        {"global*", false},
        {"g*", false},
        {"dev*", false},
        {"device*", false},
        {"device", false},
        {"device:", false},
        {"group:", false},
        {"device:**", false},
        {"device:a*b", false},
        {"*device", false},
        {"device:*x", false},
        {"device:a b", false},
        {"device:a:*", false},
        {"group:a/b", false},
        {"Device:*", false},
        {"global:x", false},
        {"user:*", true},
        {"user:ali*", true},
        {"user:alice", true},
        {"user:a@b.c", true},
        {"user:", false},
        {"user:a b", false},
        {"user:**", false},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        if (tb_room_pattern_valid(cases[i].pattern) != cases[i].valid)
            fail_msg("tb_room_pattern_valid(\"%s\") != %d", cases[i].pattern, cases[i].valid);
    }
}

static void test_pattern_valid_length_bound(void **state)
{
    char buf[TB_ROOM_MAX + 16];
    (void)state;
    assert_true(tb_room_pattern_valid(long_room(buf, sizeof(buf), "device:", TB_ID_MAX, "")));
    assert_false(tb_room_pattern_valid(long_room(buf, sizeof(buf), "device:", TB_ID_MAX + 1, "")));
    assert_true(tb_room_pattern_valid(long_room(buf, sizeof(buf), "group:", TB_ID_MAX - 1, "*")));
    assert_false(tb_room_pattern_valid(long_room(buf, sizeof(buf), "group:", TB_ID_MAX + 1, "*")));
}

static void test_pattern_match_table(void **state)
{
    static const struct {
        const char *pattern;
        const char *room;
        bool match;
    } cases[] = {
        {"device:sensor-1", "device:sensor-1", true},
        {"device:sensor-1", "device:sensor-10", false},
        {"device:sensor-10", "device:sensor-1", false},
        {"device:sensor-1", "group:sensor-1", false},
        {"group:building-a", "group:building-a", true},
        {"group:building-a", "group:building-ab", false},
        {"global", "global", true},
        {"global", "device:global", false},
        {"global", "group:g", false},
        {"*", "global", true},
        {"*", "device:x", true},
        {"*", "group:g", true},
        {"device:*", "device:x", true},
        {"device:*", "group:x", false},
        {"device:*", "global", false},
        {"group:*", "group:x", true},
        {"group:*", "global", false},
        {"group:*", "device:x", false},
        {"device:sensor-*", "device:sensor-1", true},
        {"device:sensor-*", "device:sensor-abc.def", true},
        {"device:sensor-*", "device:sensor-", true},
        {"device:sensor-*", "device:sensorx", false},
        {"device:sensor-*", "device:sensor", false},
        {"device:sensor-*", "group:sensor-1", false},
        {"group:b*", "group:building-a", true},
        {"group:b*", "group:a", false},
        {"user:*", "user:alice", true},
        {"user:*", "device:x", false},
        {"user:al*", "user:alice", true},
        {"user:alice", "user:alice", true},
        {"user:alice", "user:alice2", false},
        {"device:*", "user:alice", false},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_true(tb_room_pattern_valid(cases[i].pattern));
        assert_int_not_equal(tb_room_parse(cases[i].room, strlen(cases[i].room), NULL, NULL),
                             TB_ROOM_INVALID);
        if (tb_room_pattern_match(cases[i].pattern, cases[i].room) != cases[i].match)
            fail_msg("tb_room_pattern_match(\"%s\", \"%s\") != %d", cases[i].pattern, cases[i].room,
                     cases[i].match);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_uses_len_not_nul),
        cmocka_unit_test(test_parse_id_length_bound),
        cmocka_unit_test(test_pattern_valid_table),
        cmocka_unit_test(test_pattern_valid_length_bound),
        cmocka_unit_test(test_pattern_match_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
