/* lastvalue — per-device last telemetry and status; see include/telebridge/lastvalue.h. */
#include "telebridge/lastvalue.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Initial hash buckets; the index doubles when records outnumber buckets. */
#define LV_BUCKETS_MIN 64

/*
 * The state is kept as encoded frames, not as jansson objects: a device whose field and tag
 * names stay the same (the usual case, recognised by names_sig()) keeps a reference to its
 * last message's frame — shared with the history and the send queues, so nothing is copied
 * or encoded — and only a message that changes the set of names costs a parse, a merge and
 * an encoding (of that message's envelope with the merged payload). A few hundred bytes per
 * device instead of a few kilobytes of jansson objects.
 */
struct tb_lv_entry {
    tb_lv_entry_t *hnext;         /* hash chain */
    tb_lv_entry_t *older, *newer; /* update-order list */
    uint32_t hash;
    uint64_t names;                 /* names_sig() of the stored telemetry */
    tb_frame_t *telemetry, *status; /* device-message envelopes; NULL until the first */
    char *group;                    /* NULL when the topic named none */
    uint64_t *words;
    char device[];
};

struct tb_lastvalue {
    tb_lv_entry_t **buckets;
    uint32_t n_buckets;
    size_t count, max_devices, n_words;
    uint64_t evictions;
    tb_lv_entry_t *oldest, *newest;
};

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
    tb_frame_unref(e->telemetry);
    tb_frame_unref(e->status);
    free(e->group);
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
    uint32_t hash = tb_hash_fnv1a(device, strlen(device));
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
    e->hash = tb_hash_fnv1a(device, strlen(device));
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

static uint64_t hash64(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a, 64 bits */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return h;
}

/*
 * A fingerprint of the field and tag names of telemetry p, independent of their order: the
 * sums of their hashes (tags' rotated) and their counts. Equal fingerprints mean p replaces
 * every stored value, so no merge is needed (a collision is a 2^-64 event).
 */
static uint64_t names_sig(const json_t *p)
{
    const json_t *fields = json_object_get(p, "fields"), *tags = json_object_get(p, "tags");
    const char *key;
    const json_t *v;
    uint64_t sig = (uint64_t)json_object_size(fields) << 32 | json_object_size(tags);
    json_object_foreach((json_t *)fields, key, v) sig += hash64(key);
    json_object_foreach((json_t *)tags, key, v)
    {
        uint64_t h = hash64(key);
        sig += h << 1 | h >> 63;
    }
    return sig;
}

/* The "payload" of a stored frame as a new object; NULL when out of memory. */
static json_t *frame_payload(tb_frame_t *f)
{
    json_t *root = json_loadb(tb_frame_payload(f), f->len, 0, NULL);
    json_t *p = json_incref(json_object_get(root, "payload"));
    json_decref(root);
    return p;
}

/*
 * f's envelope with e's telemetry, p folded in, as its payload: a new frame with f's seq and
 * timestamp; its names_sig() in *names. NULL when out of memory.
 */
static tb_frame_t *merged_frame(const tb_lv_entry_t *e, const json_t *p, tb_frame_t *f,
                                uint64_t *names)
{
    json_t *env = json_loadb(tb_frame_payload(f), f->len, 0, NULL);
    json_t *t = frame_payload(e->telemetry);
    tb_frame_t *merged = NULL;
    if (env && t) {
        merge_member(t, p, "fields");
        merge_member(t, p, "tags");
        json_object_set(t, "timestamp", json_object_get(p, "timestamp"));
        *names = names_sig(t);
        json_object_set(env, "payload", t);
        merged = tb_frame_from_json(env, TB_FRAME_TELEMETRY, f->seq);
    }
    json_decref(env);
    json_decref(t);
    return merged;
}

static void fold_telemetry(tb_lv_entry_t *e, const json_t *p, tb_frame_t *f)
{
    uint64_t names = names_sig(p);
    tb_frame_t *keep = f;
    if (!e->telemetry || names == e->names)
        tb_frame_ref(f);
    else if (!(keep = merged_frame(e, p, f, &names)))
        return; /* out of memory: the older state stays */
    tb_frame_unref(e->telemetry);
    e->telemetry = keep;
    e->names = names;
}

static void fold_status(tb_lv_entry_t *e, tb_frame_t *f)
{
    tb_frame_ref(f);
    tb_frame_unref(e->status);
    e->status = f;
}

static void set_group(tb_lv_entry_t *e, const char *group)
{
    if (e->group && strcmp(e->group, group) == 0)
        return;
    free(e->group);
    e->group = group[0] ? strdup(group) : NULL;
}

tb_lv_entry_t *tb_lastvalue_update(tb_lastvalue_t *lv, const tb_msg_t *m, tb_frame_t *f)
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
    set_group(e, m->group);
    if (!f)
        return e;
    if (m->kind == TB_MSG_TELEMETRY)
        fold_telemetry(e, m->payload, f);
    else
        fold_status(e, f);
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
    return e->group ? e->group : "";
}

tb_frame_t *tb_lv_telemetry(const tb_lv_entry_t *e)
{
    return e->telemetry;
}

tb_frame_t *tb_lv_status(const tb_lv_entry_t *e)
{
    return e->status;
}

uint64_t *tb_lv_words(tb_lv_entry_t *e)
{
    return e->words;
}
