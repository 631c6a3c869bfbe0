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
    s.connections[TB_COMPRESSION_DEFLATE] = 2;
    s.connections[TB_COMPRESSION_NONE] = 1;
    s.connections_total = 17;
    s.messages_in[TB_MSG_TELEMETRY] = 101;
    s.messages_in[TB_MSG_STATUS] = 102;
    s.messages_out[TB_FRAME_CONTROL] = 201;
    s.messages_out[TB_FRAME_TELEMETRY] = 202;
    s.messages_out[TB_FRAME_STATUS] = 203;
    s.mqtt_invalid[TB_INVALID_NOT_JSON] = 301;
    s.mqtt_invalid[TB_INVALID_BAD_VALUE] = 306;
    s.dropped[TB_DROP_INGEST_QUEUE_FULL] = 401;
    s.dropped[TB_DROP_SEND_QUEUE_FULL] = 402;
    s.handshake_failures[TB_REFUSE_CLASS_UNAUTHORIZED] = 501;
    s.handshake_failures[TB_REFUSE_CLASS_OVER_CAPACITY] = 503;
    s.mqtt_connected = true;
    s.mqtt_connects = 4;
    s.mqtt_reconnects = 3;
    s.queue_depth = 7;
    s.queue_capacity = 16384;
    s.send_queue_over_half = 5;
    tb_latency_observe(&s.delivery_latency, 80, 10);      /* le 0.0001 */
    tb_latency_observe(&s.delivery_latency, 1000, 3);     /* le 0.001, the bound itself */
    tb_latency_observe(&s.delivery_latency, 20000000, 1); /* +Inf */
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
        "\ntelebridge_send_queue_over_half 5\n",
        "\n# TYPE telebridge_delivery_latency_seconds histogram\n",
        "\ntelebridge_delivery_latency_seconds_bucket{le=\"0.0001\"} 10\n",
        "\ntelebridge_delivery_latency_seconds_bucket{le=\"0.0005\"} 10\n",
        "\ntelebridge_delivery_latency_seconds_bucket{le=\"0.001\"} 13\n",
        "\ntelebridge_delivery_latency_seconds_bucket{le=\"10\"} 13\n",
        "\ntelebridge_delivery_latency_seconds_bucket{le=\"+Inf\"} 14\n",
        "\ntelebridge_delivery_latency_seconds_sum 20.003800\n",
        "\ntelebridge_delivery_latency_seconds_count 14\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(t, want[i]))
            fail_msg("missing %s", want[i]);
    assert_true(strncmp(t, "# HELP telebridge_", 18) == 0);
    assert_int_equal(t[len - 1], '\n');
    free(t);
}

/* Families with a zero value are still exposed (a scraper tells 0 from absent). */
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
    assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                strcmp(type, "histogram") == 0);
    size_t n = strlen(name);
    bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
    assert_int_equal(total, strcmp(type, "counter") == 0);
    snprintf(family, cap, "%s", name);
}

/* A sample line of the histogram family (name without the prefix): _bucket{le="<bound>"} with
 * a bound of [0-9.] or +Inf and an integer, _sum with a decimal, _count with an integer. */
static void check_histogram_line(const char *p)
{
    if (strncmp(p, "_bucket{le=\"", 12) == 0) {
        p += 12;
        if (strncmp(p, "+Inf", 4) == 0)
            p += 4;
        else
            for (; *p != '"'; p++)
                assert_true(isdigit((unsigned char)*p) || *p == '.');
        assert_true(strncmp(p, "\"} ", 3) == 0);
        p += 2;
    } else if (strncmp(p, "_sum ", 5) == 0) {
        p += 4;
        for (p++; *p; p++)
            assert_true(isdigit((unsigned char)*p) || *p == '.');
        return;
    } else {
        assert_true(strncmp(p, "_count ", 7) == 0);
        p += 6;
    }
    assert_int_equal(*p, ' ');
    for (p++; *p; p++)
        assert_true(isdigit((unsigned char)*p));
}

/* Every sample belongs to the family of the TYPE line above it; label values are [a-z0-9_]+
 * (the histogram's `le` bounds are numbers). */
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
        if (strcmp(family, "telebridge_delivery_latency_seconds") == 0) {
            check_histogram_line(p);
            samples++;
            continue;
        }
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
    assert_string_equal(tb_refuse_class_name(TB_REFUSE_CLASS_RATE_LIMITED), "rate_limited");
    assert_string_equal(tb_refuse_class_name(TB_REFUSE_CLASS_TOO_LARGE), "too_large");
    assert_string_equal(tb_msg_kind_name(TB_MSG_STATUS), "status");
    assert_string_equal(tb_msg_kind_name(TB_MSG_KIND_N), "unknown");
    assert_string_equal(tb_frame_kind_name(TB_FRAME_CONTROL), "control");
    assert_string_equal(tb_frame_kind_name(TB_FRAME_KIND_N), "unknown");
}

/* How many keys named key the /stats document doc has, in any section (its top level,
 * "details", "refused"; label values inside a labelled entry do not count). */
static int count_key(const json_t *doc, const char *key)
{
    const char *k;
    json_t *member;
    int n = 0;
    json_object_foreach((json_t *)doc, k, member)
    {
        n += strcmp(k, key) == 0;
        if (strcmp(k, "details") == 0 || strcmp(k, "refused") == 0)
            n += count_key(member, key);
    }
    return n;
}

