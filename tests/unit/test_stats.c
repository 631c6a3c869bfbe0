/* Unit tests for stats: the reason lists, their names and the totals they feed. */
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
    for (int r = 1; r < TB_REFUSE_END; r++) {
        const char *name = tb_refuse_reason_name((tb_refuse_reason_t)r);
        assert_true(strlen(name) > 0);
        assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz_"), strlen(name));
        for (int k = 1; k < r; k++)
            assert_string_not_equal(name, tb_refuse_reason_name((tb_refuse_reason_t)k));
    }
    /* Every auth error and every ticket error is a refusal of the same name. */
    for (int e = TB_AUTH_E_MISSING; e >= TB_AUTH_E_NOMEM; e--)
        assert_string_equal(tb_refuse_reason_name(tb_refuse_from_auth(e)), tb_auth_err_reason(e));
    assert_int_equal(tb_refuse_from_auth(TB_AUTH_E_NOT_YET), TB_REFUSE_NOT_YET);
    assert_int_equal(tb_refuse_from_auth(1), TB_REFUSE_MALFORMED);
    assert_int_equal(tb_refuse_from_ticket(TB_TICKET_E_USED), TB_REFUSE_TICKET_USED);
    assert_int_equal(tb_refuse_from_ticket(TB_TICKET_E_EXPIRED), TB_REFUSE_TICKET_EXPIRED);
    assert_int_equal(tb_refuse_from_ticket(TB_TICKET_E_FULL), TB_REFUSE_TICKET_UNKNOWN);
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_NOT_YET), "not_yet_valid");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_TICKET_USED), "ticket_used");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_RATE_LIMITED), "rate_limited");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_URI_TOO_LONG), "uri_too_long");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_HEADERS_LARGE), "headers_too_large");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_TICKET_BUSY), "ticket_busy");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_END), "unknown");
    assert_string_equal(tb_refuse_reason_name(TB_REFUSE_NONE), "unknown");
    assert_string_equal(tb_refuse_reason_name((tb_refuse_reason_t)-1), "unknown");
    assert_string_equal(tb_refuse_class_name(TB_REFUSE_CLASS_FORBIDDEN_ORIGIN), "forbidden_origin");
    assert_string_equal(tb_refuse_class_name(TB_REFUSE_CLASS_END), "unknown");
    assert_string_equal(tb_invalid_reason_name(TB_INVALID_NOT_JSON), "not_json");
    assert_string_equal(tb_invalid_reason_name(TB_INVALID_NONE), "unknown");
    assert_string_equal(tb_drop_reason_name(TB_DROP_SEND_QUEUE_FULL), "send_queue_full");
}

static void test_refusals_feed_their_totals(void **state)
{
    static tb_stats_t s; /* zero-initialised, as stats.h asks */
    (void)state;
    for (int r = 1; r < TB_REFUSE_END; r++)
        tb_stats_refused(&s, (tb_refuse_reason_t)r);
    tb_stats_refused(&s, TB_REFUSE_EXPIRED);
    tb_stats_refused(&s, TB_REFUSE_END);  /* out of range: ignored */
    tb_stats_refused(&s, TB_REFUSE_NONE); /* no reason: ignored */
    assert_int_equal(s.handshake_refusals[0], 0);
    for (int r = 1; r < TB_REFUSE_END; r++)
        assert_int_equal(s.handshake_refusals[r], r == TB_REFUSE_EXPIRED ? 2 : 1);
    /* 10 JWT reasons (all but nomem, which is a 500) + 3 ticket reasons + the second expired;
     * ticket_busy (a 503) counts as over capacity. */
    assert_int_equal(s.handshake_failures[TB_REFUSE_CLASS_UNAUTHORIZED], 14);
    assert_int_equal(s.handshake_failures[TB_REFUSE_CLASS_FORBIDDEN_ORIGIN], 1);
    assert_int_equal(s.handshake_failures[TB_REFUSE_CLASS_OVER_CAPACITY], 2);
    assert_int_equal(s.handshake_failures[TB_REFUSE_CLASS_RATE_LIMITED], 1);
    assert_int_equal(s.handshake_failures[TB_REFUSE_CLASS_TOO_LARGE], 2); /* 414 and 431 */
    assert_int_equal(tb_stats_sum(s.handshake_failures, TB_REFUSE_CLASS_END), 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuse_names),
        cmocka_unit_test(test_refusals_feed_their_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
