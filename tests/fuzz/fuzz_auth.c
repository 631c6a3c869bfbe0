/*
 * libFuzzer target: token verification and the room-grant matcher.
 * Input: one selector byte, then
 *   0: raw token bytes, verified as they are;
 *   1: a claims JSON object, signed here with the configured HS256 secret (so the fuzzer
 *      reaches the claim checks), then verified; an accepted grant is asked about rooms;
 *   2: "pattern\nroom" for tb_room_pattern_valid() / tb_room_pattern_match().
 */
#include <jwt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/auth.h"
#include "telebridge/keys.h"
#include "telebridge/room.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"
#define NOW_S INT64_C(1700000000)

static tb_auth_t *auth;
static const char *const rooms[] = {"global", "device:sensor-1", "group:building-a", "user:alice"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char alg[] = "HS256", global[] = "global";
    static char *defaults[] = {global, NULL};
    tb_config_auth_t cfg = {.algorithm = alg, .default_rooms = defaults, .n_default_rooms = 1};
    char err[TB_CONFIG_ERR_LEN];
    setenv(TB_KEYS_SECRET_ENV, SECRET, 1);
    auth = tb_auth_create(&cfg, err, sizeof(err));
    FUZZ_CHECK(auth);
    return 0;
}

static void verify(const char *token, size_t len)
{
    tb_grant_t *g = NULL;
    if (tb_auth_verify(auth, token, len, NOW_S, &g) != TB_AUTH_OK)
        return;
    FUZZ_CHECK(g && tb_grant_exp(g) > 0 && tb_grant_sub(g));
    for (size_t i = 0; i < sizeof(rooms) / sizeof(rooms[0]); i++)
        (void)tb_grant_allows_room(g, rooms[i]);
    /* Its own personal room is always granted (docs/protocol.md → The personal room). */
    const char *sub = tb_grant_sub(g);
    char own[TB_ROOM_MAX + 1];
    if (tb_room_user_sub_valid(sub, strlen(sub))) {
        memcpy(own, TB_ROOM_USER_PREFIX, TB_ROOM_USER_PREFIX_LEN);
        memcpy(own + TB_ROOM_USER_PREFIX_LEN, sub, strlen(sub) + 1);
        FUZZ_CHECK(tb_room_parse(own, strlen(own), NULL, NULL) == TB_ROOM_USER &&
                   tb_grant_allows_room(g, own));
    }
    (void)tb_grant_has_scope(g, "publish");
    tb_grant_free(g);
}

/* Signs text (NUL-terminated claims) and verifies the token. */
static void signed_claims(const char *text)
{
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET)) == 0 &&
        jwt_add_grants_json(jwt, text) == 0) {
        char *token = jwt_encode_str(jwt);
        if (token)
            verify(token, strlen(token));
        free(token);
    }
    jwt_free(jwt);
}

static void pattern(char *text)
{
    char *nl = strchr(text, '\n');
    const char *room = "device:sensor-1";
    if (nl) {
        *nl = '\0';
        room = nl + 1;
    }
    if (tb_room_pattern_valid(text) && tb_room_parse(room, strlen(room), NULL, NULL))
        (void)tb_room_pattern_match(text, room);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > TB_AUTH_TOKEN_MAX)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        verify((const char *)data + 1, size - 1);
        break;
    case 1:
        signed_claims(text);
        break;
    default:
        pattern(text);
    }
    free(text);
    return 0;
}
