/*
 * strhash — an intrusive hash index of string-keyed records: the hub's rooms and the
 * last-value store's devices.
 *
 * Intrusive: a record embeds a tb_strhash_node_t, and its key, a NUL-terminated string, lies
 * key_off bytes after that node within the record (the table's one offset, given at init; a
 * flexible `char name[]` member). The index allocates only its buckets; it never allocates,
 * copies or frees a record, and the caller keeps a record's key unchanged while it is indexed.
 * Chains are in FNV-1a (tb_hash_fnv1a()); the bucket count is a power of two that doubles when
 * records outnumber buckets (a failed doubling only makes chains longer).
 *
 * Not thread-safe: one thread at a time per table (the service thread for both users).
 */
#ifndef TELEBRIDGE_STRHASH_H
#define TELEBRIDGE_STRHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct tb_strhash_node {
    struct tb_strhash_node *next; /* the chain */
    uint32_t hash;
} tb_strhash_node_t;

/* Embedded in its owner; its fields are the index's (read count freely). */
typedef struct {
    tb_strhash_node_t **buckets;
    uint32_t n_buckets;
    size_t count;   /* records indexed */
    size_t key_off; /* from a record's node to its key */
} tb_strhash_t;

/* The record of type that holds node as member. */
#define TB_STRHASH_ENTRY(node, type, member)                                                       \
    ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* An empty index of min_buckets buckets (a power of two); 0, or -1 when out of memory. */
int tb_strhash_init(tb_strhash_t *t, uint32_t min_buckets, size_t key_off);
/* Frees the buckets, not the records. A zeroed or finished table is a no-op. */
void tb_strhash_fini(tb_strhash_t *t);

/* The node whose key is key[0..len) (key need not be terminated), or NULL. */
tb_strhash_node_t *tb_strhash_find(const tb_strhash_t *t, const char *key, size_t len);
/* The same with hash = tb_hash_fnv1a(key, len) computed by the caller (once for many tables). */
tb_strhash_node_t *tb_strhash_find_hash(const tb_strhash_t *t, const char *key, size_t len,
                                        uint32_t hash);
/* Indexes n, whose record's key is set; the caller makes sure the key is not indexed yet. */
void tb_strhash_insert(tb_strhash_t *t, tb_strhash_node_t *n);
/* Removes n, which is indexed. O(its chain). */
void tb_strhash_remove(tb_strhash_t *t, tb_strhash_node_t *n);

/* Iteration in no particular order: the first node (NULL when empty), then each next one (NULL
 * after the last). The table must not change during a walk. */
tb_strhash_node_t *tb_strhash_first(const tb_strhash_t *t);
tb_strhash_node_t *tb_strhash_next(const tb_strhash_t *t, const tb_strhash_node_t *n);

#endif
