/* ratelimit — per-key token buckets; see include/telebridge/ratelimit.h. */
#include "telebridge/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Milli-tokens in one token. */
#define MILLI 1000

typedef struct {
    int64_t tokens_milli;
    int64_t last_ms; /* when tokens_milli was last brought up to date */
    char key[TB_RATELIMIT_KEY_MAX + 1];
} bucket_t;

/* hashes[i] is the hash of buckets[i].key: a lookup scans the hashes (16 KiB at the bound),
 * contiguous, and compares keys only where one matches. */
struct tb_ratelimit {
    int64_t rate;      /* tokens per second */
    int64_t cap_milli; /* burst, in milli-tokens */
    size_t n, max;
    uint32_t *hashes;
    bucket_t buckets[];
};

tb_ratelimit_t *tb_ratelimit_create(int rate, int burst, size_t max_keys)
{
    if (rate < 1 || burst < 0 || max_keys < 1)
        return NULL;
    tb_ratelimit_t *rl = calloc(1, sizeof(*rl) + max_keys * sizeof(bucket_t));
    if (!rl)
        return NULL;
    if (!(rl->hashes = calloc(max_keys, sizeof(*rl->hashes)))) {
        free(rl);
        return NULL;
    }
    rl->rate = rate;
    rl->cap_milli = (int64_t)(burst ? burst : rate) * MILLI;
    rl->max = max_keys;
    return rl;
}

void tb_ratelimit_destroy(tb_ratelimit_t *rl)
{
    if (rl)
        free(rl->hashes);
    free(rl);
}

size_t tb_ratelimit_keys(const tb_ratelimit_t *rl)
{
    return rl->n;
}

/* Brings b's tokens up to now (a clock going backwards adds nothing). */
static void refill(const tb_ratelimit_t *rl, bucket_t *b, int64_t now_ms)
{
    int64_t elapsed = now_ms - b->last_ms;
    if (elapsed <= 0)
        return;
    /* Past cap_milli / rate ms any bucket is full: capping first keeps the product small. */
    if (elapsed > rl->cap_milli / rl->rate + 1)
        elapsed = rl->cap_milli / rl->rate + 1;
    b->tokens_milli += elapsed * rl->rate;
    if (b->tokens_milli > rl->cap_milli)
        b->tokens_milli = rl->cap_milli;
    b->last_ms = now_ms;
}

/* The bucket to reuse in a full table: a full one, else the one idle longest. */
static bucket_t *victim(tb_ratelimit_t *rl, int64_t now_ms)
{
    bucket_t *oldest = &rl->buckets[0];
    for (size_t i = 0; i < rl->n; i++) {
        bucket_t *b = &rl->buckets[i];
        refill(rl, b, now_ms);
        if (b->tokens_milli >= rl->cap_milli)
            return b;
        if (b->last_ms < oldest->last_ms)
            oldest = b;
    }
    return oldest;
}

static bucket_t *find_or_add(tb_ratelimit_t *rl, const char *key, int64_t now_ms)
{
    size_t len = strnlen(key, TB_RATELIMIT_KEY_MAX);
    uint32_t h = tb_hash_fnv1a(key, len);
    for (size_t i = 0; i < rl->n; i++) {
        bucket_t *b = &rl->buckets[i];
        if (rl->hashes[i] == h && strncmp(b->key, key, len) == 0 && b->key[len] == '\0')
            return b;
    }
    bucket_t *b = rl->n < rl->max ? &rl->buckets[rl->n++] : victim(rl, now_ms);
    rl->hashes[b - rl->buckets] = h;
    memcpy(b->key, key, len);
    b->key[len] = '\0';
    b->tokens_milli = rl->cap_milli;
    b->last_ms = now_ms;
    return b;
}

bool tb_ratelimit_allow(tb_ratelimit_t *rl, const char *key, int64_t now_ms)
{
    bucket_t *b = find_or_add(rl, key, now_ms);
    refill(rl, b, now_ms);
    if (b->tokens_milli < MILLI)
        return false;
    b->tokens_milli -= MILLI;
    return true;
}
