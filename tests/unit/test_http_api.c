/* Unit tests for http_api: routing, who may read the operator endpoints (docs/security.md →
 * Operator endpoints), the Bearer and JSON helpers, the ticket route. */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/http_api.h"
#include "telebridge/util.h"

#include "fixtures.h"

#define SECRET "http-api-test-secret-0123456789abcdef"
#define TICKETS 2

typedef struct {
    tb_config_t cfg;
    tb_auth_t *auth;
    tb_http_ctx_t ctx;
    char *token;
} fixture_t;

/* A token for sub expiring exp_in seconds from now; scope_json, when not NULL, is the JSON
 * value of its scope claim. */
static char *mint_scoped(const char *sub, long exp_in, const char *scope_json)
{
    char claims[256];
    if (scope_json)
        snprintf(claims, sizeof(claims), "{\"scope\": %s}", scope_json);
    return fixtures_mint(SECRET, sub, tb_now_ms() / 1000 + exp_in, scope_json ? claims : NULL);
}

static char *mint(const char *sub, long exp_in)
{
    return mint_scoped(sub, exp_in, NULL);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tb_config_defaults(&f->cfg), 0);
    f->auth = fixtures_auth(&f->cfg.auth, SECRET);
    f->ctx = (tb_http_ctx_t){
        .cfg = &f->cfg, .auth = f->auth, .tickets = tb_ticket_create(TICKETS, TB_TICKET_PER_SUB)};
    f->token = mint("webby", 3600);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tb_ticket_destroy(f->ctx.tickets);
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
    tb_http_req_t req = {.path = "/api/v1/ws/ticket", .now_ms = tb_now_ms()};
    assert_int_equal(tb_http_get(&f->ctx, &req, &body), 405);
    assert_string_equal(json_string_value(json_object_get(body, "error")), "method_not_allowed");
    json_decref(body);
}

/* tb_http_gate on path with bearer; returns the status and checks {"error": code} (or no body
 * when code is NULL). */
static int gate(fixture_t *f, const char *path, const char *bearer, bool admin, const char *code)
{
    json_t *body = NULL;
    tb_http_req_t req = {.path = path, .bearer = bearer, .now_ms = tb_now_ms(), .admin = admin};
    int status = tb_http_gate(&f->ctx, &req, &body);
    if (code)
        assert_string_equal(json_string_value(json_object_get(body, "error")), code);
    else
        assert_null(body);
    json_decref(body);
    return status;
}

static const char *const operator_paths[] = {"/stats", "/api/v1/ws/stats", "/rooms", "/metrics"};

static void test_operator_endpoints_need_the_admin_scope(void **state)
{
    fixture_t *f = *state;
    char *spaced = mint_scoped("ops", 3600, "\"read admin publish\"");
    char *listed = mint_scoped("ops", 3600, "[\"publish\", \"admin\"]");
    char *near = mint_scoped("ops", 3600, "\"administrator publish\"");
    char *old = mint_scoped("ops", -3600, "\"admin\"");
    for (size_t i = 0; i < sizeof(operator_paths) / sizeof(operator_paths[0]); i++) {
        const char *p = operator_paths[i];
        assert_int_equal(gate(f, p, NULL, false, "missing_token"), 401);
        assert_int_equal(gate(f, p, "a.b.c", false, "invalid_token"), 401);
        assert_int_equal(gate(f, p, old, false, "token_expired"), 401);
        assert_int_equal(gate(f, p, f->token, false, "forbidden"), 403);
        assert_int_equal(gate(f, p, near, false, "forbidden"), 403);
        assert_int_equal(gate(f, p, spaced, false, NULL), 0);
        assert_int_equal(gate(f, p, listed, false, NULL), 0);
        /* The admin listener asks for nothing. */
        assert_int_equal(gate(f, p, NULL, true, NULL), 0);
    }
    free(spaced);
    free(listed);
    free(near);
    free(old);
}

