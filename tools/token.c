/*
 * telebridge-token — mints an HS256/384/512 JWT the bridge accepts, for demos, scripts and tests.
 *
 * The secret is read by tb_keys_load_secret(), the bridge's own reader, so a secret file works
 * the same for both. Prints the token and a newline on stdout. Exit status: 0 done, 1 failure
 * (secret unreadable, signing failed), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <jwt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telebridge/keys.h"
#include "telebridge/room.h"

#define EXIT_USAGE 2
/* Longest --ttl / --nbf-in accepted: 100 years. */
#define MAX_DURATION_S (100LL * 365 * 86400)
#define DEFAULT_TTL_S 3600

typedef struct {
    const char *sub;
    json_t *rooms; /* {"rooms":[…]}; NULL: no claim, the bridge's default_rooms apply */
    const char *scope;
    const char *secret_file;
    const char *iss;
    const char *aud;
    jwt_alg_t alg;
    int64_t ttl_s;
    int64_t nbf_in_s; /* -1: no nbf */
    int64_t exp_unix; /* -1: now + ttl_s */
} opts_t;

static void usage(FILE *out)
{
    fputs(
        "usage: telebridge-token --sub SUB [--rooms LIST] [--ttl DURATION | --exp-unix N]\n"
        "                        [--scope SCOPES] [--alg HS256|HS384|HS512] [--iss ISSUER]\n"
        "                        [--aud AUDIENCE] [--nbf-in DURATION] [--secret-file FILE]\n"
        "\n"
        "  --sub SUB           the token's subject (required)\n"
        "  --rooms LIST        comma-separated room patterns, e.g. 'device:sensor-*,global';\n"
        "                      '' grants no room; omitted, the bridge's auth.default_rooms apply\n"
        "  --ttl DURATION      lifetime: 30s, 15m, 1h, 2d or plain seconds (default 1h)\n"
        "  --exp-unix N        absolute expiry in Unix seconds, instead of --ttl\n"
        "  --scope SCOPES      space-separated scopes: 'publish' (POST /api/v1/publish),\n"
        "                      'admin' (/stats, /rooms, /metrics on the public listener)\n"
        "  --alg ALG           HS256 (default), HS384 or HS512\n"
        "  --iss, --aud        issuer and audience claims\n"
        "  --nbf-in DURATION   not valid before now + DURATION\n"
        "  --secret-file FILE  HMAC secret (trailing newline ignored); default: the\n"
        "                      " TB_KEYS_SECRET_ENV " environment variable\n",
        out);
}

/* Seconds in one unit named by a duration's suffix; 0 for an unknown suffix. */
static int64_t unit_seconds(const char *suffix)
{
    static const struct {
        const char *suffix;
        int64_t seconds;
    } units[] = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(suffix, units[i].suffix) == 0)
            return units[i].seconds;
    return 0;
}

/* "30s", "15m", "1h", "2d" or plain seconds, 0..MAX_DURATION_S. */
static int parse_duration(const char *s, int64_t *out)
{
    char *end;
    long long v;
    int64_t unit;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    v = strtoll(s, &end, 10);
    unit = unit_seconds(end);
    if (unit == 0 || v > MAX_DURATION_S / unit)
        return -1;
    *out = v * unit;
    return 0;
}

static int parse_unix(const char *s, int64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

static int parse_alg(const char *s, jwt_alg_t *out)
{
    static const char *const names[] = {"HS256", "HS384", "HS512"};
    static const jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = algs[i];
            return 0;
        }
    }
    return -1;
}

/* {"rooms":[…]} from a comma-separated list of valid patterns ('' is the empty list); NULL
 * when an item is not a valid pattern. */
static json_t *rooms_claim(const char *list)
{
    json_t *arr = json_array();
    const char *p = list;
    bool more = *list != '\0';
    while (arr && more) {
        char room[TB_ROOM_MAX + 2];
        size_t len = strcspn(p, ",");
        int n = snprintf(room, sizeof(room), "%.*s", (int)len, p);
        if (n < 0 || (size_t)n >= sizeof(room) || !tb_room_pattern_valid(room) ||
            json_array_append_new(arr, json_string(room)) != 0) {
            json_decref(arr);
            return NULL;
        }
        more = p[len] == ',';
        p += len + 1;
    }
    return arr ? json_pack("{s:o}", "rooms", arr) : NULL;
}

