/* protocol — client message parsing and server envelopes; see include/telebridge/protocol.h. */
#include "telebridge/protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/room.h"
#include "telebridge/util.h"

/* The options' refusals quote the limits protocol.h defines. */
#define STR_(x) #x
#define STR(x) STR_(x)
#define HZ_MIN STR(TB_PROTOCOL_MAX_HZ_MIN)
#define HZ_MAX STR(TB_PROTOCOL_MAX_HZ_MAX)
#define FIELDS_N STR(TB_PROTOCOL_FIELDS_MAX)
#define FIELD_LEN STR(TB_PROTOCOL_FIELD_NAME_MAX)
static const char max_hz_range[] = "payload.max_hz must be a number from " HZ_MIN " to " HZ_MAX;
static const char fields_range[] = "payload.fields must be a non-empty array of at most " FIELDS_N
                                   " distinct field names (strings of 1 to " FIELD_LEN " bytes)";

static const struct {
    const char *name;
    tb_protocol_cmsg_type_t type;
} cmsg_types[] = {
    {"subscribe", TB_PROTOCOL_CMSG_SUBSCRIBE},
    {"unsubscribe", TB_PROTOCOL_CMSG_UNSUBSCRIBE},
    {"ping", TB_PROTOCOL_CMSG_PING},
    {"refresh", TB_PROTOCOL_CMSG_REFRESH},
};

static int fail(const char **err_code, const char **err_msg, const char *code, const char *msg)
{
    *err_code = code;
    *err_msg = msg;
    return -1;
}

/* request_id: a string of at most TB_REQUEST_ID_MAX bytes or an integer. */
static bool request_id_ok(const json_t *id)
{
    if (json_is_integer(id))
        return true;
    return json_is_string(id) && json_string_length(id) <= TB_REQUEST_ID_MAX;
}

static int parse_rooms(json_t *payload, tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *rooms = json_object_get(payload, "rooms");
    size_t i;
    json_t *r;
    if (!json_is_array(rooms))
        return fail(ec, em, TB_ERR_BAD_REQUEST, "payload.rooms must be an array of strings");
    json_array_foreach(rooms, i, r)
    {
        if (!json_is_string(r))
            return fail(ec, em, TB_ERR_BAD_REQUEST, "payload.rooms must be an array of strings");
    }
    out->rooms = rooms;
    return 0;
}

/* since.time: absent, or an RFC 3339 time (the envelope timestamp of the last message had). */
static int parse_since_time(const json_t *t, tb_protocol_cmsg_t *out, const char **ec,
                            const char **em)
{
    if (!t)
        return 0;
    if (!json_is_string(t) ||
        tb_parse_rfc3339_ms(json_string_value(t), json_string_length(t), &out->since_time_ms))
        return fail(ec, em, TB_ERR_BAD_REQUEST,
                    "payload.since.time must be an RFC 3339 time such as "
                    "\"2026-11-23T13:26:03.123Z\"");
    out->has_since_time = true;
    return 0;
}

static int parse_since(json_t *payload, tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *since = json_object_get(payload, "since");
    if (!since || json_is_null(since))
        return 0;
    json_t *epoch = json_object_get(since, "epoch");
    json_t *seq = json_object_get(since, "seq");
    if (!json_is_object(since) || !json_is_string(epoch) || !json_is_integer(seq) ||
        json_integer_value(seq) < 0)
        return fail(ec, em, TB_ERR_BAD_REQUEST,
                    "payload.since must be {\"epoch\": string, \"seq\": integer >= 0}");
    out->has_since = true;
    out->since_epoch = json_string_value(epoch);
    out->since_seq = (uint64_t)json_integer_value(seq);
    return parse_since_time(json_object_get(since, "time"), out, ec, em);
}

/* The keys a subscribe payload may hold. */
static const char *const subscribe_keys[] = {"rooms", "since", "max_hz", "fields", "series"};

