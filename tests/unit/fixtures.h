/*
 * fixtures — what several unit tests need alike: HS*, RS* and ES* tokens minted with libjwt, a
 * verifier keyed with a known HMAC secret, and the cmocka entry of a test with its file's fixture.
 *
 * Only for tests run by cmocka: a helper that cannot do its part fails the running test (cmocka
 * asserts), so none returns an error. Returned tokens are the caller's (free()), as are
 * verifiers (tb_auth_destroy()) and grants (tb_grant_free()). Not thread-safe: fixtures_auth()
 * sets an environment variable.
 */
#ifndef TELEBRIDGE_TEST_FIXTURES_H
#define TELEBRIDGE_TEST_FIXTURES_H

#include <jwt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/auth.h"
#include "telebridge/hub.h"

/* A JWT of claims (a JSON object's text) signed by alg with key[0..key_len). */
char *fixtures_sign(jwt_alg_t alg, const void *key, size_t key_len, const char *claims);
/* fixtures_sign() of the claims printf-formatted from fmt (at most 12 KiB). */
char *fixtures_vsignf(jwt_alg_t alg, const void *key, size_t key_len, const char *fmt, va_list ap);

/*
 * An HS256 JWT by secret with the claims `sub` (left out when sub is NULL) and `exp` (Unix
 * seconds), and every member of extra (a JSON object's text, for rooms or scope), or NULL.
 */
char *fixtures_mint(const char *secret, const char *sub, int64_t exp, const char *extra);

/* A verifier for cfg whose HMAC secret comes from the environment, set to secret first. */
tb_auth_t *fixtures_auth(const tb_config_auth_t *cfg, const char *secret);

/* tb_auth_verify() at now_s of an HS256 token over claims (a JSON object's text) by secret. */
int fixtures_verify_claims(const tb_auth_t *a, const char *secret, const char *claims,
                           int64_t now_s, tb_grant_t **out);

/*
 * A hub over cfg and auth (both the caller's, outliving the hub) calling ops (zeroed: no
 * transport), with the given epoch (NULL: a random one). The caller frees it with
 * tb_hub_destroy().
 */
tb_hub_t *fixtures_hub(const tb_config_t *cfg, const tb_auth_t *auth, tb_hub_ops_t ops,
                       const char *epoch);

/* A cmocka entry for the test fn run between the including file's own static setup() and
 * teardown(). */
#define FIXTURES_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#endif
