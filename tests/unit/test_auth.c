/*
 * Unit tests for auth: JWT verification, alg pinning, claims, grants and key loading.
 *
 * Tokens are made here with libjwt; malformed and unusual ones are assembled by hand. Where a
 * test needs a validly signed token libjwt cannot produce (a lowercase alg, an array payload),
 * it is signed with libcrypto's HMAC, and the RS256/ES256 keys are generated with libcrypto in
 * the group setup: nothing is skipped, whatever tools the machine has.
 */
#include <errno.h>
#include <jwt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "telebridge/auth.h"
#include "telebridge/ticket.h"
#include "telebridge/keys.h"
#include "telebridge/b64url.h"

#include "fixtures.h"

#define NOW 1700000000LL
#define LEEWAY 30
#define PATH_LEN 256
#define TOKEN_BUF 16384
/* Room for the base64url signature of any HS* token (86 characters for HS512). */
#define SIG_BUF 128
#define CLAIMS_BUF 12288

static const char k_secret[] = "test-secret-0123456789abcdef0123";

static struct {
    char dir[PATH_LEN];
} g_fx;

/* Stands in for "*out untouched": verify must leave this pointer as it was on failure. */
static char g_sentinel_obj;
#define SENTINEL ((tb_grant_t *)(void *)&g_sentinel_obj)

static void fx_path(char out[PATH_LEN], const char *name)
{
    int n = snprintf(out, PATH_LEN, "%s/%s", g_fx.dir, name);
    assert_true(n > 0 && n < PATH_LEN);
}

