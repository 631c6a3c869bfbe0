/* Tests for the series store: order, the points and fields bounds, non-numeric fields,
 * encoding with a field filter, timestamps, and eviction with the last-value record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/lastvalue.h"
#include "telebridge/protocol.h"
#include "telebridge/series.h"

static size_t add(tb_series_t **s, size_t points, const char *fields_json, int64_t t_ms)
{
    json_t *fields = json_loads(fields_json, 0, NULL);
    assert_non_null(fields);
    size_t n = tb_series_add(s, points, fields, t_ms);
    json_decref(fields);
    return n;
}

static void assert_point(const tb_series_t *s, const char *name, size_t i, int64_t t, double v)
{
    int64_t got_t;
    double got_v;
    assert_true(tb_series_point(s, name, i, &got_t, &got_v));
    assert_int_equal(got_t, t);
    assert_true(got_v == v);
}

static char *encode(const tb_series_t *s, size_t n, tb_series_keep_fn keep, void *ctx)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(tb_series_encode(s, n, keep, ctx, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void assert_encoding(const tb_series_t *s, size_t n, tb_series_keep_fn keep, void *ctx,
                            const char *want)
{
    char *got = encode(s, n, keep, ctx);
    assert_string_equal(got, want);
    free(got);
}

static void test_oldest_first_and_bounded(void **state)
{
    (void)state;
    tb_series_t *s = NULL;
    for (int i = 1; i <= 5; i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"temperature\": %d.5}", i);
        assert_int_equal(add(&s, 3, json, 1000 * i), 1);
    }
    /* Three points kept, the last three, oldest first. */
    assert_int_equal(tb_series_count(s, "temperature"), 3);
    assert_point(s, "temperature", 0, 3000, 3.5);
    assert_point(s, "temperature", 1, 4000, 4.5);
    assert_point(s, "temperature", 2, 5000, 5.5);
    int64_t t;
    double v;
    assert_false(tb_series_point(s, "temperature", 3, &t, &v));
    assert_encoding(s, 60, NULL, NULL, "{\"temperature\":[[3000,3.5],[4000,4.5],[5000,5.5]]}");
    /* n below what is held: the newest n. */
    assert_encoding(s, 2, NULL, NULL, "{\"temperature\":[[4000,4.5],[5000,5.5]]}");
    tb_series_free(s);
}

static void test_non_numeric_fields_ignored(void **state)
{
    (void)state;
    tb_series_t *s = NULL;
    assert_int_equal(add(&s, 4, "{\"mode\": \"eco\", \"on\": true, \"x\": null}", 1), 0);
    assert_null(s); /* nothing numeric: nothing allocated */
    assert_int_equal(add(&s, 4, "{\"mode\": \"eco\", \"hum\": 40, \"on\": false}", 2), 1);
    assert_int_equal(tb_series_fields(s), 1);
    assert_int_equal(tb_series_count(s, "mode"), 0);
    assert_int_equal(tb_series_count(s, "on"), 0);
    assert_encoding(s, 4, NULL, NULL, "{\"hum\":[[2,40]]}");
    tb_series_free(s);
}

static void test_fields_bound(void **state)
{
    (void)state;
    tb_series_t *s = NULL;
    char json[64];
    for (int i = 0; i < TB_SERIES_FIELDS_MAX + 3; i++) {
        snprintf(json, sizeof(json), "{\"f%d\": %d}", i, i);
        assert_int_equal(add(&s, 2, json, i), i < TB_SERIES_FIELDS_MAX ? 1 : 0);
    }
    assert_int_equal(tb_series_fields(s), TB_SERIES_FIELDS_MAX);
    snprintf(json, sizeof(json), "{\"f%d\": 1}", TB_SERIES_FIELDS_MAX);
    assert_int_equal(add(&s, 2, json, 99), 0);
    /* Known fields still take values past the bound. */
    assert_int_equal(add(&s, 2, "{\"f0\": 7, \"new\": 1}", 100), 1);
    assert_point(s, "f0", 1, 100, 7);
    tb_series_free(s);
}

static void test_fields_interleaved(void **state)
{
    (void)state;
    tb_series_t *s = NULL;
    add(&s, 3, "{\"a\": 1, \"b\": 10}", 1);
    add(&s, 3, "{\"b\": 20}", 2);
    add(&s, 3, "{\"b\": 30, \"a\": 3}", 3);
    assert_int_equal(tb_series_count(s, "a"), 2);
    assert_int_equal(tb_series_count(s, "b"), 3);
    assert_encoding(s, 3, NULL, NULL, "{\"a\":[[1,1],[3,3]],\"b\":[[1,10],[2,20],[3,30]]}");
    tb_series_free(s);
}

static bool only_b(const char *name, void *ctx)
{
    (void)ctx;
    return strcmp(name, "b") == 0;
}

