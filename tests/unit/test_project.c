/* Tests for field projection (the `fields` subscribe option): sets, cutting, frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "telebridge/frame.h"
#include "telebridge/project.h"
#include "telebridge/protocol.h"

static tb_project_t *set_of(const char *names_json)
{
    json_t *names = json_loads(names_json, 0, NULL);
    tb_project_t *p = tb_project_new(names);
    json_decref(names);
    assert_non_null(p);
    return p;
}

static void test_sets(void **state)
{
    (void)state;
    tb_project_t *a = set_of("[\"t\",\"h\"]"), *b = set_of("[\"h\",\"t\"]"), *c = set_of("[\"t\"]");
    assert_true(tb_project_has(a, "t") && tb_project_has(a, "h") && !tb_project_has(a, "x"));
    assert_true(tb_project_equal(a, b) && !tb_project_equal(a, c) && !tb_project_equal(a, NULL));
    assert_int_equal(tb_project_count(a), 2);
    assert_string_equal(tb_project_name(a, 0), "h"); /* byte order */
    assert_false(tb_project_shared(a));
    assert_true(tb_project_shared(tb_project_ref(a)));
    tb_project_unref(a);
    tb_project_unref(a);
    tb_project_unref(b);
    tb_project_unref(c);
}

/* The telemetry frame of payload_json as the hub makes it (spliced), seq 7 at ms. */
static tb_frame_t *telemetry(const char *payload_json, int64_t ms)
{
    return tb_protocol_device_spliced("telemetry", "device:d1", payload_json, strlen(payload_json),
                                      7, ms, TB_FRAME_TELEMETRY);
}

static void test_frame_cut_keeps_the_rest(void **state)
{
    (void)state;
    const char *payload = "{\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00.000Z\","
                          "\"fields\":{\"t\":21.5,\"h\":40,\"p\":1},\"tags\":{\"site\":\"lab\"}}";
    tb_frame_t *f = telemetry(payload, 1700000000123);
    tb_project_t *p = set_of("[\"t\",\"p\",\"absent\"]");
    bool none = true;
    tb_frame_t *cut = tb_project_frame(f, p, &none);
    assert_non_null(cut);
    assert_false(none);
    assert_int_equal(cut->seq, 7);
    assert_int_equal(cut->kind, TB_FRAME_TELEMETRY);
    const char *want = "{\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00.000Z\","
                       "\"fields\":{\"t\":21.5,\"p\":1},\"tags\":{\"site\":\"lab\"}}";
    tb_frame_t *expect = telemetry(want, 1700000000123);
    assert_int_equal(cut->len, expect->len);
    assert_memory_equal(tb_frame_payload(cut), tb_frame_payload(expect), cut->len);
    /* From the payload object: the same bytes, nothing parsed. */
    json_t *obj = json_loads(payload, 0, NULL);
    tb_frame_t *spliced = tb_project_payload(f, obj, 1700000000123, p, &none);
    assert_non_null(spliced);
    assert_int_equal(spliced->len, expect->len);
    assert_memory_equal(tb_frame_payload(spliced), tb_frame_payload(expect), spliced->len);
    /* A snapshot copy keeps its mark. */
    tb_frame_t *snap = tb_protocol_snapshot(f), *snap_cut = tb_project_frame(snap, p, &none);
    assert_true(tb_protocol_is_snapshot(snap_cut));
    json_decref(obj);
    tb_frame_unref(snap_cut);
    tb_frame_unref(snap);
    tb_frame_unref(spliced);
    tb_frame_unref(expect);
    tb_frame_unref(cut);
    tb_frame_unref(f);
    tb_project_unref(p);
}

static void test_none_of_the_fields(void **state)
{
    (void)state;
    const char *payload = "{\"device_id\":\"d1\",\"timestamp\":\"x\",\"fields\":{\"h\":1},"
                          "\"tags\":{}}";
    tb_frame_t *f = telemetry(payload, 1);
    tb_project_t *p = set_of("[\"t\"]");
    json_t *obj = json_loads(payload, 0, NULL);
    bool none = false;
    assert_null(tb_project_frame(f, p, &none));
    assert_true(none);
    none = false;
    assert_null(tb_project_payload(f, obj, 1, p, &none));
    assert_true(none);
    json_t *fields = json_object_get(obj, "fields");
    assert_int_equal(tb_project_fields(fields, p), 0);
    json_decref(obj);
    tb_frame_unref(f);
    tb_project_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_frame_cut_keeps_the_rest),
        cmocka_unit_test(test_none_of_the_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
