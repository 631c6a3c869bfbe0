/*
 * Unit tests for keys, called directly (test_auth.c covers the same rules through
 * tb_auth_create): what a failure leaves untouched, the secret's sources and trimming, and a
 * public key checked against the kind asked for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "telebridge/keys.h"

#define PATH_LEN 256

static char g_dir[PATH_LEN];

static void path_of(char out[PATH_LEN], const char *name)
{
    int n = snprintf(out, PATH_LEN, "%s/%s", g_dir, name);
    assert_true(n > 0 && n < PATH_LEN);
}

static void write_text(const char *name, const char *text)
{
    char path[PATH_LEN];
    FILE *f;
    path_of(path, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* ec.pub: the public half of a new P-256 key. */
static int group_setup(void **state)
{
    char path[PATH_LEN];
    EVP_PKEY *key;
    FILE *f;
    int ok;
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/tb-test-keys-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    path_of(path, "ec.pub");
    f = key ? fopen(path, "w") : NULL;
    ok = f && PEM_write_PUBKEY(f, key) == 1;
    if (f && fclose(f) != 0)
        ok = 0;
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[PATH_LEN + 16];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A file's trailing CR and LF are dropped, the environment's value is taken as it is. */
static void test_secret_sources(void **state)
{
    char path[PATH_LEN], err[TB_CONFIG_ERR_LEN] = "";
    unsigned char *key = NULL;
    size_t len = 0;
    (void)state;
    write_text("secret", "s3cret\r\n\n");
    path_of(path, "secret");
    assert_int_equal(tb_keys_load_secret(path, &key, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(key, "s3cret", 6);
    tb_keys_free(key, len);
    assert_int_equal(setenv(TB_KEYS_SECRET_ENV, " env\n", 1), 0);
    assert_int_equal(tb_keys_load_secret(NULL, &key, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(key, " env\n", 5);
    tb_keys_free(key, len);
    assert_int_equal(unsetenv(TB_KEYS_SECRET_ENV), 0);
    tb_keys_free(NULL, 0);
}

/* On failure: -1, a message, and *key and *len as they were. */
static void test_secret_failures(void **state)
{
    char path[PATH_LEN], err[TB_CONFIG_ERR_LEN] = "";
    unsigned char sentinel, *key = &sentinel;
    size_t len = 77;
    (void)state;
    assert_int_equal(unsetenv(TB_KEYS_SECRET_ENV), 0);
    assert_int_equal(tb_keys_load_secret(NULL, &key, &len, err, sizeof(err)), -1);
    assert_string_equal(err, "auth: no key: set auth.secret_file or TELEBRIDGE_JWT_SECRET");
    write_text("empty", "\n");
    path_of(path, "empty");
    assert_int_equal(tb_keys_load_secret(path, &key, &len, err, sizeof(err)), -1);
    assert_string_equal(err, "auth.secret_file: the secret is empty");
    path_of(path, "missing");
    assert_int_equal(tb_keys_load_secret(path, &key, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.secret_file: cannot open"));
    assert_ptr_equal(key, &sentinel);
    assert_int_equal(len, 77);
}

static void test_public_failures(void **state)
{
    /* ec.pub is a good key, of the wrong kind for RS256. */
    static const char *const names[] = {"missing", "not-a-key", "ec.pub"};
    char path[PATH_LEN], err[TB_CONFIG_ERR_LEN] = "";
    unsigned char sentinel, *key = &sentinel;
    size_t len = 77;
    (void)state;
    assert_int_equal(
        tb_keys_load_public(NULL, "RS256", TB_KEYS_RSA, 2048, &key, &len, err, sizeof(err)), -1);
    assert_string_equal(err, "auth: no key: set auth.public_key_file for RS256");
    write_text("not-a-key", "not a key\n");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        err[0] = '\0';
        path_of(path, names[i]);
        assert_int_equal(
            tb_keys_load_public(path, "RS256", TB_KEYS_RSA, 2048, &key, &len, err, sizeof(err)),
            -1);
        assert_non_null(strstr(err, "auth.public_key_file"));
    }
    assert_ptr_equal(key, &sentinel);
    assert_int_equal(len, 77);
}

/* The PEM comes back as text, NUL-terminated, for the kind it fits. */
static void test_public_key_of_its_kind(void **state)
{
    char path[PATH_LEN], err[TB_CONFIG_ERR_LEN] = "";
    unsigned char *key = NULL;
    size_t len = 0;
    (void)state;
    path_of(path, "ec.pub");
    assert_int_equal(
        tb_keys_load_public(path, "ES256", TB_KEYS_EC_P256, 0, &key, &len, err, sizeof(err)), 0);
    assert_int_equal(strlen((const char *)key), len);
    assert_non_null(strstr((const char *)key, "-----BEGIN PUBLIC KEY-----"));
    tb_keys_free(key, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_sources),
        cmocka_unit_test(test_secret_failures),
        cmocka_unit_test(test_public_failures),
        cmocka_unit_test(test_public_key_of_its_kind),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