static void test_encode_filter_and_escaping(void **state)
{
    (void)state;
    tb_series_t *s = NULL;
    assert_encoding(NULL, 5, NULL, NULL, "{}");
    add(&s, 3, "{\"a\": -0.25, \"b\": 1e300, \"q\\\"x\": 2}", -5);
    assert_encoding(s, 3, only_b, NULL, "{\"b\":[[-5,1e+300]]}");
    assert_encoding(s, 3, NULL, NULL,
                    "{\"a\":[[-5,-0.25]],\"b\":[[-5,1e+300]],\"q\\\"x\":[[-5,2]]}");
    char *all = encode(s, 3, NULL, NULL);
    json_t *parsed = json_loads(all, 0, NULL);
    assert_non_null(parsed); /* valid JSON */
    json_decref(parsed);
    free(all);
    tb_series_free(s);
}

/* Values are written as short as they read back: integers and short decimals without stdio,
 * the rest as %.15g; every one parses back to the value stored. */
static void test_value_spelling(void **state)
{
    static const struct {
        double v;
        const char *json;
    } cases[] = {
        {21.53, "21.53"},
        {0.1, "0.1"},
        {42, "42"},
        {-0.25, "-0.25"},
        {123456.789, "123456.789"},
        {0, "0"},
        {-0.0, "-0"},
        {1e300, "1e+300"},
        {1e-7, "1e-07"},
        {1.0 / 3, "0.333333333333333"},
        {-1234567.5, "-1234567.5"},
        {0.000001, "0.000001"},
        {1e15, "1e+15"},
        {999999999999999, "999999999999999"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_series_t *s = NULL;
        json_t *fields = json_pack("{s:f}", "v", cases[i].v);
        assert_int_equal(tb_series_add(&s, 1, fields, 7), 1);
        char want[96];
        snprintf(want, sizeof(want), "{\"v\":[[7,%s]]}", cases[i].json);
        char *got = encode(s, 1, NULL, NULL);
        if (strcmp(got, want) != 0)
            fail_msg("%.17g: got %s, want %s", cases[i].v, got, want);
        json_t *back = json_loads(got, JSON_DECODE_INT_AS_REAL, NULL);
        assert_non_null(back);
        double v =
            json_real_value(json_array_get(json_array_get(json_object_get(back, "v"), 0), 1));
        /* 15 significant digits: only 1/3 does not come back exactly. */
        assert_true(v == cases[i].v || strstr(cases[i].json, "333") != NULL);
        json_decref(back);
        free(got);
        json_decref(fields);
        tb_series_free(s);
    }
}

static void test_time_ms(void **state)
{
    (void)state;
    assert_int_equal(tb_series_time_ms("1970-01-01T00:00:01.234Z", -1), 1234);
    assert_int_equal(tb_series_time_ms("2026-11-23T13:26:03.123Z", -1), 1795440363123);
    assert_int_equal(tb_series_time_ms("2026-11-23T13:26:03Z", -1), 1795440363000);
    assert_int_equal(tb_series_time_ms("2026-11-23T13:26:03.1234567Z", -1), 1795440363123);
    assert_int_equal(tb_series_time_ms("2026-11-23T14:26:03.5+01:00", -1), 1795440363500);
    assert_int_equal(tb_series_time_ms("2026-11-23T12:26:03-01:00", -1), 1795440363000);
    assert_int_equal(tb_series_time_ms("yesterday", -1), -1);
    assert_int_equal(tb_series_time_ms("2026-11-23T13:26:03", -2), -2);
    assert_int_equal(tb_series_time_ms("2026-11-23T13:26:03Zjunk", -3), -3);
    assert_int_equal(tb_series_time_ms(NULL, 7), 7);
}

/* A device's series goes with its last-value record (run under ASan: nothing leaks). */
static void test_evicted_with_last_value(void **state)
{
    (void)state;
    tb_lastvalue_t *lv = tb_lastvalue_create(2, 0);
    const char *devices[] = {"d1", "d2", "d3"};
    for (size_t i = 0; i < 3; i++) {
        tb_msg_t *m = tb_msg_new();
        m->kind = TB_MSG_TELEMETRY;
        snprintf(m->device_id, sizeof(m->device_id), "%s", devices[i]);
        m->payload = json_pack("{s:{s:i}}", "fields", "t", (int)i);
        tb_frame_t *f =
            tb_protocol_device("telemetry", "device:x", m->payload, i + 1, 0, TB_FRAME_TELEMETRY);
        tb_lastvalue_entry_t *e = tb_lastvalue_update(lv, m, f);
        assert_non_null(e);
        assert_int_equal(tb_series_add(tb_lastvalue_series(e), 4,
                                       json_object_get(m->payload, "fields"), (int64_t)i),
                         1);
        tb_frame_unref(f);
        tb_msg_free(m);
    }
    assert_null(tb_lastvalue_find(lv, "d1"));
    assert_int_equal(tb_lastvalue_evictions(lv), 1);
    tb_lastvalue_entry_t *e = tb_lastvalue_find(lv, "d3");
    assert_point(*tb_lastvalue_series(e), "t", 0, 2, 2);
    tb_lastvalue_destroy(lv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oldest_first_and_bounded),
        cmocka_unit_test(test_non_numeric_fields_ignored),
        cmocka_unit_test(test_fields_bound),
        cmocka_unit_test(test_fields_interleaved),
        cmocka_unit_test(test_encode_filter_and_escaping),
        cmocka_unit_test(test_value_spelling),
        cmocka_unit_test(test_time_ms),
        cmocka_unit_test(test_evicted_with_last_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
