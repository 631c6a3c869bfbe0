/* Unit tests for MQTT topic templates: parsing, filters and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/topic.h"
#include "telebridge/util.h"

#define ERR_LEN 128

static tb_topic_tpl_t *parse_ok(const char *tpl)
{
    char err[ERR_LEN] = "";
    tb_topic_tpl_t *t = tb_topic_tpl_parse(tpl, err, sizeof(err));
    if (!t)
        fail_msg("template \"%s\" refused: %s", tpl, err);
    return t;
}

static void test_default_templates(void **state)
{
    (void)state;
    tb_topic_tpl_t *tel = parse_ok("devices/{device}/telemetry");
    tb_topic_tpl_t *st = parse_ok("devices/{device}/status");
    assert_string_equal(tb_topic_tpl_filter(tel), "devices/+/telemetry");
    assert_string_equal(tb_topic_tpl_filter(st), "devices/+/status");
    char dev[TB_ID_MAX + 1], grp[TB_ID_MAX + 1];
    strcpy(grp, "junk");
    assert_int_equal(
        tb_topic_tpl_match(tel, "devices/sensor-1/telemetry", dev, sizeof(dev), grp, sizeof(grp)),
        0);
    assert_string_equal(dev, "sensor-1");
    assert_string_equal(grp, "");
    assert_int_equal(tb_topic_tpl_match(st, "devices/a.b_C-9/status", dev, sizeof(dev), NULL, 0),
                     0);
    assert_string_equal(dev, "a.b_C-9");
    /* Each template matches only its own kind. */
    assert_int_equal(
        tb_topic_tpl_match(st, "devices/sensor-1/telemetry", dev, sizeof(dev), grp, sizeof(grp)),
        -1);
    tb_topic_tpl_free(tel);
    tb_topic_tpl_free(st);
    tb_topic_tpl_free(NULL);
}

static void test_group_template(void **state)
{
    (void)state;
    tb_topic_tpl_t *t = parse_ok("sites/{group}/{device}/telemetry");
    assert_string_equal(tb_topic_tpl_filter(t), "sites/+/+/telemetry");
    char dev[TB_ID_MAX + 1], grp[TB_ID_MAX + 1];
    assert_int_equal(tb_topic_tpl_match(t, "sites/building-a/temp-1/telemetry", dev, sizeof(dev),
                                        grp, sizeof(grp)),
                     0);
    assert_string_equal(dev, "temp-1");
    assert_string_equal(grp, "building-a");
    /* Device before group works too, and a group buffer too small refuses the match. */
    tb_topic_tpl_t *u = parse_ok("{device}/in/{group}");
    assert_string_equal(tb_topic_tpl_filter(u), "+/in/+");
    assert_int_equal(tb_topic_tpl_match(u, "d1/in/g1", dev, sizeof(dev), grp, sizeof(grp)), 0);
    assert_string_equal(dev, "d1");
    assert_string_equal(grp, "g1");
    char small[3];
    assert_int_equal(tb_topic_tpl_match(u, "d1/in/g12", dev, sizeof(dev), small, sizeof(small)),
                     -1);
    tb_topic_tpl_free(t);
    tb_topic_tpl_free(u);
}

