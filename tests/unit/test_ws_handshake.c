/*
 * Tests for the handshake policy's pure parts (src/ws_handshake.c, declared in
 * src/ws_internal.h): the Content-Length parse, the Bearer credential, the request size limits
 * and the refusal each failure maps to (docs/security.md → Abuse, docs/protocol.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/http_api.h"
#include "ws_internal.h"

static int parse(const char *s, uint64_t *out)
{
    return tb_ws_handshake_content_length(s, strlen(s), out);
}

static void test_content_length_decimal(void **state)
{
    (void)state;
    uint64_t n = 99;
    assert_int_equal(parse("0", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(parse("65536", &n), 0);
    assert_int_equal(n, TB_HTTP_BODY_MAX);
    assert_int_equal(parse("0000000000000000012", &n), 0);
    assert_int_equal(n, 12);
}

static void test_content_length_refuses_non_digits(void **state)
{
    (void)state;
    uint64_t n;
    assert_int_equal(parse("", &n), -1);
    assert_int_equal(parse("-1", &n), -1);
    assert_int_equal(parse("+5", &n), -1);
    assert_int_equal(parse(" 5", &n), -1);
    assert_int_equal(parse("5 ", &n), -1);
    assert_int_equal(parse("0x10", &n), -1);
    assert_int_equal(parse("1e3", &n), -1);
}

/* A length past the body limit saturates above it: no digit string wraps to a small value. */
static void test_content_length_saturates(void **state)
{
    (void)state;
    uint64_t n;
    assert_int_equal(parse("65537", &n), 0);
    assert_true(n > TB_HTTP_BODY_MAX);
    assert_int_equal(parse("18446744073709551617", &n), 0); /* 2^64 + 1: 20 digits */
    assert_true(n > TB_HTTP_BODY_MAX);
    assert_int_equal(parse("99999999999999999999", &n), 0);
    assert_true(n > TB_HTTP_BODY_MAX);
    assert_int_equal(parse("100000000000000000000", &n), -1); /* 21 digits */
}

static void test_bearer(void **state)
{
    (void)state;
    const char *h = "Bearer abc.def";
    assert_ptr_equal(tb_ws_handshake_bearer(h), h + 7);
    assert_string_equal(tb_ws_handshake_bearer("bearer xyz"), "xyz");
    assert_string_equal(tb_ws_handshake_bearer("BEARER    xyz"), "xyz");
    assert_string_equal(tb_ws_handshake_bearer("Bearer a b"), "a b");
}

static void test_bearer_none(void **state)
{
    (void)state;
    assert_null(tb_ws_handshake_bearer(""));
    assert_null(tb_ws_handshake_bearer("Bearer"));
    assert_null(tb_ws_handshake_bearer("Bearer "));
    assert_null(tb_ws_handshake_bearer("Bearer    "));
    assert_null(tb_ws_handshake_bearer("Basic dXNlcjpwdw=="));
    assert_null(tb_ws_handshake_bearer("Bearerxyz"));
    assert_null(tb_ws_handshake_bearer(" Bearer xyz"));
}

/* The URI is path + "?" + query; "?" is not in args_len, which lws reports as <= 0 for none. */
static void test_oversize(void **state)
{
    (void)state;
    assert_int_equal(tb_ws_handshake_oversize(3, 0, 100), TB_REFUSE_NONE);
    assert_int_equal(tb_ws_handshake_oversize(3, -1, 100), TB_REFUSE_NONE);
    assert_int_equal(tb_ws_handshake_oversize(HTTP_URI_MAX, 0, 0), TB_REFUSE_NONE);
    assert_int_equal(tb_ws_handshake_oversize(HTTP_URI_MAX + 1, 0, 0), TB_REFUSE_URI_TOO_LONG);
    assert_int_equal(tb_ws_handshake_oversize(3, HTTP_URI_MAX - 4, 0), TB_REFUSE_NONE);
    assert_int_equal(tb_ws_handshake_oversize(3, HTTP_URI_MAX - 3, 0), TB_REFUSE_URI_TOO_LONG);
    assert_int_equal(tb_ws_handshake_oversize(3, 0, HTTP_HEADERS_MAX), TB_REFUSE_NONE);
    assert_int_equal(tb_ws_handshake_oversize(3, 0, HTTP_HEADERS_MAX + 1), TB_REFUSE_HEADERS_LARGE);
    /* Both over: the URI is named. */
    assert_int_equal(tb_ws_handshake_oversize(HTTP_URI_MAX + 1, 0, HTTP_HEADERS_MAX + 1),
                     TB_REFUSE_URI_TOO_LONG);
}

