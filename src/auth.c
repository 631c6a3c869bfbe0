/*
 * auth — JWT verification with libjwt 1.10.2; see include/telebridge/auth.h.
 *
 * libjwt 1.10.2 facts this file relies on (checked against its source and the Debian build):
 * - jwt_decode() with a NULL key or key_len 0 does NOT verify anything: it parses the token and
 *   reports JWT_ALG_NONE whatever the header said. The key is therefore never empty here.
 * - jwt_decode() verifies with whatever alg the token's header names (matched case-insensitively):
 *   an HS384 token signed with our HS256 secret, or an HS256 token whose HMAC key is our RSA
 *   public key PEM ("key confusion"), decodes successfully. alg "none" with a key is refused by
 *   libjwt's header check, as the same EINVAL as any other bad token.
 * - If copying the key fails for lack of memory, jwt_decode() returns 0 with an empty object.
 * - HS* signatures are compared with strcmp(), whose time depends on how many leading characters
 *   match; RFC 7518 §3.2 requires a constant-time comparison.
 * - Header parameters other than alg are ignored, "crit" included.
 * Hence the alg is pinned twice, by us: the header's alg must equal the configured name exactly
 * before any key is used, and jwt_get_alg() must equal it after verification; and an HS*
 * signature is checked here in constant time first, so libjwt only compares good ones.
 *
 * Claims: exp (required), nbf and iat are NumericDates, integer or fractional (rounded towards the
 * stricter side); iss and aud are checked only when configured (a token's aud is ignored when
 * auth.audience is unset); sub, rooms and scope must have the documented shapes.
 */
#include "telebridge/auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/b64url.h"
#include "telebridge/keys.h"
#include "telebridge/log.h"
#include "telebridge/room.h"
#include "telebridge/ticket.h"
#include "telebridge/util.h"

/* NumericDates beyond this magnitude (about 31 million years) are refused as not a date. */
#define TB_AUTH_DATE_LIMIT 1e15

struct tb_auth_alg {
    const char *name;
    jwt_alg_t alg;
    bool hmac; /* key from secret_file / env; otherwise a PEM public key file */
    /* RFC 7518 §3.2 / §3.3: HMAC secrets as long as the hash (bytes; shorter ones are logged),
     * RSA moduli of at least 2048 bits (shorter ones are refused). */
    size_t min_key;
};

#define AUTH_ALG(name, hmac, min_key) {#name, JWT_ALG_##name, hmac, min_key},
static const struct tb_auth_alg k_algs[] = {TB_AUTH_ALGORITHMS(AUTH_ALG)};

struct tb_auth {
    const struct tb_auth_alg *alg;
    unsigned char *key; /* never empty: libjwt skips verification for an empty key */
    size_t key_len;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway_s;
    char **default_rooms;
    size_t n_default_rooms;
    bool has_ticket_key; /* HS*: the fleet's ticket key, derived from the secret */
    unsigned char ticket_key[TB_TICKET_KEY_LEN];
};

static const struct tb_auth_alg *find_alg(const char *name)
{
    for (size_t i = 0; name && i < sizeof(k_algs) / sizeof(k_algs[0]); i++)
        if (strcmp(k_algs[i].name, name) == 0)
            return &k_algs[i];
    return NULL;
}

static int copy_optional(char **dst, const char *src, char *err, size_t errlen)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    if (!*dst) {
        tb_set_err(err, errlen, "auth: out of memory");
        return -1;
    }
    return 0;
}

