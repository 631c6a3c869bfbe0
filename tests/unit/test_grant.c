/*
 * Exhaustive tests of grant matching: every room pattern over a small alphabet against every
 * room over it, through real verified tokens (the `rooms` claim) and auth.default_rooms,
 * compared with the rule written down independently here; and the copies tb_grant_new() and
 * tb_grant_dup() make.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/auth.h"
#include "telebridge/grant.h"
#include "telebridge/room.h"

#include "fixtures.h"

#define SECRET "grant-test-secret-0123456789abcdef"
#define NOW_S 1800000000LL
#define NAME_MAX_LEN 32
#define CLAIMS_BUF 4096
/* Ids over {a, b, -} of length 1..3: 3 + 9 + 27. */
#define N_IDS 39
#define N_ROOMS (1 + 2 * N_IDS)
#define N_PATTERNS (4 + 4 * N_IDS)

/* Longest id, with its NUL. */
#define ID_LEN 4

typedef char name_t[NAME_MAX_LEN];

static char g_ids[N_IDS][ID_LEN];
static name_t g_rooms[N_ROOMS], g_patterns[N_PATTERNS];

static void make_ids(void)
{
    static const char alphabet[] = "ab-";
    size_t n = 0;
    for (size_t len = 1; len <= 3; len++) {
        size_t combos = len == 1 ? 3 : len == 2 ? 9 : 27;
        for (size_t k = 0; k < combos; k++) {
            size_t v = k;
            for (size_t i = 0; i < len; i++, v /= 3)
                g_ids[n][i] = alphabet[v % 3];
            g_ids[n][len] = '\0';
            n++;
        }
    }
    assert_int_equal(n, N_IDS);
}

static void make_names(void)
{
    size_t r = 0, p = 0;
    make_ids();
    snprintf(g_rooms[r++], NAME_MAX_LEN, "global");
    for (size_t i = 0; i < N_IDS; i++) {
        snprintf(g_rooms[r++], NAME_MAX_LEN, "device:%.*s", ID_LEN - 1, g_ids[i]);
        snprintf(g_rooms[r++], NAME_MAX_LEN, "group:%.*s", ID_LEN - 1, g_ids[i]);
    }
    static const char *const fixed[] = {"*", "global", "device:*", "group:*"};
    for (size_t i = 0; i < 4; i++)
        snprintf(g_patterns[p++], NAME_MAX_LEN, "%s", fixed[i]);
    for (size_t i = 0; i < N_IDS; i++) {
        snprintf(g_patterns[p++], NAME_MAX_LEN, "device:%.*s", ID_LEN - 1, g_ids[i]);
        snprintf(g_patterns[p++], NAME_MAX_LEN, "group:%.*s", ID_LEN - 1, g_ids[i]);
        snprintf(g_patterns[p++], NAME_MAX_LEN, "device:%.*s*", ID_LEN - 1, g_ids[i]);
        snprintf(g_patterns[p++], NAME_MAX_LEN, "group:%.*s*", ID_LEN - 1, g_ids[i]);
    }
    assert_int_equal(r, N_ROOMS);
    assert_int_equal(p, N_PATTERNS);
}

/* The rule, as the protocol documents it: equal, or a '*' suffix and a prefix of the room. */
static bool model(const char *pattern, const char *room)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, room, n - 1) == 0;
    return strcmp(pattern, room) == 0;
}

static tb_auth_t *auth_with_defaults(char **defaults, size_t n)
{
    tb_config_auth_t cfg = {.algorithm = "HS256", .default_rooms = defaults, .n_default_rooms = n};
    return fixtures_auth(&cfg, SECRET);
}

/* Verifies a token with the given claims JSON; returns the tb_auth_verify() result. */
static int verify_claims(const tb_auth_t *a, const char *claims, tb_grant_t **g)
{
    return fixtures_verify_claims(a, SECRET, claims, NOW_S, g);
}

/* A grant from a token whose rooms claim is the JSON array rooms (NULL: no claim). */
static tb_grant_t *grant_of(const tb_auth_t *a, const char *rooms)
{
    char claims[CLAIMS_BUF];
    tb_grant_t *g = NULL;
    if (rooms)
        snprintf(claims, sizeof(claims), "{\"exp\":%lld,\"rooms\":%s}", NOW_S + 60, rooms);
    else
        snprintf(claims, sizeof(claims), "{\"exp\":%lld}", NOW_S + 60);
    assert_int_equal(verify_claims(a, claims, &g), TB_AUTH_OK);
    return g;
}

