/* Tests for client message parsing and server envelopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "telebridge/protocol.h"

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
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_cmsg_t m;
        const char *code = NULL, *msg = NULL;
        int rc = tb_cmsg_parse(cases[i].text, strlen(cases[i].text), &m, &code, &msg);
        if (cases[i].code) {
            if (rc != -1 || strcmp(code, cases[i].code) != 0)
                fail_msg("case %zu (%s): want %s, got rc=%d code=%s", i, cases[i].text,
                         cases[i].code, rc, code ? code : "-");
            assert_non_null(msg);
        } else if (rc != 0) {
            fail_msg("case %zu (%s): want success, got %s", i, cases[i].text, code);
        }
        tb_cmsg_clear(&m);
    }
}

static void test_parse_fields(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"subscribe\",\"request_id\":\"r9\",\"payload\":{\"rooms\":"
                    "[\"device:a\",\"global\"],\"since\":{\"epoch\":\"abc\",\"seq\":77}}}";
    tb_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_cmsg_parse(t, strlen(t), &m, &code, &msg), 0);
    assert_int_equal(m.type, TB_CMSG_SUBSCRIBE);
    assert_string_equal(json_string_value(m.request_id), "r9");
    assert_int_equal(json_array_size(m.rooms), 2);
    assert_true(m.has_since);
    assert_string_equal(m.since_epoch, "abc");
    assert_int_equal(m.since_seq, 77);
    tb_cmsg_clear(&m);
}

static void test_invalid_utf8_and_embedded_nul(void **state)
{
    (void)state;
    tb_cmsg_t m;
    const char *code, *msg;
    const char bad[] = "{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}";
    assert_int_equal(tb_cmsg_parse(bad, sizeof(bad) - 1, &m, &code, &msg), -1);
    assert_string_equal(code, TB_ERR_BAD_REQUEST);
    tb_cmsg_clear(&m);
    const char nul[] = "{\"type\":\"ping\"}\0junk";
    assert_int_equal(tb_cmsg_parse(nul, sizeof(nul) - 1, &m, &code, &msg), -1);
    tb_cmsg_clear(&m);
}

static void test_request_id_survives_error(void **state)
{
    (void)state;
    const char *t = "{\"type\":\"zap\",\"request_id\":\"keep-me\"}";
    tb_cmsg_t m;
    const char *code, *msg;
    assert_int_equal(tb_cmsg_parse(t, strlen(t), &m, &code, &msg), -1);
    assert_string_equal(code, TB_ERR_UNKNOWN_TYPE);
    assert_string_equal(json_string_value(m.request_id), "keep-me");
    tb_cmsg_clear(&m);
}

static void test_device_envelope(void **state)
{
    (void)state;
    json_t *payload = json_pack("{s:s}", "device_id", "d1");
    tb_frame_t *f =
        tb_proto_device("telemetry", "device:d1", payload, 9, 1700000000123, TB_FRAME_TELEMETRY);
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
    tb_frame_t *f = tb_proto_control("pong", NULL, rid, 0);
    assert_string_equal(tb_frame_payload(f), "{\"type\":\"pong\",\"payload\":{},\"timestamp\":"
                                             "\"1970-01-01T00:00:00.000Z\",\"request_id\":5}");
    tb_frame_unref(f);
    f = tb_proto_error("forbidden", "no", json_pack("[s]", "global"), NULL, 0);
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
    tb_frame_t *f =
        tb_proto_device("telemetry", "device:d1", payload, 42, 1700000000000, TB_FRAME_TELEMETRY);
    tb_frame_t *s = tb_proto_snapshot(f);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_copy),
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_invalid_utf8_and_embedded_nul),
        cmocka_unit_test(test_request_id_survives_error),
        cmocka_unit_test(test_device_envelope),
        cmocka_unit_test(test_control_and_error),
        cmocka_unit_test(test_large_frame_two_pass),
        cmocka_unit_test(test_frame_wire_header),
        cmocka_unit_test(test_reals_keep_their_decimal_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