static int copy_default_rooms(tb_auth_t *a, const tb_config_auth_t *cfg, char *err, size_t errlen)
{
    a->default_rooms = calloc(cfg->n_default_rooms + 1, sizeof(char *));
    if (!a->default_rooms) {
        tb_set_err(err, errlen, "auth: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_default_rooms; i++) {
        if (!tb_room_pattern_valid(cfg->default_rooms[i])) {
            tb_set_err(err, errlen, "auth.default_rooms[%zu]: invalid room pattern '%s'", i,
                       cfg->default_rooms[i]);
            return -1;
        }
        if (copy_optional(&a->default_rooms[i], cfg->default_rooms[i], err, errlen) != 0)
            return -1;
        a->n_default_rooms = i + 1;
    }
    return 0;
}

/*
 * The ticket key of every bridge with the same secret: HMAC-SHA256(secret, TICKET_KEY_LABEL), the
 * secret being auth.ticket_secret_file's or else the HS* one (RS256/ES256 without it: no key). The
 * label holds a '/', which no JWS signing input (base64url and '.') does, so no ticket MAC is ever
 * a token signature or the other way round. 0, or -1 with a message in err.
 */
#define TICKET_KEY_LABEL "telebridge/ticket-key/v1"

static int derive_ticket_key(tb_auth_t *a, const tb_config_auth_t *cfg, char *err, size_t errlen)
{
    unsigned char *secret = a->key;
    size_t len = a->key_len;
    unsigned int n = sizeof(a->ticket_key);
    if (cfg->ticket_secret_file) {
        if (tb_keys_load_secret_as(cfg->ticket_secret_file, "auth.ticket_secret_file", &secret,
                                   &len, err, errlen) != 0)
            return -1;
    } else if (!a->alg->hmac) {
        return 0;
    }
    a->has_ticket_key =
        HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)TICKET_KEY_LABEL,
             strlen(TICKET_KEY_LABEL), a->ticket_key, &n) != NULL;
    if (secret != a->key)
        tb_keys_free(secret, len);
    if (!a->has_ticket_key)
        tb_set_err(err, errlen, "auth: cannot derive the ticket key");
    return a->has_ticket_key ? 0 : -1;
}

const unsigned char *tb_auth_ticket_key(const tb_auth_t *a)
{
    return a->has_ticket_key ? a->ticket_key : NULL;
}

tb_auth_t *tb_auth_create(const tb_config_auth_t *cfg, char *err, size_t errlen)
{
    const struct tb_auth_alg *alg = find_alg(cfg->algorithm);
    tb_auth_t *a;
    int rc;
    if (!alg) {
        tb_set_err(err, errlen,
                   "auth.algorithm: unsupported algorithm '%s' (docs/configuration.md)",
                   cfg->algorithm ? cfg->algorithm : "");
        return NULL;
    }
    if (cfg->leeway_s < 0) {
        tb_set_err(err, errlen, "auth.leeway_s: must be >= 0");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        tb_set_err(err, errlen, "auth: out of memory");
        return NULL;
    }
    a->alg = alg;
    a->leeway_s = cfg->leeway_s;
    rc = alg->hmac ? tb_keys_load_secret(cfg->secret_file, &a->key, &a->key_len, err, errlen)
                   : tb_keys_load_public(cfg->public_key_file, alg->name,
                                         alg->alg == JWT_ALG_ES256 ? TB_KEYS_EC_P256 : TB_KEYS_RSA,
                                         alg->min_key, &a->key, &a->key_len, err, errlen);
    if (rc == 0 && alg->hmac && a->key_len < alg->min_key)
        tb_log(TB_LOG_WARN, "auth secret shorter than its hash, RFC 7518 asks for more",
               "algorithm=%s bytes=%zu minimum=%zu", alg->name, a->key_len, alg->min_key);
    if (rc != 0 || copy_optional(&a->issuer, cfg->issuer, err, errlen) != 0 ||
        copy_optional(&a->audience, cfg->audience, err, errlen) != 0 ||
        copy_default_rooms(a, cfg, err, errlen) != 0 || derive_ticket_key(a, cfg, err, errlen) != 0)
        goto fail;
    return a;
fail:
    tb_auth_destroy(a);
    return NULL;
}

void tb_auth_destroy(tb_auth_t *a)
{
    if (!a)
        return;
    tb_keys_free(a->key, a->key_len);
    tb_wipe(a->ticket_key, sizeof(a->ticket_key));
    free(a->issuer);
    free(a->audience);
    for (size_t i = 0; i < a->n_default_rooms; i++)
        free(a->default_rooms[i]);
    free(a->default_rooms);
    free(a);
}

/* Three dot-separated unpadded base64url segments (RFC 7515 compact form); header and payload
 * non-empty, the signature may be empty so that alg "none" is reported as an alg error. */