static void test_health_is_open_and_admin_serves_nothing_else(void **state)
{
    fixture_t *f = *state;
    json_t *body = NULL;
    tb_http_req_t req = {.path = "/healthz", .now_ms = tb_now_ms()};
    for (int admin = 0; admin < 2; admin++) {
        assert_int_equal(gate(f, "/healthz", NULL, admin, NULL), 0);
        assert_int_equal(gate(f, "/readyz", NULL, admin, NULL), 0);
        req.admin = admin;
        assert_int_equal(tb_http_get(&f->ctx, &req, &body), 200);
        assert_string_equal(json_string_value(json_object_get(body, "status")), "ok");
        json_decref(body);
    }
    assert_int_equal(gate(f, "/api/v1/ws/ticket", NULL, false, NULL), 0);
    assert_int_equal(gate(f, "/api/v1/ws/ticket", NULL, true, "not_found"), 404);
    assert_int_equal(gate(f, "/ws", NULL, true, "not_found"), 404);
    assert_int_equal(gate(f, "/index.html", NULL, true, "not_found"), 404);
    assert_int_equal(gate(f, "/stats/", NULL, true, "not_found"), 404);
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
    assert_true(strlen(t) > 0 && strlen(t) <= TB_TICKET_TEXT_MAX);
    assert_int_equal(json_integer_value(json_object_get(body, "expires_in")), 30);
    assert_int_equal(json_object_size(body), 2);
    /* Signed with the fleet key of the token's HS256 secret. */
    assert_non_null(tb_auth_ticket_key(f->auth));
    assert_int_equal(tb_ticket_redeem(f->ctx.tickets, tb_auth_ticket_key(f->auth), t, strlen(t),
                                      tb_now_ms(), &g),
                     TB_TICKET_OK);
    assert_string_equal(tb_grant_sub(g), "webby");
    tb_grant_free(g);
    json_decref(body);
    /* The store holds TICKETS: the used one still counts until it would have expired. Full,
     * it refuses a user who holds none; one who holds some replaces its own oldest. */
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, NULL, NULL), 200);
    char *other = mint("other", 3600);
    assert_int_equal(post(f, "/api/v1/ws/ticket", other, "too_many_tickets", NULL), 503);
    free(other);
    assert_int_equal(post(f, "/api/v1/ws/ticket", f->token, NULL, NULL), 200);
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

/* mqtt_reconnects_total is derived from the connects when /metrics is read: none before the
 * first session, and never below 0 (metrics.c did this before it moved to http_api.c). */
static void test_metrics_reconnects_never_go_below_zero(void **state)
{
    fixture_t *f = *state;
    static tb_stats_t stats; /* zero-initialised, as stats.h asks */
    static char text[TB_METRICS_TEXT_MAX];
    static const struct {
        uint64_t connects, reconnects;
        const char *line;
    } cases[] = {
        {0, 0, "\ntelebridge_mqtt_reconnects_total 0\n"},
        {1, 0, "\ntelebridge_mqtt_reconnects_total 0\n"},
        {4, 3, "\ntelebridge_mqtt_reconnects_total 3\n"},
    };
    f->ctx.hub = fixtures_hub(&f->cfg, f->auth, (tb_hub_ops_t){0}, "00000000000000e1");
    f->ctx.stats = &stats;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_metrics_snapshot_t snap;
        size_t len = 0;
        atomic_store(&stats.mqtt_connects, cases[i].connects);
        tb_http_metrics_snapshot(&f->ctx, &snap);
        assert_int_equal(snap.mqtt_connects, cases[i].connects);
        assert_int_equal(snap.mqtt_reconnects, cases[i].reconnects);
        assert_int_equal(tb_http_metrics(&f->ctx, text, sizeof(text), &len), 200);
        assert_true(len < sizeof(text));
        text[len] = '\0';
        if (!strstr(text, cases[i].line))
            fail_msg("connects %u: missing %s", (unsigned)cases[i].connects, cases[i].line);
    }
    tb_hub_destroy(f->ctx.hub);
    f->ctx.hub = NULL;
    f->ctx.stats = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_routing),
        FIXTURES_TEST(test_operator_endpoints_need_the_admin_scope),
        FIXTURES_TEST(test_health_is_open_and_admin_serves_nothing_else),
        FIXTURES_TEST(test_ticket_route),
        FIXTURES_TEST(test_ticket_route_spends_a_handshake_token),
        cmocka_unit_test(test_json_body),
        FIXTURES_TEST(test_authenticate_hands_over_the_grant),
        FIXTURES_TEST(test_metrics_reconnects_never_go_below_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