static void write_file(const char *name, const char *data, size_t len)
{
    char path[PATH_LEN];
    FILE *f;
    fx_path(path, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated; caller frees. */
static char *read_file(const char *name, size_t *len)
{
    char path[PATH_LEN];
    char *buf = malloc(TOKEN_BUF);
    FILE *f;
    assert_non_null(buf);
    fx_path(path, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    *len = fread(buf, 1, TOKEN_BUF - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Writes a new key (EVP_PKEY_Q_keygen's type and parameter) as <name>.pem (private) and
 * <name>.pub (public, SubjectPublicKeyInfo); 0 or -1. */
static int make_key(const char *name, const char *type, const char *param, size_t bits)
{
    char path[PATH_LEN];
    EVP_PKEY *key = param ? EVP_PKEY_Q_keygen(NULL, NULL, type, param)
                          : EVP_PKEY_Q_keygen(NULL, NULL, type, bits);
    FILE *priv = NULL, *pub = NULL;
    int rc = -1;
    if (!key)
        return -1;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.pem", g_fx.dir, name) < sizeof(path))
        priv = fopen(path, "w");
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.pub", g_fx.dir, name) < sizeof(path))
        pub = fopen(path, "w");
    if (priv && pub && PEM_write_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) == 1 &&
        PEM_write_PUBKEY(pub, key) == 1)
        rc = 0;
    if (priv && fclose(priv) != 0)
        rc = -1;
    if (pub && fclose(pub) != 0)
        rc = -1;
    EVP_PKEY_free(key);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_fx.dir, sizeof(g_fx.dir), "/tmp/tb-test-auth-XXXXXX");
    if (!mkdtemp(g_fx.dir))
        return -1;
    /* rsa1024 and p384 are keys of the right family but the wrong size or curve. */
    if (make_key("rsa", "RSA", NULL, 2048) || make_key("ec", "EC", "P-256", 0) ||
        make_key("ec2", "EC", "P-256", 0) || make_key("p384", "EC", "P-384", 0) ||
        make_key("rsa1024", "RSA", NULL, 1024))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[PATH_LEN + 16];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A config for alg with the given key paths (NULL: unset); the strings stay the caller's. */
static tb_config_auth_t cfg_for(const char *alg, char *secret_file, char *public_key_file)
{
    tb_config_auth_t cfg = {0};
    cfg.algorithm = (char *)alg; /* tb_auth_create only reads the config */
    cfg.secret_file = secret_file;
    cfg.public_key_file = public_key_file;
    cfg.leeway_s = LEEWAY;
    return cfg;
}

static tb_auth_t *create_ok(const tb_config_auth_t *cfg)
{
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_auth_t *a = tb_auth_create(cfg, err, sizeof(err));
    if (!a)
        fail_msg("tb_auth_create: %s", err);
    return a;
}

/* An HMAC bridge keyed from a secret file holding k_secret. */
static tb_auth_t *hs_auth(const char *alg)
{
    char path[PATH_LEN];
    tb_config_auth_t cfg;
    write_file("secret", k_secret, strlen(k_secret));
    fx_path(path, "secret");
    cfg = cfg_for(alg, path, NULL);
    return create_ok(&cfg);
}

static tb_auth_t *pem_auth(const char *alg, const char *pub_name)
{
    char path[PATH_LEN];
    tb_config_auth_t cfg;
    fx_path(path, pub_name);
    cfg = cfg_for(alg, NULL, path);
    return create_ok(&cfg);
}

/* A token over printf-formatted claims, signed with k_secret. */
static char *hsf(jwt_alg_t alg, const char *fmt, ...)
{
    va_list ap;
    char *token;
    va_start(ap, fmt);
    token = fixtures_vsignf(alg, k_secret, strlen(k_secret), fmt, ap);
    va_end(ap);
    return token;
}

/* A token signed with the private key PEM in the fixture file pem_name. */
static char *pemf(jwt_alg_t alg, const char *pem_name, const char *fmt, ...)
{
    size_t len;
    char *pem = read_file(pem_name, &len);
    va_list ap;
    char *token;
    va_start(ap, fmt);
    token = fixtures_vsignf(alg, pem, len, fmt, ap);
    va_end(ap);
    free(pem);
    return token;
}

static void b64url(const void *in, size_t len, char *out, size_t outsz)
{
    assert_true(tb_b64url_encode(in, len, out, outsz) >= 0);
}

/* "b64url(header).b64url(payload).sig"; caller frees. */
static char *craft(const char *header, const char *payload, const char *sig)
{
    char h[TOKEN_BUF / 2], p[TOKEN_BUF / 2];
    char *token = malloc(TOKEN_BUF);
    assert_non_null(token);
    b64url(header, strlen(header), h, sizeof(h));
    b64url(payload, strlen(payload), p, sizeof(p));
    assert_true(snprintf(token, TOKEN_BUF, "%s.%s.%s", h, p, sig) < TOKEN_BUF);
    return token;
}

/* Like craft() but with a real HMAC-SHA256 by k_secret. */
static char *craft_hs256(const char *header, const char *payload)
{
    char *token = craft(header, payload, "");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char sig[128];
    token[strlen(token) - 1] = '\0'; /* the signing input: without the final '.' */
    assert_non_null(HMAC(EVP_sha256(), k_secret, (int)strlen(k_secret),
                         (const unsigned char *)token, strlen(token), mac, &len));
    assert_int_equal(len, 32);
    b64url(mac, len, sig, sizeof(sig));
    strcat(token, ".");
    strcat(token, sig);
    return token;
}

static int verify(const tb_auth_t *a, const char *token, tb_grant_t **out)
{
    return tb_auth_verify(a, token, strlen(token), NOW, out);
}

/* Verifies token (then frees it) expecting err, with the out pointer left alone. */
static void expect_err(const tb_auth_t *a, char *token, int err)
{
    tb_grant_t *g = SENTINEL;
    int rc = verify(a, token, &g);
    if (rc != err)
        fail_msg("verify = %s, want %s", tb_auth_err_reason(rc), tb_auth_err_reason(err));
    assert_ptr_equal(g, SENTINEL);
    free(token);
}

static tb_grant_t *expect_ok(const tb_auth_t *a, char *token)
{
    tb_grant_t *g = SENTINEL;
    int rc = verify(a, token, &g);
    if (rc != TB_AUTH_OK)
        fail_msg("verify = %s", tb_auth_err_reason(rc));
    assert_ptr_not_equal(g, SENTINEL);
    free(token);
    return g;
}

static void test_good_hs256(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    tb_grant_t *g;
    (void)state;
    g = expect_ok(a, hsf(JWT_ALG_HS256,
                         "{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,"
                         "\"rooms\":[\"device:sensor-*\",\"global\"],\"scope\":\"read publish\"}",
                         NOW + 600, NOW));
    assert_string_equal(tb_grant_sub(g), "alice");
    assert_int_equal(tb_grant_exp(g), NOW + 600);
    assert_true(tb_grant_allows_room(g, "device:sensor-1"));
    assert_true(tb_grant_allows_room(g, "global"));
    assert_false(tb_grant_allows_room(g, "device:pump-1"));
    assert_false(tb_grant_allows_room(g, "group:sensor-1"));
    assert_true(tb_grant_has_scope(g, "publish"));
    assert_true(tb_grant_has_scope(g, "read"));
    assert_false(tb_grant_has_scope(g, "pub"));
    assert_false(tb_grant_has_scope(g, "read publish"));
    tb_grant_free(g);
    tb_auth_destroy(a);
}

static void test_hs384_hs512(void **state)
{
    static const struct {
        const char *name;
        jwt_alg_t alg;
    } algs[] = {{"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512}};
    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        tb_auth_t *a = hs_auth(algs[i].name);
        tb_grant_free(expect_ok(a, hsf(algs[i].alg, "{\"exp\":%lld}", NOW + 60)));
        expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60), TB_AUTH_E_ALG);
        tb_auth_destroy(a);
    }
}

static void test_exp_required(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    tb_grant_t *g;
    (void)state;
    expect_err(a, hsf(JWT_ALG_HS256, "{\"sub\":\"alice\"}"), TB_AUTH_E_NO_EXP);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":\"%lld\"}", NOW + 60), TB_AUTH_E_NO_EXP);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":null}"), TB_AUTH_E_NO_EXP);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":1e300}"), TB_AUTH_E_NO_EXP);
    /* A fractional NumericDate is accepted and rounded down (the stricter way for exp). */
    g = expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld.75}", NOW + 60));
    assert_int_equal(tb_grant_exp(g), NOW + 60);
    tb_grant_free(g);
    /* The largest integer does not overflow the leeway arithmetic. */
    g = expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":9223372036854775807}"));
    assert_int_equal(tb_grant_exp(g), INT64_MAX);
    tb_grant_free(g);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":-9223372036854775807}"), TB_AUTH_E_EXPIRED);
    tb_auth_destroy(a);
}

static void test_expiry_leeway(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    (void)state;
    /* Valid while exp + leeway > now. */
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW - LEEWAY - 100), TB_AUTH_E_EXPIRED);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW - LEEWAY), TB_AUTH_E_EXPIRED);
    tb_grant_free(expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW - LEEWAY + 1)));
    tb_grant_free(expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW - 1)));
    tb_auth_destroy(a);
}

/* nbf and iat must not lie in the future beyond the leeway; a fraction rounds up (stricter). */
static void test_nbf_and_iat(void **state)
{
    static const struct {
        const char *claims; /* printf format of exp, then the time tested (if it takes one) */
        long long t;
        int want;
    } cases[] = {
        {"{\"exp\":%lld,\"nbf\":%lld}", NOW + LEEWAY + 1, TB_AUTH_E_NOT_YET},
        {"{\"exp\":%lld,\"nbf\":%lld.5}", NOW + LEEWAY, TB_AUTH_E_NOT_YET},
        {"{\"exp\":%lld,\"nbf\":%lld}", NOW + LEEWAY, TB_AUTH_OK},
        {"{\"exp\":%lld,\"nbf\":%lld}", NOW - 600, TB_AUTH_OK},
        {"{\"exp\":%lld,\"nbf\":\"soon\"}", 0, TB_AUTH_E_CLAIMS},
        {"{\"exp\":%lld,\"iat\":%lld}", NOW + LEEWAY + 1, TB_AUTH_E_NOT_YET},
        {"{\"exp\":%lld,\"iat\":%lld}", NOW + LEEWAY, TB_AUTH_OK},
        {"{\"exp\":%lld,\"iat\":%lld.25}", NOW - 5, TB_AUTH_OK},
        {"{\"exp\":%lld,\"iat\":\"now\"}", 0, TB_AUTH_E_CLAIMS},
        {"{\"exp\":%lld,\"iat\":null}", 0, TB_AUTH_E_CLAIMS},
    };
    tb_auth_t *a = hs_auth("HS256");
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = hsf(JWT_ALG_HS256, cases[i].claims, NOW + 600, cases[i].t);
        if (cases[i].want == TB_AUTH_OK)
            tb_grant_free(expect_ok(a, token));
        else
            expect_err(a, token, cases[i].want);
    }
    tb_auth_destroy(a);
}

