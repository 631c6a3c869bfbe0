/* fixtures — shared unit-test helpers; see fixtures.h. */
#include "fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/keys.h"

/* Longest claims text fixtures_vsignf() formats. */
#define FIXTURES_CLAIMS_MAX 12288

char *fixtures_sign(jwt_alg_t alg, const void *key, size_t key_len, const char *claims)
{
    jwt_t *jwt = NULL;
    char *token;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)key_len), 0);
    token = jwt_encode_str(jwt);
    assert_non_null(token);
    jwt_free(jwt);
    return token;
}

char *fixtures_vsignf(jwt_alg_t alg, const void *key, size_t key_len, const char *fmt, va_list ap)
{
    char claims[FIXTURES_CLAIMS_MAX];
    int n = vsnprintf(claims, sizeof(claims), fmt, ap);
    assert_true(n > 0 && (size_t)n < sizeof(claims));
    return fixtures_sign(alg, key, key_len, claims);
}

char *fixtures_mint(const char *secret, const char *sub, int64_t exp, const char *extra)
{
    json_t *claims = json_pack("{s:I}", "exp", (json_int_t)exp);
    char *text, *token;
    assert_non_null(claims);
    if (sub)
        assert_int_equal(json_object_set_new(claims, "sub", json_string(sub)), 0);
    if (extra) {
        json_t *more = json_loads(extra, 0, NULL);
        assert_non_null(more);
        assert_int_equal(json_object_update(claims, more), 0);
        json_decref(more);
    }
    text = json_dumps(claims, JSON_COMPACT);
    assert_non_null(text);
    token = fixtures_sign(JWT_ALG_HS256, secret, strlen(secret), text);
    free(text);
    json_decref(claims);
    return token;
}

tb_auth_t *fixtures_auth(const tb_config_auth_t *cfg, const char *secret)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_auth_t *a;
    assert_int_equal(setenv(TB_KEYS_SECRET_ENV, secret, 1), 0);
    a = tb_auth_create(cfg, err, sizeof(err));
    if (!a)
        fail_msg("tb_auth_create: %s", err);
    return a;
}

int fixtures_verify_claims(const tb_auth_t *a, const char *secret, const char *claims,
                           int64_t now_s, tb_grant_t **out)
{
    char *token = fixtures_sign(JWT_ALG_HS256, secret, strlen(secret), claims);
    int rc = tb_auth_verify(a, token, strlen(token), now_s, out);
    free(token);
    return rc;
}

tb_hub_t *fixtures_hub(const tb_config_t *cfg, const tb_auth_t *auth, tb_hub_ops_t ops,
                       const char *epoch)
{
    tb_hub_opts_t o = {.cfg = cfg, .auth = auth, .ops = ops, .epoch = epoch};
    tb_hub_t *hub = tb_hub_create(&o);
    assert_non_null(hub);
    return hub;
}
