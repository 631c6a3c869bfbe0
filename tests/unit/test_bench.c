/*
 * Unit tests for the bench's frame parsers, stamp, room mix, latency histogram and its
 * permessage-deflate client (RFC 7692: the answer's parameters, the inflater).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "bench_core.h"

#define NO_LIMIT UINT64_MAX

static void ws_parse_short_text(void **state)
{
    (void)state;
    const uint8_t buf[] = {0x81, 0x03, 'a', 'b', 'c', 0x89};
    tb_bench_ws_frame_t f;
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), NO_LIMIT, false, &f), 5);
    assert_true(f.fin);
    assert_int_equal(f.opcode, TB_BENCH_WS_TEXT);
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.payload, "abc", 3);
    /* the trailing byte is the start of a ping: incomplete */
    assert_int_equal(tb_bench_ws_parse(buf + 5, 1, NO_LIMIT, false, &f), 0);
}

static void ws_parse_extended_lengths(void **state)
{
    (void)state;
    uint8_t buf[300 + 4] = {0x82, 126, 0x01, 0x2C};
    memset(buf + 4, 'x', 300);
    tb_bench_ws_frame_t f;
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), NO_LIMIT, false, &f), 304);
    assert_int_equal(f.len, 300);
    assert_int_equal(f.opcode, TB_BENCH_WS_BINARY);
    for (size_t cut = 0; cut < sizeof(buf); cut++)
        assert_int_equal(tb_bench_ws_parse(buf, cut, NO_LIMIT, false, &f), 0);
    assert_int_equal(tb_bench_ws_parse(buf, sizeof(buf), 299, false, &f), -1);

    const uint8_t big[10] = {0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(tb_bench_ws_parse(big, sizeof(big), 1u << 20, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(big, sizeof(big), NO_LIMIT, false, &f), 0);
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
    assert_int_equal(tb_bench_ws_parse(rsv, sizeof(rsv), NO_LIMIT, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(masked, sizeof(masked), NO_LIMIT, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(opcode, sizeof(opcode), NO_LIMIT, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(long_ping, sizeof(long_ping), NO_LIMIT, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(split_close, sizeof(split_close), NO_LIMIT, false, &f), -1);
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

static void hist_walk_non_empty_buckets(void **state)
{
    (void)state;
    tb_bench_hist_t *h = tb_bench_hist_create();
    assert_non_null(h);
    size_t i = 0;
    uint64_t up = 0, n = 0;
    assert_false(tb_bench_hist_next(h, &i, &up, &n));
    tb_bench_hist_record(h, 5);
    tb_bench_hist_record(h, 5);
    tb_bench_hist_record(h, 250000);
    tb_bench_hist_record(h, 1ULL << 60); /* the overflow bucket: its bound is the maximum */
    assert_true(tb_bench_hist_next(h, &i, &up, &n));
    assert_int_equal(up, 5);
    assert_int_equal(n, 2);
    assert_true(tb_bench_hist_next(h, &i, &up, &n));
    assert_true(up >= 250000 && up <= 250000 + 250000 / 1024);
    assert_int_equal(n, 1);
    assert_true(tb_bench_hist_next(h, &i, &up, &n));
    assert_int_equal(up, 1ULL << 60);
    assert_int_equal(n, 1);
    assert_false(tb_bench_hist_next(h, &i, &up, &n));
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

static void ws_parse_rsv1_only_when_negotiated(void **state)
{
    (void)state;
    tb_bench_ws_frame_t f;
    const uint8_t text[] = {0xC1, 0x01, 'x'};
    const uint8_t binary_first[] = {0x42, 0x00};
    const uint8_t continuation[] = {0xC0, 0x00};
    const uint8_t ping[] = {0xC9, 0x00};
    const uint8_t rsv2[] = {0xA1, 0x00};
    assert_int_equal(tb_bench_ws_parse(text, sizeof(text), NO_LIMIT, false, &f), -1);
    assert_int_equal(tb_bench_ws_parse(text, sizeof(text), NO_LIMIT, true, &f), 3);
    assert_true(f.rsv1 && f.fin);
    assert_int_equal(tb_bench_ws_parse(binary_first, 2, NO_LIMIT, true, &f), 2);
    assert_true(f.rsv1 && !f.fin);
    assert_int_equal(tb_bench_ws_parse(continuation, 2, NO_LIMIT, true, &f), -1);
    assert_int_equal(tb_bench_ws_parse(ping, 2, NO_LIMIT, true, &f), -1);
    assert_int_equal(tb_bench_ws_parse(rsv2, 2, NO_LIMIT, true, &f), -1);
    const uint8_t plain[] = {0x81, 0x01, 'x'};
    assert_int_equal(tb_bench_ws_parse(plain, sizeof(plain), NO_LIMIT, true, &f), 3);
    assert_false(f.rsv1);
}

static void number_found_or_refused(void **state)
{
    (void)state;
    const char msg[] = "{\"type\":\"telemetry\",\"seq\":42}";
    uint64_t v = 0;
    assert_int_equal(tb_bench_find_number((const uint8_t *)msg, strlen(msg), "\"seq\":", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(tb_bench_find_number((const uint8_t *)msg, strlen(msg), "\"id\":", &v), -1);
    const char bad[] = "{\"seq\":\"x\"}";
    assert_int_equal(tb_bench_find_number((const uint8_t *)bad, strlen(bad), "\"seq\":", &v), -1);
}

static int device_of(const char *msg, unsigned *run, unsigned *dev)
{
    return tb_bench_find_device((const uint8_t *)msg, strlen(msg), run, dev);
}

static void device_found_or_refused(void **state)
{
    (void)state;
    unsigned run = 0, dev = 0;
    assert_int_equal(
        device_of("{\"payload\":{\"device_id\":\"r123456d78\",\"x\":1},\"seq\":3}", &run, &dev), 0);
    assert_int_equal(run, 123456);
    assert_int_equal(dev, 78);
    static const char *const bad[] = {
        "{\"payload\":{\"value\":1}}",       "{\"device_id\":\"sensor-1\"}",
        "{\"device_id\":\"r12x3\"}",         "{\"device_id\":\"r12d\"}",
        "{\"device_id\":\"rd3\"}",           "{\"device_id\":\"r1d3-idle\"}",
        "{\"device_id\":\"r1234567890d1\"}", "{\"device_id\":\"r1d2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(device_of(bad[i], &run, &dev), -1);
}

/* The answer head with one extra header line `ext` (NULL: none). */
static int pmd(const char *ext, tb_bench_pmd_t *p)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n%s%s%s\r\n",
                     ext ? "Sec-WebSocket-Extensions: " : "", ext ? ext : "", ext ? "\r\n" : "");
    return tb_bench_pmd_answer(head, (size_t)n, p);
}

static void pmd_answer_parameters(void **state)
{
    (void)state;
    tb_bench_pmd_t p;
    assert_int_equal(pmd(NULL, &p), 0);
    assert_int_equal(pmd("permessage-deflate", &p), 1);
    assert_false(p.server_no_context_takeover);
    assert_false(p.client_no_context_takeover);
    assert_int_equal(p.server_max_window_bits, 15);
    assert_int_equal(p.client_max_window_bits, 15);
    assert_int_equal(pmd("permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover",
                         &p),
                     1);
    assert_true(p.server_no_context_takeover && p.client_no_context_takeover);
    assert_int_equal(
        pmd("permessage-deflate;client_max_window_bits=10; server_max_window_bits=\"9\"", &p), 1);
    assert_int_equal(p.client_max_window_bits, 10);
    assert_int_equal(p.server_max_window_bits, 9);
    assert_false(p.server_no_context_takeover);
    /* header names are case-insensitive */
    const char head[] = "HTTP/1.1 101 x\r\nsec-websocket-extensions: Permessage-Deflate\r\n\r\n";
    assert_int_equal(tb_bench_pmd_answer(head, sizeof(head) - 1, &p), 1);
}

static void pmd_answer_refused(void **state)
{
    (void)state;
    tb_bench_pmd_t p;
    assert_int_equal(pmd("x-webkit-deflate-frame", &p), -1);
    assert_int_equal(pmd("permessage-deflate, permessage-deflate", &p), -1);
    assert_int_equal(pmd("permessage-deflate; unknown_param", &p), -1);
    assert_int_equal(pmd("permessage-deflate; server_no_context_takeover; "
                         "server_no_context_takeover",
                         &p),
                     -1);
    assert_int_equal(pmd("permessage-deflate; server_no_context_takeover=1", &p), -1);
    assert_int_equal(pmd("permessage-deflate; client_max_window_bits", &p), -1);
    assert_int_equal(pmd("permessage-deflate; server_max_window_bits=7", &p), -1);
    assert_int_equal(pmd("permessage-deflate; server_max_window_bits=16", &p), -1);
    assert_int_equal(pmd("permessage-deflate; server_max_window_bits=09", &p), -1);
}

/*
 * Compresses msgs[0..n) as a permessage-deflate server does: raw DEFLATE, Z_SYNC_FLUSH per
 * message, the trailing 00 00 ff ff removed; one stream (context takeover) unless reset.
 * Message k's bytes go to out[k], its length to len[k].
 */
static void deflate_messages(const char *const *msgs, size_t n, bool reset, uint8_t out[][256],
                             size_t *len)
{
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    for (size_t k = 0; k < n; k++) {
        zs.next_in = (Bytef *)(uintptr_t)msgs[k];
        zs.avail_in = (uInt)strlen(msgs[k]);
        zs.next_out = out[k];
        zs.avail_out = 256;
        assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
        len[k] = 256 - zs.avail_out;
        assert_true(len[k] > 4);
        assert_memory_equal(out[k] + len[k] - 4, "\x00\x00\xff\xff", 4);
        len[k] -= 4;
        if (reset)
            deflateReset(&zs);
    }
    deflateEnd(&zs);
}

static const char *const MSGS[] = {
    "{\"type\":\"telemetry\",\"room\":\"global\",\"payload\":{\"temperature\":21.5},\"seq\":1}",
    "{\"type\":\"telemetry\",\"room\":\"global\",\"payload\":{\"temperature\":21.5},\"seq\":2}",
};

static void inflate_without_context_takeover(void **state)
{
    (void)state;
    uint8_t z[2][256], out[256];
    size_t zlen[2], n;
    deflate_messages(MSGS, 2, true, z, zlen);
    tb_bench_inflater_t *inf = tb_bench_inflater_create();
    assert_non_null(inf);
    /* each message alone, in any order, through one inflater reset in between */
    for (int k = 1; k >= 0; k--) {
        assert_int_equal(tb_bench_inflate(inf, z[k], zlen[k], false, out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(MSGS[k]));
        assert_memory_equal(out, MSGS[k], n);
    }
    tb_bench_inflater_free(inf);
}

static void inflate_keeps_window_with_context_takeover(void **state)
{
    (void)state;
    uint8_t z[2][256], out[256];
    size_t zlen[2], n;
    deflate_messages(MSGS, 2, false, z, zlen);
    /* the second message refers back to the first: much shorter than it */
    assert_true(zlen[1] < zlen[0] / 2);
    tb_bench_inflater_t *inf = tb_bench_inflater_create();
    assert_non_null(inf);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tb_bench_inflate(inf, z[k], zlen[k], true, out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(MSGS[k]));
        assert_memory_equal(out, MSGS[k], n);
    }
    /* a fresh window cannot resolve the second message's back-references */
    tb_bench_inflater_t *fresh = tb_bench_inflater_create();
    assert_non_null(fresh);
    int rc = tb_bench_inflate(fresh, z[1], zlen[1], false, out, sizeof(out), &n);
    assert_true(rc == -1 || n != strlen(MSGS[1]) || memcmp(out, MSGS[1], n) != 0);
    tb_bench_inflater_free(fresh);
    tb_bench_inflater_free(inf);
}

static void inflate_bounded_and_checked(void **state)
{
    (void)state;
    uint8_t z[2][256], out[256];
    size_t zlen[2], n;
    deflate_messages(MSGS, 1, true, z, zlen);
    tb_bench_inflater_t *inf = tb_bench_inflater_create();
    assert_non_null(inf);
    size_t want = strlen(MSGS[0]);
    /* one byte short of the message: refused; exactly its size: inflated */
    assert_int_equal(tb_bench_inflate(inf, z[0], zlen[0], false, out, want - 1, &n), -2);
    assert_int_equal(tb_bench_inflate(inf, z[0], zlen[0], false, out, want, &n), 0);
    assert_int_equal(n, want);
    /* a reserved block type (BTYPE 11) is not DEFLATE; the inflater is usable afterwards */
    const uint8_t bad[] = {0x07, 0x00};
    assert_int_equal(tb_bench_inflate(inf, bad, sizeof(bad), false, out, sizeof(out), &n), -1);
    assert_int_equal(tb_bench_inflate(inf, z[0], zlen[0], false, out, sizeof(out), &n), 0);
    assert_memory_equal(out, MSGS[0], want);
    /* a bomb: 1 MiB of zeros in a few hundred bytes, into a 64 KiB bound */
    static uint8_t zeros[1 << 20], bomb[4096], big[1 << 16];
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = zeros;
    zs.avail_in = sizeof(zeros);
    zs.next_out = bomb;
    zs.avail_out = sizeof(bomb);
    assert_int_equal(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t blen = sizeof(bomb) - zs.avail_out - 4;
    deflateEnd(&zs);
    assert_int_equal(tb_bench_inflate(inf, bomb, blen, false, big, sizeof(big), &n), -2);
    tb_bench_inflater_free(inf);
}

static void zcache_keyed_by_exact_bytes(void **state)
{
    (void)state;
    tb_bench_zcache_t *c = tb_bench_zcache_create(4, 16);
    assert_non_null(c);
    size_t n = 0;
    const uint8_t a[] = {1, 2, 3}, b[] = {1, 2, 4}, big[17] = {0};
    assert_null(tb_bench_zcache_get(c, a, sizeof(a), &n));
    tb_bench_zcache_put(c, a, sizeof(a), (const uint8_t *)"hello", 5);
    const uint8_t *out = tb_bench_zcache_get(c, a, sizeof(a), &n);
    assert_non_null(out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    /* one byte different, or a prefix: not the same message */
    assert_null(tb_bench_zcache_get(c, b, sizeof(b), &n));
    assert_null(tb_bench_zcache_get(c, a, 2, &n));
    /* over max_len: never kept */
    tb_bench_zcache_put(c, big, sizeof(big), (const uint8_t *)"x", 1);
    assert_null(tb_bench_zcache_get(c, big, sizeof(big), &n));
    /* a second entry in the same slot replaces the first; a slot count of 1 forces it */
    tb_bench_zcache_t *one = tb_bench_zcache_create(1, 16);
    assert_non_null(one);
    tb_bench_zcache_put(one, a, sizeof(a), (const uint8_t *)"A", 1);
    tb_bench_zcache_put(one, b, sizeof(b), (const uint8_t *)"B", 1);
    assert_null(tb_bench_zcache_get(one, a, sizeof(a), &n));
    out = tb_bench_zcache_get(one, b, sizeof(b), &n);
    assert_non_null(out);
    assert_memory_equal(out, "B", 1);
    tb_bench_zcache_free(one);
    tb_bench_zcache_free(c);
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
        cmocka_unit_test(hist_walk_non_empty_buckets),
        cmocka_unit_test(ws_parse_rsv1_only_when_negotiated),
        cmocka_unit_test(number_found_or_refused),
        cmocka_unit_test(device_found_or_refused),
        cmocka_unit_test(pmd_answer_parameters),
        cmocka_unit_test(pmd_answer_refused),
        cmocka_unit_test(inflate_without_context_takeover),
        cmocka_unit_test(inflate_keeps_window_with_context_takeover),
        cmocka_unit_test(inflate_bounded_and_checked),
        cmocka_unit_test(zcache_keyed_by_exact_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
