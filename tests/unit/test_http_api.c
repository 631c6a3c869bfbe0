/* Unit tests for http_api's POST side: routing, the Bearer and JSON helpers, the ticket route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>

#include "telebridge/http_api.h"
#include "telebridge/util.h"

#define SECRET "http-api-test-secret-0123456789abcdef"
#define TICKETS 2

typedef struct {
    tb_config_t cfg;
    tb_auth_t *auth;
    tb_http_ctx_t ctx;
    char *token;
} fixture_t;

static char *mint(const char *sub, long exp_in)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET));
    jwt_add_grant(jwt, "sub", sub);
    jwt_add_grant_int(jwt, "exp", (long)(tb_now_ms() / 1000) + exp_in);
    char *tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    assert_non_null(tok);
    return tok;
}

static int setup(void **state)
{
    char err[TB_CONFIG_ERR_LEN];
    fixture_t *f = calloc(1, sizeof(*f));
    setenv(TB_AUTH_SECRET_ENV, SECRET, 1);
    assert_int_equal(tb_config_defaults(&f->cfg), 0);
    f->auth = tb_auth_create(&f->cfg.auth, err);
    assert_non_null(f->auth);
    f->ctx =
        (tb_http_ctx_t){.cfg = &f->cfg, .auth = f->auth, .tickets = tb_tickets_create(TICKETS)};
    f->token = mint("webby", 3600);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tb_tickets_destroy(f->ctx.tickets);
    tb_auth_destroy(f->auth);
    tb_config_free(&f->cfg);
    free(f->token);
    free(f);
    return 0;
}

/* POSTs to path; returns the status and checks {"error": code} when code is not NULL. */
static int post(fixture_t *f, const char *path, const char *bearer, const char *code, json_t **out)
{
    json_t *body = NULL;
    tb_http_req_t req = {.path = path, .bearer = bearer, .now_ms = tb_now_ms()};
    int status = tb_http_post(&f->ctx, &req, &body);
    assert_non_null(body);
    if (code)
        assert_string_equal(json_string_value(json_object_get(body, "error")), code);
    if (out)
        *out = body;
    else
        json_decref(body);
    return status;
}

static void test_routing(void **state)
{
    fixture_t *f = *state;
    json_t *body = NULL;
    assert_int_equal(post(f, "/api/v1/nothing", f->token, "not_found", NULL), 404);
    assert_int_equal(post(f, "/api/v1/ws/ticket/", f->token, "not_found", NULL), 404);
    assert_int_equal(tb_http_get(&f->ctx, "/api/v1/ws/ticket", &body), 405);
    assert_string_equal(json_string_value(json_object_get(body, "error")), "method_not_allowed");
    json_decref(body);
}

static void test_ticket_route(void **state)
{
    fixture_t *f = *state;
    json_t *body = NULL;
    tb_grant_t *g = NULL;
    assert_int_equal(post(f, "/api/v1/ws/ticket", NULL, "missing_token", NULL), 401);
    assert_int_equal(post(f, "/api/v1/ws/ticket", "a.b.c", "invalid_token", NULL), 401);
    char *old = mint("webby", -3600);
    assert_int_equal(post(f, "/api/v1/ws/ticket", old, "token_expired", NULL), 401);
    free(old);
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, NULL, &body), 200);
    const char *t = json_string_value(json_object_get(body, "ticket"));
    assert_non_null(t);
    assert_int_equal(strlen(t), TB_TICKET_LEN);
    assert_int_equal(json_integer_value(json_object_get(body, "expires_in")), 30);
    assert_int_equal(json_object_size(body), 2);
    assert_int_equal(tb_tickets_redeem(f->ctx.tickets, t, strlen(t), tb_now_ms(), &g),
                     TB_TICKET_OK);
    assert_string_equal(tb_grant_sub(g), "webby");
    tb_grant_free(g);
    json_decref(body);
    /* The store holds TICKETS: the used one still counts until it would have expired. */
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, NULL, NULL), 200);
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, "too_many_tickets", NULL), 503);
}

static void test_ticket_route_spends_a_handshake_token(void **state)
{
    fixture_t *f = *state;
    f->ctx.handshakes = tb_ratelimit_create(1, 1, 8);
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, NULL, NULL), 200);
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, "rate_limited", NULL), 429);
    /* Refused before the token is looked at: a bad one gets the same answer. */
    assert_int_equal(post(f, "/api/v1/ws/ticket", "a.b.c", "rate_limited", NULL), 429);
    tb_ratelimit_destroy(f->ctx.handshakes);
    f->ctx.handshakes = NULL;
}

static void test_json_body(void **state)
{
    static const struct {
        const char *text;
        size_t len;
        int status;
    } cases[] = {
        {"{\"room\":\"global\"}", 17, 0},
        {"", 0, 400},
        {"[1]", 3, 400},
        {"\"s\"", 3, 400},
        {"{\"a\":1", 6, 400},
        {"{\"a\":1,\"a\":2}", 13, 400},
        {"{\"a\":\"x\\u0000y\"}", 16, 400},
        {"{\"a\":1} trailing", 16, 400},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *obj = NULL, *err = NULL;
        tb_http_req_t req = {.path = "/x", .body = cases[i].text, .body_len = cases[i].len};
        int rc = tb_http_json_body(&req, &obj, &err);
        if (rc != cases[i].status)
            fail_msg("case %zu '%s': %d", i, cases[i].text, rc);
        if (rc == 0) {
            assert_true(json_is_object(obj));
            assert_null(err);
        } else {
            assert_null(obj);
            assert_string_equal(json_string_value(json_object_get(err, "error")), "bad_request");
        }
        json_decref(obj);
        json_decref(err);
    }
}

static void test_authenticate_hands_over_the_grant(void **state)
{
    fixture_t *f = *state;
    tb_grant_t *g = NULL;
    json_t *body = NULL;
    tb_http_req_t req = {.path = "/x", .bearer = f->token, .now_ms = tb_now_ms()};
    assert_int_equal(tb_http_authenticate(&f->ctx, &req, &g, &body), 0);
    assert_null(body);
    assert_string_equal(tb_grant_sub(g), "webby");
    assert_false(tb_grant_has_scope(g, "publish"));
    tb_grant_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket_route_spends_a_handshake_token, setup,
                                        teardown),
        cmocka_unit_test(test_json_body),
        cmocka_unit_test_setup_teardown(test_authenticate_hands_over_the_grant, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