static void test_wrong_secret(void **state)
{
    static const char other[] = "another-secret-0123456789abcdef0";
    tb_auth_t *a = hs_auth("HS256");
    char claims[64];
    (void)state;
    snprintf(claims, sizeof(claims), "{\"exp\":%lld}", NOW + 60);
    expect_err(a, fixtures_sign(JWT_ALG_HS256, other, strlen(other), claims), TB_AUTH_E_SIGNATURE);
    tb_auth_destroy(a);
}

static void test_alg_none_refused_by_our_check(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char claims[64];
    char *none;
    jwt_t *jwt = NULL;
    (void)state;
    snprintf(claims, sizeof(claims), "{\"exp\":%lld}", NOW + 60);
    none = fixtures_sign(JWT_ALG_NONE, NULL, 0, claims);
    assert_non_null(strstr(none, "eyJhbGciOiJub25lIn0.")); /* {"alg":"none"} */
    /* libjwt alone refuses none when given a key, but as EINVAL like any bad token; the
     * reason "alg" shows our header check refused it first. */
    assert_int_equal(jwt_decode(&jwt, none, (const unsigned char *)k_secret, strlen(k_secret)),
                     EINVAL);
    expect_err(a, none, TB_AUTH_E_ALG);
    expect_err(a, craft("{\"alg\":\"none\"}", claims, "c2lnbmF0dXJl"), TB_AUTH_E_ALG);
    expect_err(a, craft("{\"alg\":\"None\",\"typ\":\"JWT\"}", claims, ""), TB_AUTH_E_ALG);
    /* libjwt's alg names are case-insensitive; ours are not. */
    expect_err(a, craft("{\"alg\":\"hs256\"}", claims, "c2ln"), TB_AUTH_E_ALG);
    expect_err(a, craft("{\"alg\":\"RS256\"}", claims, "c2ln"), TB_AUTH_E_ALG);
    tb_auth_destroy(a);
}

/* A copy of token with its signature segment replaced by sig; caller frees. */
static char *with_signature(const char *token, const char *sig)
{
    size_t keep = (size_t)(strrchr(token, '.') + 1 - token);
    char *out = malloc(keep + strlen(sig) + 1);
    assert_non_null(out);
    memcpy(out, token, keep);
    strcpy(out + keep, sig);
    return out;
}

/* The HS* signature check (done by tb_auth in constant time, before libjwt): every variant of
 * a good signature but the exact one is refused, for each length of MAC. */
static void test_hmac_signature_variants(void **state)
{
    static const struct {
        const char *name;
        jwt_alg_t alg;
    } algs[] = {{"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512}};
    (void)state;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        tb_auth_t *a = hs_auth(algs[i].name);
        char *good = hsf(algs[i].alg, "{\"exp\":%lld}", NOW + 60);
        char sig[SIG_BUF];
        assert_true(strlen(strrchr(good, '.') + 1) < sizeof(sig));
        snprintf(sig, sizeof(sig), "%s", strrchr(good, '.') + 1);
        size_t n = strlen(sig);
        char variant[2 * SIG_BUF];
        /* First, middle and last character changed. */
        for (size_t pos = 0; pos<n; pos += n / 2> 0 ? n / 2 : 1) {
            snprintf(variant, sizeof(variant), "%s", sig);
            variant[pos] = variant[pos] == 'A' ? 'B' : 'A';
            expect_err(a, with_signature(good, variant), TB_AUTH_E_SIGNATURE);
        }
        snprintf(variant, sizeof(variant), "%.*s", (int)(n - 1), sig);
        expect_err(a, with_signature(good, variant), TB_AUTH_E_SIGNATURE);
        snprintf(variant, sizeof(variant), "%sA", sig);
        expect_err(a, with_signature(good, variant), TB_AUTH_E_SIGNATURE);
        expect_err(a, with_signature(good, ""), TB_AUTH_E_SIGNATURE);
        tb_grant_free(expect_ok(a, good));
        tb_auth_destroy(a);
    }
}

/* The header is read once without a key (libjwt then verifies nothing, see src/auth.c): a
 * token must still be refused when only its signature is wrong. For RS256/ES256 no HMAC check
 * of ours comes first, so only the keyed decode stands between a forged token and a grant. */
static void test_forged_signature_refused_after_keyless_header_read(void **state)
{
    static const struct {
        const char *alg, *pub, *priv;
        jwt_alg_t jalg;
    } cases[] = {{"RS256", "rsa.pub", "rsa.pem", JWT_ALG_RS256},
                 {"ES256", "ec.pub", "ec.pem", JWT_ALG_ES256}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_auth_t *a = pem_auth(cases[i].alg, cases[i].pub);
        char *good = pemf(cases[i].jalg, cases[i].priv, "{\"sub\":\"m\",\"exp\":%lld}", NOW + 60);
        char *forged = strdup(good);
        assert_non_null(forged);
        /* The same length of signature, every character changed. */
        for (char *c = strrchr(forged, '.') + 1; *c; c++)
            *c = *c == 'A' ? 'B' : 'A';
        expect_err(a, forged, TB_AUTH_E_SIGNATURE);
        tb_grant_free(expect_ok(a, good));
        tb_auth_destroy(a);
    }
}

static void test_hs384_token_to_hs256_bridge(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char *token = hsf(JWT_ALG_HS384, "{\"exp\":%lld}", NOW + 60);
    jwt_t *jwt = NULL;
    (void)state;
    /* Same secret, other alg: libjwt accepts it, so only the pin stands in the way. */
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)k_secret, strlen(k_secret)), 0);
    jwt_free(jwt);
    expect_err(a, token, TB_AUTH_E_ALG);
    tb_auth_destroy(a);
}