/* Applies one option; -1 (message printed) when its value is bad. */
static int apply_opt(opts_t *o, int c, const char *name, const char *val)
{
    int rc = 0;
    switch (c) {
    case 's':
        o->sub = val;
        break;
    case 'r':
        json_decref(o->rooms);
        o->rooms = rooms_claim(val);
        rc = o->rooms ? 0 : -1;
        break;
    case 'S':
        o->scope = val;
        break;
    case 'f':
        o->secret_file = val;
        break;
    case 'i':
        o->iss = val;
        break;
    case 'a':
        o->aud = val;
        break;
    case 'A':
        rc = parse_alg(val, &o->alg);
        break;
    case 't':
        rc = parse_duration(val, &o->ttl_s) != 0 || o->ttl_s == 0 ? -1 : 0;
        break;
    case 'n':
        rc = parse_duration(val, &o->nbf_in_s);
        break;
    case 'e':
        rc = parse_unix(val, &o->exp_unix);
        break;
    default:
        return -1;
    }
    if (rc != 0)
        fprintf(stderr, "telebridge-token: bad value for --%s: '%s'\n", name, val);
    return rc;
}

/* 0: run; 1: --help shown; -1: usage error (reported). */
static int parse_args(int argc, char **argv, opts_t *o)
{
    static const struct option longopts[] = {
        {"sub", required_argument, NULL, 's'},    {"rooms", required_argument, NULL, 'r'},
        {"scope", required_argument, NULL, 'S'},  {"secret-file", required_argument, NULL, 'f'},
        {"iss", required_argument, NULL, 'i'},    {"aud", required_argument, NULL, 'a'},
        {"alg", required_argument, NULL, 'A'},    {"ttl", required_argument, NULL, 't'},
        {"nbf-in", required_argument, NULL, 'n'}, {"exp-unix", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    bool has_ttl = false;
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || apply_opt(o, c, longopts[idx].name, optarg) != 0)
            return -1;
        has_ttl = has_ttl || c == 't';
    }
    if (optind < argc) {
        fprintf(stderr, "telebridge-token: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->sub) {
        fprintf(stderr, "telebridge-token: --sub is required\n");
        return -1;
    }
    if (has_ttl && o->exp_unix >= 0) {
        fprintf(stderr, "telebridge-token: --ttl and --exp-unix exclude each other\n");
        return -1;
    }
    return 0;
}

/* Adds every claim but the signature; 0, or -1 with a message printed. */
static int add_claims(jwt_t *jwt, const opts_t *o, int64_t now)
{
    int64_t exp = o->exp_unix >= 0 ? o->exp_unix : now + o->ttl_s;
    char *rooms_text = NULL;
    int rc = -1;
    if (jwt_add_grant(jwt, "sub", o->sub) || jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)exp) ||
        (o->nbf_in_s >= 0 && jwt_add_grant_int(jwt, "nbf", (long)(now + o->nbf_in_s))) ||
        (o->scope && jwt_add_grant(jwt, "scope", o->scope)) ||
        (o->iss && jwt_add_grant(jwt, "iss", o->iss)) ||
        (o->aud && jwt_add_grant(jwt, "aud", o->aud)))
        goto done;
    if (o->rooms) {
        rooms_text = json_dumps(o->rooms, JSON_COMPACT);
        if (!rooms_text || jwt_add_grants_json(jwt, rooms_text) != 0)
            goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "telebridge-token: cannot build the claims\n");
    free(rooms_text);
    return rc;
}

/* The signed token, or NULL with a message printed. Caller frees. */
static char *make_token(const opts_t *o, const unsigned char *key, size_t key_len)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) != 0) {
        fprintf(stderr, "telebridge-token: out of memory\n");
        return NULL;
    }
    if (add_claims(jwt, o, (int64_t)time(NULL)) != 0)
        goto done;
    if (jwt_set_alg(jwt, o->alg, key, (int)key_len) != 0 || !(token = jwt_encode_str(jwt)))
        fprintf(stderr, "telebridge-token: signing failed\n");
done:
    jwt_free(jwt);
    return token;
}

int main(int argc, char **argv)
{
    opts_t o = {.alg = JWT_ALG_HS256, .ttl_s = DEFAULT_TTL_S, .nbf_in_s = -1, .exp_unix = -1};
    char err[TB_CONFIG_ERR_LEN];
    unsigned char *key = NULL;
    size_t key_len = 0;
    char *token = NULL;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        rc = rc > 0 ? EXIT_SUCCESS : EXIT_USAGE;
        goto done;
    }
    rc = EXIT_FAILURE;
    if (tb_keys_load_secret(o.secret_file, &key, &key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "telebridge-token: %s\n", err);
        goto done;
    }
    token = make_token(&o, key, key_len);
    if (token && printf("%s\n", token) > 0)
        rc = EXIT_SUCCESS;
done:
    tb_keys_free(key, key_len);
    free(token);
    json_decref(o.rooms);
    return rc;
}
