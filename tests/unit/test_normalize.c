/* Table-driven tests for payload normalisation (telemetry and status). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/normalize.h"

#define DEV "dev-1"
#define MAX_LEN 65536
/* The ingest time used by every case, and its RFC 3339 form. */
#define NOW_MS 1700000000123LL
#define NOW_TS "2023-11-14T22:13:20.123Z"
#define OK (-100)

typedef int (*normalize_fn)(const char *, const char *, size_t, size_t, int64_t, json_t **);

typedef struct {
    const char *payload;
    size_t len;         /* 0: strlen(payload) */
    int reason;         /* OK or a tb_invalid_reason_t */
    const char *expect; /* compact JSON of the result when OK */
} case_t;

/* Runs one case; on failure names the case so a table row is easy to find. */
static void run_case(normalize_fn fn, const case_t *c, size_t max_len)
{
    size_t len = c->len ? c->len : strlen(c->payload);
    json_t *sentinel = json_null();
    json_t *out = sentinel;
    int rc = fn(DEV, c->payload, len, max_len, NOW_MS, &out);
    if (c->reason != OK) {
        if (rc != TB_NORMALIZE_ERR(c->reason))
            fail_msg("payload '%s': rc %d, expected reason %s", c->payload, rc,
                     tb_invalid_reason_name((tb_invalid_reason_t)c->reason));
        assert_ptr_equal(out, sentinel);
        return;
    }
    if (rc != 0)
        fail_msg("payload '%s' refused: %s", c->payload,
                 tb_invalid_reason_name(TB_NORMALIZE_REASON(rc)));
    char *text = json_dumps(out, JSON_COMPACT);
    assert_non_null(text);
    if (strcmp(text, c->expect) != 0)
        fail_msg("payload '%s':\n got  %s\n want %s", c->payload, text, c->expect);
    free(text);
    json_decref(out);
}

static void run_table(normalize_fn fn, const case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run_case(fn, &cases[i], MAX_LEN);
}

#define TEL(ts, fields, tags)                                                                      \
    "{\"device_id\":\"" DEV "\",\"timestamp\":\"" ts "\",\"fields\":" fields ",\"tags\":" tags "}"
#define STATUS(st, ts) "{\"device_id\":\"" DEV "\",\"status\":\"" st "\",\"timestamp\":\"" ts "\"}"

