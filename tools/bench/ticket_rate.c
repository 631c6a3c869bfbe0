/*
 * telebridge-ticket-rate — what a fleet ticket costs (src/ticket.c, src/ticket_codec.c): issues
 * N tickets on one store (N / 8 users holding 8 each, the per-user bound), redeems each on a
 * second store with the same fleet key (another bridge: its "redeemed" list grows to N) and on
 * the issuing one, and prints the time per operation and the ticket's length; beside them, for
 * scale, the HS256 verification of the token each ticket request makes.
 *
 *   telebridge-ticket-rate [N, default 4096, at most 4096]
 */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telebridge/auth.h"
#include "telebridge/grant.h"
#include "telebridge/keys.h"
#include "telebridge/ticket.h"

#define NOW_MS 1800000000000LL
#define TTL_MS 30000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Redeems every ticket on t, checking each works; the seconds it took, or -1. */
static double redeem_all(tb_ticket_store_t *t, const unsigned char *key,
                         char (*tickets)[TB_TICKET_TEXT_MAX + 1], size_t n)
{
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        tb_grant_t *g = NULL;
        if (tb_ticket_redeem(t, key, tickets[i], strlen(tickets[i]), NOW_MS + 1, &g) != 0)
            return -1;
        tb_grant_free(g);
    }
    return now_s() - t0;
}

#define SECRET "bench-secret-0123456789abcdef0123"

/* Seconds per tb_auth_verify() of an HS256 token like the grant above, over n runs; -1 on error. */
static double verify_cost(size_t n)
{
    static char alg[] = "HS256";
    tb_config_auth_t cfg = {.algorithm = alg};
    char err[TB_CONFIG_ERR_LEN], grants[256];
    jwt_t *jwt = NULL;
    double cost = -1;
    setenv(TB_KEYS_SECRET_ENV, SECRET, 1);
    tb_auth_t *auth = tb_auth_create(&cfg, err, sizeof(err));
    snprintf(grants, sizeof(grants),
             "{\"sub\":\"user-1\",\"exp\":%lld,\"rooms\":[\"device:sensor-*\","
             "\"group:building-a\"],\"scope\":\"read\"}",
             (long long)time(NULL) + 3600);
    char *token = NULL;
    if (auth && jwt_new(&jwt) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET)) == 0 &&
        jwt_add_grants_json(jwt, grants) == 0 && (token = jwt_encode_str(jwt))) {
        double t0 = now_s();
        size_t i = 0;
        for (; i < n; i++) {
            tb_grant_t *g = NULL;
            if (tb_auth_verify(auth, token, strlen(token), time(NULL), &g) != TB_AUTH_OK)
                break;
            tb_grant_free(g);
        }
        if (i == n)
            cost = (now_s() - t0) / (double)n;
    }
    free(token);
    jwt_free(jwt);
    tb_auth_destroy(auth);
    return cost;
}

int main(int argc, char **argv)
{
    static char tickets[TB_TICKET_MAX][TB_TICKET_TEXT_MAX + 1];
    static const unsigned char key[TB_TICKET_KEY_LEN] = "bench-fleet-key-0123456789abcdef";
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : TB_TICKET_MAX;
    tb_grant_str_t strs[] = {{"device:sensor-*", 15}, {"group:building-a", 16}, {"read", 4}};
    char sub[32];
    if (n == 0 || n > TB_TICKET_MAX) {
        fprintf(stderr, "N: 1..%d\n", TB_TICKET_MAX);
        return 2;
    }
    tb_ticket_store_t *a = tb_ticket_create(TB_TICKET_MAX, TB_TICKET_PER_SUB);
    tb_ticket_store_t *b = tb_ticket_create(TB_TICKET_MAX, TB_TICKET_PER_SUB);
    if (!a || !b)
        return 1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        int64_t expires;
        snprintf(sub, sizeof(sub), "user-%zu", i / TB_TICKET_PER_SUB);
        tb_grant_t *g = tb_grant_new(sub, strlen(sub), NOW_MS / 1000 + 3600, strs, 2, 1);
        if (!g || tb_ticket_issue(a, key, g, NOW_MS, TTL_MS, tickets[i], &expires) != 0)
            return 1;
        tb_grant_free(g);
    }
    double issue = now_s() - t0;
    double foreign = redeem_all(b, key, tickets, n), own = redeem_all(a, key, tickets, n);
    double verify = verify_cost(n);
    if (foreign < 0 || own < 0 || verify < 0)
        return 1;
    printf("tickets %zu, length %zu characters\n", n, strlen(tickets[0]));
    printf("issue                %6.2f us/ticket\n", issue / (double)n * 1e6);
    printf("redeem, other bridge %6.2f us/ticket (its redeemed list growing to %zu)\n",
           foreign / (double)n * 1e6, n);
    printf("redeem, issuer       %6.2f us/ticket\n", own / (double)n * 1e6);
    printf("verify HS256 token   %6.2f us/token (for scale)\n", verify * 1e6);
    tb_ticket_destroy(a);
    tb_ticket_destroy(b);
    return 0;
}
