/*
 * keys — reading the verification key: an HMAC secret or a PEM public key; see
 * include/telebridge/keys.h.
 */
#include "telebridge/keys.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Longest public key PEM file accepted; an 8192-bit RSA key is about 1.5 KiB. */
#define KEYS_PUBKEY_MAX 16384
#define KEYS_PEM_PUBLIC_MARKER "-----BEGIN PUBLIC KEY-----"
/* OpenSSL's name of the only curve ES256 uses (P-256). */
#define KEYS_P256_CURVE "prime256v1"

/* Reads at most max bytes of path into a new NUL-terminated buffer. what names the config key. */
static int read_bounded(const char *path, size_t max, char **out, size_t *len, const char *what,
                        char *err, size_t errlen)
{
    int rc = tb_read_file(path, max, out, len);
    if (rc == -EFBIG)
        tb_set_err(err, errlen, "%s: '%s' is larger than %zu bytes", what, path, max);
    else if (rc == -ENOMEM)
        tb_set_err(err, errlen, "%s: out of memory", what);
    else if (rc)
        tb_set_err(err, errlen, "%s: cannot open '%s': %s", what, path, strerror(-rc));
    return rc ? -1 : 0;
}

static int secret_from_env(char **out, size_t *len, char *err, size_t errlen)
{
    const char *env = getenv(TB_KEYS_SECRET_ENV);
    size_t n;
    if (!env) {
        tb_set_err(err, errlen, "auth: no key: set auth.secret_file or %s", TB_KEYS_SECRET_ENV);
        return -1;
    }
    n = strlen(env);
    if (n > TB_KEYS_SECRET_MAX) {
        tb_set_err(err, errlen, "%s: longer than %d bytes", TB_KEYS_SECRET_ENV, TB_KEYS_SECRET_MAX);
        return -1;
    }
    *out = malloc(n + 1);
    if (!*out) {
        tb_set_err(err, errlen, "%s: out of memory", TB_KEYS_SECRET_ENV);
        return -1;
    }
    memcpy(*out, env, n + 1);
    *len = n;
    return 0;
}

int tb_keys_load_secret_as(const char *path, const char *what, unsigned char **key, size_t *len,
                           char *err, size_t errlen)
{
    const char *source = path ? what : TB_KEYS_SECRET_ENV;
    char *buf;
    size_t n;
    if (path) {
        if (read_bounded(path, TB_KEYS_SECRET_MAX, &buf, &n, source, err, errlen) != 0)
            return -1;
        /* Editors and `echo` end files with a newline that is not part of the secret. */
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
    } else if (secret_from_env(&buf, &n, err, errlen) != 0) {
        return -1;
    }
    if (n == 0) {
        tb_set_err(err, errlen, "%s: the secret is empty", source);
        free(buf);
        return -1;
    }
    *key = (unsigned char *)buf;
    *len = n;
    return 0;
}

int tb_keys_load_secret(const char *path, unsigned char **key, size_t *len, char *err,
                        size_t errlen)
{
    return tb_keys_load_secret_as(path, "auth.secret_file", key, len, err, errlen);
}

void tb_keys_free(unsigned char *key, size_t len)
{
    if (!key)
        return;
    tb_wipe(key, len);
    free(key);
}

/*
 * The PEM parses as a public key of the kind asked for: RSA of at least min_bits, or EC on
 * P-256. Checked here so that a broken key is refused at start or reload (the old key then
 * stays) instead of failing every verification later.
 */
static bool public_key_fits(const char *pem, size_t len, tb_keys_kind_t kind, size_t min_bits)
{
    char curve[32];
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    bool ok = false;
    if (key && kind == TB_KEYS_RSA)
        ok = EVP_PKEY_base_id(key) == EVP_PKEY_RSA && (size_t)EVP_PKEY_get_bits(key) >= min_bits;
    else if (key && kind == TB_KEYS_EC_P256)
        ok = EVP_PKEY_base_id(key) == EVP_PKEY_EC &&
             EVP_PKEY_get_group_name(key, curve, sizeof(curve), NULL) == 1 &&
             strcmp(curve, KEYS_P256_CURVE) == 0;
    EVP_PKEY_free(key);
    BIO_free(bio);
    ERR_clear_error(); /* leave no error queued for libjwt's later calls on this thread */
    return ok;
}

int tb_keys_load_public(const char *path, const char *alg, tb_keys_kind_t kind, size_t min_bits,
                        unsigned char **key, size_t *len, char *err, size_t errlen)
{
    char *pem;
    size_t n;
    if (!path) {
        tb_set_err(err, errlen, "auth: no key: set auth.public_key_file for %s", alg);
        return -1;
    }
    if (read_bounded(path, KEYS_PUBKEY_MAX, &pem, &n, "auth.public_key_file", err, errlen) != 0)
        return -1;
    /* libjwt only reads SubjectPublicKeyInfo PEM; a private key or certificate here is a
     * mistake worth stopping for, and the only check possible without parsing the key. */
    if (!strstr(pem, KEYS_PEM_PUBLIC_MARKER)) {
        tb_set_err(err, errlen, "auth.public_key_file: '%s' is not a PEM public key (%s)", path,
                   KEYS_PEM_PUBLIC_MARKER);
        free(pem);
        return -1;
    }
    if (!public_key_fits(pem, n, kind, min_bits)) {
        tb_set_err(err, errlen, "auth.public_key_file: '%s' holds no usable %s key%s", path, alg,
                   kind == TB_KEYS_EC_P256 ? " (EC P-256)" : " (RSA, at least 2048 bits)");
        free(pem);
        return -1;
    }
    *key = (unsigned char *)pem;
    *len = n;
    return 0;
}