static void test_validly_signed_lowercase_alg(void **state)
{
    tb_auth_t *a;
    char payload[64];
    char *token;
    jwt_t *jwt = NULL;
    (void)state;
    a = hs_auth("HS256");
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", NOW + 60);
    token = craft_hs256("{\"alg\":\"hs256\"}", payload);
    assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)k_secret, strlen(k_secret)), 0);
    jwt_free(jwt);
    expect_err(a, token, TB_AUTH_E_ALG);
    /* The same signer with the exact name is accepted: the refusal is about the name. */
    tb_grant_free(expect_ok(a, craft_hs256("{\"alg\":\"HS256\"}", payload)));
    tb_auth_destroy(a);
}

static void test_crit_header_refused(void **state)
{
    tb_auth_t *a;
    char payload[64];
    (void)state;
    a = hs_auth("HS256");
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", NOW + 60);
    expect_err(a, craft_hs256("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", payload),
               TB_AUTH_E_MALFORMED);
    expect_err(a, craft_hs256("{\"alg\":\"HS256\",\"crit\":[]}", payload), TB_AUTH_E_MALFORMED);
    /* Other header parameters, key-naming ones included, are ignored: the key is ours. */
    tb_grant_free(expect_ok(
        a, craft_hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"x\",\"jku\":\"http://e/k\"}",
                       payload)));
    tb_auth_destroy(a);
}

static void test_signed_odd_payloads(void **state)
{
    tb_auth_t *a;
    (void)state;
    a = hs_auth("HS256");
    expect_err(a, craft_hs256("{\"alg\":\"HS256\"}", "[1,2]"), TB_AUTH_E_MALFORMED);
    expect_err(a, craft_hs256("{\"alg\":\"HS256\"}", "{bad"), TB_AUTH_E_MALFORMED);
    /* jansson refuses \u0000 unless asked, so no claim string can hide a NUL. */
    expect_err(a, craft_hs256("{\"alg\":\"HS256\"}", "{\"exp\":2000000000,\"sub\":\"a\\u0000b\"}"),
               TB_AUTH_E_MALFORMED);
    tb_auth_destroy(a);
}

static void test_rs256_es256(void **state)
{
    tb_auth_t *rs, *es;
    tb_grant_t *g;
    (void)state;
    rs = pem_auth("RS256", "rsa.pub");
    es = pem_auth("ES256", "ec.pub");
    g = expect_ok(rs, pemf(JWT_ALG_RS256, "rsa.pem", "{\"sub\":\"r\",\"exp\":%lld}", NOW + 60));
    assert_string_equal(tb_grant_sub(g), "r");
    tb_grant_free(g);
    g = expect_ok(es, pemf(JWT_ALG_ES256, "ec.pem", "{\"sub\":\"e\",\"exp\":%lld}", NOW + 60));
    assert_string_equal(tb_grant_sub(g), "e");
    tb_grant_free(g);
    expect_err(es, pemf(JWT_ALG_RS256, "rsa.pem", "{\"exp\":%lld}", NOW + 60), TB_AUTH_E_ALG);
    expect_err(rs, pemf(JWT_ALG_ES256, "ec.pem", "{\"exp\":%lld}", NOW + 60), TB_AUTH_E_ALG);
    expect_err(es, pemf(JWT_ALG_ES256, "ec2.pem", "{\"exp\":%lld}", NOW + 60), TB_AUTH_E_SIGNATURE);
    expect_err(rs, pemf(JWT_ALG_RS256, "rsa.pem", "{\"exp\":%lld}", NOW - 600), TB_AUTH_E_EXPIRED);
    tb_auth_destroy(rs);
    tb_auth_destroy(es);
}

static void test_key_confusion(void **state)
{
    static const char *const pubs[] = {"rsa.pub", "ec.pub"};
    static const char *const algs[] = {"RS256", "ES256"};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        tb_auth_t *a = pem_auth(algs[i], pubs[i]);
        size_t len;
        char *pem = read_file(pubs[i], &len);
        char claims[64];
        char *token;
        jwt_t *jwt = NULL;
        snprintf(claims, sizeof(claims), "{\"sub\":\"mallory\",\"exp\":%lld}", NOW + 60);
        /* HMAC keyed with the public key, which an attacker knows. */
        token = fixtures_sign(JWT_ALG_HS256, pem, len, claims);
        assert_int_equal(jwt_decode(&jwt, token, (const unsigned char *)pem, (int)len), 0);
        jwt_free(jwt);
        expect_err(a, token, TB_AUTH_E_ALG);
        free(pem);
        tb_auth_destroy(a);
    }
}

static void test_malformed_shapes(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char *good = hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60);
    char *dot1 = strchr(good, '.');
    char buf[TOKEN_BUF];
    (void)state;
    expect_err(a, strdup("a.b.c.d"), TB_AUTH_E_MALFORMED);
    expect_err(a, strdup("abc.def"), TB_AUTH_E_MALFORMED);
    expect_err(a, strdup(".e30.sig"), TB_AUTH_E_MALFORMED);
    expect_err(a, strdup("eyJhbGciOiJIUzI1NiJ9..sig"), TB_AUTH_E_MALFORMED);
    expect_err(a, strdup("not a token"), TB_AUTH_E_MALFORMED);
    /* Cut inside the payload, so one dot is left. */
    snprintf(buf, sizeof(buf), "%.*s", (int)(dot1 - good + 6), good);
    expect_err(a, strdup(buf), TB_AUTH_E_MALFORMED);
    /* Cut inside the signature: well-formed, but the signature no longer verifies. */
    snprintf(buf, sizeof(buf), "%.*s", (int)strlen(good) - 5, good);
    expect_err(a, strdup(buf), TB_AUTH_E_SIGNATURE);
    /* A trailing newline is not base64url. */
    snprintf(buf, sizeof(buf), "%s\n", good);
    expect_err(a, strdup(buf), TB_AUTH_E_MALFORMED);
    free(good);
    tb_auth_destroy(a);
}