static void test_size_refusal(void **state)
{
    (void)state;
    tb_ws_refusal_t r = tb_ws_handshake_size_refusal(TB_REFUSE_URI_TOO_LONG);
    assert_int_equal(r.status, TB_HTTP_URI_TOO_LONG);
    assert_string_equal(r.code, "uri_too_long");
    assert_int_equal(r.reason, TB_REFUSE_URI_TOO_LONG);
    r = tb_ws_handshake_size_refusal(TB_REFUSE_HEADERS_LARGE);
    assert_int_equal(r.status, TB_HTTP_HEADERS_TOO_LARGE);
    assert_string_equal(r.code, "headers_too_large");
    assert_int_equal(r.reason, TB_REFUSE_HEADERS_LARGE);
}

/* Every ticket failure is 401 invalid_ticket (which one is counted, not told). */
static void test_ticket_refusal(void **state)
{
    (void)state;
    static const struct {
        int rc;
        tb_refuse_reason_t reason;
    } cases[] = {
        {TB_TICKET_E_UNKNOWN, TB_REFUSE_TICKET_UNKNOWN},
        {TB_TICKET_E_USED, TB_REFUSE_TICKET_USED},
        {TB_TICKET_E_EXPIRED, TB_REFUSE_TICKET_EXPIRED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_ws_refusal_t r = tb_ws_handshake_ticket_refusal(cases[i].rc);
        assert_int_equal(r.status, TB_HTTP_UNAUTHORIZED);
        assert_string_equal(r.code, "invalid_ticket");
        assert_int_equal(r.reason, cases[i].reason);
    }
}

/* A token's failure is 401 with the code the client may know; out of memory is a 500. */
static void test_auth_refusal(void **state)
{
    (void)state;
    static const struct {
        int rc;
        int status;
        const char *code;
        tb_refuse_reason_t reason;
    } cases[] = {
        {TB_AUTH_E_MISSING, TB_HTTP_UNAUTHORIZED, "missing_token", TB_REFUSE_MISSING},
        {TB_AUTH_E_MALFORMED, TB_HTTP_UNAUTHORIZED, "invalid_token", TB_REFUSE_MALFORMED},
        {TB_AUTH_E_SIGNATURE, TB_HTTP_UNAUTHORIZED, "invalid_token", TB_REFUSE_SIGNATURE},
        {TB_AUTH_E_EXPIRED, TB_HTTP_UNAUTHORIZED, "token_expired", TB_REFUSE_EXPIRED},
        {TB_AUTH_E_AUDIENCE, TB_HTTP_UNAUTHORIZED, "invalid_token", TB_REFUSE_AUDIENCE},
        {TB_AUTH_E_NOMEM, TB_HTTP_SERVER_ERROR, "server_error", TB_REFUSE_NOMEM},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_ws_refusal_t r = tb_ws_handshake_auth_refusal(cases[i].rc);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(r.code, cases[i].code);
        assert_int_equal(r.reason, cases[i].reason);
    }
}

static void test_ws_paths(void **state)
{
    (void)state;
    assert_true(tb_ws_handshake_is_ws_path("/ws"));
    assert_true(tb_ws_handshake_is_ws_path("/api/v1/ws"));
    assert_false(tb_ws_handshake_is_ws_path("/ws/"));
    assert_false(tb_ws_handshake_is_ws_path("/"));
    assert_false(tb_ws_handshake_is_ws_path("/api/v1/ws/stats"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_decimal),
        cmocka_unit_test(test_content_length_refuses_non_digits),
        cmocka_unit_test(test_content_length_saturates),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_bearer_none),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_size_refusal),
        cmocka_unit_test(test_ticket_refusal),
        cmocka_unit_test(test_auth_refusal),
        cmocka_unit_test(test_ws_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
