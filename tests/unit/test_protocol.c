/* Tests for client message parsing and server envelopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/protocol.h"
#include "telebridge/room.h"

typedef struct {
    const char *text;
    const char *code; /* NULL: must parse */
} parse_case_t;

static const parse_case_t cases[] = {
    {"{\"type\":\"ping\"}", NULL},
    {"{\"type\":\"ping\",\"request_id\":\"abc\"}", NULL},
    {"{\"type\":\"ping\",\"request_id\":12}", NULL},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[]}}", NULL},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"since\":{\"epoch\":\"e\","
     "\"seq\":5}}}",
     NULL},
    {"{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"global\"]}}", NULL},
    {"{\"type\":\"refresh\",\"payload\":{\"token\":\"x.y.z\"}}", NULL},
    {"", TB_ERR_BAD_REQUEST},
    {"nope", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"ping\"", TB_ERR_BAD_REQUEST},
    {"[]", TB_ERR_BAD_REQUEST},
    {"\"ping\"", TB_ERR_BAD_REQUEST},
    {"{}", TB_ERR_BAD_REQUEST},
    {"{\"type\":7}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"ping\",\"type\":\"ping\"}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"ping\",\"request_id\":{}}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"ping\",\"request_id\":1.5}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"jump\"}", TB_ERR_UNKNOWN_TYPE},
    {"{\"type\":\"subscribe\"}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":[]}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":\"global\"}}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[1]}}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"seq\":1}}}",
     TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"epoch\":\"e\",\"seq\":-1}}}",
     TB_ERR_BAD_REQUEST},
    {"{\"type\":\"refresh\",\"payload\":{}}", TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"epoch\":\"e\",\"seq\":1,"
     "\"time\":\"2026-11-23T13:26:03.123Z\"}}}",
     NULL},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"epoch\":\"e\",\"seq\":1,"
     "\"time\":1700000000}}}",
     TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"epoch\":\"e\",\"seq\":1,"
     "\"time\":\"2026-02-30T00:00:00Z\"}}}",
     TB_ERR_BAD_REQUEST},
    {"{\"type\":\"subscribe\",\"payload\":{\"rooms\":[],\"since\":{\"epoch\":\"e\",\"seq\":1,"
     "\"time\":null}}}",
     TB_ERR_BAD_REQUEST},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_protocol_cmsg_t m;
        const char *code = NULL, *msg = NULL;
        int rc = tb_protocol_cmsg_parse(cases[i].text, strlen(cases[i].text), &m, &code, &msg);
        if (cases[i].code) {
            if (rc != -1 || strcmp(code, cases[i].code) != 0)
                fail_msg("case %zu (%s): want %s, got rc=%d code=%s", i, cases[i].text,
                         cases[i].code, rc, code ? code : "-");
            assert_non_null(msg);
        } else if (rc != 0) {
            fail_msg("case %zu (%s): want success, got %s", i, cases[i].text, code);
        }
        tb_protocol_cmsg_clear(&m);
    }
}

static void test_parse_fields(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"subscribe\",\"request_id\":\"r9\",\"payload\":{\"rooms\":"
                    "[\"device:a\",\"global\"],\"since\":{\"epoch\":\"abc\",\"seq\":77}}}";
    tb_protocol_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_protocol_cmsg_parse(t, strlen(t), &m, &code, &msg), 0);
    assert_int_equal(m.type, TB_PROTOCOL_CMSG_SUBSCRIBE);
    assert_string_equal(json_string_value(m.request_id), "r9");
    assert_int_equal(json_array_size(m.rooms), 2);
    assert_true(m.has_since);
    assert_string_equal(m.since_epoch, "abc");
    assert_int_equal(m.since_seq, 77);
    assert_false(m.has_since_time);
    tb_protocol_cmsg_clear(&m);
}

/* since.time: parsed to milliseconds; a bad one is a bad_request naming payload.since.time. */
static void test_parse_since_time(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"since\":"
                    "{\"epoch\":\"abc\",\"seq\":7,\"time\":\"2023-11-14T22:13:20.123Z\"}}}";
    const char *bad = "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"since\":"
                      "{\"epoch\":\"abc\",\"seq\":7,\"time\":\"yesterday\"}}}";
    tb_protocol_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_protocol_cmsg_parse(t, strlen(t), &m, &code, &msg), 0);
    assert_true(m.has_since && m.has_since_time);
    assert_true(m.since_time_ms == 1700000000123);
    tb_protocol_cmsg_clear(&m);
    assert_int_equal(tb_protocol_cmsg_parse(bad, strlen(bad), &m, &code, &msg), -1);
    assert_string_equal(code, TB_ERR_BAD_REQUEST);
    assert_non_null(strstr(msg, "payload.since.time"));
    tb_protocol_cmsg_clear(&m);
}