static void test_every_pattern_against_every_room(void **state)
{
    char rooms[NAME_MAX_LEN + 8];
    size_t matches = 0;
    tb_auth_t *a = auth_with_defaults(NULL, 0);
    (void)state;
    make_names();
    for (size_t p = 0; p < N_PATTERNS; p++) {
        assert_true(tb_room_pattern_valid(g_patterns[p]));
        snprintf(rooms, sizeof(rooms), "[\"%.*s\"]", NAME_MAX_LEN, g_patterns[p]);
        tb_grant_t *g = grant_of(a, rooms);
        for (size_t r = 0; r < N_ROOMS; r++) {
            bool want = model(g_patterns[p], g_rooms[r]);
            if (tb_grant_allows_room(g, g_rooms[r]) != want)
                fail_msg("pattern '%s' room '%s': want %d", g_patterns[p], g_rooms[r], want);
            if (tb_room_pattern_match(g_patterns[p], g_rooms[r]) != want)
                fail_msg("tb_room_pattern_match('%s', '%s') != %d", g_patterns[p], g_rooms[r],
                         want);
            matches += want;
        }
        tb_grant_free(g);
    }
    /* The table is not trivially all-true or all-false. */
    assert_true(matches > N_PATTERNS && matches < (size_t)N_PATTERNS * N_ROOMS / 2);
    tb_auth_destroy(a);
}

/* A grant of several patterns allows the union; default_rooms behaves as the claim would. */
static void test_pairs_and_default_rooms(void **state)
{
    char rooms[3 * NAME_MAX_LEN];
    (void)state;
    make_names();
    for (size_t p = 0; p < N_PATTERNS; p += 7) {
        size_t q = (p * 31 + 5) % N_PATTERNS;
        char *defaults[3] = {g_patterns[p], g_patterns[q], NULL};
        tb_auth_t *a = auth_with_defaults(defaults, 2);
        snprintf(rooms, sizeof(rooms), "[\"%.*s\",\"%.*s\"]", NAME_MAX_LEN, g_patterns[p],
                 NAME_MAX_LEN, g_patterns[q]);
        tb_grant_t *claimed = grant_of(a, rooms), *defaulted = grant_of(a, NULL);
        for (size_t r = 0; r < N_ROOMS; r++) {
            bool want = model(g_patterns[p], g_rooms[r]) || model(g_patterns[q], g_rooms[r]);
            assert_int_equal(tb_grant_allows_room(claimed, g_rooms[r]), want);
            assert_int_equal(tb_grant_allows_room(defaulted, g_rooms[r]), want);
        }
        tb_grant_free(claimed);
        tb_grant_free(defaulted);
        tb_auth_destroy(a);
    }
}

/* An empty claim, and no claim with no defaults, allow nothing. */
static void test_empty_grants_allow_nothing(void **state)
{
    tb_auth_t *a = auth_with_defaults(NULL, 0);
    tb_grant_t *empty = grant_of(a, "[]"), *none = grant_of(a, NULL);
    (void)state;
    make_names();
    for (size_t r = 0; r < N_ROOMS; r++) {
        assert_false(tb_grant_allows_room(empty, g_rooms[r]));
        assert_false(tb_grant_allows_room(none, g_rooms[r]));
    }
    tb_grant_free(empty);
    tb_grant_free(none);
    tb_auth_destroy(a);
}

/* Patterns that are not valid refuse the whole token: nothing is guessed from them. */
static void test_invalid_patterns_refuse_the_token(void **state)
{
    static const char *const bad[] = {
        "",        "**",     "devic*", "global*",    "device:a*b", "device:*a",  "Device:a",
        "device:", "group:", "room:a", "device:a b", "*global",    "device:a/b", "global:",
    };
    char claims[CLAIMS_BUF];
    tb_grant_t *g = NULL;
    tb_auth_t *a = auth_with_defaults(NULL, 0);
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(claims, sizeof(claims), "{\"exp\":%lld,\"rooms\":[\"global\",\"%s\"]}", NOW_S + 60,
                 bad[i]);
        if (verify_claims(a, claims, &g) != TB_AUTH_E_CLAIMS)
            fail_msg("rooms claim with '%s' was not refused", bad[i]);
        assert_null(g);
    }
    tb_auth_destroy(a);
}

