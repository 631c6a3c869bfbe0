/* Unit tests for the bench's frame parsers, stamp, room mix and latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bench_core.h"

#define NO_LIMIT UINT64_MAX

static void ws_parse_short_text(void **state)
{
    (void)state;
    const uint8_t buf[] = {0x81, 0x03, 'a', 'b', 'c', 0x89};
    tb_bench_ws_frame_t f;
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), NO_LIMIT, &f), 5);
    assert_true(f.fin);
    assert_int_equal(f.opcode, TB_BENCH_WS_TEXT);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.payload, "abc", 3);
    /* the trailing byte is the start of a ping: incomplete */
    assert_int_equal(tb_bench_ws_parse(buf + 5, 1, NO_LIMIT, &f), 0);
}

static void ws_parse_extended_lengths(void **state)
{
    (void)state;
    uint8_t buf[300 + 4] = {0x82, 126, 0x01, 0x2C};
    memset(buf + 4, 'x', 300);
    tb_bench_ws_frame_t f;
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), NO_LIMIT, &f), 304);
    assert_int_equal(f.len, 300);
    assert_int_equal(f.opcode, TB_BENCH_WS_BINARY);
    for (size_t cut = 0; cut < sizeof(buf); cut++)
        assert_int_equal(tb_bench_ws_parse(buf, cut, NO_LIMIT, &f), 0);
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), 299, &f), -1);

    const uint8_t big[10] = {0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(tb_bench_ws_parse(big, sizeof(big), 1u << 20, &f), -1);
    assert_int_equal(tb_bench_ws_parse(big, sizeof(big), NO_LIMIT, &f), 0);
}

static void ws_parse_rejects_malformed(void **state)
{
    (void)state;
    tb_bench_ws_frame_t f;
    const uint8_t rsv[] = {0xC1, 0x00};
    const uint8_t masked[] = {0x81, 0x80, 0, 0, 0, 0};
    const uint8_t opcode[] = {0x83, 0x00};
    const uint8_t long_ping[] = {0x89, 126, 0, 126};
    const uint8_t split_close[] = {0x08, 0x00};
    assert_int_equal(tb_bench_ws_parse(rsv, sizeof(rsv), NO_LIMIT, &f), -1);
    assert_int_equal(tb_bench_ws_parse(masked, sizeof(masked), NO_LIMIT, &f), -1);
    assert_int_equal(tb_bench_ws_parse(opcode, sizeof(opcode), NO_LIMIT, &f), -1);
    assert_int_equal(tb_bench_ws_parse(long_ping, sizeof(long_ping), NO_LIMIT, &f), -1);
    assert_int_equal(tb_bench_ws_parse(split_close, sizeof(split_close), NO_LIMIT, &f), -1);
}

static void ws_encode_masks_with_zero_key(void **state)
{
    (void)state;
    uint8_t out[200];
    assert_int_equal(tb_bench_ws_encode(out, sizeof(out), TB_BENCH_WS_TEXT, "hi", 2), 8);
    const uint8_t want[] = {0x81, 0x82, 0, 0, 0, 0, 'h', 'i'};
    assert_memory_equal(out, want, sizeof(want));

    uint8_t payload[130];
    memset(payload, 'p', sizeof(payload));
    assert_int_equal(tb_bench_ws_encode(out, sizeof(out), TB_BENCH_WS_BINARY, payload, 130),
                     2 + 2 + 4 + 130);
    assert_int_equal(out[1], 0x80 | 126);
    assert_int_equal(out[2] << 8 | out[3], 130);
    assert_int_equal(tb_bench_ws_encode(out, 10, TB_BENCH_WS_TEXT, payload, 5), 0);
}

static void mqtt_connect_and_subscribe_bytes(void **state)
{
    (void)state;
    uint8_t out[64];
    const uint8_t conn[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 'c'};
    assert_int_equal(tb_bench_mqtt_connect(out, sizeof(out), "c"), sizeof(conn));
    assert_memory_equal(out, conn, sizeof(conn));
    const uint8_t sub[] = {0x82, 8, 0, 1, 0, 3, 'a', '/', '+', 0};
    assert_int_equal(tb_bench_mqtt_subscribe(out, sizeof(out), "a/+"), sizeof(sub));
    assert_memory_equal(out, sub, sizeof(sub));
    assert_int_equal(tb_bench_mqtt_subscribe(out, 5, "a/+"), 0);
}