/* Subscribe options (docs/protocol.md → Subscribe options): NULL `names` must parse. */
static const struct {
    const char *options; /* members after "rooms":["global"] */
    const char *names;   /* what the bad_request message must name, or NULL */
} option_cases[] = {
    {"\"max_hz\":0.1", NULL},
    {"\"max_hz\":100", NULL},
    {"\"max_hz\":2.5,\"fields\":[\"t\",\"h\"],\"series\":1", NULL},
    {"\"series\":4000000000", NULL}, /* the hub checks history.series_points */
    {"\"max_hz\":0.09", "payload.max_hz"},
    {"\"max_hz\":100.5", "payload.max_hz"},
    {"\"max_hz\":0", "payload.max_hz"},
    {"\"max_hz\":\"1\"", "payload.max_hz"},
    {"\"max_hz\":null", "payload.max_hz"},
    {"\"fields\":[]", "payload.fields"},
    {"\"fields\":\"t\"", "payload.fields"},
    {"\"fields\":[\"t\",\"t\"]", "payload.fields"},
    {"\"fields\":[\"\"]", "payload.fields"},
    {"\"fields\":[1]", "payload.fields"},
    {"\"series\":0", "payload.series"},
    {"\"series\":1.5", "payload.series"},
    {"\"series\":-3", "payload.series"},
    {"\"series\":5000000000", "payload.series"},
    {"\"maxhz\":1", "payload.maxhz"},
    {"\"max_hz\":1,\"extra\":{}", "payload.extra"},
};

static void test_subscribe_options(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(option_cases) / sizeof(option_cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],%s}}",
                 option_cases[i].options);
        tb_protocol_cmsg_t m;
        const char *code = NULL, *msg = NULL;
        int rc = tb_protocol_cmsg_parse(text, strlen(text), &m, &code, &msg);
        if (option_cases[i].names) {
            if (rc != -1 || strcmp(code, TB_ERR_BAD_REQUEST) != 0 ||
                strncmp(msg, option_cases[i].names, strlen(option_cases[i].names)) != 0)
                fail_msg("case %zu (%s): want bad_request naming %s, got rc=%d %s", i, text,
                         option_cases[i].names, rc, msg ? msg : "-");
        } else if (rc != 0) {
            fail_msg("case %zu (%s): want success, got %s", i, text, msg);
        }
        tb_protocol_cmsg_clear(&m);
    }
}

static void test_subscribe_option_values(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],"
                    "\"max_hz\":2.5,\"fields\":[\"t\",\"h\"],\"series\":30}}";
    tb_protocol_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_protocol_cmsg_parse(t, strlen(t), &m, &code, &msg), 0);
    assert_true(m.max_hz == 2.5);
    assert_int_equal(json_array_size(m.fields), 2);
    assert_int_equal(m.series, 30);
    tb_protocol_cmsg_clear(&m);
    const char *plain = "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[]}}";
    assert_int_equal(tb_protocol_cmsg_parse(plain, strlen(plain), &m, &code, &msg), 0);
    assert_true(m.max_hz == 0 && m.fields == NULL && m.series == 0);
    tb_protocol_cmsg_clear(&m);
}

static void test_invalid_utf8_and_embedded_nul(void **state)
{
    (void)state;
    tb_protocol_cmsg_t m;
    const char *code, *msg;
    const char bad[] = "{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}";
    assert_int_equal(tb_protocol_cmsg_parse(bad, sizeof(bad) - 1, &m, &code, &msg), -1);
    assert_string_equal(code, TB_ERR_BAD_REQUEST);
    tb_protocol_cmsg_clear(&m);
    const char nul[] = "{\"type\":\"ping\"}\0junk";
    assert_int_equal(tb_protocol_cmsg_parse(nul, sizeof(nul) - 1, &m, &code, &msg), -1);
    tb_protocol_cmsg_clear(&m);
}

static void test_request_id_survives_error(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"zap\",\"request_id\":\"keep-me\"}";
    tb_protocol_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_protocol_cmsg_parse(t, strlen(t), &m, &code, &msg), -1);
    assert_string_equal(code, TB_ERR_UNKNOWN_TYPE);
    assert_string_equal(json_string_value(m.request_id), "keep-me");
    tb_protocol_cmsg_clear(&m);
}

