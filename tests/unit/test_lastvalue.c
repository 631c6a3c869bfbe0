/* Tests for the last-value store: field merging, status, update order, eviction, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "telebridge/lastvalue.h"
#include "telebridge/protocol.h"

static tb_msg_t *msg(tb_msg_kind_t kind, const char *device, const char *payload_json)
{
    tb_msg_t *m = tb_msg_new();
    assert_non_null(m);
    m->kind = kind;
    snprintf(m->device_id, sizeof(m->device_id), "%s", device);
    m->payload = json_loads(payload_json, 0, NULL);
    assert_non_null(m->payload);
    return m;
}

/* Routes-like: encodes m as the hub does and folds it in with that frame. */
static tb_lastvalue_entry_t *update_msg(tb_lastvalue_t *lv, tb_msg_t *m, uint64_t seq)
{
    tb_frame_t *f =
        tb_protocol_device("x", "device:x", m->payload, seq, 0,
                           m->kind == TB_MSG_TELEMETRY ? TB_FRAME_TELEMETRY : TB_FRAME_STATUS);
    assert_non_null(f);
    tb_lastvalue_entry_t *e = tb_lastvalue_update(lv, m, f);
    tb_frame_unref(f);
    tb_msg_free(m);
    return e;
}

/* The payload of a stored frame (a new object) and its seq. */
static json_t *payload_of(tb_frame_t *f, uint64_t *seq)
{
    assert_non_null(f);
    json_t *env = json_loadb(tb_frame_payload(f), f->len, 0, NULL);
    assert_non_null(env);
    json_t *p = json_incref(json_object_get(env, "payload"));
    json_decref(env);
    *seq = f->seq;
    return p;
}

static void update(tb_lastvalue_t *lv, tb_msg_kind_t kind, const char *device, const char *json,
                   uint64_t seq)
{
    update_msg(lv, msg(kind, device, json), seq);
}

static void test_fields_merge_and_status(void **state)
{
    (void)state;
    tb_lastvalue_t *lv = tb_lastvalue_create(10, 0);
    update(lv, TB_MSG_TELEMETRY, "d1",
           "{\"device_id\":\"d1\",\"timestamp\":\"t1\",\"fields\":{\"temperature\":21,\"x\":1},"
           "\"tags\":{\"site\":\"a\"}}",
           1);
    update(lv, TB_MSG_TELEMETRY, "d1",
           "{\"device_id\":\"d1\",\"timestamp\":\"t2\",\"fields\":{\"humidity\":40,\"x\":2},"
           "\"tags\":{\"floor\":\"3\"}}",
           2);
    update(lv, TB_MSG_STATUS, "d1",
           "{\"device_id\":\"d1\",\"status\":\"online\",\"timestamp\":\"t3\"}", 3);
    tb_lastvalue_entry_t *e = tb_lastvalue_find(lv, "d1");
    assert_non_null(e);
    uint64_t seq = 0;
    json_t *t = payload_of(tb_lastvalue_telemetry(e), &seq);
    assert_int_equal(seq, 2);
    const json_t *fields = json_object_get(t, "fields");
    assert_int_equal(json_object_size(fields), 3);
    assert_int_equal(json_integer_value(json_object_get(fields, "temperature")), 21);
    assert_int_equal(json_integer_value(json_object_get(fields, "humidity")), 40);
    assert_int_equal(json_integer_value(json_object_get(fields, "x")), 2);
    assert_int_equal(json_object_size(json_object_get(t, "tags")), 2);
    assert_string_equal(json_string_value(json_object_get(t, "timestamp")), "t2");
    json_t *st = payload_of(tb_lastvalue_status(e), &seq);
    assert_int_equal(seq, 3);
    assert_string_equal(json_string_value(json_object_get(st, "status")), "online");
    json_decref(t);
    json_decref(st);
    assert_null(tb_lastvalue_find(lv, "d2"));
    tb_lastvalue_destroy(lv);
}

static void test_status_only_device_has_no_telemetry(void **state)
{
    (void)state;
    tb_lastvalue_t *lv = tb_lastvalue_create(10, 2);
    update(lv, TB_MSG_STATUS, "d1",
           "{\"device_id\":\"d1\",\"status\":\"offline\",\"timestamp\":\"t\"}", 7);
    tb_lastvalue_entry_t *e = tb_lastvalue_find(lv, "d1");
    assert_null(tb_lastvalue_telemetry(e));
    assert_int_equal(tb_lastvalue_words(e)[0], 0);
    assert_int_equal(tb_lastvalue_words(e)[1], 0);
    tb_lastvalue_destroy(lv);
}

