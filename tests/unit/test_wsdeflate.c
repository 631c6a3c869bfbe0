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
    assert_int_equal(tb_wsdeflate_inflate(z, c, n, &out, &got), 0);
    assert_int_equal(got, strlen(text));
    assert_memory_equal(out, text, got);
    free(c);
    tb_wsdeflate_destroy(z);
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
        cmocka_unit_test(test_messages_are_independent),
        cmocka_unit_test(test_inflate_is_bounded_by_the_message_limit),
        cmocka_unit_test(test_corrupt_input_is_refused),
        cmocka_unit_test(test_worth_is_the_minimum_size),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