static void test_device_envelope(void **state)
{
    (void)state;
    json_t *payload = json_pack("{s:s}", "device_id", "d1");
    tb_frame_t *f =
        tb_protocol_device("telemetry", "device:d1", payload, 9, 1700000000123, TB_FRAME_TELEMETRY);
    assert_non_null(f);
    assert_string_equal(tb_frame_payload(f),
                        "{\"type\":\"telemetry\",\"room\":\"device:d1\",\"payload\":{\"device_id\":"
                        "\"d1\"},\"timestamp\":\"2023-11-14T22:13:20.123Z\",\"seq\":9}");
    assert_int_equal(f->seq, 9);
    assert_int_equal(f->refs, 1);
    assert_null(strstr(tb_frame_payload(f), "snapshot"));
    tb_frame_unref(f);
    json_decref(payload);
}

/*
 * The spliced envelope of payload (JSON text, member order kept) is byte for byte the jansson
 * one, header included, and so is its snapshot copy.
 */
static void assert_splice_matches(const char *type, const char *room, const char *payload_text,
                                  uint64_t seq, int64_t now_ms)
{
    json_error_t jerr;
    json_t *payload = json_loads(payload_text, 0, &jerr);
    if (!payload)
        fail_msg("bad test payload %s: %s", payload_text, jerr.text);
    char *enc = NULL;
    size_t enc_len = 0;
    assert_int_equal(tb_frame_json_encode(payload, SIZE_MAX, &enc, &enc_len), 0);
    assert_int_equal(strlen(enc), enc_len);
    tb_frame_t *want = tb_protocol_device(type, room, payload, seq, now_ms, TB_FRAME_STATUS);
    tb_frame_t *got =
        tb_protocol_device_spliced(type, room, enc, enc_len, seq, now_ms, TB_FRAME_STATUS);
    assert_non_null(want);
    assert_non_null(got);
    size_t want_len, got_len;
    const unsigned char *want_wire = tb_frame_wire(want, &want_len);
    const unsigned char *got_wire = tb_frame_wire(got, &got_len);
    if (got_len != want_len || memcmp(got_wire, want_wire, want_len) != 0)
        fail_msg("spliced\n%s\n!= jansson\n%s", tb_frame_payload(got), tb_frame_payload(want));
    assert_int_equal(tb_frame_payload(got)[got->len], '\0');
    assert_int_equal(got->seq, seq);
    assert_int_equal(got->kind, TB_FRAME_STATUS);
    assert_int_equal(got->refs, 1);
    tb_frame_t *want_snap = tb_protocol_snapshot(want), *got_snap = tb_protocol_snapshot(got);
    assert_int_equal(got_snap->len, want_snap->len);
    assert_memory_equal(tb_frame_payload(got_snap), tb_frame_payload(want_snap), want_snap->len);
    tb_frame_unref(want_snap);
    tb_frame_unref(got_snap);
    tb_frame_unref(want);
    tb_frame_unref(got);
    free(enc);
    json_decref(payload);
}

static void test_spliced_envelope_equals_jansson(void **state)
{
    (void)state;
    assert_splice_matches("telemetry", "device:d1",
                          "{\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00.000Z\","
                          "\"fields\":{\"t\":21.5,\"on\":true},\"tags\":{\"site\":\"a\"}}",
                          9, 1700000000123);
    /* Unicode kept as UTF-8, escapes, control characters, quotes and slashes. */
    assert_splice_matches(
        "telemetry", "device:Dev_1.a-b",
        "{\"device_id\":\"Dev_1.a-b\",\"timestamp\":\"t\\\"\\\\/x\","
        "\"fields\":{\"caf\\u00e9\":\"\\u4e2d\\ud83d\\ude00\","
        "\"ctl\":\"a\\n\\t\\u0001\\u007f\"},\"tags\":{\"\\u00fcber\":\"\\u2028\"}}",
        1, 0);
    /* Integers at the edges of double precision, reals in every form jansson writes. */
    assert_splice_matches("telemetry", "device:n",
                          "{\"fields\":{\"i\":9007199254740993,\"neg\":-1,\"z\":0,\"r\":21.33,"
                          "\"small\":1e-7,\"big\":1e300,\"nz\":-0.0,\"g\":1e9,\"p\":0.1}}",
                          UINT64_C(9223372036854775807), -1);
    assert_splice_matches("device_status", "device:d2",
                          "{\"device_id\":\"d2\",\"status\":\"online\",\"timestamp\":\"x\"}", 10,
                          INT64_C(253402300800000) * 2);
    assert_splice_matches("telemetry", "device:e", "{}", 123456789, 1);
}