static bool token_shape_ok(const char *token, size_t len)
{
    const char *seg = token, *end = token + len;
    for (int i = 0; i < 2; i++) {
        const char *dot = memchr(seg, '.', (size_t)(end - seg));
        if (!dot || dot == seg || !tb_b64url_chars_ok(seg, (size_t)(dot - seg)))
            return false;
        seg = dot + 1;
    }
    /* The signature; a third dot fails here, '.' is not in the alphabet. */
    return tb_b64url_chars_ok(seg, (size_t)(end - seg));
}

/* Parses without a key only to read the header's alg: libjwt verifies nothing in this mode,
 * so nothing else from it is used. Pins the alg before any key touches the token. */
static int check_header(const tb_auth_t *a, const char *text)
{
    jwt_t *unverified = NULL;
    const char *alg;
    int rc = jwt_decode(&unverified, text, NULL, 0);
    if (rc != 0)
        return rc == ENOMEM ? TB_AUTH_E_NOMEM : TB_AUTH_E_MALFORMED;
    alg = jwt_get_header(unverified, "alg");
    rc = alg && strcmp(alg, a->alg->name) == 0 ? TB_AUTH_OK : TB_AUTH_E_ALG;
    /* RFC 7515 §4.1.11: a token whose "crit" names extensions must be refused unless they are
     * understood, and none are; libjwt ignores the parameter. */
    char *crit = jwt_get_headers_json(unverified, "crit");
    if (rc == TB_AUTH_OK && crit)
        rc = TB_AUTH_E_MALFORMED;
    free(crit);
    jwt_free(unverified);
    return rc;
}

/* Longest base64url HMAC we compute, with its NUL. */
#define TB_AUTH_MAC_B64_MAX (TB_B64URL_LEN(EVP_MAX_MD_SIZE) + 1)

static const EVP_MD *hmac_md(jwt_alg_t alg)
{
    return alg == JWT_ALG_HS512 ? EVP_sha512() : alg == JWT_ALG_HS384 ? EVP_sha384() : EVP_sha256();
}

/*
 * The HS* signature of text[0..len) (a well-shaped token) in constant time: the expected
 * base64url MAC of "header.payload" against the signature segment, by CRYPTO_memcmp. Only its
 * length (public: fixed by the algorithm) is compared first.
 */
static int check_hmac(const tb_auth_t *a, const char *text, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char want[TB_AUTH_MAC_B64_MAX];
    const char *sig = strrchr(text, '.') + 1; /* token_shape_ok(): two dots */
    size_t signed_len = (size_t)(sig - 1 - text), sig_len = len - signed_len - 1;
    int rc = TB_AUTH_E_NOMEM;
    if (!HMAC(hmac_md(a->alg->alg), a->key, (int)a->key_len, (const unsigned char *)text,
              signed_len, mac, &mac_len))
        goto done;
    int n = tb_b64url_encode(mac, mac_len, want, sizeof(want));
    if (n < 0)
        goto done;
    size_t want_len = (size_t)n;
    rc = sig_len == want_len && CRYPTO_memcmp(want, sig, want_len) == 0 ? TB_AUTH_OK
                                                                        : TB_AUTH_E_SIGNATURE;
done:
    tb_wipe(mac, sizeof(mac));
    tb_wipe(want, sizeof(want));
    return rc;
}

/* Verifies the signature and hands back the claims libjwt verified, as a JSON object. */
static int decode_verified(const tb_auth_t *a, const char *text, json_t **claims)
{
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_t *obj = NULL;
    int rc = jwt_decode(&jwt, text, a->key, (int)a->key_len);
    if (rc != 0)
        return rc == ENOMEM ? TB_AUTH_E_NOMEM : TB_AUTH_E_SIGNATURE;
    if (jwt_get_alg(jwt) != a->alg->alg) {
        rc = TB_AUTH_E_ALG;
        goto done;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    /* Without JSON_ALLOW_NUL: no claim string holds a NUL, so C string functions see it all. */
    obj = grants ? json_loads(grants, 0, NULL) : NULL;
    if (!obj) {
        rc = TB_AUTH_E_NOMEM; /* libjwt's own object always serialises and parses back */
        goto done;
    }
    if (!json_is_object(obj)) {
        rc = TB_AUTH_E_MALFORMED; /* libjwt accepts any JSON value as the payload */
        goto done;
    }
    *claims = obj;
    obj = NULL;
done:
    json_decref(obj);
    free(grants);
    jwt_free(jwt);
    return rc;
}

/* A NumericDate; a fractional one rounds up or down, whichever is stricter for the caller. */
static bool numeric_date(const json_t *v, bool round_up, int64_t *out)
{
    double d;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_real(v))
        return false;
    d = json_real_value(v);
    if (!(d >= -TB_AUTH_DATE_LIMIT && d <= TB_AUTH_DATE_LIMIT))
        return false;
    *out = (int64_t)(round_up ? ceil(d) : floor(d));
    return true;
}