/* Every key of a subscribe payload is one of subscribe_keys; else names the first other one. */
static int check_subscribe_keys(json_t *payload, tb_protocol_cmsg_t *out, const char **ec,
                                const char **em)
{
    const char *key;
    json_t *v;
    json_object_foreach(payload, key, v)
    {
        size_t i = 0;
        while (i < sizeof(subscribe_keys) / sizeof(subscribe_keys[0]) &&
               strcmp(key, subscribe_keys[i]) != 0)
            i++;
        if (i == sizeof(subscribe_keys) / sizeof(subscribe_keys[0])) {
            snprintf(out->err, sizeof(out->err),
                     "payload.%.48s is not a subscribe option (rooms, since, max_hz, fields, "
                     "series)",
                     key);
            return fail(ec, em, TB_ERR_BAD_REQUEST, out->err);
        }
    }
    return 0;
}

static int parse_max_hz(json_t *payload, tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *v = json_object_get(payload, "max_hz");
    if (!v)
        return 0;
    double hz = json_number_value(v);
    if (!json_is_number(v) || !(hz >= TB_PROTOCOL_MAX_HZ_MIN && hz <= TB_PROTOCOL_MAX_HZ_MAX))
        return fail(ec, em, TB_ERR_BAD_REQUEST, max_hz_range);
    out->max_hz = hz;
    return 0;
}

/* fields: a non-empty array of distinct, non-empty strings, within the limits. */
static bool fields_ok(const json_t *fields)
{
    size_t n = json_array_size(fields);
    if (!json_is_array(fields) || n == 0 || n > TB_PROTOCOL_FIELDS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *f = json_array_get(fields, i);
        size_t len = json_string_length(f);
        if (!json_is_string(f) || len == 0 || len > TB_PROTOCOL_FIELD_NAME_MAX)
            return false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_array_get(fields, k)), json_string_value(f)) == 0)
                return false;
    }
    return true;
}

static int parse_fields(json_t *payload, tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *v = json_object_get(payload, "fields");
    if (!v)
        return 0;
    if (!fields_ok(v))
        return fail(ec, em, TB_ERR_BAD_REQUEST, fields_range);
    out->fields = v;
    return 0;
}

static int parse_series(json_t *payload, tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *v = json_object_get(payload, "series");
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
        return fail(ec, em, TB_ERR_BAD_REQUEST,
                    "payload.series must be an integer from 1 to history.series_points");
    out->series = (uint32_t)json_integer_value(v);
    return 0;
}

static int parse_subscribe(json_t *payload, tb_protocol_cmsg_t *out, const char **ec,
                           const char **em)
{
    if (parse_rooms(payload, out, ec, em) || check_subscribe_keys(payload, out, ec, em) ||
        parse_since(payload, out, ec, em) || parse_max_hz(payload, out, ec, em) ||
        parse_fields(payload, out, ec, em) || parse_series(payload, out, ec, em))
        return -1;
    return 0;
}

static int parse_payload(tb_protocol_cmsg_t *out, const char **ec, const char **em)
{
    json_t *payload = json_object_get(out->root, "payload");
    if (payload && !json_is_object(payload) && !json_is_null(payload))
        return fail(ec, em, TB_ERR_BAD_REQUEST, "payload must be an object");
    switch (out->type) {
    case TB_PROTOCOL_CMSG_SUBSCRIBE:
        return parse_subscribe(payload, out, ec, em);
    case TB_PROTOCOL_CMSG_UNSUBSCRIBE:
        return parse_rooms(payload, out, ec, em);
    case TB_PROTOCOL_CMSG_REFRESH:
        out->token = json_string_value(json_object_get(payload, "token"));
        if (!out->token)
            return fail(ec, em, TB_ERR_BAD_REQUEST, "payload.token must be a string");
        return 0;
    case TB_PROTOCOL_CMSG_PING:
        return 0;
    }
    return 0;
}