/* Encodings past the stack buffer, and frames past the 16-bit WebSocket length. */
static void test_spliced_envelope_large(void **state)
{
    (void)state;
    static const size_t sizes[] = {4000, 5000, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *text = malloc(sizes[i] + 32);
        assert_non_null(text);
        int n = snprintf(text, 32, "{\"fields\":{\"s\":\"");
        memset(text + n, 'x', sizes[i]);
        strcpy(text + n + sizes[i], "\"}}");
        assert_splice_matches("telemetry", "device:big", text, 77, 1700000000123);
        free(text);
    }
}

static void test_spliced_envelope_refusals(void **state)
{
    (void)state;
    static const char p[] = "{\"a\":1}";
    static const char *const rooms[] = {"device:\"x", "device:\\x", "device:\nx",
                                        "device:\xc3\xa9"};
    for (size_t i = 0; i < sizeof(rooms) / sizeof(rooms[0]); i++)
        assert_null(tb_protocol_device_spliced("telemetry", rooms[i], p, strlen(p), 1, 0,
                                               TB_FRAME_TELEMETRY));
    assert_null(tb_protocol_device_spliced("tele\"metry", "device:x", p, strlen(p), 1, 0,
                                           TB_FRAME_TELEMETRY));
    /* The one-pass and the two-pass encodings both hold to their bound, to the byte. */
    json_t *small = json_pack("{s:i}", "a", 1);
    char big_s[6000];
    memset(big_s, 'y', sizeof(big_s) - 1);
    big_s[sizeof(big_s) - 1] = '\0';
    json_t *big = json_pack("{s:s}", "k", big_s);
    const json_t *objs[] = {small, big};
    const size_t lens[] = {strlen(p), sizeof(big_s) - 1 + 8};
    for (size_t i = 0; i < 2; i++) {
        char *out = (char *)"untouched";
        size_t len = 3;
        assert_int_equal(tb_frame_json_encode(objs[i], lens[i] - 1, &out, &len), -E2BIG);
        assert_string_equal(out, "untouched");
        assert_int_equal(len, 3);
        assert_int_equal(tb_frame_json_encode(objs[i], lens[i], &out, &len), 0);
        assert_int_equal(len, lens[i]);
        assert_int_equal(strlen(out), len);
        free(out);
    }
    json_decref(small);
    json_decref(big);
}

static void test_reals_keep_their_decimal_form(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:f, s:f, s:f}", "a", 21.33, "b", 0.1, "c", 1e-7);
    tb_frame_t *f = tb_frame_from_json(o, TB_FRAME_CONTROL, 0);
    assert_string_equal(tb_frame_payload(f), "{\"a\":21.33,\"b\":0.1,\"c\":1e-7}");
    tb_frame_unref(f);
    json_decref(o);
}

static void test_control_and_error(void **state)
{
    (void)state;
    json_t *rid = json_integer(5);
    tb_frame_t *f = tb_protocol_control("pong", NULL, rid, 0);
    assert_string_equal(tb_frame_payload(f), "{\"type\":\"pong\",\"payload\":{},\"timestamp\":"
                                             "\"1970-01-01T00:00:00.000Z\",\"request_id\":5}");
    tb_frame_unref(f);
    f = tb_protocol_error("forbidden", "no", json_pack("[s]", "global"), NULL, 0);
    assert_string_equal(tb_frame_payload(f),
                        "{\"type\":\"error\",\"payload\":{\"code\":\"forbidden\",\"message\":"
                        "\"no\",\"rooms\":[\"global\"]},\"timestamp\":"
                        "\"1970-01-01T00:00:00.000Z\"}");
    tb_frame_unref(f);
    json_decref(rid);
}

static void test_large_frame_two_pass(void **state)
{
    (void)state;
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_t *o = json_pack("{s:s}", "k", big);
    tb_frame_t *f = tb_frame_from_json(o, TB_FRAME_CONTROL, 0);
    assert_non_null(f);
    assert_int_equal(f->len, strlen(big) + 8);
    assert_int_equal(tb_frame_payload(f)[f->len], '\0');
    assert_int_equal(strncmp(tb_frame_payload(f), "{\"k\":\"xxx", 9), 0);
    tb_frame_unref(f);
    json_decref(o);
}

/* The prebuilt header is RFC 6455's unmasked text-frame header for each length class. */
static void test_frame_wire_header(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        unsigned char hdr[10];
        size_t hdr_len;
    } hdrs[] = {
        {0, {0x81, 0}, 2},
        {125, {0x81, 125}, 2},
        {126, {0x81, 126, 0, 126}, 4},
        {65535, {0x81, 126, 0xff, 0xff}, 4},
        {65536, {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}, 10},
    };
    static char payload[65536];
    memset(payload, 'p', sizeof(payload));
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        tb_frame_t *f = tb_frame_new(payload, hdrs[i].len, TB_FRAME_CONTROL, 0);
        size_t wlen;
        const unsigned char *wire = tb_frame_wire(f, &wlen);
        assert_int_equal(wlen, hdrs[i].hdr_len + hdrs[i].len);
        assert_memory_equal(wire, hdrs[i].hdr, hdrs[i].hdr_len);
        assert_ptr_equal(wire + hdrs[i].hdr_len, tb_frame_payload(f));
        tb_frame_unref(f);
    }
}

