/* Tests for metrics: the Prometheus text exposition of a snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/metrics.h"

/* Distinct values so each sample can be found by its value. */
static tb_metrics_snapshot_t sample_snapshot(void)
{
    tb_metrics_snapshot_t s = {0};
    s.connections = 3;
    s.connections_deflate = 2;
    s.connections_total = 17;
    s.messages_in[TB_MSG_TELEMETRY] = 101;
    s.messages_in[TB_MSG_STATUS] = 102;
    s.messages_out[TB_FRAME_CONTROL] = 201;
    s.messages_out[TB_FRAME_TELEMETRY] = 202;
    s.messages_out[TB_FRAME_STATUS] = 203;
    s.invalid_mqtt[TB_INVALID_NOT_JSON] = 301;
    s.invalid_mqtt[TB_INVALID_BAD_VALUE] = 306;
    s.dropped_ingest_queue_full = 401;
    s.dropped_send_queue_full = 402;
    s.handshake_failures[TB_METRICS_HS_UNAUTHORIZED] = 501;
    s.handshake_failures[TB_METRICS_HS_OVER_CAPACITY] = 503;
    s.mqtt_connected = true;
    s.mqtt_connects = 4;
    s.queue_depth = 7;
    s.queue_capacity = 16384;
    return s;
}

static char *render(const tb_metrics_snapshot_t *s, size_t *len)
{
    char *buf = malloc(TB_METRICS_TEXT_MAX);
    assert_non_null(buf);
    assert_int_equal(tb_metrics_render(s, buf, TB_METRICS_TEXT_MAX, len), 0);
    assert_int_equal(strlen(buf), *len);
    return buf;
}

