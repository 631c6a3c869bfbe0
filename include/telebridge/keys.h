/*
 * keys — reads the key a tb_auth_t verifies with: an HMAC secret (HS*) from a file or the
 * environment, or a PEM public key (RS256, ES256) from a file.
 *
 * Every key is a new buffer the caller owns and releases with tb_keys_free(), which wipes it
 * first. Failures return -1 with a message in err (errlen bytes) naming the config
 * key or variable, and leave *key and *len untouched. Any thread may call; the bridge does at
 * start and on reload.
 */
#ifndef TELEBRIDGE_KEYS_H
#define TELEBRIDGE_KEYS_H

#include <stddef.h>

#include "telebridge/config.h"

/* Longest HMAC secret read from a file or the environment, in bytes. */
#define TB_KEYS_SECRET_MAX 4096
/* Environment variable holding the HMAC secret when auth.secret_file is unset. */
#define TB_KEYS_SECRET_ENV "TELEBRIDGE_JWT_SECRET"

/* What a public key must be. */
typedef enum {
    TB_KEYS_RSA = 1, /* RSA of at least min_bits (RS256) */
    TB_KEYS_EC_P256, /* EC on P-256 (ES256) */
} tb_keys_kind_t;

/*
 * Reads an HMAC secret exactly as the bridge does for HS*, so tools that sign tokens agree with
 * it: from path (at most TB_KEYS_SECRET_MAX bytes, trailing CR/LF stripped) or, when path is
 * NULL, from TB_KEYS_SECRET_ENV (taken as is). The secret must not be empty; no minimum length
 * is enforced. Returns 0 and a new buffer in *key, its length in *len; or -1 (see above).
 */
int tb_keys_load_secret(const char *path, unsigned char **key, size_t *len, char *err,
                        size_t errlen);

/* tb_keys_load_secret() for a secret file named by another config key, what (e.g.
 * "auth.ticket_secret_file"), which its messages name. */
int tb_keys_load_secret_as(const char *path, const char *what, unsigned char **key, size_t *len,
                           char *err, size_t errlen);

/*
 * Reads the SubjectPublicKeyInfo PEM at path (auth.public_key_file; NULL is refused) for the
 * algorithm named alg (used in messages only) and checks it parses as a key of kind. Returns 0
 * and the PEM's text in *key (NUL-terminated, *len bytes without the NUL); or -1 (see above).
 */
int tb_keys_load_public(const char *path, const char *alg, tb_keys_kind_t kind, size_t min_bits,
                        unsigned char **key, size_t *len, char *err, size_t errlen);

/* Wipes len bytes of key and frees it. NULL is a no-op. */
void tb_keys_free(unsigned char *key, size_t len);

#endif
