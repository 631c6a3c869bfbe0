/* Tests for alert rule evaluation: operators, hysteresis, device patterns, bad samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "telebridge/alerts.h"

static char *star[] = {"*", NULL};
static char *sensors[] = {"sensor-*", NULL};

static tb_config_alert_t rule(tb_alert_op_t op, double threshold)
{
    return (tb_config_alert_t){.name = "r",
                               .field = "t",
                               .op = op,
                               .threshold = threshold,
                               .severity = "warning",
                               .devices = star,
                               .n_devices = 1};
}

/* Feeds v to one rule, applying the transition to *st; returns +1 firing, -1 resolved, 0. */
static int feed(const tb_config_alert_t *r, const char *device, double v, uint64_t *st)
{
    json_t *fields = json_pack("{s:f}", "t", v);
    tb_alert_event_t ev[1];
    size_t n = tb_alerts_eval(r, 1, device, fields, st, ev);
    json_decref(fields);
    if (!n)
        return 0;
    assert_true(ev[0].value == v);
    *st = ev[0].firing ? 1 : 0;
    return ev[0].firing ? 1 : -1;
}

static void test_hysteresis_three_pairs(void **state)
{
    (void)state;
    tb_config_alert_t r = rule(TB_OP_GT, 30);
    r.has_clear_below = true;
    r.clear_below = 29;
    const double v[] = {20, 31, 29.5, 30.9, 29.1, 28.9, 29.5, 30, 30.1, 35, 29, 28, 31, 29.99, 10};
    const int want[] = {0, 1, 0, 0, 0, -1, 0, 0, 1, 0, 0, -1, 1, 0, -1};
    uint64_t st = 0;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(feed(&r, "sensor-1", v[i], &st), want[i]);
}

static void test_no_band_resolves_when_condition_ends(void **state)
{
    (void)state;
    tb_config_alert_t r = rule(TB_OP_LE, 10);
    uint64_t st = 0;
    assert_int_equal(feed(&r, "d", 11, &st), 0);
    assert_int_equal(feed(&r, "d", 10, &st), 1);
    assert_int_equal(feed(&r, "d", 5, &st), 0);
    assert_int_equal(feed(&r, "d", 10.5, &st), -1);
    r.op = TB_OP_EQ;
    assert_int_equal(feed(&r, "d", 10, &st), 1);
    assert_int_equal(feed(&r, "d", 9, &st), -1);
    r.op = TB_OP_NE;
    assert_int_equal(feed(&r, "d", 10, &st), 0);
    assert_int_equal(feed(&r, "d", 9, &st), 1);
    r.op = TB_OP_LT;
    r.has_clear_above = true;
    r.clear_above = 12;
    st = 0;
    assert_int_equal(feed(&r, "d", 9, &st), 1);
    assert_int_equal(feed(&r, "d", 11, &st), 0); /* inside the band */
    assert_int_equal(feed(&r, "d", 12.5, &st), -1);
    r.op = TB_OP_GE;
    r.has_clear_above = false;
    assert_int_equal(feed(&r, "d", 10, &st), 1);
}

/* Unwatched devices, a missing field or a non-number leave the state alone. */
static void test_ignored_samples(void **state)
{
    (void)state;
    tb_config_alert_t r = rule(TB_OP_GT, 30);
    r.devices = sensors;
    uint64_t st = 0;
    tb_alert_event_t ev[1];
    assert_int_equal(feed(&r, "pump-1", 99, &st), 0);
    json_t *fields = json_pack("{s:s, s:b}", "t", "hot", "u", 1);
    assert_int_equal(tb_alerts_eval(&r, 1, "sensor-1", fields, &st, ev), 0);
    json_decref(fields);
    fields = json_pack("{s:i}", "t", 31); /* an integer is a number too */
    assert_int_equal(tb_alerts_eval(&r, 1, "sensor-1", fields, &st, ev), 1);
    json_decref(fields);
}

static void test_payload(void **state)
{
    (void)state;
    tb_config_alert_t r = rule(TB_OP_GT, 30);
    tb_alert_event_t ev = {.rule = 0, .firing = false, .value = 28.5};
    json_t *p = tb_alerts_payload(&r, &ev, "sensor-1", "r:sensor-1:7", "2026-01-01T00:00:00Z");
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "state")), "resolved");
    assert_string_equal(json_string_value(json_object_get(p, "alert_id")), "r:sensor-1:7");
    assert_string_equal(json_string_value(json_object_get(p, "severity")), "warning");
    assert_string_equal(json_string_value(json_object_get(p, "field")), "t");
    assert_true(json_number_value(json_object_get(p, "threshold")) == 30);
    assert_true(json_number_value(json_object_get(p, "value")) == 28.5);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hysteresis_three_pairs),
        cmocka_unit_test(test_no_band_resolves_when_condition_ends),
        cmocka_unit_test(test_ignored_samples),
        cmocka_unit_test(test_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
