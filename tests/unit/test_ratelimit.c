/* Unit tests for ratelimit (per-key token buckets). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/ratelimit.h"

#define T0 1000000

/* Events allowed for key at now_ms out of n tries. */
static int allowed(tb_ratelimit_t *rl, const char *key, int64_t now_ms, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += tb_ratelimit_allow(rl, key, now_ms);
    return ok;
}

static void test_bad_parameters(void **state)
{
    (void)state;
    assert_null(tb_ratelimit_create(0, 5, 16));
    assert_null(tb_ratelimit_create(1, -1, 16));
    assert_null(tb_ratelimit_create(1, 1, 0));
    tb_ratelimit_destroy(NULL);
}

static void test_burst_then_refill(void **state)
{
    tb_ratelimit_t *rl = tb_ratelimit_create(2, 5, 16);
    (void)state;
    assert_int_equal(allowed(rl, "10.0.0.1", T0, 10), 5);
    /* 2 per second: one token every 500 ms, none before. */
    assert_int_equal(allowed(rl, "10.0.0.1", T0 + 499, 3), 0);
    assert_int_equal(allowed(rl, "10.0.0.1", T0 + 500, 3), 1);
    assert_int_equal(allowed(rl, "10.0.0.1", T0 + 1500, 3), 2);
    /* A long pause refills to the burst, never beyond. */
    assert_int_equal(allowed(rl, "10.0.0.1", T0 + 3600000, 10), 5);
    tb_ratelimit_destroy(rl);
}

static void test_burst_zero_means_rate(void **state)
{
    tb_ratelimit_t *rl = tb_ratelimit_create(3, 0, 16);
    (void)state;
    assert_int_equal(allowed(rl, "a", T0, 10), 3);
    assert_int_equal(allowed(rl, "a", T0 + 1000, 10), 3);
    tb_ratelimit_destroy(rl);
}

static void test_keys_are_independent(void **state)
{
    tb_ratelimit_t *rl = tb_ratelimit_create(1, 2, 16);
    (void)state;
    assert_int_equal(allowed(rl, "::1", T0, 5), 2);
    assert_int_equal(allowed(rl, "::2", T0, 5), 2);
    assert_int_equal(allowed(rl, "::1", T0, 5), 0);
    assert_int_equal(tb_ratelimit_keys(rl), 2);
    tb_ratelimit_destroy(rl);
}

static void test_clock_going_back_adds_nothing(void **state)
{
    tb_ratelimit_t *rl = tb_ratelimit_create(10, 1, 4);
    (void)state;
    assert_int_equal(allowed(rl, "k", T0, 1), 1);
    assert_int_equal(allowed(rl, "k", T0 - 100000, 1), 0);
    assert_int_equal(allowed(rl, "k", T0 + 100, 1), 1);
    tb_ratelimit_destroy(rl);
}

static void test_huge_rate_and_burst_do_not_overflow(void **state)
{
    tb_ratelimit_t *rl = tb_ratelimit_create(INT_MAX, INT_MAX, 4);
    (void)state;
    assert_int_equal(allowed(rl, "k", 0, 100), 100);
    assert_int_equal(allowed(rl, "k", INT64_MAX / 2, 100), 100);
    tb_ratelimit_destroy(rl);
}

static void test_full_table_evicts_a_full_bucket_first(void **state)
{
    char key[16];
    tb_ratelimit_t *rl = tb_ratelimit_create(1, 2, 4);
    (void)state;
    /* k0 is idle with a full bucket; k1..k3 are drained. */
    assert_true(tb_ratelimit_allow(rl, "k0", T0));
    for (int i = 1; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(allowed(rl, key, T0 + 1000, 3), 2);
    }
    /* At T0 + 1000 k0 has refilled to full: the newcomer takes its slot. */
    assert_int_equal(allowed(rl, "new", T0 + 1000, 3), 2);
    assert_int_equal(tb_ratelimit_keys(rl), 4);
    /* The drained buckets were kept: they are still empty. */
    for (int i = 1; i < 4; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_false(tb_ratelimit_allow(rl, key, T0 + 1000));
    }
    tb_ratelimit_destroy(rl);
}

static void test_full_table_evicts_the_idlest_otherwise(void **state)
{
    char key[16];
    tb_ratelimit_t *rl = tb_ratelimit_create(1, 5, 3);
    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(allowed(rl, key, T0 + i * 10, 5), 5);
    }
    assert_int_equal(allowed(rl, "new", T0 + 100, 5), 5);
    assert_int_equal(tb_ratelimit_keys(rl), 3);
    /* k0 (idle longest) was forgotten and starts full again; k1 and k2 are still drained. */
    assert_int_equal(allowed(rl, "k2", T0 + 100, 1), 0);
    assert_int_equal(allowed(rl, "k1", T0 + 100, 1), 0);
    tb_ratelimit_destroy(rl);
}

static void test_long_keys_are_cut(void **state)
{
    char a[TB_RATELIMIT_KEY_MAX + 10], b[TB_RATELIMIT_KEY_MAX + 10];
    tb_ratelimit_t *rl = tb_ratelimit_create(1, 1, 4);
    (void)state;
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[sizeof(b) - 2] = 'y'; /* differs only past the kept length */
    assert_true(tb_ratelimit_allow(rl, a, T0));
    assert_false(tb_ratelimit_allow(rl, b, T0));
    assert_int_equal(tb_ratelimit_keys(rl), 1);
    tb_ratelimit_destroy(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_burst_zero_means_rate),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_clock_going_back_adds_nothing),
        cmocka_unit_test(test_huge_rate_and_burst_do_not_overflow),
        cmocka_unit_test(test_full_table_evicts_a_full_bucket_first),
        cmocka_unit_test(test_full_table_evicts_the_idlest_otherwise),
        cmocka_unit_test(test_long_keys_are_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
