/* lastvalue — per-device last telemetry and status; see include/telebridge/lastvalue.h. */
#include "telebridge/lastvalue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Initial hash buckets; the index doubles when records outnumber buckets. */
#define LV_BUCKETS_MIN 64

struct tb_lv_entry {
    tb_lv_entry_t *hnext;         /* hash chain */
    tb_lv_entry_t *older, *newer; /* update-order list */
    uint32_t hash;
    uint64_t telemetry_seq, status_seq;
    json_t *telemetry, *status;
    uint64_t *words;
    char group[TB_ID_MAX + 1];
    char device[];
};

struct tb_lastvalue {
    tb_lv_entry_t **buckets;
    uint32_t n_buckets;
    size_t count, max_devices, n_words;
    uint64_t evictions;
    tb_lv_entry_t *oldest, *newest;
};

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

tb_lastvalue_t *tb_lastvalue_create(size_t max_devices, size_t n_words)
{
    tb_lastvalue_t *lv = calloc(1, sizeof(*lv));
    if (!lv)
        return NULL;
    lv->n_buckets = LV_BUCKETS_MIN;
    lv->buckets = calloc(lv->n_buckets, sizeof(*lv->buckets));
    if (!lv->buckets) {
        free(lv);
        return NULL;
    }
    lv->max_devices = max_devices;
    lv->n_words = n_words;
    return lv;
}

static void entry_free(tb_lv_entry_t *e)
{
    json_decref(e->telemetry);
    json_decref(e->status);
    free(e);
}

void tb_lastvalue_destroy(tb_lastvalue_t *lv)
{
    if (!lv)
        return;
    for (tb_lv_entry_t *e = lv->oldest, *next; e; e = next) {
        next = e->newer;
        entry_free(e);
    }
    free(lv->buckets);
    free(lv);
}

tb_lv_entry_t *tb_lastvalue_find(const tb_lastvalue_t *lv, const char *device)
{
    uint32_t hash = hash_id(device);
    for (tb_lv_entry_t *e = lv->buckets[hash & (lv->n_buckets - 1)]; e; e = e->hnext)
        if (e->hash == hash && strcmp(e->device, device) == 0)
            return e;
    return NULL;
}

static void list_unlink(tb_lastvalue_t *lv, tb_lv_entry_t *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        lv->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        lv->newest = e->older;
    e->older = e->newer = NULL;
}

static void list_push_newest(tb_lastvalue_t *lv, tb_lv_entry_t *e)
{
    e->older = lv->newest;
    e->newer = NULL;
    if (lv->newest)
        lv->newest->newer = e;
    else
        lv->oldest = e;
    lv->newest = e;
}

static void index_grow(tb_lastvalue_t *lv)
{
    uint32_t n = lv->n_buckets * 2;
    tb_lv_entry_t **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* a longer chain is slower, not wrong */
    for (uint32_t i = 0; i < lv->n_buckets; i++) {
        for (tb_lv_entry_t *e = lv->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(lv->buckets);
    lv->buckets = b;
    lv->n_buckets = n;
}

static void evict_oldest(tb_lastvalue_t *lv)
{
    tb_lv_entry_t *e = lv->oldest;
    tb_lv_entry_t **pp = &lv->buckets[e->hash & (lv->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(lv, e);
    entry_free(e);
    lv->count--;
    lv->evictions++;
}

/* A new, indexed record for device (evicting when full); NULL when out of memory. */
static tb_lv_entry_t *entry_create(tb_lastvalue_t *lv, const char *device)
{
    size_t len = strlen(device);
    size_t words = lv->n_words * sizeof(uint64_t);
    size_t head = sizeof(tb_lv_entry_t) + len + 1;
    head = (head + sizeof(uint64_t) - 1) / sizeof(uint64_t) * sizeof(uint64_t);
    if (lv->count >= lv->max_devices)
        evict_oldest(lv);
    tb_lv_entry_t *e = calloc(1, head + words);
    if (!e)
        return NULL;
    memcpy(e->device, device, len + 1);
    e->words = (uint64_t *)(void *)((char *)e + head);
    e->hash = hash_id(device);
    e->hnext = lv->buckets[e->hash & (lv->n_buckets - 1)];
    lv->buckets[e->hash & (lv->n_buckets - 1)] = e;
    list_push_newest(lv, e);
    if (++lv->count > lv->n_buckets)
        index_grow(lv);
    return e;
}

/* Merges the members of src's object `key` into dst's (shallow: values are shared). */
static void merge_member(json_t *dst, const json_t *src, const char *key)
{
    json_t *from = json_object_get(src, key);
    json_t *into = json_object_get(dst, key);
    if (json_is_object(from) && json_is_object(into))
        json_object_update(into, from);
}

static void fold_telemetry(tb_lv_entry_t *e, const json_t *p, uint64_t seq)
{
    if (!e->telemetry) {
        json_t *t = json_pack("{s:O, s:O, s:o, s:o}", "device_id", json_object_get(p, "device_id"),
                              "timestamp", json_object_get(p, "timestamp"), "fields",
                              json_copy(json_object_get(p, "fields")), "tags",
                              json_copy(json_object_get(p, "tags")));
        if (!t)
            return;
        e->telemetry = t;
    } else {
        merge_member(e->telemetry, p, "fields");
        merge_member(e->telemetry, p, "tags");
        json_object_set(e->telemetry, "timestamp", json_object_get(p, "timestamp"));
    }
    e->telemetry_seq = seq;
}

tb_lv_entry_t *tb_lastvalue_update(tb_lastvalue_t *lv, const tb_msg_t *m, uint64_t seq)
{
    if (lv->max_devices == 0)
        return NULL;
    tb_lv_entry_t *e = tb_lastvalue_find(lv, m->device_id);
    if (e) {
        list_unlink(lv, e);
        list_push_newest(lv, e);
    } else if (!(e = entry_create(lv, m->device_id))) {
        return NULL;
    }
    snprintf(e->group, sizeof(e->group), "%s", m->group);
    if (m->kind == TB_MSG_TELEMETRY) {
        fold_telemetry(e, m->payload, seq);
    } else {
        json_decref(e->status);
        e->status = json_incref(m->payload);
        e->status_seq = seq;
    }
    return e;
}

tb_lv_entry_t *tb_lastvalue_oldest(const tb_lastvalue_t *lv)
{
    return lv->oldest;
}

tb_lv_entry_t *tb_lastvalue_newer(const tb_lv_entry_t *e)
{
    return e->newer;
}

size_t tb_lastvalue_count(const tb_lastvalue_t *lv)
{
    return lv->count;
}

uint64_t tb_lastvalue_evictions(const tb_lastvalue_t *lv)
{
    return lv->evictions;
}

const char *tb_lv_device(const tb_lv_entry_t *e)
{
    return e->device;
}

const char *tb_lv_group(const tb_lv_entry_t *e)
{
    return e->group;
}

const json_t *tb_lv_telemetry(const tb_lv_entry_t *e, uint64_t *seq)
{
    *seq = e->telemetry_seq;
    return e->telemetry;
}

const json_t *tb_lv_status(const tb_lv_entry_t *e, uint64_t *seq)
{
    *seq = e->status_seq;
    return e->status;
}

uint64_t *tb_lv_words(tb_lv_entry_t *e)
{
    return e->words;
}
