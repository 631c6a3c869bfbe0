/* hub_rooms.c — the hub's room index and room membership; see src/hub_internal.h. */
#include "hub_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- room index ------------------------------------------------------------------------ */

room_t *hub_room_find(const tb_hub_t *h, const char *name, size_t len)
{
    tb_strhash_node_t *n = tb_strhash_find(&h->rooms, name, len);
    return n ? TB_STRHASH_ENTRY(n, room_t, node) : NULL;
}

size_t hub_rooms_resolve(const tb_hub_t *h, const char *const *names, size_t n, room_t **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < ROOMS_PER_MESSAGE; i++)
        if ((out[k] = hub_room_find(h, names[i], strlen(names[i]))))
            k++;
    return k;
}

static room_t *room_create(tb_hub_t *h, const char *name)
{
    size_t len = strlen(name);
    room_t *r = calloc(1, sizeof(*r) + len + 1);
    if (!r)
        return NULL;
    memcpy(r->name, name, len + 1);
    tb_strhash_insert(&h->rooms, &r->node);
    return r;
}

static void room_destroy(tb_hub_t *h, room_t *r)
{
    tb_strhash_remove(&h->rooms, &r->node);
    free(r->members);
    free(r);
}

/* ---- the rooms of a message ------------------------------------------------------------- */

/* out = prefix + name, cut at TB_ROOM_MAX bytes. No stdio: this runs per device message. */
static void room_name(char out[TB_ROOM_MAX + 1], const char *prefix, const char *name)
{
    size_t plen = strlen(prefix), n = strlen(name);
    if (n > TB_ROOM_MAX - plen)
        n = TB_ROOM_MAX - plen;
    memcpy(out, prefix, plen);
    memcpy(out + plen, name, n);
    out[plen + n] = '\0';
}

/* The rooms of a device message: its device room first, its topic group, its groups, global. */
void hub_device_rooms(const tb_hub_t *h, const char *device, const char *group, dev_rooms_t *out)
{
    const char *groups[TB_GROUPS_PER_DEVICE_MAX];
    size_t n = 0;
    size_t ng = tb_groups_of(h->groups, device, groups, TB_GROUPS_PER_DEVICE_MAX);
    room_name(out->names[n++], "device:", device);
    if (group[0])
        room_name(out->names[n++], "group:", group);
    for (size_t i = 0; i < ng && n < ROOMS_PER_MESSAGE - 1; i++)
        room_name(out->names[n++], "group:", groups[i]);
    room_name(out->names[n++], "", "global");
    for (size_t i = 0; i < n; i++)
        out->ptrs[i] = out->names[i];
    out->n = n;
}

/*
 * Marks the rooms c holds for one pass over its queue or pending snapshot: all of them, or,
 * with `like`, the others that like's subscribe joined. Returns how many; h->marks is the
 * pass's stamp. O(rooms held).
 */
uint32_t hub_rooms_mark(tb_hub_t *h, const tb_conn_t *c, const joined_t *like)
{
    uint32_t n = 0;
    h->marks++;
    for (uint32_t i = 0; i < c->n_rooms; i++) {
        const joined_t *j = &c->rooms[i];
        if (like && (j->room == like->room || j->sub != like->sub))
            continue;
        j->room->mark = h->marks;
        j->room->mark_from = j->from_seq;
        n++;
    }
    return n;
}

/*
 * The rooms frame f (a device message or its snapshot copy) matches, in routing order: while
 * the history holds f, the rooms it was routed to; else those of its envelope `room`: for
 * device:<id>, that device's rooms as they are now (with the topic group of its last message),
 * for a room published to, that room alone. None for a control frame.
 */
static void frame_rooms(const tb_hub_t *h, const tb_frame_t *f, dev_rooms_t *out)
{
    const char *packed, *id;
    char room[TB_ROOM_MAX + 1];
    size_t n, len;
    out->n = 0;
    if (f->seq && tb_history_get(h->hist, f->seq, &packed, &n) == f) {
        for (; out->n < n && out->n < ROOMS_PER_MESSAGE; packed += strlen(packed) + 1)
            room_name(out->names[out->n++], "", packed);
    } else if ((len = tb_protocol_device_room(f, room)) == 0) {
        return;
    } else if (tb_room_parse(room, len, &id, NULL) == TB_ROOM_DEVICE) {
        const tb_lastvalue_entry_t *e = tb_lastvalue_find(h->lv, id);
        hub_device_rooms(h, id, e ? tb_lastvalue_group(e) : "", out);
    } else {
        room_name(out->names[out->n++], "", room);
    }
}

/* The first of f's rooms (frame_rooms()) marked by the last hub_rooms_mark() with a from_seq
 * below `after`, or NULL. */
