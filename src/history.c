/* history — ring of recent routed messages by seq; see include/telebridge/history.h. */
#include "telebridge/history.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq; /* 0: empty */
    tb_frame_t *frame;
    char *rooms; /* n packed NUL-terminated names */
    size_t n;
} entry_t;

struct tb_history {
    entry_t *ring;
    size_t capacity, count;
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

int tb_history_add(tb_history_t *h, tb_frame_t *f, const char *const *rooms, size_t n)
{
    if (!h->capacity)
        return 0;
    entry_t *e = &h->ring[f->seq % h->capacity];
    entry_clear(h, e);
    char *packed = pack_rooms(rooms, n);
    if (!packed)
        return -1;
    tb_frame_ref(f);
    *e = (entry_t){.seq = f->seq, .frame = f, .rooms = packed, .n = n};
    h->count++;
    return 0;
}

bool tb_history_covers(const tb_history_t *h, uint64_t since, uint64_t last)
{
    return since <= last && last - since <= h->capacity;
}

tb_frame_t *tb_history_get(const tb_history_t *h, uint64_t seq, const char **rooms, size_t *n)
{
    if (!h->capacity || !seq)
        return NULL;
    const entry_t *e = &h->ring[seq % h->capacity];
    if (e->seq != seq)
        return NULL;
    *rooms = e->rooms;
    *n = e->n;
    return e->frame;
}

size_t tb_history_count(const tb_history_t *h)
{
    return h->count;
}
