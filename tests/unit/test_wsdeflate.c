/* Unit tests for the shared permessage-deflate streams: round trips, no context takeover, the
 * inflate bound (decompression bombs), corrupt input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "telebridge/wsdeflate.h"

#define MAX_MESSAGE 8192
#define LEVEL 6
#define BOMB_BYTES (4u << 20)

static const char text[] = "{\"type\":\"telemetry\",\"room\":\"device:sensor-temp-001\","
                           "\"payload\":{\"fields\":{\"temperature\":21.5,\"humidity\":40}}}";

/* Compresses len bytes into a new buffer (the caller frees it). */
static unsigned char *compress_copy(tb_wsdeflate_t *z, const void *in, size_t len, size_t *n)
{
    const unsigned char *out;
    assert_int_equal(tb_wsdeflate_compress(z, in, len, &out, n), 0);
    unsigned char *copy = malloc(*n ? *n : 1);
    assert_non_null(copy);
    memcpy(copy, out, *n);
    return copy;
}

static void test_create_checks_its_arguments(void **state)
{
    (void)state;
    assert_null(tb_wsdeflate_create(0, 0, MAX_MESSAGE));
    assert_null(tb_wsdeflate_create(10, 0, MAX_MESSAGE));
    assert_null(tb_wsdeflate_create(LEVEL, 0, 0));
    tb_wsdeflate_destroy(NULL);
}

static void test_round_trip_without_the_tail(void **state)
{
    (void)state;
    tb_wsdeflate_t *z = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    assert_non_null(z);
    size_t n, got;
    const char *out;
    unsigned char *c = compress_copy(z, text, strlen(text), &n);
    assert_true(n > 0 && n < strlen(text));
    /* §7.2.1: the sync flush's 00 00 ff ff is not on the wire. */
    assert_false(n >= 4 && memcmp(c + n - 4, "\x00\x00\xff\xff", 4) == 0);
    /* §7.2.3.3: the stream ends in a final block, then the empty stored block's header octet. */
    assert_int_equal(c[n - 1], 0x00);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), 0);
    assert_int_equal(got, strlen(text));
    assert_memory_equal(out, text, got);
    free(c);
    tb_wsdeflate_destroy(z);
}

/*
 * in[0..len) inflated as an RFC 7692 receiver does (§7.2.2: 00 00 ff ff appended, raw
 * inflate with Z_SYNC_FLUSH), with zlib directly rather than this module, into a new buffer
 * of *got bytes (the caller frees it).
 */
static unsigned char *receiver_inflate(const unsigned char *in, size_t len, size_t cap, size_t *got)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(inflateInit2(&s, -15), Z_OK);
    unsigned char *msg = malloc(len + 4), *out = malloc(cap);
    assert_non_null(msg);
    assert_non_null(out);
    memcpy(msg, in, len);
    memcpy(msg + len, "\x00\x00\xff\xff", 4);
    s.next_in = msg;
    s.avail_in = (uInt)(len + 4);
    s.next_out = out;
    s.avail_out = (uInt)cap;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    assert_true(rc == Z_OK || rc == Z_STREAM_END);
    *got = cap - s.avail_out;
    inflateEnd(&s);
    free(msg);
    return out;
}

/* Bytes that barely compress (a fixed xorshift sequence). */
static void fill_noise(unsigned char *p, size_t len)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/*
 * Compresses len bytes (noise from 40,000 on, else the envelope repeated) with z and inflates
 * them as a receiver does.
 */
static void receiver_round_trip(tb_wsdeflate_t *z, const char *envelope, size_t envlen, size_t len)
{
    size_t n, got;
    unsigned char *in = malloc(len);
    assert_non_null(in);
    if (len >= 40000)
        fill_noise(in, len);
    else
        for (size_t k = 0; k < len; k++)
            in[k] = (unsigned char)envelope[k % envlen];
    unsigned char *c = compress_copy(z, in, len, &n);
    assert_true(n > 1 && n < len + len / 8 + 64);
    unsigned char *out = receiver_inflate(c, n, len + 16, &got);
    assert_int_equal(got, len);
    assert_memory_equal(out, in, len);
    free(out);
    free(c);
    free(in);
}

/*
 * Server messages of several sizes (the default min_bytes, a telemetry envelope, 40 KB of
 * noise, past 64 KiB) inflate, as a receiver does it, to exactly what was compressed.
 */
static void test_receivers_inflate_every_size(void **state)
{
    (void)state;
    static const size_t sizes[] = {128, 300, 40000, 65536 + 1000};
    static const char envelope[] = "{\"type\":\"telemetry\",\"room\":\"device:sensor-temp-001\","
                                   "\"payload\":{\"device_id\":\"sensor-temp-001\",";
    for (int level = 1; level <= 9; level += 4) {
        tb_wsdeflate_t *z = tb_wsdeflate_create(level, 0, MAX_MESSAGE);
        assert_non_null(z);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            receiver_round_trip(z, envelope, sizeof(envelope) - 1, sizes[i]);
        tb_wsdeflate_destroy(z);
    }
}

