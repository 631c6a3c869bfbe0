/* Unit tests for stats: handshake refusal reasons, their names and the totals they feed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/auth.h"
#include "telebridge/stats.h"

static void test_refuse_names(void **state)
{
    (void)state;
    for (int r = 0; r < TB_REFUSE_N; r++) {
        const char *name = tb_refuse_reason_name((tb_refuse_reason_t)r);
        assert_true(strlen(name) > 0);
        assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz_"), strlen(name));
        for (int k = 0; k < r; k++)
            assert_string_not_equal(name, tb_refuse_reason_name((tb_refuse_reason_t)k));
    }
    /* The first reasons mirror the auth errors, name for name. */
    for (int r = TB_REFUSE_MISSING; r <= TB_REFUSE_NOMEM; r++)
        assert_string_equal(tb_refuse_reason_name((tb_refuse_reason_t)r),
                            tb_auth_err_reason(-(r + 1)));
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_TICKET_USED), "ticket_used");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_RATE_LIMITED), "rate_limited");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_URI_TOO_LONG), "uri_too_long");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_HEADERS_LARGE), "headers_too_large");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_N), "unknown");
    assert_string_equal(tb_refuse_reason_name((tb_refuse_reason_t)-1), "unknown");
}

static void test_refusals_feed_their_totals(void **state)
{
    static tb_stats_t s; /* zero-initialised, as stats.h asks */
    (void)state;
    for (int r = 0; r < TB_REFUSE_N; r++)
        tb_stats_refused(&s, (tb_refuse_reason_t)r);
    tb_stats_refused(&s, TB_REFUSE_EXPIRED);
    tb_stats_refused(&s, TB_REFUSE_N); /* out of range: ignored */
    for (int r = 0; r < TB_REFUSE_N; r++)
        assert_int_equal(s.handshakes_refused[r], r == TB_REFUSE_EXPIRED ? 2 : 1);
    /* 10 JWT reasons (all but nomem, which is a 500) + 3 ticket reasons + the second expired. */
    assert_int_equal(s.handshakes_unauthorized, 14);
    assert_int_equal(s.handshakes_forbidden_origin, 1);
    assert_int_equal(s.handshakes_over_capacity, 1);
    assert_int_equal(s.handshakes_rate_limited, 1);
    assert_int_equal(s.handshakes_too_large, 2); /* 414 and 431 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuse_names),
        cmocka_unit_test(test_refusals_feed_their_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