/* An optional NumericDate claim that must not lie in the future (nbf, iat), with leeway. */
static int check_not_future(const tb_auth_t *a, const json_t *v, int64_t now_s)
{
    int64_t t;
    if (!v)
        return TB_AUTH_OK;
    if (!numeric_date(v, true, &t))
        return TB_AUTH_E_CLAIMS;
    return t > now_s + a->leeway_s ? TB_AUTH_E_NOT_YET : TB_AUTH_OK;
}

static int check_times(const tb_auth_t *a, const json_t *claims, int64_t now_s, int64_t *exp)
{
    int rc;
    if (!numeric_date(json_object_get(claims, "exp"), false, exp))
        return TB_AUTH_E_NO_EXP;
    /* Written so that no claim value takes part in an addition that could overflow. */
    if (*exp <= now_s - a->leeway_s)
        return TB_AUTH_E_EXPIRED;
    rc = check_not_future(a, json_object_get(claims, "nbf"), now_s);
    /* A token issued in the future comes from a broken or forging issuer. */
    return rc ? rc : check_not_future(a, json_object_get(claims, "iat"), now_s);
}

static bool string_equals(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static bool audience_ok(const tb_auth_t *a, const json_t *aud)
{
    size_t i;
    json_t *v;
    if (json_is_array(aud)) {
        json_array_foreach(aud, i, v)
        {
            if (string_equals(v, a->audience))
                return true;
        }
        return false;
    }
    return string_equals(aud, a->audience);
}

/* An array whose members are all strings accepted by valid (NULL: any). */
static bool string_array(const json_t *arr, bool (*valid)(const char *))
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || (valid && !valid(json_string_value(v))))
            return false;
    }
    return true;
}

static bool shapes_ok(const json_t *claims)
{
    const json_t *sub = json_object_get(claims, "sub");
    const json_t *rooms = json_object_get(claims, "rooms");
    const json_t *scope = json_object_get(claims, "scope");
    return (!sub || json_is_string(sub)) &&
           (!rooms || string_array(rooms, tb_room_pattern_valid)) &&
           (!scope || json_is_string(scope) || string_array(scope, NULL));
}

static int check_claims(const tb_auth_t *a, const json_t *claims, int64_t now_s, int64_t *exp)
{
    int rc = check_times(a, claims, now_s, exp);
    if (rc != TB_AUTH_OK)
        return rc;
    if (a->issuer && !string_equals(json_object_get(claims, "iss"), a->issuer))
        return TB_AUTH_E_ISSUER;
    if (a->audience && !audience_ok(a, json_object_get(claims, "aud")))
        return TB_AUTH_E_AUDIENCE;
    return shapes_ok(claims) ? TB_AUTH_OK : TB_AUTH_E_CLAIMS;
}

/* Gathers the grant's strings: with strs NULL it only counts them, so the same code sizes the
 * array and fills it. */
typedef struct {
    tb_grant_str_t *strs;
    size_t n;
} grant_strs_t;

static void add_str(grant_strs_t *g, const char *s, size_t len)
{
    if (g->strs)
        g->strs[g->n] = (tb_grant_str_t){s, len};
    g->n++;
}