static void test_samples(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s = sample_snapshot();
    size_t len;
    char *t = render(&s, &len);
    static const char *const want[] = {
        "\ntelebridge_connections{compression=\"deflate\"} 2\n",
        "\ntelebridge_connections{compression=\"none\"} 1\n",
        "\ntelebridge_connections_total 17\n",
        "\ntelebridge_messages_in_total{type=\"telemetry\"} 101\n",
        "\ntelebridge_messages_in_total{type=\"status\"} 102\n",
        "\ntelebridge_messages_out_total{type=\"control\"} 201\n",
        "\ntelebridge_messages_out_total{type=\"status\"} 203\n",
        "\ntelebridge_mqtt_invalid_total{reason=\"not_json\"} 301\n",
        "\ntelebridge_mqtt_invalid_total{reason=\"bad_value\"} 306\n",
        "\ntelebridge_mqtt_invalid_total{reason=\"too_large\"} 0\n",
        "\ntelebridge_dropped_total{reason=\"ingest_queue_full\"} 401\n",
        "\ntelebridge_dropped_total{reason=\"send_queue_full\"} 402\n",
        "\ntelebridge_handshake_failures_total{reason=\"unauthorized\"} 501\n",
        "\ntelebridge_handshake_failures_total{reason=\"over_capacity\"} 503\n",
        "\ntelebridge_handshake_failures_total{reason=\"forbidden_origin\"} 0\n",
        "\ntelebridge_mqtt_connected 1\n",
        "\ntelebridge_mqtt_connects_total 4\n",
        "\ntelebridge_mqtt_reconnects_total 3\n",
        "\ntelebridge_queue_depth 7\n",
        "\ntelebridge_queue_capacity 16384\n",
        "\n# TYPE telebridge_queue_depth gauge\n",
        "\n# TYPE telebridge_messages_in_total counter\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(t, want[i]))
            fail_msg("missing %s", want[i]);
    assert_true(strncmp(t, "# HELP telebridge_", 18) == 0);
    assert_int_equal(t[len - 1], '\n');
    free(t);
}

/* Families with a zero value are still exposed (a scraper tells 0 from absent), and the
 * reconnects derived from the connects never go below 0. */
static void test_zero_snapshot(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s = {0};
    size_t len;
    char *t = render(&s, &len);
    static const char *const want[] = {
        "\n# TYPE telebridge_history_messages gauge\ntelebridge_history_messages 0\n",
        "\ntelebridge_mqtt_connects_total 0\n",
        "\ntelebridge_mqtt_reconnects_total 0\n",
        "\ntelebridge_mqtt_connected 0\n",
        "\ntelebridge_connections{compression=\"deflate\"} 0\n",
        "\ntelebridge_connections{compression=\"none\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(t, want[i]))
            fail_msg("missing %s", want[i]);
    free(t);
    s.mqtt_connects = 1;
    t = render(&s, &len);
    assert_non_null(strstr(t, "\ntelebridge_mqtt_reconnects_total 0\n"));
    free(t);
    s.history_messages = 42;
    t = render(&s, &len);
    assert_non_null(strstr(t, "\ntelebridge_history_messages 42\n"));
    free(t);
}

/* Checks one "# HELP/TYPE" line; records the family name of a TYPE line in family. */
static void check_comment(const char *line, char *family, size_t cap)
{
    char name[128], type[16];
    if (strncmp(line, "# HELP ", 7) == 0) {
        assert_int_equal(sscanf(line, "# HELP %127s", name), 1);
        assert_true(strncmp(name, "telebridge_", 11) == 0);
        return;
    }
    assert_int_equal(sscanf(line, "# TYPE %127s %15s", name, type), 2);
    assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
    size_t n = strlen(name);
    bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
    assert_int_equal(total, strcmp(type, "counter") == 0);
    snprintf(family, cap, "%s", name);
}

/* Every sample belongs to the family of the TYPE line above it; label values are [a-z0-9_]+. */
static void test_every_line_well_formed(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s = sample_snapshot();
    size_t len;
    char *t = render(&s, &len), family[128] = "", *save = NULL;
    int samples = 0;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            check_comment(line, family, sizeof(family));
            continue;
        }
        size_t fl = strlen(family);
        assert_true(fl > 0 && strncmp(line, family, fl) == 0);
        const char *p = line + fl;
        if (*p == '{') {
            p = strchr(p, '"');
            assert_non_null(p);
            for (p++; *p != '"'; p++)
                assert_true(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
            assert_true(strncmp(p, "\"} ", 3) == 0);
            p += 2;
        }
        assert_int_equal(*p, ' ');
        for (p++; *p; p++)
            assert_true(isdigit((unsigned char)*p));
        samples++;
    }
    assert_true(samples > 30);
    free(t);
}

/* Every buffer too small is refused; the largest values fit in TB_METRICS_TEXT_MAX. */
static void test_bounded(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s;
    memset(&s, 0xff, sizeof(s));
    s.mqtt_connected = true;
    size_t len, got;
    char *t = render(&s, &len);
    assert_true(len < TB_METRICS_TEXT_MAX / 2);
    for (size_t cap = 0; cap <= len; cap++) {
        char *small = malloc(cap ? cap : 1);
        assert_non_null(small);
        assert_int_equal(tb_metrics_render(&s, small, cap, &got), TB_METRICS_E_SPACE);
        free(small);
    }
    char *exact = malloc(len + 1);
    assert_non_null(exact);
    assert_int_equal(tb_metrics_render(&s, exact, len + 1, &got), 0);
    assert_int_equal(got, len);
    assert_string_equal(exact, t);
    free(exact);
    free(t);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(tb_metrics_hs_reason_name(TB_METRICS_HS_FORBIDDEN_ORIGIN),
                        "forbidden_origin");
    assert_string_equal(tb_metrics_hs_reason_name(TB_METRICS_HS_RATE_LIMITED), "rate_limited");
    assert_string_equal(tb_metrics_hs_reason_name(TB_METRICS_HS_TOO_LARGE), "too_large");
    assert_string_equal(tb_metrics_hs_reason_name(TB_METRICS_HS_N), "unknown");
    assert_string_equal(tb_msg_kind_name(TB_MSG_STATUS), "status");
    assert_string_equal(tb_msg_kind_name(TB_MSG_KIND_N), "unknown");
    assert_string_equal(tb_frame_kind_name(TB_FRAME_CONTROL), "control");
    assert_string_equal(tb_frame_kind_name(TB_FRAME_KIND_N), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_zero_snapshot),
        cmocka_unit_test(test_every_line_well_formed),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
