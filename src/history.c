/* history — ring of recent routed messages by seq; see include/telebridge/history.h. */
#include "telebridge/history.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq; /* 0: empty */
    int64_t ms;   /* when it was recorded (the bridge's ingest time) */
    tb_frame_t *frame;
    char *rooms; /* n packed NUL-terminated names */
    size_t n;
} entry_t;

struct tb_history {
    entry_t *ring;
    size_t capacity, count;
    int64_t horizon; /* see tb_history_horizon() */
};

tb_history_t *tb_history_create(size_t capacity)
{
    tb_history_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->capacity = capacity;
    if (capacity && !(h->ring = calloc(capacity, sizeof(*h->ring)))) {
        free(h);
        return NULL;
    }
    return h;
}

static void entry_clear(tb_history_t *h, entry_t *e)
{
    if (!e->seq)
        return;
    if (e->ms > h->horizon)
        h->horizon = e->ms;
    tb_frame_unref(e->frame);
    free(e->rooms);
    memset(e, 0, sizeof(*e));
    h->count--;
}

void tb_history_destroy(tb_history_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->capacity; i++)
        entry_clear(h, &h->ring[i]);
    free(h->ring);
    free(h);
}

/* The names packed one after another, each with its NUL; NULL when out of memory. */
static char *pack_rooms(const char *const *rooms, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(rooms[i]) + 1;
    char *p = malloc(total ? total : 1);
    if (!p)
        return NULL;
    for (size_t i = 0, at = 0; i < n; i++) {
        size_t len = strlen(rooms[i]) + 1;
        memcpy(p + at, rooms[i], len);
        at += len;
    }
    return p;
}

int tb_history_add(tb_history_t *h, tb_frame_t *f, int64_t ms, const char *const *rooms, size_t n)
{
    if (!h->capacity)
        return 0;
    entry_t *e = &h->ring[f->seq % h->capacity];
    entry_clear(h, e);
    char *packed = pack_rooms(rooms, n);
    if (!packed)
        return -1;
    tb_frame_ref(f);
    *e = (entry_t){.seq = f->seq, .ms = ms, .frame = f, .rooms = packed, .n = n};
    h->count++;
    return 0;
}

bool tb_history_covers(const tb_history_t *h, uint64_t since, uint64_t last)
{
    return since <= last && last - since <= h->capacity;
}

/* The entry of seq, or NULL when it is not held. */
static const entry_t *entry_of(const tb_history_t *h, uint64_t seq)
{
    if (!h->capacity || !seq)
        return NULL;
    const entry_t *e = &h->ring[seq % h->capacity];
    return e->seq == seq ? e : NULL;
}

tb_frame_t *tb_history_get(const tb_history_t *h, uint64_t seq, const char **rooms, size_t *n)
{
    const entry_t *e = entry_of(h, seq);
    if (!e)
        return NULL;
    *rooms = e->rooms;
    *n = e->n;
    return e->frame;
}

int64_t tb_history_ms(const tb_history_t *h, uint64_t seq)
{
    const entry_t *e = entry_of(h, seq);
    return e ? e->ms : INT64_MIN;
}

int64_t tb_history_horizon(const tb_history_t *h)
{
    return h->horizon;
}

void tb_history_set_horizon(tb_history_t *h, int64_t ms)
{
    h->horizon = ms;
}

uint64_t tb_history_seq_before(const tb_history_t *h, int64_t from_ms, uint64_t last)
{
    uint64_t lowest = last >= h->capacity ? last - h->capacity + 1 : 1;
    for (uint64_t s = last; s >= lowest && s > 0; s--) {
        const entry_t *e = entry_of(h, s);
        if (e && e->ms < from_ms)
            return s;
    }
    return lowest - 1;
}

size_t tb_history_count(const tb_history_t *h)
{
    return h->count;
}