static void add_rooms(grant_strs_t *g, const tb_auth_t *a, const json_t *rooms)
{
    size_t i;
    json_t *v;
    if (!rooms) {
        for (i = 0; i < a->n_default_rooms; i++)
            add_str(g, a->default_rooms[i], strlen(a->default_rooms[i]));
        return;
    }
    json_array_foreach(rooms, i, v)
    {
        add_str(g, json_string_value(v), json_string_length(v));
    }
}

/* Scopes are non-empty: a string splits on spaces, empty array members are skipped. */
static void add_scopes(grant_strs_t *g, const json_t *scope)
{
    size_t i;
    json_t *v;
    const char *s;
    if (json_is_string(scope)) {
        s = json_string_value(scope);
        while (*s != '\0') {
            size_t len;
            s += strspn(s, " ");
            len = strcspn(s, " ");
            if (len > 0)
                add_str(g, s, len);
            s += len;
        }
        return;
    }
    json_array_foreach(scope, i, v)
    {
        if (json_string_length(v) > 0)
            add_str(g, json_string_value(v), json_string_length(v));
    }
}

/* Rooms, then scopes; *n_rooms tells where the scopes start. claims passed shapes_ok(). */
static void add_all(grant_strs_t *g, const tb_auth_t *a, const json_t *claims, size_t *n_rooms)
{
    add_rooms(g, a, json_object_get(claims, "rooms"));
    *n_rooms = g->n;
    add_scopes(g, json_object_get(claims, "scope"));
}

static int grant_build(const tb_auth_t *a, const json_t *claims, int64_t exp, tb_grant_t **out)
{
    const json_t *sub = json_object_get(claims, "sub");
    const char *s = sub ? json_string_value(sub) : "";
    grant_strs_t count = {0}, fill = {0};
    size_t n_rooms;
    tb_grant_t *g;
    add_all(&count, a, claims, &n_rooms);
    fill.strs = malloc((count.n ? count.n : 1) * sizeof(*fill.strs));
    if (!fill.strs)
        return TB_AUTH_E_NOMEM;
    add_all(&fill, a, claims, &n_rooms);
    g = tb_grant_new(s, strlen(s), exp, fill.strs, n_rooms, fill.n - n_rooms);
    free(fill.strs);
    if (!g)
        return TB_AUTH_E_NOMEM;
    *out = g;
    return TB_AUTH_OK;
}

int tb_auth_verify(const tb_auth_t *a, const char *token, size_t len, int64_t now_s,
                   tb_grant_t **out)
{
    char text[TB_AUTH_TOKEN_MAX + 1]; /* libjwt wants a NUL-terminated token */
    json_t *claims = NULL;
    int64_t exp = 0;
    int rc;
    if (!token || len == 0)
        return TB_AUTH_E_MISSING;
    if (len > TB_AUTH_TOKEN_MAX || !token_shape_ok(token, len))
        return TB_AUTH_E_MALFORMED;
    memcpy(text, token, len);
    text[len] = '\0';
    rc = check_header(a, text);
    if (rc == TB_AUTH_OK && a->alg->hmac)
        rc = check_hmac(a, text, len);
    if (rc == TB_AUTH_OK)
        rc = decode_verified(a, text, &claims);
    if (rc == TB_AUTH_OK)
        rc = check_claims(a, claims, now_s, &exp);
    if (rc == TB_AUTH_OK)
        rc = grant_build(a, claims, exp, out);
    json_decref(claims);
    return rc;
}

#define AUTH_CODE(name, reason, code) [TB_AUTH_R_##name] = code,
#define AUTH_REASON(name, reason, code) [TB_AUTH_R_##name] = reason,

const char *tb_auth_err_code(int err)
{
    static const char *const codes[TB_AUTH_R_END] = {[TB_AUTH_R_NONE] = "ok",
                                                     TB_AUTH_ERRORS(AUTH_CODE)};
    return err <= 0 && -err < TB_AUTH_R_END ? codes[-err] : "invalid_token";
}

const char *tb_auth_err_reason(int err)
{
    static const char *const reasons[TB_AUTH_R_END] = {[TB_AUTH_R_NONE] = "ok",
                                                       TB_AUTH_ERRORS(AUTH_REASON)};
    return err <= 0 && -err < TB_AUTH_R_END ? reasons[-err] : "unknown";
}
