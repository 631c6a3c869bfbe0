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
#include "telebridge/b64url.h"
#include "telebridge/ticket.h"
#include "telebridge/util.h"

#include "fixtures.h"
#include "ticket_internal.h"

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

/* Redeems the NUL-terminated ticket with the store's own key. */
static int redeem(tb_ticket_store_t *t, const char *ticket, int64_t now_ms, tb_grant_t **got)
{
    return tb_ticket_redeem(t, NULL, ticket, strlen(ticket), now_ms, got);
}

/* Issues a ticket that must succeed; returns the expiry it was given. */
static int64_t issue_ok(tb_ticket_store_t *t, const tb_grant_t *g, int64_t now_ms,
                        char out[TB_TICKET_TEXT_MAX + 1])
{
    int64_t expires = 0;
    assert_int_equal(tb_ticket_issue(t, NULL, g, now_ms, TTL_MS, out, &expires), TB_TICKET_OK);
    return expires;
}

static void test_issue_and_redeem_once(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_grant_t *g = grant_for("tina", "[\"device:pump-*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(issue_ok(t, g, NOW_MS, ticket), NOW_MS + TTL_MS);
    /* docs/security.md: base64url, about 150 characters for a grant like this one. */
    assert_in_range(strlen(ticket), 100, 200);
    assert_true(tb_b64url_chars_ok(ticket, strlen(ticket)));
    tb_grant_free(g); /* the ticket carries its own copy */
    assert_int_equal(redeem(t, ticket, NOW_MS + 1, &got), TB_TICKET_OK);
    assert_string_equal(tb_grant_sub(got), "tina");
    assert_int_equal(tb_grant_exp(got), NOW_S + 3600);
    assert_true(tb_grant_allows_room(got, "device:pump-1"));
    assert_false(tb_grant_allows_room(got, "global"));
    assert_true(tb_grant_has_scope(got, "read"));
    tb_grant_free(got);
    got = NULL;
    assert_int_equal(redeem(t, ticket, NOW_MS + 2, &got), TB_TICKET_E_USED);
    assert_null(got);
    tb_ticket_destroy(t);
}

static void test_unknown_and_malformed(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1], other[TB_TICKET_TEXT_MAX + 2];
    tb_grant_t *g = grant_for("u", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    issue_ok(t, g, NOW_MS, ticket);
    size_t len = strlen(ticket);
    /* Any one character changed anywhere (the MAC covers every byte). */
    for (size_t i = 0; i < len; i++) {
        memcpy(other, ticket, len + 1);
        other[i] = other[i] == 'A' ? 'B' : 'A';
        assert_int_equal(redeem(t, other, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    }
    /* One character short or long, a character outside the alphabet, too long, NULL. */
    assert_int_equal(tb_ticket_redeem(t, NULL, ticket, len - 1, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    memcpy(other, ticket, len);
    memcpy(other + len, "A", 2);
    assert_int_equal(redeem(t, other, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    other[len - 1] = '=';
    other[len] = '\0';
    assert_int_equal(redeem(t, other, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    memset(other, 'A', TB_TICKET_TEXT_MAX + 1);
    assert_int_equal(tb_ticket_redeem(t, NULL, other, TB_TICKET_TEXT_MAX + 1, NOW_MS, &got),
                     TB_TICKET_E_UNKNOWN);
    assert_int_equal(tb_ticket_redeem(t, NULL, NULL, 0, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    assert_null(got);
    /* The real one still works after all those misses. */
    assert_int_equal(redeem(t, ticket, NOW_MS, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

static void test_expiry(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_grant_t *g = grant_for("e", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    issue_ok(t, g, NOW_MS, ticket);
    assert_int_equal(redeem(t, ticket, NOW_MS + TTL_MS, &got), TB_TICKET_E_EXPIRED);
    assert_null(got);
    /* An expired ticket is forgotten once seen. */
    assert_int_equal(tb_ticket_held(t), 0);
    assert_int_equal(redeem(t, ticket, NOW_MS, &got), TB_TICKET_E_UNKNOWN);
    issue_ok(t, g, NOW_MS, ticket);
    assert_int_equal(redeem(t, ticket, NOW_MS + TTL_MS - 1, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

static void test_never_outlives_the_token(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_grant_t *g = grant_for("s", "[\"*\"]", NOW_S + 5), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(issue_ok(t, g, NOW_MS, ticket), (NOW_S + 5) * 1000);
    assert_int_equal(redeem(t, ticket, (NOW_S + 5) * 1000, &got), TB_TICKET_E_EXPIRED);
    tb_grant_free(g);
    tb_ticket_destroy(t);
}

/* The global bound: a full store refuses a user who holds no ticket, evicts nobody else's. */
static void test_bound(void **state)
{
    enum { MAX = 3 };
    static const char *const subs[MAX + 1] = {"a", "b", "c", "d"};
    char tickets[MAX + 1][TB_TICKET_TEXT_MAX + 1], extra[TB_TICKET_TEXT_MAX + 1] = "";
    int64_t expires;
    tb_grant_t *g[MAX + 1], *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(MAX, 2);
    (void)state;
    for (int i = 0; i <= MAX; i++)
        g[i] = grant_for(subs[i], "[\"*\"]", NOW_S + 3600);
    for (int i = 0; i < MAX; i++)
        issue_ok(t, g[i], NOW_MS + i, tickets[i]);
    /* Full: d holds none and is refused; nothing live is evicted. */
    assert_int_equal(tb_ticket_issue(t, NULL, g[MAX], NOW_MS + 10, TTL_MS, extra, &expires),
                     TB_TICKET_E_FULL);
    assert_string_equal(extra, "");
    /* A used ticket still counts until it would have expired. */
    assert_int_equal(redeem(t, tickets[0], NOW_MS + 10, &got), TB_TICKET_OK);
    tb_grant_free(got);
    assert_int_equal(tb_ticket_issue(t, NULL, g[MAX], NOW_MS + 10, TTL_MS, extra, &expires),
                     TB_TICKET_E_FULL);
    /* Once the first one's time is up it is forgotten and makes room. */
    issue_ok(t, g[MAX], NOW_MS + TTL_MS, tickets[MAX]);
    assert_int_equal(tb_ticket_held(t), MAX);
    for (int i = 1; i <= MAX; i++) {
        assert_int_equal(redeem(t, tickets[i], NOW_MS + TTL_MS, &got), TB_TICKET_OK);
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
    char tickets[LOOP][TB_TICKET_TEXT_MAX + 1], other[TB_TICKET_TEXT_MAX + 1];
    char twin_t[TB_TICKET_TEXT_MAX + 1], n1[TB_TICKET_TEXT_MAX + 1], n2[TB_TICKET_TEXT_MAX + 1];
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
        assert_int_equal(redeem(t, tickets[i], now, &got), TB_TICKET_E_UNKNOWN);
    /* Another token of the same sub shares its budget: hog's oldest goes. */
    issue_ok(t, twin, now, twin_t);
    assert_int_equal(redeem(t, s0, now, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(redeem(t, s2, now, &got), TB_TICKET_OK);
    tb_grant_free(got);
    /* Redeemed, s2 still takes one of hog's places: two more replace s1, then s2. */
    issue_ok(t, hog, now + 1, n1);
    issue_ok(t, hog, now + 2, n2);
    assert_int_equal(tb_ticket_held(t), PER_SUB + 1);
    assert_int_equal(redeem(t, s1, now, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(redeem(t, s2, now, &got), TB_TICKET_E_UNKNOWN);
    const char *live[] = {twin_t, n1, n2, other};
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        assert_int_equal(redeem(t, live[i], now, &got), TB_TICKET_OK);
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
    char a1[TB_TICKET_TEXT_MAX + 1], a2[TB_TICKET_TEXT_MAX + 1], b1[TB_TICKET_TEXT_MAX + 1];
    tb_grant_t *a = grant_for("a", "[\"*\"]", NOW_S + 3600);
    tb_grant_t *b = grant_for("b", "[\"*\"]", NOW_S + 3600), *got = NULL;
    tb_ticket_store_t *t = tb_ticket_create(2, 8);
    (void)state;
    issue_ok(t, a, NOW_MS, a1);
    issue_ok(t, b, NOW_MS, b1);
    issue_ok(t, a, NOW_MS + 1, a2);
    assert_int_equal(tb_ticket_held(t), 2);
    assert_int_equal(redeem(t, a1, NOW_MS + 1, &got), TB_TICKET_E_UNKNOWN);
    assert_int_equal(redeem(t, b1, NOW_MS + 1, &got), TB_TICKET_OK);
    tb_grant_free(got);
    assert_int_equal(redeem(t, a2, NOW_MS + 1, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(a);
    tb_grant_free(b);
    tb_ticket_destroy(t);
}

static void test_tickets_differ_and_destroy_frees_unredeemed(void **state)
{
    enum { N = 64 };
    static char seen[N][TB_TICKET_TEXT_MAX + 1];
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

/* ---- across a fleet (docs/security.md → Tickets across a fleet) ---------------------------- */

static const unsigned char k_fleet[TB_TICKET_KEY_LEN] = "fleet-key-0123456789abcdef012345";
static const unsigned char k_other[TB_TICKET_KEY_LEN] = "other-key-0123456789abcdef012345";

/* The grant the fleet tests issue tickets for (the caller frees it); fleet_redeem() checks that a
 * redeemed ticket carries it. */
static tb_grant_t *fleet_grant(void)
{
    return grant_for("fleet", "[\"device:pump-*\"]", NOW_S + 3600);
}

static int fleet_redeem(tb_ticket_store_t *t, const unsigned char *key, const char *ticket,
                        int64_t now_ms)
{
    tb_grant_t *got = NULL;
    int rc = tb_ticket_redeem(t, key, ticket, strlen(ticket), now_ms, &got);
    if (rc == TB_TICKET_OK) {
        assert_string_equal(tb_grant_sub(got), "fleet");
        assert_true(tb_grant_allows_room(got, "device:pump-7"));
        assert_false(tb_grant_allows_room(got, "global"));
        assert_true(tb_grant_has_scope(got, "read"));
    }
    assert_true(rc == TB_TICKET_OK || got == NULL);
    tb_grant_free(got);
    return rc;
}

/* The replay window: once on each bridge with the fleet key, never on one without it. */
static void test_fleet_ticket_redeems_once_on_each_bridge(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    int64_t expires;
    tb_grant_t *g = fleet_grant();
    tb_ticket_store_t *a = tb_ticket_create(8, 8), *b = tb_ticket_create(8, 8);
    tb_ticket_store_t *c = tb_ticket_create(8, 8), *alien = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(tb_ticket_issue(a, k_fleet, g, NOW_MS, TTL_MS, ticket, &expires),
                     TB_TICKET_OK);
    tb_grant_free(g);
    assert_int_equal(fleet_redeem(alien, k_other, ticket, NOW_MS), TB_TICKET_E_UNKNOWN);
    assert_int_equal(fleet_redeem(b, NULL, ticket, NOW_MS), TB_TICKET_E_UNKNOWN);
    assert_int_equal(fleet_redeem(a, NULL, ticket, NOW_MS), TB_TICKET_E_UNKNOWN);
    tb_ticket_store_t *order[] = {b, c, a};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(fleet_redeem(order[i], k_fleet, ticket, NOW_MS + 1), TB_TICKET_OK);
        assert_int_equal(fleet_redeem(order[i], k_fleet, ticket, NOW_MS + 2), TB_TICKET_E_USED);
    }
    assert_int_equal(tb_ticket_held(b), 1);
    /* Expired everywhere, by the redeemer's clock; and forgotten once expired. */
    assert_int_equal(fleet_redeem(alien, k_fleet, ticket, expires), TB_TICKET_E_EXPIRED);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, expires), TB_TICKET_E_EXPIRED);
    tb_ticket_destroy(a);
    tb_ticket_destroy(b);
    tb_ticket_destroy(c);
    tb_ticket_destroy(alien);
}

/* Without a fleet key a ticket is good on its own bridge only. */
static void test_own_key_ticket_stays_on_its_bridge(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_grant_t *g = fleet_grant();
    tb_ticket_store_t *a = tb_ticket_create(8, 8), *b = tb_ticket_create(8, 8);
    (void)state;
    issue_ok(a, g, NOW_MS, ticket);
    tb_grant_free(g);
    assert_int_equal(fleet_redeem(b, NULL, ticket, NOW_MS), TB_TICKET_E_UNKNOWN);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, NOW_MS), TB_TICKET_E_UNKNOWN);
    assert_int_equal(fleet_redeem(a, NULL, ticket, NOW_MS), TB_TICKET_OK);
    tb_ticket_destroy(a);
    tb_ticket_destroy(b);
}

/* A ticket replaced on its issuer (per-sub bound) is unknown there, still good elsewhere. */
static void test_replaced_ticket_only_dies_on_its_issuer(void **state)
{
    char first[TB_TICKET_TEXT_MAX + 1], next[TB_TICKET_TEXT_MAX + 1];
    int64_t expires;
    tb_grant_t *g = fleet_grant();
    tb_ticket_store_t *a = tb_ticket_create(8, 2), *b = tb_ticket_create(8, 2);
    (void)state;
    assert_int_equal(tb_ticket_issue(a, k_fleet, g, NOW_MS, TTL_MS, first, &expires), 0);
    for (int i = 1; i <= 2; i++)
        assert_int_equal(tb_ticket_issue(a, k_fleet, g, NOW_MS + i, TTL_MS, next, &expires), 0);
    tb_grant_free(g);
    assert_int_equal(fleet_redeem(a, k_fleet, first, NOW_MS + 3), TB_TICKET_E_UNKNOWN);
    assert_int_equal(fleet_redeem(b, k_fleet, first, NOW_MS + 3), TB_TICKET_OK);
    tb_ticket_destroy(a);
    tb_ticket_destroy(b);
}

/* A reload that changes the secret keeps the old fleet key for one TTL, then drops it. */
static void test_rotated_key_lasts_one_ttl(void **state)
{
    char before[TB_TICKET_TEXT_MAX + 1], late[TB_TICKET_TEXT_MAX + 1];
    int64_t expires;
    tb_grant_t *g = fleet_grant();
    tb_ticket_store_t *a = tb_ticket_create(8, 8);
    (void)state;
    assert_int_equal(tb_ticket_issue(a, k_fleet, g, NOW_MS, TTL_MS, before, &expires), 0);
    assert_int_equal(tb_ticket_issue(a, k_fleet, g, NOW_MS, 2 * TTL_MS, late, &expires), 0);
    tb_grant_free(g);
    tb_ticket_rotate(a, k_fleet, NOW_MS + TTL_MS);
    assert_int_equal(fleet_redeem(a, k_other, before, NOW_MS + 1), TB_TICKET_OK);
    assert_int_equal(fleet_redeem(a, k_other, late, NOW_MS + TTL_MS), TB_TICKET_E_UNKNOWN);
    tb_ticket_rotate(a, NULL, 0);
    tb_ticket_destroy(a);
}

/* A head for a ticket another bridge would have issued, sealed with k_fleet. */
static void foreign_ticket(const char *sub, int64_t issued_ms, int n,
                           char out[TB_TICKET_TEXT_MAX + 1])
{
    tb_grant_t *g = grant_for(sub, "[\"device:pump-*\"]", NOW_S + 3600);
    tb_ticket_head_t h = {.issued_ms = issued_ms, .expires_ms = issued_ms + TTL_MS};
    memset(h.issuer, 0xee, sizeof(h.issuer));
    memset(h.nonce, n, sizeof(h.nonce));
    assert_true(tb_ticket_codec_encode(&h, g, k_fleet, out, TB_TICKET_TEXT_MAX + 1) > 0);
    tb_grant_free(g);
}

/* A restarted bridge cannot know what it redeemed before: tickets issued before it started are
 * unknown to it. */
static void test_ticket_from_before_the_start_is_unknown(void **state)
{
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_ticket_store_t *b = tb_ticket_create(8, 8);
    (void)state;
    foreign_ticket("fleet", tb_now_ms() - 1000, 1, ticket);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, tb_now_ms()), TB_TICKET_E_UNKNOWN);
    foreign_ticket("fleet", NOW_MS - 1000, 2, ticket);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, NOW_MS), TB_TICKET_OK);
    tb_ticket_destroy(b);
}

/* Other bridges' tickets are held until they expire, never evicted: past 4 * max, busy. */
static void test_redeemed_bound_refuses_busy_until_expiry(void **state)
{
    enum { MAX = 2, HELD = MAX * TB_TICKET_REDEEMED_PER_MAX };
    char ticket[TB_TICKET_TEXT_MAX + 1];
    tb_ticket_store_t *b = tb_ticket_create(MAX, 1);
    tb_grant_t *g = fleet_grant(), *got = NULL;
    (void)state;
    for (int i = 0; i < HELD; i++) {
        foreign_ticket("fleet", NOW_MS, i + 1, ticket);
        assert_int_equal(fleet_redeem(b, k_fleet, ticket, NOW_MS), TB_TICKET_OK);
    }
    foreign_ticket("fleet", NOW_MS, HELD + 1, ticket);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, NOW_MS), TB_TICKET_E_BUSY);
    /* Its own tickets are another list: still issued and redeemed. */
    char own[TB_TICKET_TEXT_MAX + 1];
    int64_t expires;
    assert_int_equal(tb_ticket_issue(b, k_fleet, g, NOW_MS, TTL_MS, own, &expires), 0);
    assert_int_equal(tb_ticket_redeem(b, k_fleet, own, strlen(own), NOW_MS, &got), 0);
    tb_grant_free(got);
    /* Once the others have expired there is room again. */
    foreign_ticket("fleet", NOW_MS + TTL_MS, HELD + 2, ticket);
    assert_int_equal(fleet_redeem(b, k_fleet, ticket, NOW_MS + TTL_MS), TB_TICKET_OK);
    assert_int_equal(tb_ticket_held(b), 2); /* the own used one, the new one */
    tb_grant_free(g);
    tb_ticket_destroy(b);
}

/* A grant too large for TB_TICKET_TEXT_MAX gets no ticket, and nothing is evicted for it. */
static void test_grant_too_large(void **state)
{
    enum { N = 64 };
    static const char room[] = "device:a-rather-long-device-name-*"; /* 34 bytes */
    tb_grant_str_t strs[N];
    char ticket[TB_TICKET_TEXT_MAX + 1] = "", small[TB_TICKET_TEXT_MAX + 1];
    int64_t expires;
    tb_ticket_store_t *t = tb_ticket_create(8, 1);
    tb_grant_t *big, *ok = grant_for("big", "[\"*\"]", NOW_S + 3600), *got = NULL;
    (void)state;
    for (int i = 0; i < N; i++)
        strs[i] = (tb_grant_str_t){room, strlen(room)};
    /* 40 rooms (1,440 bytes of strings) still fit; 41 do not. */
    assert_non_null(big = tb_grant_new("big", 3, NOW_S + 3600, strs, 40, 0));
    assert_int_equal(tb_ticket_issue(t, NULL, big, NOW_MS, TTL_MS, small, &expires), 0);
    assert_true(strlen(small) <= TB_TICKET_TEXT_MAX);
    assert_int_equal(redeem(t, small, NOW_MS, &got), TB_TICKET_OK);
    assert_true(tb_grant_allows_room(got, "device:a-rather-long-device-name-9"));
    tb_grant_free(got);
    tb_grant_free(big);
    issue_ok(t, ok, NOW_MS, small);
    assert_non_null(big = tb_grant_new("big", 3, NOW_S + 3600, strs, 41, 0));
    assert_int_equal(tb_ticket_issue(t, NULL, big, NOW_MS, TTL_MS, ticket, &expires),
                     TB_TICKET_E_TOOBIG);
    assert_string_equal(ticket, "");
    /* "big" holds one place (per_sub 1): the refused issue did not replace it. */
    assert_int_equal(redeem(t, small, NOW_MS, &got), TB_TICKET_OK);
    tb_grant_free(got);
    tb_grant_free(big);
    tb_grant_free(ok);
    tb_ticket_destroy(t);
}

/* Sealed bodies that are not tickets: the MAC is right, the format is not. */
static void test_format_is_checked_behind_the_mac(void **state)
{
    unsigned char body[TB_TICKET_RAW_MAX];
    char text[TB_TICKET_TEXT_MAX + 1], good[TB_TICKET_TEXT_MAX + 1];
    tb_ticket_head_t h = {.issued_ms = NOW_MS, .expires_ms = NOW_MS + TTL_MS}, out;
    tb_grant_t *g = grant_for("fmt", "[\"global\"]", NOW_S + 3600), *got = NULL;
    (void)state;
    int n = tb_ticket_codec_encode(&h, g, k_fleet, good, sizeof(good));
    assert_true(n > 0);
    assert_int_equal(tb_ticket_codec_decode(good, (size_t)n, k_fleet, &out, &got), 0);
    assert_int_equal(out.expires_ms, NOW_MS + TTL_MS);
    assert_string_equal(tb_grant_sub(got), "fmt");
    tb_grant_free(got);
    got = NULL;
    int len = tb_b64url_decode(good, (size_t)n, body, sizeof(body)) - TB_TICKET_MAC_LEN;
    /* version, sub length (offset 49), a count, trailing byte, a NUL in a string */
    struct {
        size_t at;
        unsigned char byte;
        int grow;
    } cases[] = {{0, 2, 0}, {50, 0xff, 0}, {56, 9, 0}, {0, 1, 1}, {52, '\0', 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char copy[TB_TICKET_RAW_MAX];
        memcpy(copy, body, (size_t)len);
        copy[len] = 0;
        if (!cases[i].grow)
            copy[cases[i].at] = cases[i].byte;
        int m = tb_ticket_codec_seal(copy, (size_t)len + (size_t)cases[i].grow, k_fleet, text,
                                     sizeof(text));
        assert_true(m > 0);
        assert_int_equal(tb_ticket_codec_decode(text, (size_t)m, k_fleet, &out, &got), -1);
        assert_null(got);
    }
    tb_grant_free(g);
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
        cmocka_unit_test(test_fleet_ticket_redeems_once_on_each_bridge),
        cmocka_unit_test(test_own_key_ticket_stays_on_its_bridge),
        cmocka_unit_test(test_replaced_ticket_only_dies_on_its_issuer),
        cmocka_unit_test(test_ticket_from_before_the_start_is_unknown),
        cmocka_unit_test(test_redeemed_bound_refuses_busy_until_expiry),
        cmocka_unit_test(test_rotated_key_lasts_one_ttl),
        cmocka_unit_test(test_grant_too_large),
        cmocka_unit_test(test_format_is_checked_behind_the_mac),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
