/* ticket — one-time WebSocket tickets; see include/telebridge/ticket.h. */
#include "telebridge/ticket.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "telebridge/util.h"
#include "ticket_internal.h"

/* First allocation of a list's entry array; it doubles up to the list's max. */
#define TICKETS_MIN_CAP 16
/* Bytes of SHA-256(sub) that tell users apart: 128 bits, no collision among real subs. */
#define SUB_ID_LEN 16

typedef struct {
    unsigned char nonce[TB_TICKET_NONCE_LEN]; /* which ticket (the MAC vouches for it) */
    unsigned char sub[SUB_ID_LEN];            /* whose ticket it is ("issued" only) */
    uint64_t serial;                          /* issue order: the lowest of a sub is its oldest */
    int64_t expires_ms;
    bool used;
} entry_t;

/*
 * entries[i] and tags[i] describe the same ticket. A lookup scans the tags (the first 8 bytes of
 * each nonce, contiguous: 32 KiB at the bound) and compares whole nonces only where a tag matches.
 */
typedef struct {
    entry_t *entries;
    uint64_t *tags;
    size_t n, cap, max;
} list_t;

struct tb_ticket_store {
    list_t issued, redeemed; /* see "Single use" in ticket.h */
    size_t per_sub;
    uint64_t next_serial;
    int64_t created_ms;
    unsigned char issuer[TB_TICKET_ISSUER_LEN];
    unsigned char key[TB_TICKET_KEY_LEN];     /* used when no fleet key is given */
    unsigned char old_key[TB_TICKET_KEY_LEN]; /* the fleet key before a reload ... */
    int64_t old_key_until_ms;                 /* ... accepted until then (0: none) */
};

/* Fills buf from the kernel's CSPRNG; 0, or -1 when it fails. */
static int random_bytes(unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static uint64_t tag_of(const unsigned char nonce[TB_TICKET_NONCE_LEN])
{
    uint64_t t;
    memcpy(&t, nonce, sizeof(t));
    return t;
}

tb_ticket_store_t *tb_ticket_create(size_t max, size_t per_sub)
{
    tb_ticket_store_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->issued.max = max ? max : 1;
    t->redeemed.max = t->issued.max * TB_TICKET_REDEEMED_PER_MAX;
    t->per_sub = per_sub ? per_sub : 1;
    t->created_ms = tb_now_ms();
    if (random_bytes(t->issuer, sizeof(t->issuer)) || random_bytes(t->key, sizeof(t->key))) {
        free(t);
        return NULL;
    }
    return t;
}

void tb_ticket_destroy(tb_ticket_store_t *t)
{
    if (!t)
        return;
    free(t->issued.entries);
    free(t->issued.tags);
    free(t->redeemed.entries);
    free(t->redeemed.tags);
    tb_wipe(t->key, sizeof(t->key));
    tb_wipe(t->old_key, sizeof(t->old_key));
    free(t);
}

void tb_ticket_rotate(tb_ticket_store_t *t, const unsigned char *old_key, int64_t until_ms)
{
    t->old_key_until_ms = old_key ? until_ms : 0;
    if (old_key)
        memcpy(t->old_key, old_key, sizeof(t->old_key));
    else
        tb_wipe(t->old_key, sizeof(t->old_key));
}

size_t tb_ticket_held(const tb_ticket_store_t *t)
{
    return t->issued.n + t->redeemed.n;
}

/* Swap-removes entry i. */
static void entry_remove(list_t *l, size_t i)
{
    l->n--;
    l->entries[i] = l->entries[l->n];
    l->tags[i] = l->tags[l->n];
}

static void forget_expired(list_t *l, int64_t now_ms)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->entries[i].expires_ms <= now_ms)
            entry_remove(l, i);
}

/* Room for one more entry when n < max: 0, or TB_TICKET_E_NOMEM (nothing changed). */
static int list_grow(list_t *l)
{
    if (l->n < l->cap)
        return 0;
    size_t ncap = l->cap ? l->cap * 2 : TICKETS_MIN_CAP;
    if (ncap > l->max)
        ncap = l->max;
    entry_t *e = realloc(l->entries, ncap * sizeof(*e));
    if (e)
        l->entries = e;
    uint64_t *tags = e ? realloc(l->tags, ncap * sizeof(*tags)) : NULL;
    if (!tags)
        return TB_TICKET_E_NOMEM; /* entries may have grown: harmless, cap is unchanged */
    l->tags = tags;
    l->cap = ncap;
    return 0;
}

/* Appends an entry for nonce (list_grow() made room); returns it. */
static entry_t *list_add(list_t *l, const unsigned char nonce[TB_TICKET_NONCE_LEN],
                         int64_t expires_ms)
{
    entry_t *e = &l->entries[l->n];
    memset(e, 0, sizeof(*e));
    memcpy(e->nonce, nonce, sizeof(e->nonce));
    e->expires_ms = expires_ms;
    l->tags[l->n++] = tag_of(nonce);
    return e;
}

/* The index of nonce's entry, or l->n. */
static size_t list_find(const list_t *l, const unsigned char nonce[TB_TICKET_NONCE_LEN])
{
    uint64_t tag = tag_of(nonce);
    for (size_t i = 0; i < l->n; i++)
        if (l->tags[i] == tag && memcmp(l->entries[i].nonce, nonce, TB_TICKET_NONCE_LEN) == 0)
            return i;
    return l->n;
}

static void sub_id(const tb_grant_t *grant, unsigned char out[SUB_ID_LEN])
{
    unsigned char full[SHA256_DIGEST_LENGTH];
    const char *sub = tb_grant_sub(grant);
    SHA256((const unsigned char *)sub, strlen(sub), full);
    memcpy(out, full, SUB_ID_LEN);
}