/* No context takeover: a message compressed after another inflates on its own. */
static void test_messages_are_independent(void **state)
{
    (void)state;
    tb_wsdeflate_t *tx = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    tb_wsdeflate_t *rx = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    assert_non_null(tx);
    assert_non_null(rx);
    size_t n1, n2, got;
    const char *out;
    unsigned char *c1 = compress_copy(tx, text, strlen(text), &n1);
    unsigned char *c2 = compress_copy(tx, text, strlen(text), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(c1, c2, n1); /* a second copy does not refer back to the first */
    assert_int_equal(tb_wsdeflate_inflate(rx, c2, n2, &out, &got), 0);
    assert_memory_equal(out, text, got);
    free(c1);
    free(c2);
    tb_wsdeflate_destroy(tx);
    tb_wsdeflate_destroy(rx);
}

static void test_inflate_is_bounded_by_the_message_limit(void **state)
{
    (void)state;
    tb_wsdeflate_t *z = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    assert_non_null(z);
    char *zeros = calloc(BOMB_BYTES, 1);
    assert_non_null(zeros);
    size_t n, got;
    const char *out;
    /* Exactly the limit inflates; one byte more does not. */
    unsigned char *c = compress_copy(z, zeros, MAX_MESSAGE, &n);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), 0);
    assert_int_equal(got, MAX_MESSAGE);
    free(c);
    c = compress_copy(z, zeros, MAX_MESSAGE + 1, &n);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), -E2BIG);
    free(c);
    /* A bomb: a few KB that would inflate to 4 MiB. */
    c = compress_copy(z, zeros, BOMB_BYTES, &n);
    assert_true(n < 8192);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), -E2BIG);
    free(c);
    free(zeros);
    /* The inflater serves the next message. */
    c = compress_copy(z, text, strlen(text), &n);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), 0);
    assert_memory_equal(out, text, got);
    free(c);
    tb_wsdeflate_destroy(z);
}

static void test_corrupt_input_is_refused(void **state)
{
    (void)state;
    tb_wsdeflate_t *z = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    assert_non_null(z);
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x07, 0x42};
    const char *out;
    size_t got, n;
    assert_int_equal(tb_wsdeflate_inflate(z, junk, sizeof(junk), &out, &got), -EINVAL);
    unsigned char *c = compress_copy(z, text, strlen(text), &n);
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), 0);
    assert_memory_equal(out, text, got);
    free(c);
    tb_wsdeflate_destroy(z);
}

static void test_worth_is_the_minimum_size(void **state)
{
    (void)state;
    tb_wsdeflate_t *z = tb_wsdeflate_create(LEVEL, 100, MAX_MESSAGE);
    assert_non_null(z);
    assert_false(tb_wsdeflate_worth(z, 99));
    assert_true(tb_wsdeflate_worth(z, 100));
    tb_wsdeflate_destroy(z);
}

static void test_offers(void **state)
{
    (void)state;
    unsigned bits = 0;
    /* What browsers, Node's ws and Python's websockets send. */
    assert_int_equal(tb_wsdeflate_offer("permessage-deflate", &bits), 0);
    assert_int_equal(bits, TB_WSDEFLATE_WINDOW_MAX);
    assert_int_equal(tb_wsdeflate_offer("permessage-deflate; client_max_window_bits", &bits), 0);
    assert_int_equal(bits, TB_WSDEFLATE_WINDOW_MAX);
    assert_int_equal(tb_wsdeflate_offer("x-webkit-deflate-frame, permessage-deflate;"
                                        " client_max_window_bits=12; server_max_window_bits=\"10\"",
                                        &bits),
                     0);
    assert_int_equal(bits, 10);
    assert_int_equal(tb_wsdeflate_offer("permessage-deflate; server_no_context_takeover;"
                                        "client_no_context_takeover ; server_max_window_bits=8",
                                        &bits),
                     0);
    assert_int_equal(bits, 8);
    /* Only the first offer counts. */
    assert_int_equal(tb_wsdeflate_offer("permessage-deflate; foo, permessage-deflate", &bits), -1);
    /* Declined: unknown, repeated, missing or stray values, out of range, no offer. */
    static const char *const bad[] = {
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=100",
        "permessage-deflate; client_no_context_takeover=1",
        "x-webkit-deflate-frame",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tb_wsdeflate_offer(bad[i], &bits), -1);
}

static void test_answers(void **state)
{
    (void)state;
    char buf[128];
    int n = tb_wsdeflate_answer(TB_WSDEFLATE_WINDOW_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "; server_no_context_takeover; client_no_context_takeover");
    assert_int_equal(n, strlen(buf));
    tb_wsdeflate_answer(10, buf, sizeof(buf));
    assert_string_equal(buf, "; server_no_context_takeover; client_no_context_takeover;"
                             " server_max_window_bits=10");
    assert_int_equal(tb_wsdeflate_answer(10, buf, 20), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_checks_its_arguments),
        cmocka_unit_test(test_round_trip_without_the_tail),
        cmocka_unit_test(test_receivers_inflate_every_size),
        cmocka_unit_test(test_messages_are_independent),
        cmocka_unit_test(test_inflate_is_bounded_by_the_message_limit),
        cmocka_unit_test(test_corrupt_input_is_refused),
        cmocka_unit_test(test_worth_is_the_minimum_size),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