/* The least recently updated device goes first; an update makes a device the newest. */
static void test_eviction_in_update_order(void **state)
{
    (void)state;
    const char *tele = "{\"device_id\":\"x\",\"timestamp\":\"t\",\"fields\":{\"v\":1},\"tags\":{}}";
    tb_lastvalue_t *lv = tb_lastvalue_create(3, 1);
    update(lv, TB_MSG_TELEMETRY, "a", tele, 1);
    update(lv, TB_MSG_TELEMETRY, "b", tele, 2);
    update(lv, TB_MSG_TELEMETRY, "c", tele, 3);
    tb_lastvalue_words(tb_lastvalue_find(lv, "a"))[0] = 42;
    update(lv, TB_MSG_TELEMETRY, "a", tele, 4); /* a is now the newest */
    update(lv, TB_MSG_TELEMETRY, "d", tele, 5); /* evicts b */
    assert_int_equal(tb_lastvalue_count(lv), 3);
    assert_int_equal(tb_lastvalue_evictions(lv), 1);
    assert_null(tb_lastvalue_find(lv, "b"));
    assert_int_equal(tb_lastvalue_words(tb_lastvalue_find(lv, "a"))[0], 42);
    const char *order[] = {"c", "a", "d"};
    size_t i = 0;
    for (tb_lastvalue_entry_t *e = tb_lastvalue_oldest(lv); e; e = tb_lastvalue_newer(e))
        assert_string_equal(tb_lastvalue_device(e), order[i++]);
    assert_int_equal(i, 3);
    tb_lastvalue_destroy(lv);
}

/* Many distinct devices: the count never passes the bound, every extra one is an eviction. */
static void test_bounded_under_many_devices(void **state)
{
    (void)state;
    const char *tele = "{\"device_id\":\"x\",\"timestamp\":\"t\",\"fields\":{\"v\":1},\"tags\":{}}";
    tb_lastvalue_t *lv = tb_lastvalue_create(100, 0);
    char id[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "dev-%d", i);
        update(lv, TB_MSG_TELEMETRY, id, tele, (uint64_t)i + 1);
        assert_true(tb_lastvalue_count(lv) <= 100);
    }
    assert_int_equal(tb_lastvalue_evictions(lv), 20000 - 100);
    assert_non_null(tb_lastvalue_find(lv, "dev-19999"));
    assert_non_null(tb_lastvalue_find(lv, "dev-19900"));
    assert_null(tb_lastvalue_find(lv, "dev-19899"));
    tb_lastvalue_destroy(lv);
}

static void test_zero_devices_keeps_nothing(void **state)
{
    (void)state;
    tb_lastvalue_t *lv = tb_lastvalue_create(0, 0);
    assert_null(update_msg(lv, msg(TB_MSG_STATUS, "a", "{\"status\":\"online\"}"), 1));
    assert_int_equal(tb_lastvalue_count(lv), 0);
    assert_null(tb_lastvalue_oldest(lv));
    tb_lastvalue_destroy(lv);
    tb_lastvalue_destroy(NULL);
}

/* Same names: the routed frame itself is kept (no copy); new names: a merged frame; a later
 * message with all the merged names is kept as is again, one with fewer merges. */
static void test_frames_kept_or_merged(void **state)
{
    (void)state;
    tb_lastvalue_t *lv = tb_lastvalue_create(4, 0);
    const char *both = "{\"device_id\":\"d\",\"timestamp\":\"t3\",\"fields\":{\"h\":3,\"t\":3},"
                       "\"tags\":{}}";
    tb_msg_t *m = msg(TB_MSG_TELEMETRY, "d", both);
    tb_frame_t *f =
        tb_protocol_device("telemetry", "device:d", m->payload, 7, 0, TB_FRAME_TELEMETRY);
    tb_lastvalue_update(lv, m, f);
    assert_int_equal(f->refs, 2); /* the store shares it */
    tb_msg_free(m);
    tb_frame_unref(f);
    update(lv, TB_MSG_TELEMETRY, "d",
           "{\"device_id\":\"d\",\"timestamp\":\"t4\",\"fields\":{\"t\":4},\"tags\":{}}", 8);
    uint64_t seq;
    json_t *t = payload_of(tb_lastvalue_telemetry(tb_lastvalue_find(lv, "d")), &seq);
    assert_int_equal(seq, 8);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "fields"), "h")), 3);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "fields"), "t")), 4);
    assert_string_equal(json_string_value(json_object_get(t, "timestamp")), "t4");
    json_decref(t);
    m = msg(TB_MSG_TELEMETRY, "d", both);
    f = tb_protocol_device("telemetry", "device:d", m->payload, 9, 0, TB_FRAME_TELEMETRY);
    tb_lastvalue_update(lv, m, f);
    assert_int_equal(f->refs, 2);
    tb_msg_free(m);
    tb_frame_unref(f);
    update(lv, TB_MSG_TELEMETRY, "d",
           "{\"device_id\":\"d\",\"timestamp\":\"t5\",\"fields\":{},"
           "\"tags\":{\"site\":\"a\"}}",
           10);
    t = payload_of(tb_lastvalue_telemetry(tb_lastvalue_find(lv, "d")), &seq);
    assert_int_equal(seq, 10);
    assert_int_equal(json_object_size(json_object_get(t, "fields")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(t, "tags"), "site")),
                        "a");
    json_decref(t);
    tb_lastvalue_destroy(lv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_merge_and_status),
        cmocka_unit_test(test_frames_kept_or_merged),
        cmocka_unit_test(test_status_only_device_has_no_telemetry),
        cmocka_unit_test(test_eviction_in_update_order),
        cmocka_unit_test(test_bounded_under_many_devices),
        cmocka_unit_test(test_zero_devices_keeps_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
