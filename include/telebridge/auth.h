/*
 * auth — JWT verification (libjwt): a token in, a grant (grant.h) out.
 *
 * A tb_auth_t holds the configured algorithm (pinned: a token whose header `alg` differs is
 * refused, `none` always) and its key, read at creation by keys.h from auth.secret_file or, when
 * unset, the TELEBRIDGE_JWT_SECRET environment variable (HS*), or auth.public_key_file
 * (RS256/ES256). A secret file's trailing newline characters are not part of the secret.
 *
 * Checks: signature, alg, `exp` required and in the future (with leeway_s), `nbf` and `iat`
 * not in the future (with leeway; reported as TB_AUTH_E_NOT_YET), `iss`/`aud` equal to the
 * configured ones when configured (aud may be a string or an array), `sub` a string when present,
 * `rooms` an array of valid patterns (tb_room_pattern_valid) when present, `scope` a
 * space-separated string or an array.
 *
 * Ownership: the caller owns the tb_auth_t (tb_auth_destroy()) and every grant verify() hands
 * out (tb_grant_free()); the tb_auth_t owns a copy of everything it needs from the config, its
 * key included (wiped when destroyed). A reload makes a new tb_auth_t and swaps it in whole.
 *
 * Thread use: verify() only reads the tb_auth_t and may run on any thread; the service thread
 * is the only user in practice. destroy() must not run while a verify() of the same object
 * does.
 */
#ifndef TELEBRIDGE_AUTH_H
#define TELEBRIDGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/config.h"
#include "telebridge/grant.h"

/* Longest token accepted, in bytes; a longer one is refused as malformed before parsing. */
#define TB_AUTH_TOKEN_MAX 8192

/*
 * Why a token was refused: X(NAME, reason, code). tb_auth_err_t gets TB_AUTH_E_NAME (-1, -2, …
 * in this order), tb_auth_err_reason() the reason (for logs, /stats and /metrics, where the
 * handshake refusal reasons of stats.h take these names) and tb_auth_err_code() the code told
 * to the client (which check failed is not told: it would help forge a token).
 */
#define TB_AUTH_ERRORS(X)                                                                          \
    X(MISSING, "missing", "missing_token")     /* no credential presented */                       \
    X(MALFORMED, "malformed", "invalid_token") /* not a JWT, bad base64/JSON, too long */          \
    X(ALG, "alg", "invalid_token")             /* alg none or not the configured one */            \
    X(SIGNATURE, "signature", "invalid_token") /* signature does not verify */                     \
    X(NO_EXP, "no_exp", "invalid_token")       /* exp missing or not a number */                   \
    X(EXPIRED, "expired", "token_expired")                                                         \
    X(NOT_YET, "not_yet_valid", "invalid_token") /* nbf in the future */                           \
    X(ISSUER, "issuer", "invalid_token")                                                           \
    X(AUDIENCE, "audience", "invalid_token")                                                       \
    X(CLAIMS, "claims", "invalid_token") /* rooms/scope/sub of the wrong shape */                  \
    X(NOMEM, "nomem", "server_error")

/* The position of each error in TB_AUTH_ERRORS, from 1. */
enum {
    TB_AUTH_R_NONE = 0,
#define TB_AUTH_R_ENUM(name, reason, code) TB_AUTH_R_##name,
    TB_AUTH_ERRORS(TB_AUTH_R_ENUM)
#undef TB_AUTH_R_ENUM
        TB_AUTH_R_END
};

typedef enum {
    TB_AUTH_OK = 0,
#define TB_AUTH_E_ENUM(name, reason, code) TB_AUTH_E_##name = -TB_AUTH_R_##name,
    TB_AUTH_ERRORS(TB_AUTH_E_ENUM)
#undef TB_AUTH_E_ENUM
} tb_auth_err_t;

/*
 * The algorithms auth.algorithm may name (config.c accepts exactly these): X(NAME, hmac,
 * min_key), min_key in bytes of an HMAC secret, or bits of an RSA modulus / EC curve.
 */
#define TB_AUTH_ALGORITHMS(X)                                                                      \
    X(HS256, true, 32)                                                                             \
    X(HS384, true, 48)                                                                             \
    X(HS512, true, 64)                                                                             \
    X(RS256, false, 2048)                                                                          \
    X(ES256, false, 256)

/* An algorithm's name as a string literal, for initialising a list of names from the table. */
#define TB_AUTH_ALG_NAME(name, hmac, min_key) #name,

typedef struct tb_auth tb_auth_t;

/* Loads the key for cfg->algorithm (keys.h). NULL with a message in err (errlen bytes) when the
 * algorithm is unsupported, leeway_s is negative, a default room is not a valid pattern, no key can
 * be read, or memory runs out. cfg need not outlive the result. A secret shorter than its hash (RFC
 * 7518 §3.2) is accepted with a warning logged. */
tb_auth_t *tb_auth_create(const tb_config_auth_t *cfg, char *err, size_t errlen);
/* Frees a and wipes its key. NULL is a no-op. */
void tb_auth_destroy(tb_auth_t *a);

/*
 * Verifies token[0..len) at time now_s (Unix seconds). On success returns TB_AUTH_OK and a new
 * grant in *out (caller frees with tb_grant_free()); otherwise a tb_auth_err_t, *out untouched.
 * A token without a `rooms` claim gets the configured default_rooms.
 */
int tb_auth_verify(const tb_auth_t *a, const char *token, size_t len, int64_t now_s,
                   tb_grant_t **out);

/*
 * The fleet's ticket key (TB_TICKET_KEY_LEN bytes, ticket.h), derived from auth.ticket_secret_file
 * or else the HMAC secret, so that every bridge with the same secret signs and accepts the same
 * tickets; NULL for RS256 and ES256 without auth.ticket_secret_file (each bridge then signs with
 * its own random key). Valid as long as a.
 */
const unsigned char *tb_auth_ticket_key(const tb_auth_t *a);

/* Both return static strings; any thread. The code (TB_AUTH_ERRORS) of an error for HTTP
 * bodies: "missing_token", "token_expired", "server_error" (NOMEM), "invalid_token"; "ok" for
 * TB_AUTH_OK, "invalid_token" otherwise. */
const char *tb_auth_err_code(int err);
/* The reason (TB_AUTH_ERRORS) of an error, for counting by reason; "unknown" otherwise. */
const char *tb_auth_err_reason(int err);

#endif