static void test_bad_base64_and_json(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char *good = hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60);
    char claims[64];
    char *bad;
    (void)state;
    snprintf(claims, sizeof(claims), "{\"exp\":%lld}", NOW + 60);
    bad = strdup(good);
    bad[3] = '!';
    expect_err(a, bad, TB_AUTH_E_MALFORMED);
    bad = strdup(good);
    bad[strchr(good, '.') - good + 2] = '+'; /* standard, not URL-safe, base64 */
    expect_err(a, bad, TB_AUTH_E_MALFORMED);
    expect_err(a, strdup("eyJhbGciOiJIUzI1NiJ9.e30=.sig"), TB_AUTH_E_MALFORMED);  /* padding */
    expect_err(a, strdup("eyJhbGciOiJIUzI1NiJ9.e30aa.sig"), TB_AUTH_E_MALFORMED); /* 5 chars */
    expect_err(a, craft("{bad", claims, "c2ln"), TB_AUTH_E_MALFORMED);
    expect_err(a, craft("[\"HS256\"]", claims, "c2ln"), TB_AUTH_E_MALFORMED);
    expect_err(a, craft("{\"typ\":\"JWT\"}", claims, "c2ln"), TB_AUTH_E_MALFORMED); /* no alg */
    expect_err(a, craft("{\"alg\":\"HS256\"}", "{bad", "c2ln"), TB_AUTH_E_MALFORMED);
    /* Well-formed but unsigned by us: the signature check is what refuses it. */
    expect_err(a, craft("{\"alg\":\"HS256\"}", claims, "c2ln"), TB_AUTH_E_SIGNATURE);
    free(good);
    tb_auth_destroy(a);
}

static void test_missing_and_length(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char pad[TOKEN_BUF];
    tb_grant_t *g = SENTINEL;
    char *token = NULL;
    size_t n;
    (void)state;
    assert_int_equal(tb_auth_verify(a, NULL, 0, NOW, &g), TB_AUTH_E_MISSING);
    assert_int_equal(tb_auth_verify(a, "", 0, NOW, &g), TB_AUTH_E_MISSING);
    assert_ptr_equal(g, SENTINEL);
    /* Grow a padding claim until the token is just within, then just over, the limit. */
    memset(pad, 'x', sizeof(pad));
    for (n = TB_AUTH_TOKEN_MAX * 3 / 4 - 100;; n++) {
        free(token);
        token = hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"pad\":\"%.*s\"}", NOW + 60, (int)n, pad);
        if (strlen(token) > TB_AUTH_TOKEN_MAX - 4)
            break;
    }
    assert_true(strlen(token) <= TB_AUTH_TOKEN_MAX);
    tb_grant_free(expect_ok(a, token));
    for (;; n++) {
        token = hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"pad\":\"%.*s\"}", NOW + 60, (int)n, pad);
        if (strlen(token) > TB_AUTH_TOKEN_MAX)
            break;
        free(token);
    }
    expect_err(a, token, TB_AUTH_E_MALFORMED);
    tb_auth_destroy(a);
}

static void test_len_is_authoritative(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    char *token = hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60);
    size_t len = strlen(token);
    char buf[TOKEN_BUF];
    tb_grant_t *g = SENTINEL;
    (void)state;
    /* A token inside a longer buffer: only len bytes are read. */
    snprintf(buf, sizeof(buf), "%s&other=1", token);
    assert_int_equal(tb_auth_verify(a, buf, len, NOW, &g), TB_AUTH_OK);
    tb_grant_free(g);
    g = SENTINEL;
    /* An embedded NUL within len is malformed, not a shorter token. */
    memcpy(buf, token, len + 1);
    buf[len - 3] = '\0';
    assert_int_equal(tb_auth_verify(a, buf, len, NOW, &g), TB_AUTH_E_MALFORMED);
    assert_ptr_equal(g, SENTINEL);
    free(token);
    tb_auth_destroy(a);
}

/* Each claim set in claims (a format for exp = NOW + 60) is refused as TB_AUTH_E_CLAIMS. */
static void expect_claims_refused(tb_auth_t *a, const char *const *claims, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_err(a, hsf(JWT_ALG_HS256, claims[i], NOW + 60), TB_AUTH_E_CLAIMS);
}

