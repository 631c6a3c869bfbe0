/* normalize — MQTT payloads to the bridge's payload objects; see include/telebridge/normalize.h. */
#include "telebridge/normalize.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "telebridge/util.h"

/* Longest status word and string timestamp kept, in bytes. */
#define STATUS_MAX_LEN 64
#define TIMESTAMP_MAX_LEN 64
/* A numeric timestamp above this is milliseconds, below seconds (1e11 s is year 5138). */
#define MS_THRESHOLD 1e11
#define MS_PER_S 1000
/* 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write. */
#define TS_MAX_MS 253402300799999LL

/* Members of a flat telemetry object that are never fields. */
static const char *const RESERVED_KEYS[] = {"timestamp", "device_id", "tags", "fields"};

static int fail(tb_invalid_reason_t reason)
{
    return TB_NORMALIZE_ERR(reason);
}

/* Size, then UTF-8: the checks that come before any parsing. */
static int precheck(const char *payload, size_t len, size_t max_len)
{
    if (len > max_len)
        return fail(TB_INVALID_TOO_LARGE);
    if (!tb_utf8_valid(payload, len))
        return fail(TB_INVALID_BAD_UTF8);
    return 0;
}

/*
 * Any JSON value, with the length explicit. Without JSON_ALLOW_NUL jansson refuses both a raw
 * NUL byte and a \u0000 escape, so a payload holding NUL (well-formed UTF-8) is "not JSON".
 * Duplicate keys are accepted, the last one winning (jansson's default).
 */
static json_t *parse_any(const char *payload, size_t len)
{
    json_error_t jerr;
    return json_loadb(len ? payload : "", len, JSON_DECODE_ANY, &jerr);
}

static bool is_reserved(const char *key)
{
    for (size_t i = 0; i < sizeof(RESERVED_KEYS) / sizeof(RESERVED_KEYS[0]); i++)
        if (strcmp(key, RESERVED_KEYS[i]) == 0)
            return true;
    return false;
}

/* Numbers are Unix seconds, or milliseconds above MS_THRESHOLD; 0 or -1 when out of range. */
static int number_to_ms(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > TS_MAX_MS)
            return -1;
        *ms = n > MS_THRESHOLD ? (int64_t)n : (int64_t)n * MS_PER_S;
    } else {
        double d = json_real_value(v);
        double m = d > MS_THRESHOLD ? d : d * MS_PER_S;
        if (!(m >= 0 && m <= (double)TS_MAX_MS))
            return -1;
        *ms = (int64_t)llround(m);
    }
    return *ms <= TS_MAX_MS ? 0 : -1;
}

/* The output timestamp for the payload's member v (NULL when absent). */
static int timestamp_of(const json_t *v, int64_t now_ms, json_t **out)
{
    char buf[TB_RFC3339_LEN];
    if (json_is_string(v)) {
        size_t len = json_string_length(v);
        if (len == 0 || len > TIMESTAMP_MAX_LEN)
            return fail(TB_INVALID_BAD_VALUE);
        *out = json_stringn(json_string_value(v), len);
    } else if (!v || json_is_null(v) || json_is_number(v)) {
        int64_t ms = now_ms;
        if (json_is_number(v) && number_to_ms(v, &ms) != 0)
            return fail(TB_INVALID_BAD_VALUE);
        tb_format_rfc3339_ms(ms, buf);
        *out = json_string(buf);
    } else {
        return fail(TB_INVALID_BAD_VALUE);
    }
    return *out ? 0 : fail(TB_INVALID_END);
}

/* Copies src's scalar members (number, string, boolean) into dst; their count, or -1. */
static int copy_scalars(json_t *src, bool skip_reserved, json_t *dst)
{
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach(src, key, v)
    {
        if (skip_reserved && is_reserved(key))
            continue;
        if (!json_is_number(v) && !json_is_string(v) && !json_is_boolean(v))
            continue;
        if (json_object_set(dst, key, v) != 0)
            return -1;
        n++;
    }
    return n;
}

/* The output "fields" object; on error *out is left NULL. */
static int fields_of(json_t *doc, json_t **out)
{
    json_t *src = json_object_get(doc, "fields");
    if (src && !json_is_object(src))
        return fail(TB_INVALID_BAD_VALUE);
    *out = json_object();
    if (!*out)
        return fail(TB_INVALID_END);
    int n = copy_scalars(src ? src : doc, src == NULL, *out);
    if (n > 0)
        return 0;
    json_decref(*out);
    *out = NULL;
    return n < 0 ? fail(TB_INVALID_END) : fail(TB_INVALID_BAD_VALUE);
}

