/* Unit tests for ticket (one-time WebSocket tickets); tb_grant_dup() is tested in test_grant.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/auth.h"
#include "telebridge/ticket.h"

#include "fixtures.h"

#define SECRET "ticket-test-secret-0123456789abcdef"
#define NOW_S 1800000000LL
#define NOW_MS (NOW_S * 1000)
#define TTL_MS 30000
#define CLAIMS_BUF 512

static tb_auth_t *g_auth;

static int group_setup(void **state)
{
    tb_config_auth_t cfg = {.algorithm = "HS256", .leeway_s = 0};
    (void)state;
    g_auth = fixtures_auth(&cfg, SECRET);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tb_auth_destroy(g_auth);
    return 0;
}

/* A verified grant for sub with the given rooms JSON array and exp. */
static tb_grant_t *grant_for(const char *sub, const char *rooms, int64_t exp)
{
    char claims[CLAIMS_BUF];
    tb_grant_t *g = NULL;
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"%s\",\"rooms\":%s,\"exp\":%lld,\"scope\":\"read\"}", sub, rooms,
             (long long)exp);
    assert_int_equal(fixtures_verify_claims(g_auth, SECRET, claims, NOW_S, &g), TB_AUTH_OK);
    return g;
}

/* Issues a ticket that must succeed; returns the expiry it was given. */
static int64_t issue_ok(tb_ticket_store_t *t, const tb_grant_t *g, int64_t now_ms,
                        char out[TB_TICKET_LEN + 1])
{
    int64_t expires = 0;
    assert_int_equal(tb_ticket_issue(t, g, now_ms, TTL_MS, out, &expires), TB_TICKET_OK);
    return expires;
}

static void test_issue_and_redeem_once(void **state)
{
    char ticket[TB_TICKET_LEN + 1];
    tb_grant_t *g = grant_for("tina", "[\"device:pump-*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(issue_ok(t, g, NOW_MS, ticket), NOW_MS + TTL_MS);
    assert_int_equal(strlen(ticket), TB_TICKET_LEN);
    assert_int_equal(strspn(ticket, "0123456789abcdef"), TB_TICKET_LEN);
    tb_grant_free(g); /* the ticket holds its own copy */
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS + 1, &got), TB_TICKET_OK);
    assert_string_equal(tb_grant_sub(got), "tina");
    assert_int_equal(tb_grant_exp(got), NOW_S + 3600);
    assert_true(tb_grant_allows_room(got, "device:pump-1"));
    assert_false(tb_grant_allows_room(got, "global"));
    assert_true(tb_grant_has_scope(got, "read"));
    tb_grant_free(got);
    got = NULL;
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS + 2, &got),
                     TB_TICKET_E_USED);
    assert_null(got);
    tb_ticket_destroy(t);
}