int tb_protocol_cmsg_parse(const char *buf, size_t len, tb_protocol_cmsg_t *out,
                           const char **err_code, const char **err_msg)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    if (!tb_utf8_valid(buf, len))
        return fail(err_code, err_msg, TB_ERR_BAD_REQUEST, "message is not valid UTF-8");
    out->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->root)
        return fail(err_code, err_msg, TB_ERR_BAD_REQUEST, "message is not valid JSON");
    if (!json_is_object(out->root))
        return fail(err_code, err_msg, TB_ERR_BAD_REQUEST, "message must be a JSON object");
    json_t *id = json_object_get(out->root, "request_id");
    if (id && !request_id_ok(id))
        return fail(err_code, err_msg, TB_ERR_BAD_REQUEST,
                    "request_id must be an integer or a string of at most 128 bytes");
    out->request_id = id;
    const char *type = json_string_value(json_object_get(out->root, "type"));
    if (!type)
        return fail(err_code, err_msg, TB_ERR_BAD_REQUEST, "type must be a string");
    for (size_t i = 0; i < sizeof(cmsg_types) / sizeof(cmsg_types[0]); i++) {
        if (strcmp(type, cmsg_types[i].name) == 0) {
            out->type = cmsg_types[i].type;
            return parse_payload(out, err_code, err_msg);
        }
    }
    return fail(err_code, err_msg, TB_ERR_UNKNOWN_TYPE, "unknown message type");
}