room_t *hub_frame_match(const tb_hub_t *h, const tb_frame_t *f, uint64_t after)
{
    dev_rooms_t dr;
    frame_rooms(h, f, &dr);
    for (size_t i = 0; i < dr.n; i++) {
        room_t *r = hub_room_find(h, dr.names[i], strlen(dr.names[i]));
        if (r && r->mark == h->marks && r->mark_from < after)
            return r;
    }
    return NULL;
}

/* Grows an array of elem-sized items to hold one more; 0, or -1 when out of memory. */
int hub_grow_for_one(void **arr, uint32_t *cap, uint32_t n, uint32_t min_cap, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : min_cap;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

/* The joined entry of room r in c, or NULL. */
const joined_t *hub_conn_joined_room(const tb_conn_t *c, const room_t *r)
{
    for (uint32_t i = 0; i < c->n_rooms; i++)
        if (c->rooms[i].room == r)
            return &c->rooms[i];
    return NULL;
}

bool hub_conn_joined(const tb_hub_t *h, const tb_conn_t *c, const char *name)
{
    const room_t *r = hub_room_find(h, name, strlen(name));
    return r && hub_conn_joined_room(c, r);
}

/*
 * Adds c to the room called name, creating it, owing it the room's messages after from_seq.
 * 0 (also when c already was in it), or -1 when out of memory or the room is full
 * (HUB_ROOM_MEMBERS_MAX).
 */
int hub_room_join(tb_hub_t *h, tb_conn_t *c, const char *name, uint64_t from_seq)
{
    room_t *r = hub_room_find(h, name, strlen(name));
    if (r && hub_conn_joined_room(c, r))
        return 0;
    if (r && r->n_members >= HUB_ROOM_MEMBERS_MAX)
        return -1;
    if (hub_grow_for_one((void **)&c->rooms, &c->cap_rooms, c->n_rooms, CONN_MIN_ROOMS,
                         sizeof(joined_t)))
        return -1;
    if (!r && !(r = room_create(h, name)))
        return -1;
    if (hub_grow_for_one((void **)&r->members, &r->cap_members, r->n_members, ROOM_MIN_MEMBERS,
                         sizeof(member_t))) {
        if (r->n_members == 0)
            room_destroy(h, r);
        return -1;
    }
    r->members[r->n_members] = (member_t){.conn = c, .slot = c->n_rooms};
    c->rooms[c->n_rooms] =
        (joined_t){.room = r, .pos = r->n_members, .sub = c->subs, .from_seq = from_seq};
    r->n_members++;
    c->n_rooms++;
    return 0;
}

/*
 * Removes entry `slot` of c's joined list from its room (swap-remove on both sides), handing
 * on or dropping what c's pending snapshot holds for it (hub_snap_drop_room()).
 */
void hub_room_leave_slot(tb_hub_t *h, tb_conn_t *c, uint32_t slot)
{
    hub_snap_drop_room(h, c, slot);
    hub_opts_set(c, &c->rooms[slot], 0);
    room_t *r = c->rooms[slot].room;
    uint32_t pos = c->rooms[slot].pos;
    member_t last = r->members[--r->n_members];
    if (pos != r->n_members) {
        r->members[pos] = last;
        last.conn->rooms[last.slot].pos = pos;
    }
    joined_t moved = c->rooms[--c->n_rooms];
    if (slot != c->n_rooms) {
        c->rooms[slot] = moved;
        moved.room->members[moved.pos].slot = slot;
    }
    if (r->n_members == 0)
        room_destroy(h, r);
}

/* Leaves the room called name; true when c was in it. */
bool hub_room_leave(tb_hub_t *h, tb_conn_t *c, const char *name)
{
    for (uint32_t i = 0; i < c->n_rooms; i++) {
        if (strcmp(c->rooms[i].room->name, name) == 0) {
            hub_room_leave_slot(h, c, i);
            return true;
        }
    }
    return false;
}

static int cmp_room_ptr(const void *a, const void *b)
{
    return strcmp((*(room_t *const *)a)->name, (*(room_t *const *)b)->name);
}

json_t *tb_hub_rooms_json(const tb_hub_t *h)
{
    json_t *arr = json_array();
    room_t **all = malloc((h->rooms.count ? h->rooms.count : 1) * sizeof(*all));
    size_t n = 0;
    if (!arr || !all)
        goto done;
    for (tb_strhash_node_t *e = tb_strhash_first(&h->rooms); e; e = tb_strhash_next(&h->rooms, e))
        all[n++] = TB_STRHASH_ENTRY(e, room_t, node);
    qsort(all, n, sizeof(*all), cmp_room_ptr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I}", "room", all[i]->name, "subscribers",
                                             (json_int_t)all[i]->n_members));
done:
    free(all);
    return arr;
}