static void test_rooms_claim(void **state)
{
    static const char *const refused[] = {
        "{\"exp\":%lld,\"rooms\":\"global\"}",
        "{\"exp\":%lld,\"rooms\":[\"global\",\"bad room\"]}",
        "{\"exp\":%lld,\"rooms\":[\"global*\"]}",
        "{\"exp\":%lld,\"rooms\":[1]}",
        "{\"exp\":%lld,\"rooms\":null}",
    };
    /* Each claim set, verified with or without default rooms configured: the rooms it allows,
     * and one it does not (NULL: none checked). */
    static const struct {
        bool with_defaults;
        const char *claims;
        const char *allows[2];
        const char *denies;
    } granted[] = {
        /* No claim: the configured defaults. */
        {true, "{\"exp\":%lld}", {"group:lobby", "device:demo-1"}, "global"},
        /* An empty claim grants nothing and does not fall back to the defaults. */
        {true, "{\"exp\":%lld,\"rooms\":[]}", {NULL, NULL}, "group:lobby"},
        {true, "{\"exp\":%lld,\"rooms\":[\"*\"]}", {"group:anything", "global"}, NULL},
        /* Without configured defaults, no claim means no room. */
        {false, "{\"exp\":%lld}", {NULL, NULL}, "global"},
    };
    char *default_rooms[] = {"group:lobby", "device:demo-*"};
    tb_auth_t *a = hs_auth("HS256");
    tb_auth_t *d;
    tb_config_auth_t cfg;
    char path[PATH_LEN];
    (void)state;
    expect_claims_refused(a, refused, sizeof(refused) / sizeof(refused[0]));
    fx_path(path, "secret");
    cfg = cfg_for("HS256", path, NULL);
    cfg.default_rooms = default_rooms;
    cfg.n_default_rooms = 2;
    d = create_ok(&cfg);
    for (size_t i = 0; i < sizeof(granted) / sizeof(granted[0]); i++) {
        tb_grant_t *g = expect_ok(granted[i].with_defaults ? d : a,
                                  hsf(JWT_ALG_HS256, granted[i].claims, NOW + 60));
        for (size_t k = 0; k < 2 && granted[i].allows[k]; k++)
            assert_true(tb_grant_allows_room(g, granted[i].allows[k]));
        if (granted[i].denies)
            assert_false(tb_grant_allows_room(g, granted[i].denies));
        tb_grant_free(g);
    }
    tb_auth_destroy(d);
    tb_auth_destroy(a);
}

static void test_scope_claim(void **state)
{
    /* Each claim set, the scopes it grants and one it does not. */
    static const struct {
        const char *claims;
        const char *has[2];
        const char *lacks;
    } granted[] = {
        {"{\"exp\":%lld,\"scope\":\"  a  publish \"}", {"a", "publish"}, ""},
        {"{\"exp\":%lld,\"scope\":[\"read\",\"\",\"publish\"]}", {"publish", "read"}, ""},
        {"{\"exp\":%lld}", {NULL, NULL}, "publish"},
    };
    static const char *const refused[] = {
        "{\"exp\":%lld,\"scope\":5}",
        "{\"exp\":%lld,\"scope\":[\"publish\",5]}",
        "{\"exp\":%lld,\"scope\":{\"publish\":true}}",
    };
    tb_auth_t *a = hs_auth("HS256");
    (void)state;
    for (size_t i = 0; i < sizeof(granted) / sizeof(granted[0]); i++) {
        tb_grant_t *g = expect_ok(a, hsf(JWT_ALG_HS256, granted[i].claims, NOW + 60));
        for (size_t k = 0; k < 2 && granted[i].has[k]; k++)
            assert_true(tb_grant_has_scope(g, granted[i].has[k]));
        assert_false(tb_grant_has_scope(g, granted[i].lacks));
        tb_grant_free(g);
    }
    expect_claims_refused(a, refused, sizeof(refused) / sizeof(refused[0]));
    tb_auth_destroy(a);
}

static void test_sub_claim(void **state)
{
    tb_auth_t *a = hs_auth("HS256");
    tb_grant_t *g;
    (void)state;
    g = expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60));
    assert_string_equal(tb_grant_sub(g), "");
    tb_grant_free(g);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"sub\":42}", NOW + 60), TB_AUTH_E_CLAIMS);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"sub\":null}", NOW + 60), TB_AUTH_E_CLAIMS);
    tb_auth_destroy(a);
}

static void test_issuer_audience(void **state)
{
    char path[PATH_LEN];
    char issuer[] = "https://issuer.example", audience[] = "telebridge";
    tb_config_auth_t cfg;
    tb_auth_t *a, *plain = hs_auth("HS256");
    const char *iss = "\"iss\":\"https://issuer.example\"";
    (void)state;
    fx_path(path, "secret");
    cfg = cfg_for("HS256", path, NULL);
    cfg.issuer = issuer;
    cfg.audience = audience;
    a = create_ok(&cfg);
    tb_grant_free(expect_ok(
        a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s,\"aud\":\"telebridge\"}", NOW + 60, iss)));
    tb_grant_free(expect_ok(
        a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s,\"aud\":[\"x\",\"telebridge\"]}", NOW + 60, iss)));
    expect_err(
        a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"iss\":\"other\",\"aud\":\"telebridge\"}", NOW + 60),
        TB_AUTH_E_ISSUER);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"aud\":\"telebridge\"}", NOW + 60),
               TB_AUTH_E_ISSUER);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s}", NOW + 60, iss), TB_AUTH_E_AUDIENCE);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s,\"aud\":\"other\"}", NOW + 60, iss),
               TB_AUTH_E_AUDIENCE);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s,\"aud\":[\"x\",1]}", NOW + 60, iss),
               TB_AUTH_E_AUDIENCE);
    expect_err(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld,%s,\"aud\":[]}", NOW + 60, iss),
               TB_AUTH_E_AUDIENCE);
    /* Not configured: not checked. */
    tb_grant_free(expect_ok(
        plain, hsf(JWT_ALG_HS256, "{\"exp\":%lld,\"iss\":\"any\",\"aud\":\"any\"}", NOW + 60)));
    tb_auth_destroy(a);
    tb_auth_destroy(plain);
}

static void test_secret_from_env(void **state)
{
    static const char env_secret[] = "env-secret-0123456789abcdef01234";
    tb_config_auth_t cfg = cfg_for("HS256", NULL, NULL);
    char err[TB_CONFIG_ERR_LEN] = "";
    char claims[64];
    tb_auth_t *a;
    (void)state;
    snprintf(claims, sizeof(claims), "{\"exp\":%lld}", NOW + 60);
    assert_int_equal(setenv(TB_KEYS_SECRET_ENV, env_secret, 1), 0);
    a = create_ok(&cfg);
    tb_grant_free(
        expect_ok(a, fixtures_sign(JWT_ALG_HS256, env_secret, strlen(env_secret), claims)));
    expect_err(a, hsf(JWT_ALG_HS256, "%s", claims), TB_AUTH_E_SIGNATURE);
    tb_auth_destroy(a);
    assert_int_equal(setenv(TB_KEYS_SECRET_ENV, "", 1), 0);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "TELEBRIDGE_JWT_SECRET: the secret is empty");
    assert_int_equal(unsetenv(TB_KEYS_SECRET_ENV), 0);
}