/* tb_grant_new() copies strings that need not end in a NUL, and keeps rooms and scopes apart. */
static void test_new_copies_and_keeps_rooms_apart_from_scopes(void **state)
{
    char text[] = "carol|device:a-*|global|read|device:b";
    const tb_grant_str_t strs[] = {{text + 6, 10}, {text + 17, 6}, {text + 24, 4}, {text + 29, 8}};
    tb_grant_t *g = tb_grant_new(text, 5, NOW_S, strs, 2, 2), *d;
    (void)state;
    assert_non_null(g);
    memset(text, 'x', sizeof(text) - 1); /* the grant holds its own copies */
    d = tb_grant_dup(g);
    assert_non_null(d);
    tb_grant_free(g);
    assert_string_equal(tb_grant_sub(d), "carol");
    assert_int_equal(tb_grant_exp(d), NOW_S);
    assert_true(tb_grant_allows_room(d, "device:a-1"));
    assert_true(tb_grant_allows_room(d, "global"));
    assert_false(tb_grant_allows_room(d, "device:b")); /* a scope, not a room */
    assert_true(tb_grant_has_scope(d, "read"));
    assert_true(tb_grant_has_scope(d, "device:b"));
    assert_false(tb_grant_has_scope(d, "global")); /* a room, not a scope */
    assert_false(tb_grant_has_scope(d, "rea"));
    tb_grant_free(d);
    g = tb_grant_new("", 0, 0, NULL, 0, 0);
    assert_non_null(g);
    assert_string_equal(tb_grant_sub(g), "");
    assert_false(tb_grant_allows_room(g, "global"));
    assert_false(tb_grant_has_scope(g, ""));
    tb_grant_free(g);
    tb_grant_free(NULL);
}

static tb_grant_t *grant_for(const char *sub, const char *const *patterns, size_t n)
{
    tb_grant_str_t strs[4];
    assert_true(n <= sizeof(strs) / sizeof(strs[0]));
    for (size_t i = 0; i < n; i++)
        strs[i] = (tb_grant_str_t){patterns[i], strlen(patterns[i])};
    tb_grant_t *g = tb_grant_new(sub, strlen(sub), NOW_S, strs, n, 0);
    assert_non_null(g);
    return g;
}

/* The personal room: its own always, another user's only through a "user:" pattern ("*" and
 * other kinds' patterns do not reach it); other rooms are unchanged. */
static void test_personal_rooms(void **state)
{
    static const char *const star[] = {"*"}, *const users[] = {"user:*"},
                             *const one[] = {"user:bo*", "device:*"};
    (void)state;
    tb_grant_t *none = grant_for("alice", NULL, 0), *all = grant_for("alice", star, 1);
    tb_grant_t *admin = grant_for("ops", users, 1), *some = grant_for("carol", one, 2);
    tb_grant_t *nosub = grant_for("", star, 1);
    assert_true(tb_grant_allows_room(none, "user:alice"));
    assert_false(tb_grant_allows_room(none, "user:bob"));
    assert_false(tb_grant_allows_room(none, "user:alice2"));
    assert_false(tb_grant_allows_room(none, "global"));
    assert_true(tb_grant_allows_room(all, "user:alice"));
    assert_false(tb_grant_allows_room(all, "user:bob"));
    assert_true(tb_grant_allows_room(all, "global"));
    assert_true(tb_grant_allows_room(admin, "user:bob"));
    assert_true(tb_grant_allows_room(admin, "user:alice"));
    assert_false(tb_grant_allows_room(admin, "device:x"));
    assert_true(tb_grant_allows_room(some, "user:bob"));
    assert_false(tb_grant_allows_room(some, "user:alice"));
    assert_true(tb_grant_allows_room(some, "user:carol"));
    assert_true(tb_grant_allows_room(some, "device:x"));
    assert_false(tb_grant_allows_room(nosub, "user:alice"));
    tb_grant_free(none);
    tb_grant_free(all);
    tb_grant_free(admin);
    tb_grant_free(some);
    tb_grant_free(nosub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pattern_against_every_room),
        cmocka_unit_test(test_pairs_and_default_rooms),
        cmocka_unit_test(test_empty_grants_allow_nothing),
        cmocka_unit_test(test_invalid_patterns_refuse_the_token),
        cmocka_unit_test(test_new_copies_and_keeps_rooms_apart_from_scopes),
        cmocka_unit_test(test_personal_rooms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