/* A snapshot copy is the device envelope plus "snapshot": true, same seq, kind, timestamp. */
static void test_snapshot_copy(void **state)
{
    (void)state;
    json_t *payload = json_pack("{s:s, s:{s:f}}", "device_id", "d1", "fields", "t", 21.5);
    tb_frame_t *f = tb_protocol_device("telemetry", "device:d1", payload, 42, 1700000000000,
                                       TB_FRAME_TELEMETRY);
    tb_frame_t *s = tb_protocol_snapshot(f);
    assert_non_null(s);
    assert_int_equal(s->seq, 42);
    assert_int_equal(s->kind, TB_FRAME_TELEMETRY);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->len, f->len + strlen(",\"snapshot\":true"));
    size_t wire_len;
    tb_frame_wire(s, &wire_len);
    assert_int_equal(wire_len, s->hdr_len + s->len);
    json_t *a = json_loadb(tb_frame_payload(f), f->len, 0, NULL);
    json_t *b = json_loadb(tb_frame_payload(s), s->len, 0, NULL);
    assert_non_null(b);
    assert_true(json_is_true(json_object_get(b, "snapshot")));
    json_object_del(b, "snapshot");
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    json_decref(payload);
    tb_frame_unref(f);
    tb_frame_unref(s);
}

/* The room of a device envelope (built either way, or its snapshot copy) is read back from the
 * frame; a control frame has none. Only the snapshot copy is a snapshot. */
static void test_device_room_and_snapshot_mark(void **state)
{
    (void)state;
    char room[TB_ROOM_MAX + 1];
    json_t *payload = json_pack("{s:s, s:{s:f}}", "device_id", "d-1.x", "fields", "t", 21.5);
    char *enc = json_dumps(payload, TB_FRAME_JSON_FLAGS);
    tb_frame_t *packed =
        tb_protocol_device("notice", "group:ops", payload, 7, 1700000000000, TB_FRAME_STATUS);
    tb_frame_t *spliced = tb_protocol_device_spliced("telemetry", "device:d-1.x", enc, strlen(enc),
                                                     8, 1700000000000, TB_FRAME_TELEMETRY);
    tb_frame_t *snap = tb_protocol_snapshot(spliced);
    tb_frame_t *ctl = tb_protocol_control("pong", NULL, NULL, 1700000000000);
    assert_int_equal(tb_protocol_device_room(packed, room), strlen("group:ops"));
    assert_string_equal(room, "group:ops");
    assert_int_equal(tb_protocol_device_room(spliced, room), strlen("device:d-1.x"));
    assert_string_equal(room, "device:d-1.x");
    assert_int_equal(tb_protocol_device_room(snap, room), strlen("device:d-1.x"));
    assert_string_equal(room, "device:d-1.x");
    assert_int_equal(tb_protocol_device_room(ctl, room), 0);
    assert_false(tb_protocol_is_snapshot(packed));
    assert_false(tb_protocol_is_snapshot(spliced));
    assert_true(tb_protocol_is_snapshot(snap));
    assert_false(tb_protocol_is_snapshot(ctl));
    tb_frame_unref(packed);
    tb_frame_unref(spliced);
    tb_frame_unref(snap);
    tb_frame_unref(ctl);
    free(enc);
    json_decref(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_copy),
        cmocka_unit_test(test_device_room_and_snapshot_mark),
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_since_time),
        cmocka_unit_test(test_subscribe_options),
        cmocka_unit_test(test_subscribe_option_values),
        cmocka_unit_test(test_invalid_utf8_and_embedded_nul),
        cmocka_unit_test(test_request_id_survives_error),
        cmocka_unit_test(test_device_envelope),
        cmocka_unit_test(test_control_and_error),
        cmocka_unit_test(test_large_frame_two_pass),
        cmocka_unit_test(test_frame_wire_header),
        cmocka_unit_test(test_reals_keep_their_decimal_form),
        cmocka_unit_test(test_spliced_envelope_equals_jansson),
        cmocka_unit_test(test_spliced_envelope_large),
        cmocka_unit_test(test_spliced_envelope_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