/* How many tickets sub holds; the index of its oldest in *oldest when it holds any. */
static size_t sub_held(const list_t *l, const unsigned char sub[SUB_ID_LEN], size_t *oldest)
{
    size_t held = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (memcmp(l->entries[i].sub, sub, SUB_ID_LEN) != 0)
            continue;
        if (!held++ || l->entries[i].serial < l->entries[*oldest].serial)
            *oldest = i;
    }
    return held;
}

/* Room for one more issued ticket of sub, by the rules of "Bounds" (ticket.h): 0, or a
 * tb_ticket_err_t. */
static int make_room(tb_ticket_store_t *t, const unsigned char sub[SUB_ID_LEN], int64_t now_ms)
{
    list_t *l = &t->issued;
    size_t oldest = 0;
    if (l->n == l->max)
        forget_expired(l, now_ms);
    size_t held = sub_held(l, sub, &oldest);
    if (held >= t->per_sub || (held && l->n == l->max)) {
        entry_remove(l, oldest);
        return 0;
    }
    return l->n == l->max ? TB_TICKET_E_FULL : list_grow(l);
}

static const unsigned char *key_of(const tb_ticket_store_t *t, const unsigned char *fleet_key)
{
    return fleet_key ? fleet_key : t->key;
}

int tb_ticket_issue(tb_ticket_store_t *t, const unsigned char *fleet_key, const tb_grant_t *grant,
                    int64_t now_ms, int64_t ttl_ms, char out[TB_TICKET_TEXT_MAX + 1],
                    int64_t *expires_ms)
{
    tb_ticket_head_t h = {.issued_ms = now_ms, .expires_ms = now_ms + ttl_ms};
    unsigned char sub[SUB_ID_LEN];
    char text[TB_TICKET_TEXT_MAX + 1];
    /* Compared in seconds first so that no claim value takes part in an overflowing product. */
    if (tb_grant_exp(grant) <= h.expires_ms / 1000)
        h.expires_ms = tb_grant_exp(grant) * 1000;
    memcpy(h.issuer, t->issuer, sizeof(h.issuer));
    if (random_bytes(h.nonce, sizeof(h.nonce)))
        return TB_TICKET_E_RANDOM;
    int len = tb_ticket_codec_encode(&h, grant, key_of(t, fleet_key), text, sizeof(text));
    if (len < 0)
        return TB_TICKET_E_TOOBIG;
    sub_id(grant, sub);
    int rc = make_room(t, sub, now_ms);
    if (!rc) {
        entry_t *e = list_add(&t->issued, h.nonce, h.expires_ms);
        memcpy(e->sub, sub, SUB_ID_LEN);
        e->serial = t->next_serial++;
        memcpy(out, text, (size_t)len + 1);
        *expires_ms = h.expires_ms;
    }
    tb_wipe(text, sizeof(text));
    return rc;
}

/* Single use of one of this store's own tickets: it must be in "issued", unused. */
static int redeem_own(tb_ticket_store_t *t, const tb_ticket_head_t *h)
{
    size_t i = list_find(&t->issued, h->nonce);
    if (i == t->issued.n)
        return TB_TICKET_E_UNKNOWN;
    if (t->issued.entries[i].used)
        return TB_TICKET_E_USED;
    t->issued.entries[i].used = true;
    return TB_TICKET_OK;
}

/* Single use of another issuer's ticket: remembered in "redeemed" until it expires. */
static int redeem_foreign(tb_ticket_store_t *t, const tb_ticket_head_t *h, int64_t now_ms)
{
    list_t *l = &t->redeemed;
    if (list_find(l, h->nonce) < l->n)
        return TB_TICKET_E_USED;
    if (l->n == l->max)
        forget_expired(l, now_ms);
    if (l->n == l->max)
        return TB_TICKET_E_BUSY;
    int rc = list_grow(l);
    if (!rc)
        list_add(l, h->nonce, h->expires_ms)->used = true;
    return rc;
}

int tb_ticket_redeem(tb_ticket_store_t *t, const unsigned char *fleet_key, const char *ticket,
                     size_t len, int64_t now_ms, tb_grant_t **grant)
{
    tb_ticket_head_t h;
    tb_grant_t *g = NULL;
    int rc;
    if (!ticket || len > TB_TICKET_TEXT_MAX)
        return TB_TICKET_E_UNKNOWN;
    rc = tb_ticket_codec_decode(ticket, len, key_of(t, fleet_key), &h, &g);
    if (rc == -1 && now_ms < t->old_key_until_ms)
        rc = tb_ticket_codec_decode(ticket, len, t->old_key, &h, &g);
    if (rc)
        return rc == -2 ? TB_TICKET_E_NOMEM : TB_TICKET_E_UNKNOWN;
    bool own = memcmp(h.issuer, t->issuer, sizeof(h.issuer)) == 0;
    if (h.expires_ms <= now_ms) {
        size_t i = own ? list_find(&t->issued, h.nonce) : t->issued.n;
        if (i < t->issued.n)
            entry_remove(&t->issued, i); /* forgotten once seen expired */
        rc = TB_TICKET_E_EXPIRED;
    } else if (h.issued_ms < t->created_ms) {
        rc = TB_TICKET_E_UNKNOWN;
    } else {
        rc = own ? redeem_own(t, &h) : redeem_foreign(t, &h, now_ms);
    }
    if (rc) {
        tb_grant_free(g);
        return rc;
    }
    *grant = g;
    return TB_TICKET_OK;
}
