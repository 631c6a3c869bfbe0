/* Tests for the history ring: lookup by seq, wrap-around, coverage, references, holes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "telebridge/history.h"

static tb_frame_t *frame(uint64_t seq)
{
    tb_frame_t *f = tb_frame_new("{}", 2, TB_FRAME_TELEMETRY, seq);
    assert_non_null(f);
    return f;
}

static void test_get_returns_frame_and_rooms(void **state)
{
    (void)state;
    tb_history_t *h = tb_history_create(4);
    const char *rooms[] = {"device:a", "group:g", "global"};
    tb_frame_t *f = frame(1);
    assert_int_equal(tb_history_add(h, f, 1000, rooms, 3), 0);
    assert_int_equal(f->refs, 2);
    const char *packed;
    size_t n;
    assert_ptr_equal(tb_history_get(h, 1, &packed, &n), f);
    assert_int_equal(n, 3);
    assert_string_equal(packed, "device:a");
    assert_string_equal(packed + strlen(packed) + 1, "group:g");
    assert_null(tb_history_get(h, 2, &packed, &n));
    assert_null(tb_history_get(h, 0, &packed, &n));
    tb_frame_unref(f);
    tb_history_destroy(h);
}

/* Adding past the capacity drops the oldest (and its reference); coverage follows. */
static void test_wrap_drops_oldest(void **state)
{
    (void)state;
    tb_history_t *h = tb_history_create(4);
    const char *rooms[] = {"global"};
    tb_frame_t *first = frame(1);
    tb_history_add(h, first, 1000, rooms, 1);
    for (uint64_t s = 2; s <= 6; s++) {
        tb_frame_t *f = frame(s);
        tb_history_add(h, f, (int64_t)s * 1000, rooms, 1);
        tb_frame_unref(f);
    }
    assert_int_equal(first->refs, 1); /* the history let go of it */
    tb_frame_unref(first);
    const char *packed;
    size_t n;
    assert_int_equal(tb_history_count(h), 4);
    assert_null(tb_history_get(h, 2, &packed, &n));
    for (uint64_t s = 3; s <= 6; s++)
        assert_int_equal(tb_history_get(h, s, &packed, &n)->seq, s);
    assert_true(tb_history_covers(h, 2, 6));  /* 3..6 held */
    assert_false(tb_history_covers(h, 1, 6)); /* 2 is gone */
    assert_true(tb_history_covers(h, 6, 6));
    assert_false(tb_history_covers(h, 7, 6)); /* ahead of the bridge */
    tb_history_destroy(h);
}

/* A seq never added is a hole: NULL, without hiding its neighbours. */
static void test_holes_and_zero_capacity(void **state)
{
    (void)state;
    tb_history_t *h = tb_history_create(8);
    const char *rooms[] = {"global"};
    tb_frame_t *a = frame(1), *b = frame(3);
    tb_history_add(h, a, 1000, rooms, 1);
    tb_history_add(h, b, 3000, rooms, 1);
    const char *packed;
    size_t n;
    assert_null(tb_history_get(h, 2, &packed, &n));
    assert_non_null(tb_history_get(h, 3, &packed, &n));
    tb_history_destroy(h);
    assert_int_equal(a->refs, 1);
    tb_history_t *none = tb_history_create(0);
    assert_int_equal(tb_history_add(none, a, 1000, rooms, 1), 0);
    assert_int_equal(a->refs, 1);
    assert_null(tb_history_get(none, 1, &packed, &n));
    assert_true(tb_history_covers(none, 5, 5));
    assert_false(tb_history_covers(none, 4, 5));
    tb_history_destroy(none);
    tb_frame_unref(a);
    tb_frame_unref(b);
}

/* Recording times: the horizon follows what is dropped; seq_before finds where a time starts. */
static void test_times_and_horizon(void **state)
{
    (void)state;
    tb_history_t *h = tb_history_create(4);
    const char *rooms[] = {"global"};
    tb_history_set_horizon(h, 500);
    /* seqs 1..3 at 1000, 2000, 2000; seq 4 a hole; 5 at 4000 */
    const int64_t at[] = {0, 1000, 2000, 2000, 0, 4000};
    for (uint64_t s = 1; s <= 5; s++) {
        if (s == 4)
            continue;
        tb_frame_t *f = frame(s);
        assert_int_equal(tb_history_add(h, f, at[s], rooms, 1), 0);
        tb_frame_unref(f);
    }
    assert_true(tb_history_horizon(h) == 1000); /* seq 1 (slot of 5) was dropped */
    assert_true(tb_history_ms(h, 3) == 2000);
    assert_true(tb_history_ms(h, 4) == INT64_MIN);
    assert_true(tb_history_ms(h, 1) == INT64_MIN);
    assert_int_equal(tb_history_seq_before(h, 4000, 5), 3); /* 5 at or after, 3 before */
    assert_int_equal(tb_history_seq_before(h, 2000, 5), 1); /* 2, 3, 5; nothing older held */
    assert_int_equal(tb_history_seq_before(h, 4001, 5), 5); /* nothing at or after */
    assert_int_equal(tb_history_seq_before(h, 0, 5), 1);
    tb_history_set_horizon(h, 42);
    assert_true(tb_history_horizon(h) == 42);
    tb_history_destroy(h);
    tb_history_t *none = tb_history_create(0);
    assert_int_equal(tb_history_seq_before(none, 0, 7), 7);
    tb_history_destroy(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_returns_frame_and_rooms),
        cmocka_unit_test(test_wrap_drops_oldest),
        cmocka_unit_test(test_holes_and_zero_capacity),
        cmocka_unit_test(test_times_and_horizon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