/* String members of "tags" (others dropped), {} when absent; on error *out is left NULL. */
static int tags_of(json_t *doc, json_t **out)
{
    json_t *src = json_object_get(doc, "tags");
    if (src && !json_is_object(src))
        return fail(TB_INVALID_BAD_VALUE);
    *out = json_object();
    if (!*out)
        return fail(TB_INVALID_END);
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v)
    {
        if (json_is_string(v) && json_object_set(*out, key, v) != 0) {
            json_decref(*out);
            *out = NULL;
            return fail(TB_INVALID_END);
        }
    }
    return 0;
}

/*
 * {k1: v1, k2: v2, …} in that order (jansson keeps insertion order). Takes ownership of every
 * value, even on failure: json_object_set_new releases its value when it cannot store it.
 */
static json_t *assemble(const char *const keys[], json_t *const values[], size_t n)
{
    json_t *o = json_object();
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= json_object_set_new(o, keys[i], values[i]);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int telemetry_from(const char *device_id, json_t *doc, int64_t now_ms, json_t **out)
{
    json_t *fields = NULL, *tags = NULL, *ts = NULL;
    int rc = fields_of(doc, &fields);
    if (rc == 0)
        rc = tags_of(doc, &tags);
    if (rc == 0)
        rc = timestamp_of(json_object_get(doc, "timestamp"), now_ms, &ts);
    if (rc != 0) {
        json_decref(fields);
        json_decref(tags);
        return rc;
    }
    static const char *const keys[] = {"device_id", "timestamp", "fields", "tags"};
    json_t *const values[] = {json_string(device_id), ts, fields, tags};
    *out = assemble(keys, values, 4);
    return *out ? 0 : fail(TB_INVALID_END);
}

int tb_normalize_telemetry(const char *device_id, const char *payload, size_t len, size_t max_len,
                           int64_t now_ms, json_t **out)
{
    int rc = precheck(payload, len, max_len);
    if (rc != 0)
        return rc;
    json_t *doc = parse_any(payload, len);
    if (!doc)
        return fail(TB_INVALID_NOT_JSON);
    rc = json_is_object(doc) ? telemetry_from(device_id, doc, now_ms, out)
                             : fail(TB_INVALID_NOT_OBJECT);
    json_decref(doc);
    return rc;
}

/* 1..STATUS_MAX_LEN bytes without control characters (C0, DEL, or C1 as UTF-8 C2 80..9F). */
static bool status_text_ok(const char *s, size_t len)
{
    if (len == 0 || len > STATUS_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return false;
        if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] < 0xA0)
            return false;
    }
    return true;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A bare status word: [A-Za-z0-9_.-]{1,64} once surrounding whitespace is trimmed. */
static bool bare_word(const char *p, size_t len, const char **word, size_t *wlen)
{
    while (len > 0 && is_space(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && is_space(p[len - 1]))
        len--;
    if (len == 0 || len > STATUS_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!word_char(p[i]))
            return false;
    *word = p;
    *wlen = len;
    return true;
}

static int status_make(const char *device_id, const char *s, size_t slen, const json_t *ts_in,
                       int64_t now_ms, json_t **out)
{
    if (!status_text_ok(s, slen))
        return fail(TB_INVALID_BAD_VALUE);
    json_t *ts = NULL;
    int rc = timestamp_of(ts_in, now_ms, &ts);
    if (rc != 0)
        return rc;
    static const char *const keys[] = {"device_id", "status", "timestamp"};
    json_t *const values[] = {json_string(device_id), json_stringn(s, slen), ts};
    *out = assemble(keys, values, 3);
    return *out ? 0 : fail(TB_INVALID_END);
}

/* A parsed status payload: a JSON string, or an object with a string "status". */
static int status_from(const char *device_id, const json_t *doc, int64_t now_ms, json_t **out)
{
    if (json_is_string(doc))
        return status_make(device_id, json_string_value(doc), json_string_length(doc), NULL, now_ms,
                           out);
    if (!json_is_object(doc))
        return fail(TB_INVALID_NOT_OBJECT);
    const json_t *st = json_object_get(doc, "status");
    if (!json_is_string(st))
        return fail(TB_INVALID_BAD_VALUE);
    return status_make(device_id, json_string_value(st), json_string_length(st),
                       json_object_get(doc, "timestamp"), now_ms, out);
}

int tb_normalize_status(const char *device_id, const char *payload, size_t len, size_t max_len,
                        int64_t now_ms, json_t **out)
{
    int rc = precheck(payload, len, max_len);
    if (rc != 0)
        return rc;
    json_t *doc = parse_any(payload, len);
    if (!doc) {
        const char *word;
        size_t wlen;
        if (!bare_word(payload, len, &word, &wlen))
            return fail(TB_INVALID_NOT_JSON);
        return status_make(device_id, word, wlen, NULL, now_ms, out);
    }
    rc = status_from(device_id, doc, now_ms, out);
    json_decref(doc);
    return rc;
}