static void test_unknown_and_malformed(void **state)
{
    char ticket[TB_TICKET_LEN + 1], other[TB_TICKET_LEN + 1];
    tb_grant_t *g = grant_for("u", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    issue_ok(t, g, NOW_MS, ticket);
    memcpy(other, ticket, sizeof(other));
    other[0] = other[0] == 'a' ? 'b' : 'a';
    assert_int_equal(tb_ticket_redeem(t, other, TB_TICKET_LEN, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    /* Upper case, one character short or long, NULL: never looked up. */
    for (size_t i = 0; i < TB_TICKET_LEN; i++)
        other[i] = (ticket[i] >= 'a') ? (char)(ticket[i] - 'a' + 'A') : ticket[i];
    if (strcmp(other, ticket) != 0)
        assert_int_equal(tb_ticket_redeem(t, other, TB_TICKET_LEN, NOW_MS, &got),
                         TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN - 1, NOW_MS, &got),
                     TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, NULL, 0, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    assert_null(got);
    /* The real one still works after all those misses. */
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

static void test_expiry(void **state)
{
    char ticket[TB_TICKET_LEN + 1];
    tb_grant_t *g = grant_for("e", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    issue_ok(t, g, NOW_MS, ticket);
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS + TTL_MS, &got),
                     TB_TICKET_E_EXPIRED);
    assert_null(got);
    /* An expired ticket is forgotten once seen. */
    assert_int_equal(tb_ticket_held(t), 0);
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    issue_ok(t, g, NOW_MS, ticket);
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, NOW_MS + TTL_MS - 1, &got),
                     TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

static void test_never_outlives_the_token(void **state)
{
    char ticket[TB_TICKET_LEN + 1];
    tb_grant_t *g = grant_for("s", "[\"*\"]", NOW_S + 5), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(issue_ok(t, g, NOW_MS, ticket), (NOW_S + 5) * 1000);
    assert_int_equal(tb_ticket_redeem(t, ticket, TB_TICKET_LEN, (NOW_S + 5) * 1000, &got),
                     TB_TICKET_E_EXPIRED);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

/* The global bound: a full store refuses a user who holds no ticket, evicts nobody else's. */
static void test_bound(void **state)
{
    enum { MAX = 3 };
    static const char *const subs[MAX + 1] = {"a", "b", "c", "d"};
    char tickets[MAX + 1][TB_TICKET_LEN + 1], extra[TB_TICKET_LEN + 1] = "";
    int64_t expires;
    tb_grant_t *g[MAX + 1], *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(MAX, 2);
    (void)state;
    for (int i = 0; i <= MAX; i++)
        g[i] = grant_for(subs[i], "[\"*\"]", NOW_S + 3600);
    for (int i = 0; i < MAX; i++)
        issue_ok(t, g[i], NOW_MS + i, tickets[i]);
    /* Full: d holds none and is refused; nothing live is evicted. */
    assert_int_equal(tb_ticket_issue(t, g[MAX], NOW_MS + 10, TTL_MS, extra, &expires),
                     TB_TICKET_E_FULL);
    assert_string_equal(extra, "");
    /* A used ticket still counts until it would have expired. */
    assert_int_equal(tb_ticket_redeem(t, tickets[0], TB_TICKET_LEN, NOW_MS + 10, &got),
                     TB_TICKET_OK);
    tb_grant_free(got);
    assert_int_equal(tb_ticket_issue(t, g[MAX], NOW_MS + 10, TTL_MS, extra, &expires),
                     TB_TICKET_E_FULL);
    /* Once the first one's time is up it is forgotten and makes room. */
    issue_ok(t, g[MAX], NOW_MS + TTL_MS, tickets[MAX]);
    assert_int_equal(tb_ticket_held(t), MAX);
    for (int i = 1; i <= MAX; i++) {
        assert_int_equal(tb_ticket_redeem(t, tickets[i], TB_TICKET_LEN, NOW_MS + TTL_MS, &got),
                         TB_TICKET_OK);
        tb_grant_free(got);
    }
    for (int i = 0; i <= MAX; i++)
        tb_grant_free(g[i]);
    tb_ticket_destroy(t);
}

/*
 * One user asking in a loop (issue 13, item 4): past per_sub its oldest ticket is replaced, so
 * it never holds more than per_sub places and another user still gets a ticket. Used tickets
 * count too (a connect loop would otherwise fill the store with them).
 */
static void test_per_sub_bound_evicts_that_users_oldest(void **state)
{
    enum { MAX = 16, PER_SUB = 3, LOOP = 40 };
    char tickets[LOOP][TB_TICKET_LEN + 1], other[TB_TICKET_LEN + 1];
    char twin_t[TB_TICKET_LEN + 1], n1[TB_TICKET_LEN + 1], n2[TB_TICKET_LEN + 1];
    const char *s0 = tickets[LOOP - 3], *s1 = tickets[LOOP - 2], *s2 = tickets[LOOP - 1];
    tb_grant_t *hog = grant_for("hog", "[\"*\"]", NOW_S + 3600);
    tb_grant_t *twin = grant_for("hog", "[\"global\"]", NOW_S + 3600);
    tb_grant_t *bob = grant_for("bob", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(MAX, PER_SUB);
    int64_t now = NOW_MS + LOOP;
    (void)state;
    for (int i = 0; i < LOOP; i++) {
        issue_ok(t, hog, NOW_MS + i, tickets[i]);
        assert_true(tb_ticket_held(t) <= PER_SUB);
    }
    issue_ok(t, bob, now, other);
    assert_int_equal(tb_ticket_held(t), PER_SUB + 1);
    /* Only hog's newest PER_SUB survive. */
    for (int i = 0; i < LOOP - PER_SUB; i++)
        assert_int_equal(tb_ticket_redeem(t, tickets[i], TB_TICKET_LEN, now, &got),
                         TB_TICKET_E_UNKNOWN);
    /* Another token of the same sub shares its budget: hog's oldest goes. */
    issue_ok(t, twin, now, twin_t);
    assert_int_equal(tb_ticket_redeem(t, s0, TB_TICKET_LEN, now, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, s2, TB_TICKET_LEN, now, &got), TB_TICKET_OK);
    tb_grant_free(got);
    /* Redeemed, s2 still takes one of hog's places: two more replace s1, then s2. */
    issue_ok(t, hog, now + 1, n1);
    issue_ok(t, hog, now + 2, n2);
    assert_int_equal(tb_ticket_held(t), PER_SUB + 1);
    assert_int_equal(tb_ticket_redeem(t, s1, TB_TICKET_LEN, now, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, s2, TB_TICKET_LEN, now, &got), TB_TICKET_E_UNKNOWN);
    const char *live[] = {twin_t, n1, n2, other};
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        assert_int_equal(tb_ticket_redeem(t, live[i], TB_TICKET_LEN, now, &got), TB_TICKET_OK);
        assert_string_equal(tb_grant_sub(got), i == 3 ? "bob" : "hog");
        tb_grant_free(got);
    }
    tb_grant_free(hog);
    tb_grant_free(twin);
    tb_grant_free(bob);
    tb_ticket_destroy(t);
}

/* In a full store a user who holds tickets replaces its own oldest rather than being refused. */
static void test_full_store_replaces_the_askers_oldest(void **state)
{
    char a1[TB_TICKET_LEN + 1], a2[TB_TICKET_LEN + 1], b1[TB_TICKET_LEN + 1];
    tb_grant_t *a = grant_for("a", "[\"*\"]", NOW_S + 3600);
    tb_grant_t *b = grant_for("b", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(2, 8);
    (void)state;
    issue_ok(t, a, NOW_MS, a1);
    issue_ok(t, b, NOW_MS, b1);
    issue_ok(t, a, NOW_MS + 1, a2);
    assert_int_equal(tb_ticket_held(t), 2);
    assert_int_equal(tb_ticket_redeem(t, a1, TB_TICKET_LEN, NOW_MS + 1, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, b1, TB_TICKET_LEN, NOW_MS + 1, &got), TB_TICKET_OK);
    tb_grant_free(got);
    assert_int_equal(tb_ticket_redeem(t, a2, TB_TICKET_LEN, NOW_MS + 1, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(a);
    tb_grant_free(b);
    tb_ticket_destroy(t);
}

static void test_tickets_differ_and_destroy_frees_unredeemed(void **state)
{
    enum { N = 64 };
    static char seen[N][TB_TICKET_LEN + 1];
    tb_grant_t *g = grant_for("r", "[\"*\"]", NOW_S + 3600);
    tb_ticket_store_t *t = tb_ticket_create(N, N);
    (void)state;
    for (int i = 0; i < N; i++) {
        issue_ok(t, g, NOW_MS, seen[i]);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(seen[i], seen[k]);
    }
    tb_grant_free(g);
    tb_ticket_destroy(t); /* ASan: the N grant copies are freed here */
    tb_ticket_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_and_redeem_once),
        cmocka_unit_test(test_unknown_and_malformed),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_never_outlives_the_token),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_per_sub_bound_evicts_that_users_oldest),
        cmocka_unit_test(test_full_store_replaces_the_askers_oldest),
        cmocka_unit_test(test_tickets_differ_and_destroy_frees_unredeemed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