static void test_secret_file_newline(void **state)
{
    char path[PATH_LEN];
    tb_config_auth_t cfg;
    char file[128];
    tb_auth_t *a;
    unsigned char *key = NULL;
    size_t len = 0;
    char err[TB_CONFIG_ERR_LEN];
    (void)state;
    /* Set: a file is used even when the environment has a secret too. */
    assert_int_equal(setenv(TB_KEYS_SECRET_ENV, "ignored-env-secret", 1), 0);
    snprintf(file, sizeof(file), "%s\r\n\n", k_secret);
    write_file("secret-nl", file, strlen(file));
    fx_path(path, "secret-nl");
    cfg = cfg_for("HS256", path, NULL);
    a = create_ok(&cfg);
    tb_grant_free(expect_ok(a, hsf(JWT_ALG_HS256, "{\"exp\":%lld}", NOW + 60)));
    tb_auth_destroy(a);
    assert_int_equal(tb_keys_load_secret(path, &key, &len, err, sizeof(err)), 0);
    assert_int_equal(len, strlen(k_secret));
    assert_memory_equal(key, k_secret, len);
    tb_keys_free(key, len);
    assert_int_equal(unsetenv(TB_KEYS_SECRET_ENV), 0);
}

static void test_secret_file_errors(void **state)
{
    char big[TB_KEYS_SECRET_MAX + 1];
    char path[PATH_LEN];
    char err[TB_CONFIG_ERR_LEN];
    tb_config_auth_t cfg;
    (void)state;
    fx_path(path, "secret-bad");
    cfg = cfg_for("HS256", path, NULL);
    write_file("secret-bad", "\r\n", 2);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "auth.secret_file: the secret is empty");
    memset(big, 'k', sizeof(big));
    write_file("secret-bad", big, TB_KEYS_SECRET_MAX);
    tb_auth_destroy(create_ok(&cfg));
    write_file("secret-bad", big, TB_KEYS_SECRET_MAX + 1);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "larger than 4096 bytes"));
    fx_path(path, "no-such-file");
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "auth.secret_file: cannot open"));
}

static void test_no_key(void **state)
{
    tb_config_auth_t cfg = cfg_for("HS256", NULL, NULL);
    char err[TB_CONFIG_ERR_LEN] = "";
    (void)state;
    assert_int_equal(unsetenv(TB_KEYS_SECRET_ENV), 0);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "auth: no key: set auth.secret_file or TELEBRIDGE_JWT_SECRET");
    cfg = cfg_for("RS256", NULL, NULL);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "auth: no key: set auth.public_key_file for RS256");
}

/* docs/security.md → Tickets across a fleet: what the ticket key derives from. */
static void test_ticket_key(void **state)
{
    char secret[PATH_LEN], other[PATH_LEN], ticket[PATH_LEN], pub[PATH_LEN];
    char err[TB_CONFIG_ERR_LEN];
    (void)state;
    write_file("tk-secret", k_secret, strlen(k_secret));
    write_file("tk-other", "another-secret-0123456789abcdef!", 32);
    write_file("tk-ticket", "fleet-ticket-secret\n", 20);
    fx_path(secret, "tk-secret");
    fx_path(other, "tk-other");
    fx_path(ticket, "tk-ticket");
    fx_path(pub, "ec.pub");
    tb_config_auth_t c1 = cfg_for("HS256", secret, NULL), c2 = cfg_for("HS384", secret, NULL);
    tb_config_auth_t c3 = cfg_for("HS256", other, NULL), c4 = cfg_for("ES256", NULL, pub);
    tb_config_auth_t c5 = c4, c6 = c3;
    c5.ticket_secret_file = ticket;
    c6.ticket_secret_file = ticket;
    tb_auth_t *a1 = create_ok(&c1), *a2 = create_ok(&c2), *a3 = create_ok(&c3);
    tb_auth_t *a4 = create_ok(&c4), *a5 = create_ok(&c5), *a6 = create_ok(&c6);
    /* The same HS* secret, whatever the hash: the same key; another secret, another key. */
    assert_memory_equal(tb_auth_ticket_key(a1), tb_auth_ticket_key(a2), TB_TICKET_KEY_LEN);
    assert_memory_not_equal(tb_auth_ticket_key(a1), tb_auth_ticket_key(a3), TB_TICKET_KEY_LEN);
    /* ES256 alone has none; ticket_secret_file gives one, the same for any algorithm. */
    assert_null(tb_auth_ticket_key(a4));
    assert_non_null(tb_auth_ticket_key(a5));
    assert_memory_equal(tb_auth_ticket_key(a5), tb_auth_ticket_key(a6), TB_TICKET_KEY_LEN);
    assert_memory_not_equal(tb_auth_ticket_key(a5), tb_auth_ticket_key(a3), TB_TICKET_KEY_LEN);
    /* The key is not the secret itself. */
    assert_memory_not_equal(tb_auth_ticket_key(a1), k_secret, TB_TICKET_KEY_LEN);
    fx_path(ticket, "no-such-ticket-file");
    c6.ticket_secret_file = ticket;
    assert_null(tb_auth_create(&c6, err, sizeof(err)));
    assert_non_null(strstr(err, "auth.ticket_secret_file: cannot open"));
    tb_auth_destroy(a1);
    tb_auth_destroy(a2);
    tb_auth_destroy(a3);
    tb_auth_destroy(a4);
    tb_auth_destroy(a5);
    tb_auth_destroy(a6);
}