void tb_protocol_cmsg_clear(tb_protocol_cmsg_t *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

tb_frame_t *tb_protocol_control(const char *type, json_t *payload, const json_t *request_id,
                                int64_t now_ms)
{
    char ts[TB_RFC3339_LEN];
    tb_format_rfc3339_ms(now_ms, ts);
    json_t *env = json_object();
    if (!env) {
        json_decref(payload);
        return NULL;
    }
    json_object_set_new(env, "type", json_string(type));
    json_object_set_new(env, "payload", payload ? payload : json_object());
    json_object_set_new(env, "timestamp", json_string(ts));
    if (request_id)
        json_object_set(env, "request_id", (json_t *)request_id);
    tb_frame_t *f = tb_frame_from_json(env, TB_FRAME_CONTROL, 0);
    json_decref(env);
    return f;
}

tb_frame_t *tb_protocol_error(const char *code, const char *message, json_t *rooms,
                              const json_t *request_id, int64_t now_ms)
{
    json_t *payload = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (payload && rooms)
        json_object_set_new(payload, "rooms", rooms);
    else
        json_decref(rooms);
    return tb_protocol_control("error", payload, request_id, now_ms);
}

tb_frame_t *tb_protocol_device(const char *type, const char *room, const json_t *payload,
                               uint64_t seq, int64_t now_ms, tb_frame_kind_t kind)
{
    char ts[TB_RFC3339_LEN];
    tb_format_rfc3339_ms(now_ms, ts);
    json_t *env = json_pack("{s:s, s:s, s:O, s:s, s:I}", "type", type, "room", room, "payload",
                            payload, "timestamp", ts, "seq", (json_int_t)seq);
    if (!env)
        return NULL;
    tb_frame_t *f = tb_frame_from_json(env, kind, seq);
    json_decref(env);
    return f;
}

/* True when s is printable ASCII without '"' or '\\': jansson writes it as it is. */
static bool json_plain(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* Decimal digits of the largest uint64_t. */
#define U64_DEC_MAX 20

/* Writes v in decimal at the end of buf[U64_DEC_MAX]; returns where the digits start. */
static char *u64_dec(uint64_t v, char buf[U64_DEC_MAX])
{
    char *p = buf + U64_DEC_MAX;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/* Appends len bytes of src at *p and advances it. */
static void put(char **p, const char *src, size_t len)
{
    memcpy(*p, src, len);
    *p += len;
}

tb_frame_t *tb_protocol_device_spliced(const char *type, const char *room, const char *payload_json,
                                       size_t payload_len, uint64_t seq, int64_t now_ms,
                                       tb_frame_kind_t kind)
{
    /* The member order and spelling of tb_protocol_device()'s json_pack, compact. */
    static const char k_type[] = "{\"type\":\"", k_room[] = "\",\"room\":\"",
                      k_payload[] = "\",\"payload\":", k_ts[] = ",\"timestamp\":\"",
                      k_seq[] = "\",\"seq\":";
    /* The constant pieces without their NULs, and the closing brace. */
    const size_t fixed =
        sizeof(k_type) + sizeof(k_room) + sizeof(k_payload) + sizeof(k_ts) + sizeof(k_seq) - 5 + 1;
    char ts[TB_RFC3339_LEN], digits[U64_DEC_MAX];
    size_t type_len = strlen(type), room_len = strlen(room);
    if (!json_plain(type, type_len) || !json_plain(room, room_len))
        return NULL;
    tb_format_rfc3339_ms(now_ms, ts);
    size_t ts_len = strlen(ts);
    const char *num = u64_dec(seq, digits);
    size_t num_len = (size_t)(digits + U64_DEC_MAX - num);
    size_t len = fixed + type_len + room_len + payload_len + ts_len + num_len;
    tb_frame_t *f = tb_frame_alloc(len, kind, seq);
    if (!f)
        return NULL;
    char *p = tb_frame_payload(f);
    put(&p, k_type, sizeof(k_type) - 1);
    put(&p, type, type_len);
    put(&p, k_room, sizeof(k_room) - 1);
    put(&p, room, room_len);
    put(&p, k_payload, sizeof(k_payload) - 1);
    put(&p, payload_json, payload_len);
    put(&p, k_ts, sizeof(k_ts) - 1);
    put(&p, ts, ts_len);
    put(&p, k_seq, sizeof(k_seq) - 1);
    put(&p, num, num_len);
    *p = '}';
    return f;
}

/* The member tb_protocol_snapshot() puts in place of a device envelope's closing brace. */
static const char snapshot_mark[] = ",\"snapshot\":true}";

tb_frame_t *tb_protocol_snapshot(const tb_frame_t *f)
{
    /* f holds one compact JSON object: the member goes in place of its closing brace. */
    size_t keep = f->len - 1, len = keep + sizeof(snapshot_mark) - 1;
    char *buf = malloc(len);
    if (!buf)
        return NULL;
    memcpy(buf, f->data + TB_FRAME_HEADROOM, keep);
    memcpy(buf + keep, snapshot_mark, sizeof(snapshot_mark) - 1);
    tb_frame_t *s = tb_frame_new(buf, len, (tb_frame_kind_t)f->kind, f->seq);
    free(buf);
    return s;
}

bool tb_protocol_is_snapshot(const tb_frame_t *f)
{
    size_t n = sizeof(snapshot_mark) - 1;
    return f->seq && f->len >= n &&
           memcmp(f->data + TB_FRAME_HEADROOM + f->len - n, snapshot_mark, n) == 0;
}

size_t tb_protocol_device_room(const tb_frame_t *f, char *out)
{
    /* tb_protocol_device()'s members in order, compact; type and room need no escaping. */
    static const char k_type[] = "{\"type\":\"", k_room[] = "\",\"room\":\"";
    const char *p = (const char *)f->data + TB_FRAME_HEADROOM, *end = p + f->len;
    if (!f->seq || f->len < sizeof(k_type) - 1 || memcmp(p, k_type, sizeof(k_type) - 1) != 0)
        return 0;
    p += sizeof(k_type) - 1;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || (size_t)(end - q) < sizeof(k_room) - 1 || memcmp(q, k_room, sizeof(k_room) - 1))
        return 0;
    p = q + sizeof(k_room) - 1;
    q = memchr(p, '"', (size_t)(end - p));
    if (!q || q == p || (size_t)(q - p) > TB_ROOM_MAX)
        return 0;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return (size_t)(q - p);
}