static void test_telemetry_forms(void **state)
{
    (void)state;
    static const case_t cases[] = {
        /* Flat: scalars are fields; null/object/array and reserved members are not. */
        {"{\"temperature\":21.5,\"humidity\":40,\"ok\":true,\"label\":\"x\",\"nested\":{\"a\":1},"
         "\"arr\":[1],\"nul\":null,\"device_id\":\"other\",\"timestamp\":1700000000}",
         0, OK,
         TEL("2023-11-14T22:13:20.000Z",
             "{\"temperature\":21.5,\"humidity\":40,\"ok\":true,\"label\":\"x\"}", "{}")},
        /* Fields form: only "fields" members count; the payload's device_id loses. */
        {"{\"fields\":{\"t\":1,\"s\":\"a\",\"n\":null,\"o\":{}},\"tags\":{\"site\":\"a\","
         "\"floor\":3,\"x\":null},\"timestamp\":\"2024-01-01T00:00:00Z\",\"device_id\":\"evil\","
         "\"extra\":5}",
         0, OK, TEL("2024-01-01T00:00:00Z", "{\"t\":1,\"s\":\"a\"}", "{\"site\":\"a\"}")},
        {"{\"t\":1,\"tags\":{\"a\":\"b\"}}", 0, OK, TEL(NOW_TS, "{\"t\":1}", "{\"a\":\"b\"}")},
        {"{\"t\":false}", 0, OK, TEL(NOW_TS, "{\"t\":false}", "{}")},
        {"  {\"t\":-3}\r\n", 0, OK, TEL(NOW_TS, "{\"t\":-3}", "{}")},
        /* Duplicate keys: the last one wins. */
        {"{\"t\":1,\"t\":2}", 0, OK, TEL(NOW_TS, "{\"t\":2}", "{}")},
        {"{\"fields\":{\"v\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}}", 0, OK,
         TEL(NOW_TS, "{\"v\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", "{}")},
    };
    run_table(tb_normalize_telemetry, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_telemetry_timestamps(void **state)
{
    (void)state;
    static const case_t cases[] = {
        {"{\"t\":1}", 0, OK, TEL(NOW_TS, "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":null}", 0, OK, TEL(NOW_TS, "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":1700000000}", 0, OK,
         TEL("2023-11-14T22:13:20.000Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":1700000000123}", 0, OK,
         TEL("2023-11-14T22:13:20.123Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":1700000000.5}", 0, OK,
         TEL("2023-11-14T22:13:20.500Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":1700000000123.0}", 0, OK,
         TEL("2023-11-14T22:13:20.123Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":0}", 0, OK, TEL("1970-01-01T00:00:00.000Z", "{\"t\":1}", "{}")},
        /* 1e11 itself is still seconds; one more is milliseconds. */
        {"{\"t\":1,\"timestamp\":100000000000}", 0, OK,
         TEL("5138-11-16T09:46:40.000Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":100000000001}", 0, OK,
         TEL("1973-03-03T09:46:40.001Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":253402300799999}", 0, OK,
         TEL("9999-12-31T23:59:59.999Z", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":\"yesterday\"}", 0, OK, TEL("yesterday", "{\"t\":1}", "{}")},
        {"{\"t\":1,\"timestamp\":\"0123456789012345678901234567890123456789012345678901234567890"
         "123\"}",
         0, OK,
         TEL("0123456789012345678901234567890123456789012345678901234567890123", "{\"t\":1}",
             "{}")},
        {"{\"t\":1,\"timestamp\":\"0123456789012345678901234567890123456789012345678901234567890"
         "1234\"}",
         0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":\"\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":true}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":{}}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":[1]}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":-1}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":-0.5}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":1e300}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"timestamp\":253402300800000}", 0, TB_INVALID_BAD_VALUE, NULL},
    };
    run_table(tb_normalize_telemetry, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_telemetry_refused(void **state)
{
    (void)state;
    static const case_t cases[] = {
        {"hello", 0, TB_INVALID_NOT_JSON, NULL},
        {"{", 0, TB_INVALID_NOT_JSON, NULL},
        {"", 0, TB_INVALID_NOT_JSON, NULL},
        {"   ", 0, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":1} x", 0, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":1}{}", 0, TB_INVALID_NOT_JSON, NULL},
        {"{'t':1}", 0, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":1}\0", 8, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":\"a\0b\"}", 11, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":\"a\\u0000b\"}", 0, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":\"\\ud800\"}", 0, TB_INVALID_NOT_JSON, NULL},
        {"{\"t\":100000000000000000000000}", 0, TB_INVALID_NOT_JSON, NULL},
        {"\x01\x02\x03\x04", 0, TB_INVALID_NOT_JSON, NULL},
        {"[1,2]", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"42", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"\"str\"", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"null", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"true", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"{}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"timestamp\":1,\"device_id\":\"d\",\"tags\":{}}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"a\":null,\"b\":{},\"c\":[]}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"fields\":5,\"t\":1}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"fields\":null,\"t\":1}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"fields\":{}}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"fields\":{\"a\":[1],\"b\":null},\"t\":1}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"tags\":\"x\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"tags\":[]}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"t\":1,\"tags\":null}", 0, TB_INVALID_BAD_VALUE, NULL},
    };
    run_table(tb_normalize_telemetry, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_bad_utf8(void **state)
{
    (void)state;
    static const case_t cases[] = {
        {"{\"t\":\"\xc0\xaf\"}", 0, TB_INVALID_BAD_UTF8, NULL},         /* overlong '/' */
        {"{\"t\":\"\xe0\x80\xaf\"}", 0, TB_INVALID_BAD_UTF8, NULL},     /* overlong, 3 bytes */
        {"{\"t\":\"\xed\xa0\x80\"}", 0, TB_INVALID_BAD_UTF8, NULL},     /* surrogate D800 */
        {"{\"t\":\"\xe2\x82\"}", 0, TB_INVALID_BAD_UTF8, NULL},         /* truncated € */
        {"{\"t\":1}\xe2\x82", 0, TB_INVALID_BAD_UTF8, NULL},            /* truncated at the end */
        {"{\"t\":\"\xf4\x90\x80\x80\"}", 0, TB_INVALID_BAD_UTF8, NULL}, /* above U+10FFFF */
        {"{\"t\":\"\xff\"}", 0, TB_INVALID_BAD_UTF8, NULL},
        {"\x80\x81\xfe\x00\x13\x37\xc3", 7, TB_INVALID_BAD_UTF8, NULL}, /* binary junk */
    };
    run_table(tb_normalize_telemetry, cases, sizeof(cases) / sizeof(cases[0]));
    run_table(tb_normalize_status, cases, sizeof(cases) / sizeof(cases[0]));
}

/* {"t":"xxx…"} of exactly len bytes. */
static char *payload_of_len(size_t len)
{
    char *p = malloc(len + 1);
    assert_non_null(p);
    memset(p, 'x', len);
    memcpy(p, "{\"t\":\"", 6);
    memcpy(p + len - 2, "\"}", 2);
    p[len] = '\0';
    return p;
}

static void test_size_limit_boundary(void **state)
{
    (void)state;
    const size_t max = 100;
    char *at = payload_of_len(max), *over = payload_of_len(max + 1);
    json_t *out = NULL;
    assert_int_equal(tb_normalize_telemetry(DEV, at, max, max, NOW_MS, &out), 0);
    assert_int_equal(json_string_length(json_object_get(json_object_get(out, "fields"), "t")),
                     max - 8);
    json_decref(out);
    assert_int_equal(tb_normalize_telemetry(DEV, over, max + 1, max, NOW_MS, &out),
                     TB_NORMALIZE_ERR(TB_INVALID_TOO_LARGE));
    /* Size comes before UTF-8 and JSON checks. */
    over[10] = '\xff';
    assert_int_equal(tb_normalize_telemetry(DEV, over, max + 1, max, NOW_MS, &out),
                     TB_NORMALIZE_ERR(TB_INVALID_TOO_LARGE));
    assert_int_equal(tb_normalize_status(DEV, over, max + 1, max, NOW_MS, &out),
                     TB_NORMALIZE_ERR(TB_INVALID_TOO_LARGE));
    assert_int_equal(tb_normalize_status(DEV, "online", 6, 6, NOW_MS, &out), 0);
    json_decref(out);
    assert_int_equal(tb_normalize_status(DEV, "online", 6, 5, NOW_MS, &out),
                     TB_NORMALIZE_ERR(TB_INVALID_TOO_LARGE));
    free(at);
    free(over);
}

#define WORD64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."

static void test_status(void **state)
{
    (void)state;
    static const case_t cases[] = {
        {"online", 0, OK, STATUS("online", NOW_TS)},
        {"  offline\r\n", 0, OK, STATUS("offline", NOW_TS)},
        {"a.b_c-1", 0, OK, STATUS("a.b_c-1", NOW_TS)},
        {WORD64, 0, OK, STATUS(WORD64, NOW_TS)},
        {"\"online\"", 0, OK, STATUS("online", NOW_TS)},
        {"\"on line \xe2\x9c\x93\"", 0, OK, STATUS("on line \xe2\x9c\x93", NOW_TS)},
        {"{\"status\":\"maintenance\",\"timestamp\":1700000000,\"device_id\":\"x\"}", 0, OK,
         STATUS("maintenance", "2023-11-14T22:13:20.000Z")},
        {"{\"status\":\"offline\",\"timestamp\":\"t1\",\"extra\":[1]}", 0, OK,
         STATUS("offline", "t1")},
        {"{\"status\":\"online\",\"timestamp\":null}", 0, OK, STATUS("online", NOW_TS)},
        {WORD64 "x", 0, TB_INVALID_NOT_JSON, NULL},
        {"on line", 0, TB_INVALID_NOT_JSON, NULL},
        {"online!", 0, TB_INVALID_NOT_JSON, NULL},
        {"onl\0ine", 7, TB_INVALID_NOT_JSON, NULL},
        {"{", 0, TB_INVALID_NOT_JSON, NULL},
        {"", 0, TB_INVALID_NOT_JSON, NULL},
        {" \t\r\n", 0, TB_INVALID_NOT_JSON, NULL},
        {"42", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"true", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"null", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"[\"online\"]", 0, TB_INVALID_NOT_OBJECT, NULL},
        {"{}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":1}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":null}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"\"\"", 0, TB_INVALID_BAD_VALUE, NULL},
        {"\"" WORD64 "x\"", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"a\\u0001\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"a\\n\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"a\\u007f\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"a\\u0085\"}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"online\",\"timestamp\":[]}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"{\"status\":\"online\",\"timestamp\":-5}", 0, TB_INVALID_BAD_VALUE, NULL},
        {"\xff", 0, TB_INVALID_BAD_UTF8, NULL},
    };
    run_table(tb_normalize_status, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Each refusal reaches the ingest as the documented reason label (docs/operations.md,
 * telebridge_mqtt_invalid_total): the error return decodes to the reason the payload earned. */
static void test_error_reasons_reach_their_labels(void **state)
{
    static const struct {
        normalize_fn fn;
        const char *payload;
        size_t max_len;
        const char *label;
    } cases[] = {
        {tb_normalize_telemetry, "nope", MAX_LEN, "not_json"},
        {tb_normalize_telemetry, "[1]", MAX_LEN, "not_object"},
        {tb_normalize_telemetry, "{\"v\":1}", 4, "too_large"},
        {tb_normalize_telemetry, "{\"v\":\"\xc3\"}", MAX_LEN, "bad_utf8"},
        {tb_normalize_telemetry, "{\"v\":null}", MAX_LEN, "bad_value"},
        {tb_normalize_status, "true", MAX_LEN, "not_object"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *out = NULL;
        int rc = cases[i].fn(DEV, cases[i].payload, strlen(cases[i].payload), cases[i].max_len,
                             NOW_MS, &out);
        assert_null(out);
        assert_true(rc < 0);
        assert_string_equal(tb_invalid_reason_name(TB_NORMALIZE_REASON(rc)), cases[i].label);
    }
    /* Every reason, out of memory included, survives the error return. */
    for (int r = 1; r <= TB_INVALID_END; r++) {
        int rc = TB_NORMALIZE_ERR(r);
        assert_true(rc < 0);
        assert_int_equal(TB_NORMALIZE_REASON(rc), r);
    }
    /* Out of memory is no reason of its own: it is not counted as a bad payload. */
    assert_string_equal(
        tb_invalid_reason_name(TB_NORMALIZE_REASON(TB_NORMALIZE_ERR(TB_INVALID_END))), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_telemetry_forms),
        cmocka_unit_test(test_telemetry_timestamps),
        cmocka_unit_test(test_telemetry_refused),
        cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_size_limit_boundary),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_error_reasons_reach_their_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
