/* ticket — one-time WebSocket tickets; see include/telebridge/ticket.h. */
#include "telebridge/ticket.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "telebridge/util.h"

/* First allocation of the entry array; it doubles up to max. */
#define TICKETS_MIN_CAP 16
/* Bytes of SHA-256(sub) that tell users apart: 128 bits, no collision among real subs. */
#define SUB_ID_LEN 16

typedef struct {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    unsigned char sub[SUB_ID_LEN]; /* whose ticket it is */
    uint64_t serial;               /* issue order: the lowest of a sub is its oldest */
    int64_t expires_ms;
    tb_grant_t *grant; /* NULL once redeemed */
} entry_t;

/*
 * entries[i] and tags[i] describe the same ticket. A lookup scans the tags (the first 8 bytes
 * of each hash, contiguous: 32 KiB at the bound) and compares whole hashes only where a tag
 * matches. Comparing hashes, not tickets, early exit reveals nothing about a ticket.
 */
struct tb_ticket_store {
    entry_t *entries;
    uint64_t *tags;
    size_t n, cap, max, per_sub;
    uint64_t next_serial;
};

static uint64_t tag_of(const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    uint64_t t;
    memcpy(&t, hash, sizeof(t));
    return t;
}

tb_ticket_store_t *tb_ticket_create(size_t max, size_t per_sub)
{
    tb_ticket_store_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->max = max ? max : 1;
    t->per_sub = per_sub ? per_sub : 1;
    return t;
}

void tb_ticket_destroy(tb_ticket_store_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        tb_grant_free(t->entries[i].grant);
    free(t->entries);
    free(t->tags);
    free(t);
}

size_t tb_ticket_held(const tb_ticket_store_t *t)
{
    return t->n;
}

/* Swap-removes entry i, freeing its grant. */
static void entry_remove(tb_ticket_store_t *t, size_t i)
{
    tb_grant_free(t->entries[i].grant);
    t->n--;
    t->entries[i] = t->entries[t->n];
    t->tags[i] = t->tags[t->n];
}

static void forget_expired(tb_ticket_store_t *t, int64_t now_ms)
{
    for (size_t i = t->n; i-- > 0;)
        if (t->entries[i].expires_ms <= now_ms)
            entry_remove(t, i);
}

static void sub_id(const tb_grant_t *grant, unsigned char out[SUB_ID_LEN])
{
    unsigned char full[SHA256_DIGEST_LENGTH];
    const char *sub = tb_grant_sub(grant);
    SHA256((const unsigned char *)sub, strlen(sub), full);
    memcpy(out, full, SUB_ID_LEN);
}

/* How many tickets sub holds; the index of its oldest in *oldest when it holds any. */
static size_t sub_held(const tb_ticket_store_t *t, const unsigned char sub[SUB_ID_LEN],
                       size_t *oldest)
{
    size_t held = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (memcmp(t->entries[i].sub, sub, SUB_ID_LEN) != 0)
            continue;
        if (!held++ || t->entries[i].serial < t->entries[*oldest].serial)
            *oldest = i;
    }
    return held;
}

/* Room for one more entry of sub, by the rules of "Bounds" (ticket.h): 0, or a tb_ticket_err_t. */
static int make_room(tb_ticket_store_t *t, const unsigned char sub[SUB_ID_LEN], int64_t now_ms)
{
    size_t oldest = 0;
    if (t->n == t->max)
        forget_expired(t, now_ms);
    size_t held = sub_held(t, sub, &oldest);
    if (held >= t->per_sub || (held && t->n == t->max)) {
        entry_remove(t, oldest);
        return 0;
    }
    if (t->n == t->max)
        return TB_TICKET_E_FULL;
    if (t->n < t->cap)
        return 0;
    size_t ncap = t->cap ? t->cap * 2 : TICKETS_MIN_CAP;
    if (ncap > t->max)
        ncap = t->max;
    entry_t *e = realloc(t->entries, ncap * sizeof(*e));
    if (e)
        t->entries = e;
    uint64_t *tags = e ? realloc(t->tags, ncap * sizeof(*tags)) : NULL;
    if (!tags)
        return TB_TICKET_E_NOMEM; /* entries may have grown: harmless, cap is unchanged */
    t->tags = tags;
    t->cap = ncap;
    return 0;
}

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

static void to_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

int tb_ticket_issue(tb_ticket_store_t *t, const tb_grant_t *grant, int64_t now_ms, int64_t ttl_ms,
                    char out[TB_TICKET_LEN + 1], int64_t *expires_ms)
{
    unsigned char raw[TB_TICKET_BYTES], sub[SUB_ID_LEN];
    char text[TB_TICKET_LEN + 1];
    sub_id(grant, sub);
    int rc = make_room(t, sub, now_ms);
    if (rc)
        return rc;
    if (random_bytes(raw, sizeof(raw)))
        return TB_TICKET_E_RANDOM;
    tb_grant_t *copy = tb_grant_dup(grant);
    if (!copy) {
        tb_wipe(raw, sizeof(raw));
        return TB_TICKET_E_NOMEM;
    }
    to_hex(raw, sizeof(raw), text);
    entry_t *e = &t->entries[t->n];
    SHA256((const unsigned char *)text, TB_TICKET_LEN, e->hash);
    t->tags[t->n++] = tag_of(e->hash);
    memcpy(e->sub, sub, SUB_ID_LEN);
    e->serial = t->next_serial++;
    e->grant = copy;
    e->expires_ms = now_ms + ttl_ms;
    /* Compared in seconds first so that no claim value takes part in an overflowing product. */
    if (tb_grant_exp(grant) <= e->expires_ms / 1000)
        e->expires_ms = tb_grant_exp(grant) * 1000;
    memcpy(out, text, sizeof(text));
    *expires_ms = e->expires_ms;
    tb_wipe(raw, sizeof(raw));
    tb_wipe(text, sizeof(text));
    return TB_TICKET_OK;
}

static bool hex_lower(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int tb_ticket_redeem(tb_ticket_store_t *t, const char *ticket, size_t len, int64_t now_ms,
                     tb_grant_t **grant)
{
    unsigned char hash[SHA256_DIGEST_LENGTH];
    if (!ticket || len != TB_TICKET_LEN || !hex_lower(ticket, len))
        return TB_TICKET_E_UNKNOWN;
    SHA256((const unsigned char *)ticket, len, hash);
    uint64_t tag = tag_of(hash);
    for (size_t i = 0; i < t->n; i++) {
        entry_t *e = &t->entries[i];
        if (t->tags[i] != tag || CRYPTO_memcmp(e->hash, hash, sizeof(hash)) != 0)
            continue;
        if (e->expires_ms <= now_ms) {
            entry_remove(t, i);
            return TB_TICKET_E_EXPIRED;
        }
        if (!e->grant)
            return TB_TICKET_E_USED;
        *grant = e->grant;
        e->grant = NULL;
        return TB_TICKET_OK;
    }
    return TB_TICKET_E_UNKNOWN;
}
