/* lastvalue — per-device last telemetry and status; see include/telebridge/lastvalue.h. */
#include "telebridge/lastvalue.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/series.h"
#include "telebridge/strhash.h"
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
struct tb_lastvalue_entry {
    tb_strhash_node_t node;              /* in the index, keyed by device */
    tb_lastvalue_entry_t *older, *newer; /* update-order list */
    uint64_t names;                      /* names_sig() of the stored telemetry */
    tb_frame_t *telemetry, *status;      /* device-message envelopes; NULL until the first */
    char *group;                         /* NULL when the topic named none */
    tb_series_t *series;                 /* the caller's (series.h); freed with the record */
    uint64_t *words;
    char device[];
};

struct tb_lastvalue {
    tb_strhash_t index;
    size_t max_devices, n_words;
    uint64_t evictions;
    tb_lastvalue_entry_t *oldest, *newest;
};

tb_lastvalue_t *tb_lastvalue_create(size_t max_devices, size_t n_words)
{
    tb_lastvalue_t *lv = calloc(1, sizeof(*lv));
    if (!lv)
        return NULL;
    if (tb_strhash_init(&lv->index, LV_BUCKETS_MIN,
                        offsetof(tb_lastvalue_entry_t, device) -
                            offsetof(tb_lastvalue_entry_t, node))) {
        free(lv);
        return NULL;
    }
    lv->max_devices = max_devices;
    lv->n_words = n_words;
    return lv;
}

static void entry_free(tb_lastvalue_entry_t *e)
{
    tb_frame_unref(e->telemetry);
    tb_frame_unref(e->status);
    tb_series_free(e->series);
    free(e->group);
    free(e);
}

void tb_lastvalue_destroy(tb_lastvalue_t *lv)
{
    if (!lv)
        return;
    for (tb_lastvalue_entry_t *e = lv->oldest, *next; e; e = next) {
        next = e->newer;
        entry_free(e);
    }
    tb_strhash_fini(&lv->index);
    free(lv);
}

tb_lastvalue_entry_t *tb_lastvalue_find(const tb_lastvalue_t *lv, const char *device)
{
    tb_strhash_node_t *n = tb_strhash_find(&lv->index, device, strlen(device));
    return n ? TB_STRHASH_ENTRY(n, tb_lastvalue_entry_t, node) : NULL;
}

static void list_unlink(tb_lastvalue_t *lv, tb_lastvalue_entry_t *e)
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

static void list_push_newest(tb_lastvalue_t *lv, tb_lastvalue_entry_t *e)
{
    e->older = lv->newest;
    e->newer = NULL;
    if (lv->newest)
        lv->newest->newer = e;
    else
        lv->oldest = e;
    lv->newest = e;
}

static void evict_oldest(tb_lastvalue_t *lv)
{
    tb_lastvalue_entry_t *e = lv->oldest;
    tb_strhash_remove(&lv->index, &e->node);
    list_unlink(lv, e);
    entry_free(e);
    lv->evictions++;
}

/* A new, indexed record for device (evicting when full); NULL when out of memory. */
static tb_lastvalue_entry_t *entry_create(tb_lastvalue_t *lv, const char *device)
{
    size_t len = strlen(device);
    size_t words = lv->n_words * sizeof(uint64_t);
    size_t head = sizeof(tb_lastvalue_entry_t) + len + 1;
    head = (head + sizeof(uint64_t) - 1) / sizeof(uint64_t) * sizeof(uint64_t);
    if (lv->index.count >= lv->max_devices)
        evict_oldest(lv);
    tb_lastvalue_entry_t *e = calloc(1, head + words);
    if (!e)
        return NULL;
    memcpy(e->device, device, len + 1);
    e->words = (uint64_t *)(void *)((char *)e + head);
    tb_strhash_insert(&lv->index, &e->node);
    list_push_newest(lv, e);
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
    json_object_foreach((json_t *)fields, key, v) sig += tb_hash_fnv1a64(key, strlen(key));
    json_object_foreach((json_t *)tags, key, v)
    {
        uint64_t h = tb_hash_fnv1a64(key, strlen(key));
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
static tb_frame_t *merged_frame(const tb_lastvalue_entry_t *e, const json_t *p, tb_frame_t *f,
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

static void fold_telemetry(tb_lastvalue_entry_t *e, const json_t *p, tb_frame_t *f)
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

static void fold_status(tb_lastvalue_entry_t *e, tb_frame_t *f)
{
    tb_frame_ref(f);
    tb_frame_unref(e->status);
    e->status = f;
}

static void set_group(tb_lastvalue_entry_t *e, const char *group)
{
    if (e->group && strcmp(e->group, group) == 0)
        return;
    free(e->group);
    e->group = group[0] ? strdup(group) : NULL;
}

tb_lastvalue_entry_t *tb_lastvalue_update(tb_lastvalue_t *lv, const tb_msg_t *m, tb_frame_t *f)
{
    if (lv->max_devices == 0)
        return NULL;
    tb_lastvalue_entry_t *e = tb_lastvalue_find(lv, m->device_id);
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

tb_lastvalue_entry_t *tb_lastvalue_oldest(const tb_lastvalue_t *lv)
{
    return lv->oldest;
}

tb_lastvalue_entry_t *tb_lastvalue_newer(const tb_lastvalue_entry_t *e)
{
    return e->newer;
}

size_t tb_lastvalue_count(const tb_lastvalue_t *lv)
{
    return lv->index.count;
}

uint64_t tb_lastvalue_evictions(const tb_lastvalue_t *lv)
{
    return lv->evictions;
}

const char *tb_lastvalue_device(const tb_lastvalue_entry_t *e)
{
    return e->device;
}

const char *tb_lastvalue_group(const tb_lastvalue_entry_t *e)
{
    return e->group ? e->group : "";
}

tb_frame_t *tb_lastvalue_telemetry(const tb_lastvalue_entry_t *e)
{
    return e->telemetry;
}

tb_frame_t *tb_lastvalue_status(const tb_lastvalue_entry_t *e)
{
    return e->status;
}

uint64_t *tb_lastvalue_words(tb_lastvalue_entry_t *e)
{
    return e->words;
}

tb_series_t **tb_lastvalue_series(tb_lastvalue_entry_t *e)
{
    return &e->series;
}