static void test_refused_templates(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "devices/telemetry",            /* no {device} */
        "dev{device}/x",                /* placeholder not a whole level */
        "devices/{device}x/telemetry",  /* likewise */
        "a/{device}/{device}",          /* two {device} */
        "{group}/{group}/{device}",     /* two {group} */
        "devices/{name}/x/{device}",    /* unknown placeholder */
        "devices/+/telemetry/{device}", /* wildcards */
        "devices/{device}/#",           /* likewise */
        "devices/{device}/a+b",         /* a wildcard character inside a level */
        "devices/{device}/\xff",        /* not UTF-8 */
        "a/b}/{device}",                /* stray brace */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[ERR_LEN] = "";
        tb_topic_tpl_t *t = tb_topic_tpl_parse(bad[i], err, sizeof(err));
        if (t)
            fail_msg("template \"%s\" accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    /* A NULL error buffer is allowed. */
    assert_null(tb_topic_tpl_parse("x", NULL, 0));
}

static void test_refused_template_messages(void **state)
{
    (void)state;
    char err[ERR_LEN];
    assert_null(tb_topic_tpl_parse("a/{device}/{device}", err, sizeof(err)));
    assert_string_equal(err, "{device} must appear exactly once");
    assert_null(tb_topic_tpl_parse("dev{device}/x", err, sizeof(err)));
    assert_string_equal(err, "a placeholder must be a whole level, {device} or {group}");
    char longer[1100];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    memcpy(longer, "{device}/", 9);
    assert_null(tb_topic_tpl_parse(longer, err, sizeof(err)));
    assert_string_equal(err, "topic template longer than 1024 bytes");
    char deep[200] = "{device}";
    for (int i = 0; i < 40; i++)
        strcat(deep, "/a");
    assert_null(tb_topic_tpl_parse(deep, err, sizeof(err)));
    assert_string_equal(err, "more than 32 levels");
}

static void test_empty_levels(void **state)
{
    (void)state;
    tb_topic_tpl_t *t = parse_ok("/devices/{device}//x");
    assert_string_equal(tb_topic_tpl_filter(t), "/devices/+//x");
    char dev[TB_ID_MAX + 1];
    assert_int_equal(tb_topic_tpl_match(t, "/devices/d1//x", dev, sizeof(dev), NULL, 0), 0);
    assert_string_equal(dev, "d1");
    assert_int_equal(tb_topic_tpl_match(t, "devices/d1//x", dev, sizeof(dev), NULL, 0), -1);
    assert_int_equal(tb_topic_tpl_match(t, "/devices/d1/x", dev, sizeof(dev), NULL, 0), -1);
    tb_topic_tpl_free(t);
    /* An empty captured level is not an id. */
    tb_topic_tpl_t *d = parse_ok("devices/{device}/telemetry");
    assert_int_equal(tb_topic_tpl_match(d, "devices//telemetry", dev, sizeof(dev), NULL, 0), -1);
    tb_topic_tpl_free(d);
}

static void test_non_matching_topics(void **state)
{
    (void)state;
    tb_topic_tpl_t *t = parse_ok("devices/{device}/telemetry");
    const char *miss[] = {
        "",
        "devices",
        "devices/d1",
        "devices/d1/",
        "devices/d1/telemetry/",
        "devices/d1/telemetry/extra",
        "device/d1/telemetry",
        "Devices/d1/telemetry",
        "devices/d1/telemetryx",
        "/devices/d1/telemetry",
    };
    char dev[TB_ID_MAX + 1] = "untouched";
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
        if (tb_topic_tpl_match(t, miss[i], dev, sizeof(dev), NULL, 0) != -1)
            fail_msg("topic \"%s\" matched", miss[i]);
    }
    assert_string_equal(dev, "untouched");
    tb_topic_tpl_free(t);
}

static void test_captures_too_long_or_invalid(void **state)
{
    (void)state;
    tb_topic_tpl_t *t = parse_ok("sites/{group}/{device}/telemetry");
    char dev[TB_ID_MAX + 1], grp[TB_ID_MAX + 1];
    char topic[512];
    char id[TB_ID_MAX + 2];
    /* TB_ID_MAX bytes fit; one more is not a valid id. */
    memset(id, 'x', TB_ID_MAX);
    id[TB_ID_MAX] = '\0';
    snprintf(topic, sizeof(topic), "sites/g/%s/telemetry", id);
    assert_int_equal(tb_topic_tpl_match(t, topic, dev, sizeof(dev), grp, sizeof(grp)), 0);
    assert_int_equal(strlen(dev), TB_ID_MAX);
    id[TB_ID_MAX] = 'x';
    id[TB_ID_MAX + 1] = '\0';
    snprintf(topic, sizeof(topic), "sites/g/%s/telemetry", id);
    assert_int_equal(tb_topic_tpl_match(t, topic, dev, sizeof(dev), grp, sizeof(grp)), -1);
    /* A buffer smaller than the capture refuses the match. */
    char tiny[4];
    assert_int_equal(
        tb_topic_tpl_match(t, "sites/g/abcd/telemetry", tiny, sizeof(tiny), grp, sizeof(grp)), -1);
    assert_int_equal(
        tb_topic_tpl_match(t, "sites/g/abc/telemetry", tiny, sizeof(tiny), grp, sizeof(grp)), 0);
    assert_string_equal(tiny, "abc");
    const char *bad_ids[] = {
        "sites/g/a b/telemetry",      "sites/g/x:y/telemetry", "sites/a b/d/telemetry",
        "sites/g/\xc3\xa9/telemetry", "sites/g/a*/telemetry",  "sites//d/telemetry",
    };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        if (tb_topic_tpl_match(t, bad_ids[i], dev, sizeof(dev), grp, sizeof(grp)) != -1)
            fail_msg("topic \"%s\" matched", bad_ids[i]);
    }
    tb_topic_tpl_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_templates),
        cmocka_unit_test(test_group_template),
        cmocka_unit_test(test_refused_templates),
        cmocka_unit_test(test_refused_template_messages),
        cmocka_unit_test(test_empty_levels),
        cmocka_unit_test(test_non_matching_topics),
        cmocka_unit_test(test_captures_too_long_or_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
