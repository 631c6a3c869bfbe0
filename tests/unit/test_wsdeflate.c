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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_checks_its_arguments),
        cmocka_unit_test(test_round_trip_without_the_tail),
        cmocka_unit_test(test_messages_are_independent),
        cmocka_unit_test(test_inflate_is_bounded_by_the_message_limit),
        cmocka_unit_test(test_corrupt_input_is_refused),
        cmocka_unit_test(test_worth_is_the_minimum_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