/* How many times line (a whole line, without its newline) is in text. */
static int count_line(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += len)
        n += (p == text || p[-1] == '\n') && p[len] == '\n';
    return n;
}

/* The TYPE line of the family of TB_COUNTERS entry name. */
static void type_line(char *buf, size_t cap, const char *name, const char *type)
{
    size_t n = strlen(name);
    bool total = n > 6 && strcmp(name + n - 6, "_total") == 0;
    bool counter = strcmp(type, "counter") == 0;
    snprintf(buf, cap, "# TYPE telebridge_%s%s %s", name, counter && !total ? "_total" : "", type);
}

/* Every TB_COUNTERS entry is exactly once in /stats (under its name, or name_by_label for a
 * labelled one, whatever the section) and exactly once in /metrics (one TYPE line). */
static void test_each_counter_once(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s = sample_snapshot();
    size_t len;
    char *t = render(&s, &len), line[160];
    json_t *doc = tb_metrics_stats_json(&s);
    assert_non_null(doc);
    int entries = 0;
#define TYPE_COUNTER "counter"
#define TYPE_GAUGE "gauge"
#define TYPE_FLAG "gauge"
#define CHECK_C(name, type, owner, section, help)                                                  \
    if (count_key(doc, #name) != 1)                                                                \
        fail_msg("/stats has %s %d times", #name, count_key(doc, #name));                          \
    type_line(line, sizeof(line), #name, TYPE_##type);                                             \
    if (count_line(t, line) != 1)                                                                  \
        fail_msg("/metrics has \"%s\" %d times", line, count_line(t, line));                       \
    entries++;
#define CHECK_V(name, type, owner, section, label, first, end, label_name, help)                   \
    if (count_key(doc, #name "_by_" #label) != 1)                                                  \
        fail_msg("/stats has %s %d times", #name "_by_" #label,                                    \
                 count_key(doc, #name "_by_" #label));                                             \
    assert_int_equal(                                                                              \
        json_object_size(json_object_get(json_object_get(doc, "details"), #name "_by_" #label)) +  \
            json_object_size(                                                                      \
                json_object_get(json_object_get(doc, "refused"), #name "_by_" #label)) +           \
            json_object_size(json_object_get(doc, #name "_by_" #label)),                           \
        (end) - (first));                                                                          \
    type_line(line, sizeof(line), #name, TYPE_##type);                                             \
    if (count_line(t, line) != 1)                                                                  \
        fail_msg("/metrics has \"%s\" %d times", line, count_line(t, line));                       \
    entries++;
    TB_COUNTERS(CHECK_C, CHECK_V)
    /* The histogram: once in each. */
    assert_int_equal(count_key(doc, "delivery_latency_seconds"), 1);
    assert_int_equal(count_line(t, "# TYPE telebridge_delivery_latency_seconds histogram"), 1);
    assert_int_equal(count_line(t, "telebridge_delivery_latency_seconds_count 14"), 1);
    json_t *lat = json_object_get(json_object_get(doc, "details"), "delivery_latency_seconds");
    assert_int_equal(json_integer_value(json_object_get(lat, "count")), 14);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(lat, "le"), "0.001")), 13);
    entries++;
    /* One TYPE line per entry, none other. */
    assert_int_equal(count_key(doc, "mqtt_connected"), 1);
    int types = 0;
    for (const char *p = t; (p = strstr(p, "# TYPE ")) != NULL; p++)
        types++;
    assert_int_equal(types, entries);
    /* Values: /stats shows the snapshot's numbers. */
    assert_int_equal(json_integer_value(json_object_get(doc, "connections")), 3);
    assert_true(json_is_true(json_object_get(doc, "mqtt_connected")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(doc, "mqtt_invalid_by_reason"), "bad_value")),
                     306);
    json_decref(doc);
    free(t);
}

/* The keys /stats had before the table, still there with the same values (docs/operations.md). */
static void test_older_stats_keys(void **state)
{
    (void)state;
    tb_metrics_snapshot_t s = sample_snapshot();
    s.token_expired = 9;
    s.snapshot_messages = 11;
    s.client_too_big = 13;
    s.handshake_refusals[TB_REFUSE_ORIGIN] = 15;
    json_t *doc = tb_metrics_stats_json(&s);
    assert_non_null(doc);
    json_t *refused = json_object_get(doc, "refused"), *details = json_object_get(doc, "details");
    assert_int_equal(json_integer_value(json_object_get(doc, "messages_in")), 101 + 102);
    assert_int_equal(json_integer_value(json_object_get(doc, "messages_out")), 201 + 202 + 203);
    assert_int_equal(json_integer_value(json_object_get(doc, "dropped")), 401 + 402);
    assert_int_equal(json_integer_value(json_object_get(doc, "invalid_mqtt")), 301 + 306);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(doc, "invalid_mqtt_by_reason"), "not_json")),
                     301);
    assert_int_equal(json_integer_value(json_object_get(refused, "handshake_unauthorized")), 501);
    assert_int_equal(json_integer_value(json_object_get(refused, "handshake_over_capacity")), 503);
    assert_int_equal(json_integer_value(json_object_get(refused, "client_message_too_big")), 13);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(refused, "handshake_by_reason"), "origin")),
                     15);
    assert_int_equal(json_integer_value(json_object_get(details, "expired_closes")), 9);
    assert_int_equal(json_integer_value(json_object_get(details, "snapshot_frames")), 11);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_zero_snapshot),
        cmocka_unit_test(test_every_line_well_formed),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_each_counter_once),
        cmocka_unit_test(test_older_stats_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