static void test_create_errors(void **state)
{
    static const char *const bad_algs[] = {"none", "HS1", "hs256", "RS512", ""};
    char *bad_rooms[] = {"global", "bad room"};
    char path[PATH_LEN];
    char err[TB_CONFIG_ERR_LEN];
    tb_config_auth_t cfg;
    (void)state;
    write_file("secret", k_secret, strlen(k_secret));
    fx_path(path, "secret");
    for (size_t i = 0; i < sizeof(bad_algs) / sizeof(bad_algs[0]); i++) {
        cfg = cfg_for(bad_algs[i], path, NULL);
        assert_null(tb_auth_create(&cfg, err, sizeof(err)));
        assert_non_null(strstr(err, "auth.algorithm: unsupported algorithm"));
    }
    cfg = cfg_for(NULL, path, NULL);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    cfg = cfg_for("HS256", path, NULL);
    cfg.default_rooms = bad_rooms;
    cfg.n_default_rooms = 2;
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "auth.default_rooms[1]: invalid room pattern 'bad room'");
    cfg = cfg_for("HS256", path, NULL);
    cfg.leeway_s = -1;
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_string_equal(err, "auth.leeway_s: must be >= 0");
    /* A public key file must hold a public key, not a private one or a secret. */
    cfg = cfg_for("RS256", NULL, path);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "is not a PEM public key"));
}

static void test_private_key_as_public_key_refused(void **state)
{
    char path[PATH_LEN];
    char err[TB_CONFIG_ERR_LEN];
    tb_config_auth_t cfg;
    (void)state;
    fx_path(path, "rsa.pem");
    cfg = cfg_for("RS256", NULL, path);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "is not a PEM public key"));
}

/* Creating a bridge for alg with the public key file name fails with a message holding want. */
static void expect_key_refused(const char *alg, const char *name, const char *want)
{
    char path[PATH_LEN];
    char err[TB_CONFIG_ERR_LEN] = "";
    tb_config_auth_t cfg;
    fx_path(path, name);
    cfg = cfg_for(alg, NULL, path);
    assert_null(tb_auth_create(&cfg, err, sizeof(err)));
    if (!strstr(err, want))
        fail_msg("%s with %s: '%s' lacks '%s'", alg, name, err, want);
}

static void test_public_key_must_fit_the_algorithm(void **state)
{
    static const char garbled[] = "-----BEGIN PUBLIC KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\n"
                                  "-----END PUBLIC KEY-----\n";
    (void)state;
    write_file("garbled.pub", garbled, sizeof(garbled) - 1);
    expect_key_refused("RS256", "garbled.pub",
                       "holds no usable RS256 key (RSA, at least 2048 bits)");
    /* RFC 7518 §3.3: 2048 bits at least. */
    expect_key_refused("RS256", "rsa1024.pub",
                       "holds no usable RS256 key (RSA, at least 2048 bits)");
    expect_key_refused("ES256", "garbled.pub", "holds no usable ES256 key (EC P-256)");
    expect_key_refused("RS256", "ec.pub", "holds no usable RS256 key");
    expect_key_refused("ES256", "rsa.pub", "holds no usable ES256 key");
    expect_key_refused("ES256", "p384.pub", "holds no usable ES256 key");
    /* The right ones still load. */
    tb_auth_destroy(pem_auth("RS256", "rsa.pub"));
    tb_auth_destroy(pem_auth("ES256", "ec.pub"));
}

static void test_err_strings(void **state)
{
    static const struct {
        int err;
        const char *code;
        const char *reason;
    } cases[] = {
        {TB_AUTH_OK, "ok", "ok"},
        {TB_AUTH_E_MISSING, "missing_token", "missing"},
        {TB_AUTH_E_MALFORMED, "invalid_token", "malformed"},
        {TB_AUTH_E_ALG, "invalid_token", "alg"},
        {TB_AUTH_E_SIGNATURE, "invalid_token", "signature"},
        {TB_AUTH_E_NO_EXP, "invalid_token", "no_exp"},
        {TB_AUTH_E_EXPIRED, "token_expired", "expired"},
        {TB_AUTH_E_NOT_YET, "invalid_token", "not_yet_valid"},
        {TB_AUTH_E_ISSUER, "invalid_token", "issuer"},
        {TB_AUTH_E_AUDIENCE, "invalid_token", "audience"},
        {TB_AUTH_E_CLAIMS, "invalid_token", "claims"},
        {TB_AUTH_E_NOMEM, "server_error", "nomem"},
        {-12, "invalid_token", "unknown"},
        {1, "invalid_token", "unknown"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(tb_auth_err_code(cases[i].err), cases[i].code);
        assert_string_equal(tb_auth_err_reason(cases[i].err), cases[i].reason);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_hs256),
        cmocka_unit_test(test_hs384_hs512),
        cmocka_unit_test(test_exp_required),
        cmocka_unit_test(test_expiry_leeway),
        cmocka_unit_test(test_nbf_and_iat),
        cmocka_unit_test(test_hmac_signature_variants),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_alg_none_refused_by_our_check),
        cmocka_unit_test(test_forged_signature_refused_after_keyless_header_read),
        cmocka_unit_test(test_hs384_token_to_hs256_bridge),
        cmocka_unit_test(test_validly_signed_lowercase_alg),
        cmocka_unit_test(test_crit_header_refused),
        cmocka_unit_test(test_signed_odd_payloads),
        cmocka_unit_test(test_rs256_es256),
        cmocka_unit_test(test_key_confusion),
        cmocka_unit_test(test_malformed_shapes),
        cmocka_unit_test(test_bad_base64_and_json),
        cmocka_unit_test(test_missing_and_length),
        cmocka_unit_test(test_len_is_authoritative),
        cmocka_unit_test(test_rooms_claim),
        cmocka_unit_test(test_scope_claim),
        cmocka_unit_test(test_sub_claim),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_secret_from_env),
        cmocka_unit_test(test_secret_file_newline),
        cmocka_unit_test(test_secret_file_errors),
        cmocka_unit_test(test_no_key),
        cmocka_unit_test(test_ticket_key),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_private_key_as_public_key_refused),
        cmocka_unit_test(test_public_key_must_fit_the_algorithm),
        cmocka_unit_test(test_err_strings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
