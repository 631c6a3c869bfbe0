/* strhash — intrusive hash index of string-keyed records; see include/telebridge/strhash.h. */
#include "telebridge/strhash.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

static const char *node_key(const tb_strhash_t *t, const tb_strhash_node_t *n)
{
    return (const char *)n + t->key_off;
}

int tb_strhash_init(tb_strhash_t *t, uint32_t min_buckets, size_t key_off)
{
    t->buckets = calloc(min_buckets, sizeof(*t->buckets));
    t->n_buckets = t->buckets ? min_buckets : 0;
    t->count = 0;
    t->key_off = key_off;
    return t->buckets ? 0 : -1;
}

void tb_strhash_fini(tb_strhash_t *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->n_buckets = 0;
    t->count = 0;
}

tb_strhash_node_t *tb_strhash_find(const tb_strhash_t *t, const char *key, size_t len)
{
    return tb_strhash_find_hash(t, key, len, tb_hash_fnv1a(key, len));
}

tb_strhash_node_t *tb_strhash_find_hash(const tb_strhash_t *t, const char *key, size_t len,
                                        uint32_t hash)
{
    for (tb_strhash_node_t *n = t->buckets[hash & (t->n_buckets - 1)]; n; n = n->next) {
        const char *k = node_key(t, n);
        if (n->hash == hash && strncmp(k, key, len) == 0 && k[len] == '\0')
            return n;
    }
    return NULL;
}

static void grow(tb_strhash_t *t)
{
    uint32_t nb = t->n_buckets * 2;
    tb_strhash_node_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* a longer chain is slower, not wrong */
    for (uint32_t i = 0; i < t->n_buckets; i++) {
        for (tb_strhash_node_t *n = t->buckets[i], *next; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
}

void tb_strhash_insert(tb_strhash_t *t, tb_strhash_node_t *n)
{
    const char *k = node_key(t, n);
    n->hash = tb_hash_fnv1a(k, strlen(k));
    n->next = t->buckets[n->hash & (t->n_buckets - 1)];
    t->buckets[n->hash & (t->n_buckets - 1)] = n;
    if (++t->count > t->n_buckets)
        grow(t);
}

void tb_strhash_remove(tb_strhash_t *t, tb_strhash_node_t *n)
{
    tb_strhash_node_t **pp = &t->buckets[n->hash & (t->n_buckets - 1)];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    t->count--;
}

/* The first node of the first non-empty bucket from i on, or NULL. */
static tb_strhash_node_t *first_from(const tb_strhash_t *t, uint32_t i)
{
    for (; i < t->n_buckets; i++)
        if (t->buckets[i])
            return t->buckets[i];
    return NULL;
}

tb_strhash_node_t *tb_strhash_first(const tb_strhash_t *t)
{
    return first_from(t, 0);
}

tb_strhash_node_t *tb_strhash_next(const tb_strhash_t *t, const tb_strhash_node_t *n)
{
    return n->next ? n->next : first_from(t, (n->hash & (t->n_buckets - 1)) + 1);
}