static void mqtt_parse_publish(void **state)
{
    (void)state;
    /* PUBLISH QoS 0, topic "t/1", payload "{}"; a PUBLISH QoS 1 with packet id 7; a byte */
    const uint8_t buf[] = {0x30, 7, 0, 3,   't', '/', '1', '{', '}', 0x32,
                           8,    0, 1, 'x', 0,   7,   'a', 'b', 'c', 'd'};
    tb_bench_mqtt_packet_t p;
    const uint8_t *pl;
    size_t len;
    assert_int_equal(tb_bench_mqtt_parse(buf, sizeof(buf), &p), 9);
    assert_int_equal(p.type, TB_BENCH_MQTT_PUBLISH);
    assert_int_equal(tb_bench_mqtt_publish_payload(&p, &pl, &len), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(pl, "{}", 2);
    assert_int_equal(tb_bench_mqtt_parse(buf + 9, sizeof(buf) - 9, &p), 10);
    assert_int_equal(tb_bench_mqtt_publish_payload(&p, &pl, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(pl, "abc", 3);
    for (size_t cut = 0; cut < 9; cut++)
        assert_int_equal(tb_bench_mqtt_parse(buf, cut, &p), 0);
}

static void mqtt_parse_rejects_malformed(void **state)
{
    (void)state;
    tb_bench_mqtt_packet_t p;
    const uint8_t *pl;
    size_t len;
    const uint8_t five_len_bytes[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(tb_bench_mqtt_parse(five_len_bytes, sizeof(five_len_bytes), &p), -1);
    const uint8_t long_topic[] = {0x30, 3, 0, 9, 'x'};
    assert_int_equal(tb_bench_mqtt_parse(long_topic, sizeof(long_topic), &p), 5);
    assert_int_equal(tb_bench_mqtt_publish_payload(&p, &pl, &len), -1);
    const uint8_t suback[] = {0x90, 3, 0, 1, 0};
    assert_int_equal(tb_bench_mqtt_parse(suback, sizeof(suback), &p), 5);
    assert_int_equal(p.type, TB_BENCH_MQTT_SUBACK);
    assert_int_equal(tb_bench_mqtt_publish_payload(&p, &pl, &len), -1);
}

static void stamp_found_or_refused(void **state)
{
    (void)state;
    const char *ok = "{\"type\":\"telemetry\",\"payload\":{\"fields\":{\"bench_t\":123456789012,"
                     "\"v\":1}}}";
    uint64_t ns = 0;
    assert_int_equal(tb_bench_find_stamp((const uint8_t *)ok, strlen(ok), &ns), 0);
    assert_int_equal(ns, 123456789012ULL);
    const char *none = "{\"bench_x\":1}";
    assert_int_equal(tb_bench_find_stamp((const uint8_t *)none, strlen(none), &ns), -1);
    const char *str = "{\"bench_t\":\"12\"}";
    assert_int_equal(tb_bench_find_stamp((const uint8_t *)str, strlen(str), &ns), -1);
    const char *huge = "{\"bench_t\":123456789012345678901}";
    assert_int_equal(tb_bench_find_stamp((const uint8_t *)huge, strlen(huge), &ns), -1);
    /* the length bounds the search: a stamp past it is not seen */
    assert_int_equal(tb_bench_find_stamp((const uint8_t *)ok, 40, &ns), -1);
}

static void mix_parse_and_pick(void **state)
{
    (void)state;
    tb_bench_mix_t mix;
    assert_int_equal(tb_bench_mix_parse("device=60,group=30,global=10", &mix), 0);
    unsigned seen[3] = {0, 0, 0};
    for (uint64_t i = 1000; i < 1100; i++)
        seen[tb_bench_mix_pick(&mix, i)]++;
    assert_int_equal(seen[TB_BENCH_ROOM_DEVICE], 60);
    assert_int_equal(seen[TB_BENCH_ROOM_GROUP], 30);
    assert_int_equal(seen[TB_BENCH_ROOM_GLOBAL], 10);

    assert_int_equal(tb_bench_mix_parse("global=100", &mix), 0);
    assert_int_equal(tb_bench_mix_pick(&mix, 5), TB_BENCH_ROOM_GLOBAL);
    assert_int_equal(tb_bench_mix_parse("device=60,group=30", &mix), -1);
    assert_int_equal(tb_bench_mix_parse("device=60,room=40", &mix), -1);
    assert_int_equal(tb_bench_mix_parse("device=6x,global=94", &mix), -1);
    assert_int_equal(tb_bench_mix_parse("device=,global=100", &mix), -1);
    assert_int_equal(tb_bench_mix_parse("", &mix), -1);
}

static void hist_quantiles(void **state)
{
    (void)state;
    tb_bench_hist_t *h = tb_bench_hist_create();
    assert_non_null(h);
    assert_int_equal(tb_bench_hist_quantile(h, 0.5), 0);
    for (uint64_t v = 1; v <= 1000; v++)
        tb_bench_hist_record(h, v);
    assert_int_equal(tb_bench_hist_count(h), 1000);
    assert_int_equal(tb_bench_hist_quantile(h, 0.5), 500);
    assert_int_equal(tb_bench_hist_quantile(h, 0.99), 990);
    assert_int_equal(tb_bench_hist_quantile(h, 0.999), 999);
    assert_int_equal(tb_bench_hist_quantile(h, 1.0), 1000);
    tb_bench_hist_free(h);
}

static void hist_relative_precision(void **state)
{
    (void)state;
    tb_bench_hist_t *h = tb_bench_hist_create();
    assert_non_null(h);
    /* 99 fast values and one slow one: p99 is fast, p99.9 and max the slow one */
    for (int i = 0; i < 99; i++)
        tb_bench_hist_record(h, 250000);
    tb_bench_hist_record(h, 7000000123ULL);
    uint64_t p50 = tb_bench_hist_quantile(h, 0.5);
    assert_true(p50 >= 250000 && p50 <= 250000 + 250000 / 1024);
    assert_true(tb_bench_hist_quantile(h, 0.99) == p50);
    assert_int_equal(tb_bench_hist_quantile(h, 0.999), 7000000123ULL);
    assert_int_equal(tb_bench_hist_max(h), 7000000123ULL);
    /* beyond the range: counted, max exact */
    tb_bench_hist_record(h, UINT64_MAX);
    assert_int_equal(tb_bench_hist_quantile(h, 1.0), UINT64_MAX);
    tb_bench_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ws_parse_short_text),
        cmocka_unit_test(ws_parse_extended_lengths),
        cmocka_unit_test(ws_parse_rejects_malformed),
        cmocka_unit_test(ws_encode_masks_with_zero_key),
        cmocka_unit_test(mqtt_connect_and_subscribe_bytes),
        cmocka_unit_test(mqtt_parse_publish),
        cmocka_unit_test(mqtt_parse_rejects_malformed),
        cmocka_unit_test(stamp_found_or_refused),
        cmocka_unit_test(mix_parse_and_pick),
        cmocka_unit_test(hist_quantiles),
        cmocka_unit_test(hist_relative_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
