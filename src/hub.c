/* hub — rooms, connections and fan-out; see include/telebridge/hub.h. */
#include "telebridge/hub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/alerts.h"
#include "telebridge/groups.h"
#include "telebridge/history.h"
#include "telebridge/lastvalue.h"
#include "telebridge/log.h"
#include "telebridge/protocol.h"
#include "telebridge/room.h"
#include "telebridge/util.h"

/* First allocation of a connection's send queue and of a room's member list. */
#define QUEUE_MIN_CAP 8
#define ROOM_MIN_MEMBERS 4
#define CONN_MIN_ROOMS 4
/* First size of the hub's array of connection slots (doubled as needed). */
#define SLOTS_MIN 64
/* Initial hash buckets for the room index; it doubles when rooms outnumber buckets. */
#define ROOM_BUCKETS_MIN 64
/* Room names of a device message: its device room, its groups, global. */
#define ROOMS_PER_MESSAGE (TB_GROUPS_PER_DEVICE_MAX + 2)
/* A catching-up connection is refilled to this share of its queue bound (in quarters), so
 * control answers queued meanwhile still fit under the bound. */
#define CATCH_UP_FILL_QUARTERS 3
/* Longest alert_id: rule name, device id, seq, separators. */
#define ALERT_ID_MAX (TB_ID_MAX * 3)

typedef struct room room_t;

/* One member of a room: the connection and where the room sits in its joined list. */
typedef struct {
    tb_conn_t *conn;
    uint32_t slot;
} member_t;

/*
 * One room a connection joined: the room, where the connection sits in its members, the
 * connection's number of the subscribe that joined it, the seq after which the room's messages
 * are owed to the connection (the bridge's last seq when it joined, or the `since` it recovers
 * from), and the seq up to which the connection already had them (see struct tb_conn).
 */
typedef struct {
    room_t *room;
    uint32_t pos;
    uint32_t sub;
    uint64_t from_seq;
    uint64_t had_to;
} joined_t;

/* A pending snapshot frame: a reference to a stored frame and the joined room it is sent for. */
typedef struct {
    tb_frame_t *frame;
    const room_t *room;
} snap_t;

struct room {
    room_t *next; /* hash chain */
    uint32_t hash;
    uint32_t n_members;
    uint32_t cap_members;
    member_t *members;
    /* For one pass over a connection's queue or snapshot (rooms_mark()): mark is that pass's
     * stamp exactly when the connection holds the room, mark_from its from_seq then. */
    uint64_t mark, mark_from;
    char name[];
};

struct tb_conn {
    uint32_t slot; /* its index in the hub's slots */
    void *io;
    tb_grant_t *grant;
    uint64_t id;
    uint64_t last_seq; /* seq of the last device message queued: the live fan-out's guard */
    tb_frame_t **q;    /* ring of queued frames, allocated on first use */
    uint32_t q_cap, q_head, q_len;
    /*
     * Catching up (after a subscribe): live fan-out skips the connection; tb_hub_conn_sent()
     * refills its queue from snap[snap_i..snap_n) (references to the stored frames of its
     * snapshots, marked as they are queued) and from the history after `cursor`, until the
     * cursor reaches the bridge's last seq.
     *
     * What c has been sent, for each joined room j (H: the bridge's last seq):
     * - live: every message of j.room with a seq in (j.from_seq, H], once; snap is empty.
     * - catching up: every message of j.room with a seq in (j.from_seq, max(j.had_to, cursor)],
     *   once; those after are queued as the cursor passes them, unless another joined room
     *   already had them. cursor <= H and had_max <= H. j.had_to is had_max, the bridge's last
     *   seq when catch-up began, for rooms joined before (everything up to then came live),
     *   and j.from_seq for rooms joined since (nothing of theirs came yet). A message is thus
     *   owed when some joined room owes it (seq > from_seq) and none had it (seq <= had_to).
     * - a pending snapshot frame is the state as of its room's from_seq and is queued when the
     *   cursor reaches that seq, before the messages after it; snap[snap_i..) is in
     *   non-decreasing from_seq of its rooms.
     */
    bool catching_up;
    uint64_t cursor;
    uint64_t had_max; /* the largest had_to (0 when no room was held): past it, none had anything */
    uint32_t subs;    /* subscribes handled: joined_t.sub of the rooms the current one joins */
    snap_t *snap;
    uint32_t snap_n, snap_i, snap_cap;
    joined_t *rooms;
    uint32_t n_rooms, cap_rooms;
    int64_t rl_window; /* the second the rate-limit count belongs to */
    uint32_t rl_count;
    bool warned; /* token_expiring was sent for the current grant */
    int close_code;
};

/*
 * The open connections, one slot each in a dense array with what the once-a-second walks of
 * tb_hub_tick() and tb_hub_heartbeat() compare, so that they read memory in order and touch a
 * connection only when something is due (a walk of a linked list of connections missed the
 * cache at every one: docs/performance.md). A closed connection's
 * slot is filled with the last one.
 */
typedef struct {
    tb_conn_t *c;
    int64_t deadline_s; /* when tb_hub_tick() next has work for c: the warning, then the exp */
    int64_t seen_ms;    /* tb_mono_ms() of c's last sign of life (or of its open) */
    bool pinged;        /* io.ping was called since seen_ms */
} slot_t;

struct tb_hub {
    const tb_config_t *cfg;
    const tb_auth_t *auth;
    tb_hub_io_t io;
    void *transport;
    tb_groups_t *groups;
    tb_lastvalue_t *lv;
    tb_history_t *hist;
    tb_alert_event_t *events; /* one per alert rule: an ingest's transitions */
    /* The rules: cfg's until a reload hands over its own (alerts_owned); always n_alerts of
     * them, the count the last-value store's per-device words were sized for. */
    tb_config_alert_t *alerts;
    size_t n_alerts;
    bool alerts_owned;
    room_t **buckets;
    uint32_t n_buckets, n_rooms;
    slot_t *slots;
    size_t n_conns, cap_slots;
    uint64_t seq;
    uint64_t marks; /* the stamp of the last rooms_mark() */
    uint64_t next_conn_id;
    char epoch[TB_EPOCH_LEN];
    tb_hub_counters_t counters;
};

/* ---- room index ------------------------------------------------------------------------ */

static room_t *room_find(const tb_hub_t *h, const char *name, size_t len)
{
    uint32_t hash = tb_hash_fnv1a(name, len);
    for (room_t *r = h->buckets[hash & (h->n_buckets - 1)]; r; r = r->next)
        if (r->hash == hash && strncmp(r->name, name, len) == 0 && r->name[len] == '\0')
            return r;
    return NULL;
}

static void room_index_grow(tb_hub_t *h)
{
    uint32_t n = h->n_buckets * 2;
    room_t **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* a longer chain is slower, not wrong */
    for (uint32_t i = 0; i < h->n_buckets; i++) {
        for (room_t *r = h->buckets[i], *next; r; r = next) {
            next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
}

static room_t *room_create(tb_hub_t *h, const char *name)
{
    size_t len = strlen(name);
    room_t *r = calloc(1, sizeof(*r) + len + 1);
    if (!r)
        return NULL;
    memcpy(r->name, name, len + 1);
    r->hash = tb_hash_fnv1a(name, len);
    r->next = h->buckets[r->hash & (h->n_buckets - 1)];
    h->buckets[r->hash & (h->n_buckets - 1)] = r;
    if (++h->n_rooms > h->n_buckets)
        room_index_grow(h);
    return r;
}

static void room_destroy(tb_hub_t *h, room_t *r)
{
    room_t **pp = &h->buckets[r->hash & (h->n_buckets - 1)];
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    h->n_rooms--;
    free(r->members);
    free(r);
}

/* ---- the rooms of a message ------------------------------------------------------------- */

/* Room names of one device's messages, with pointers to them in ptrs. */
typedef struct {
    char names[ROOMS_PER_MESSAGE][TB_ROOM_MAX + 1];
    const char *ptrs[ROOMS_PER_MESSAGE];
    size_t n;
} dev_rooms_t;

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
static void device_rooms(const tb_hub_t *h, const char *device, const char *group, dev_rooms_t *out)
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
static uint32_t rooms_mark(tb_hub_t *h, const tb_conn_t *c, const joined_t *like)
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
    } else if ((len = tb_proto_device_room(f, room)) == 0) {
        return;
    } else if (tb_room_parse(room, len, &id, NULL) == TB_ROOM_DEVICE) {
        const tb_lv_entry_t *e = tb_lastvalue_find(h->lv, id);
        device_rooms(h, id, e ? tb_lv_group(e) : "", out);
    } else {
        room_name(out->names[out->n++], "", room);
    }
}

/* The first of f's rooms (frame_rooms()) marked by the last rooms_mark() with a from_seq
 * below `after`, or NULL. */
static room_t *frame_match(const tb_hub_t *h, const tb_frame_t *f, uint64_t after)
{
    dev_rooms_t dr;
    frame_rooms(h, f, &dr);
    for (size_t i = 0; i < dr.n; i++) {
        room_t *r = room_find(h, dr.names[i], strlen(dr.names[i]));
        if (r && r->mark == h->marks && r->mark_from < after)
            return r;
    }
    return NULL;
}

/* Grows an array of elem-sized items to hold one more; 0, or -1 when out of memory. */
static int grow_for_one(void **arr, uint32_t *cap, uint32_t n, uint32_t min_cap, size_t elem)
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
static const joined_t *conn_joined_room(const tb_conn_t *c, const room_t *r)
{
    for (uint32_t i = 0; i < c->n_rooms; i++)
        if (c->rooms[i].room == r)
            return &c->rooms[i];
    return NULL;
}

static bool conn_joined(const tb_hub_t *h, const tb_conn_t *c, const char *name)
{
    const room_t *r = room_find(h, name, strlen(name));
    return r && conn_joined_room(c, r);
}

/*
 * Adds c to the room called name, creating it, owing it the room's messages after from_seq.
 * 0 (also when c already was in it), or -1 when out of memory.
 */
static int room_join(tb_hub_t *h, tb_conn_t *c, const char *name, uint64_t from_seq)
{
    room_t *r = room_find(h, name, strlen(name));
    if (r && conn_joined_room(c, r))
        return 0;
    if (grow_for_one((void **)&c->rooms, &c->cap_rooms, c->n_rooms, CONN_MIN_ROOMS,
                     sizeof(joined_t)))
        return -1;
    if (!r && !(r = room_create(h, name)))
        return -1;
    if (grow_for_one((void **)&r->members, &r->cap_members, r->n_members, ROOM_MIN_MEMBERS,
                     sizeof(member_t))) {
        if (r->n_members == 0)
            room_destroy(h, r);
        return -1;
    }
    r->members[r->n_members] = (member_t){.conn = c, .slot = c->n_rooms};
    c->rooms[c->n_rooms] = (joined_t){
        .room = r, .pos = r->n_members, .sub = c->subs, .from_seq = from_seq, .had_to = from_seq};
    r->n_members++;
    c->n_rooms++;
    return 0;
}

static void snap_release(tb_conn_t *c)
{
    for (uint32_t i = c->snap_i; i < c->snap_n; i++)
        tb_frame_unref(c->snap[i].frame);
    free(c->snap);
    c->snap = NULL;
    c->snap_n = c->snap_i = c->snap_cap = 0;
}

static void snap_check(tb_hub_t *h, const tb_conn_t *c);

/*
 * c leaves the room of joined slot `slot`: each of its pending snapshot frames sent for that
 * room goes to another room of the same subscribe that holds the frame's device (global when
 * that subscribe joined it, else the first in routing order, frame_match()), or is dropped
 * when there is none. That subscribe sent each device once and joined all its rooms with one
 * from_seq, so each device stays once and the order of the pending frames holds. A room of
 * another subscribe needs none: its own subscribe brought, or brings, the device's state.
 * O(pending frames), plus, for each frame of the room left, its device's rooms when its
 * subscribe holds others but not global; nothing when none is pending.
 */
static void snap_drop_room(tb_hub_t *h, tb_conn_t *c, uint32_t slot)
{
    if (c->snap_i == c->snap_n)
        return;
    const joined_t *left = &c->rooms[slot];
    bool heirs = rooms_mark(h, c, left) > 0;
    room_t *global = heirs ? room_find(h, "global", strlen("global")) : NULL;
    if (global && global->mark != h->marks)
        global = NULL; /* else it holds every device: no need to look further */
    uint32_t kept = c->snap_i;
    for (uint32_t i = c->snap_i; i < c->snap_n; i++) {
        snap_t e = c->snap[i];
        if (e.room == left->room) {
            e.room = global ? global : heirs ? frame_match(h, e.frame, UINT64_MAX) : NULL;
            if (!e.room) {
                tb_frame_unref(e.frame);
                continue;
            }
        }
        c->snap[kept++] = e;
    }
    c->snap_n = kept;
    if (kept == c->snap_i)
        snap_release(c); /* frees the array too: nothing pending */
    else
        snap_check(h, c);
}

/*
 * Removes entry `slot` of c's joined list from its room (swap-remove on both sides), handing
 * on or dropping what c's pending snapshot holds for it (snap_drop_room()).
 */
static void room_leave_slot(tb_hub_t *h, tb_conn_t *c, uint32_t slot)
{
    snap_drop_room(h, c, slot);
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
static bool room_leave(tb_hub_t *h, tb_conn_t *c, const char *name)
{
    for (uint32_t i = 0; i < c->n_rooms; i++) {
        if (strcmp(c->rooms[i].room->name, name) == 0) {
            room_leave_slot(h, c, i);
            return true;
        }
    }
    return false;
}

/* ---- send queues ------------------------------------------------------------------------- */

static tb_frame_t **queue_at(const tb_conn_t *c, uint32_t i)
{
    return &c->q[(c->q_head + i) & (c->q_cap - 1)];
}

static void queue_release(tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++)
        tb_frame_unref(*queue_at(c, i));
    free(c->q);
    c->q = NULL;
    c->q_cap = c->q_head = c->q_len = 0;
}

/* Doubles the ring (a power of two), unrolling it. 0, or -1 when out of memory. */
static int queue_grow(tb_conn_t *c)
{
    uint32_t ncap = c->q_cap ? c->q_cap * 2 : QUEUE_MIN_CAP;
    tb_frame_t **nq = malloc((size_t)ncap * sizeof(*nq));
    if (!nq)
        return -1;
    for (uint32_t i = 0; i < c->q_len; i++)
        nq[i] = *queue_at(c, i);
    free(c->q);
    c->q = nq;
    c->q_cap = ncap;
    c->q_head = 0;
    return 0;
}

/*
 * After c left rooms: drops from its send queue, keeping the order of the rest, each device
 * frame that no room c still holds matches (frame_match(): a message through a room that owed
 * it, i.e. joined before its seq; a snapshot copy through any room holding its device).
 * Control frames stay. The whole queue is c's to change: the transport takes each frame off
 * it (tb_hub_conn_sent()) as it hands it to the socket. O(queued frames × a message's rooms);
 * a snapshot copy is kept at once while global is held.
 */
static void queue_drop_left(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t kept = 0;
    bool none = rooms_mark(h, c, NULL) == 0;
    const room_t *global = none ? NULL : room_find(h, "global", strlen("global"));
    bool in_global = global && global->mark == h->marks; /* it holds every device */
    for (uint32_t i = 0; i < c->q_len; i++) {
        tb_frame_t *f = *queue_at(c, i);
        bool snapshot = tb_proto_is_snapshot(f);
        if (f->seq && !(snapshot && in_global) &&
            (none || !frame_match(h, f, snapshot ? UINT64_MAX : f->seq))) {
            tb_frame_unref(f);
            continue;
        }
        *queue_at(c, kept++) = f;
    }
    c->q_len = kept;
}

const char *tb_hub_close_reason(int code)
{
    switch (code) {
    case TB_CLOSE_GOING_AWAY:
        return "going away";
    case TB_CLOSE_POLICY:
        return "slow consumer";
    case TB_CLOSE_TOKEN_EXPIRED:
        return "token expired";
    default:
        return "closing";
    }
}

static void conn_request_close(tb_hub_t *h, tb_conn_t *c, int code)
{
    if (c->close_code)
        return;
    c->close_code = code;
    h->io.close(h->transport, c->io, code);
}

static void slow_consumer(tb_hub_t *h, tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++)
        if ((*queue_at(c, i))->seq)
            h->counters.dropped++;
    queue_release(c);
    h->counters.slow_consumer_disconnects++;
    tb_log(TB_LOG_INFO, "slow consumer disconnected", "conn=%" PRIu64 " bound=%d", c->id,
           h->cfg->limits.send_queue_messages);
    conn_request_close(h, c, TB_CLOSE_POLICY);
}

/* drop_oldest: removes the oldest queued telemetry frame; false when there is none. */
static bool drop_oldest_telemetry(tb_hub_t *h, tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++) {
        if ((*queue_at(c, i))->kind != TB_FRAME_TELEMETRY)
            continue;
        tb_frame_unref(*queue_at(c, i));
        for (uint32_t k = i; k + 1 < c->q_len; k++)
            *queue_at(c, k) = *queue_at(c, k + 1);
        c->q_len--;
        h->counters.dropped++;
        return true;
    }
    return false;
}

/* Makes room for one frame under the bound; false when c was closed as a slow consumer. */
static bool queue_make_room(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t bound = (uint32_t)h->cfg->limits.send_queue_messages;
    if (c->q_len >= bound) {
        bool dropped =
            h->cfg->limits.slow_consumer == TB_SLOW_DROP_OLDEST && drop_oldest_telemetry(h, c);
        if (!dropped) {
            slow_consumer(h, c);
            return false;
        }
    }
    if (c->q_len == c->q_cap && queue_grow(c)) {
        slow_consumer(h, c);
        return false;
    }
    return true;
}

/* Queues a reference to f on c; nothing once c is closing. */
static void conn_queue(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
{
    if (c->close_code)
        return;
    if (!queue_make_room(h, c)) {
        if (f->seq)
            h->counters.dropped++;
        return;
    }
    tb_frame_ref(f);
    *queue_at(c, c->q_len++) = f;
    if (c->q_len == 1)
        h->io.want_write(h->transport, c->io);
}

/* Queues a control frame made for c alone (f may be NULL when out of memory). */
static void conn_send_owned(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
{
    if (!f)
        return;
    conn_queue(h, c, f);
    tb_frame_unref(f);
}

static void conn_error(tb_hub_t *h, tb_conn_t *c, const char *code, const char *message,
                       json_t *rooms, const json_t *request_id)
{
    h->counters.client_errors++;
    conn_send_owned(h, c, tb_proto_error(code, message, rooms, request_id, tb_now_ms()));
}

/* ---- catch-up: snapshot, then replay from the history, paced by the send queue -------- */

/*
 * Appends a reference to stored frame f (the last-value store's, as of now) to c's pending
 * snapshot, sent for joined room r; its marked copy is made only when it is queued, so a
 * pending snapshot costs two pointers per message and still shows the state of the moment of
 * the subscribe (frames are immutable: a later update replaces the store's frame, not this one).
 */
static void snap_push(tb_conn_t *c, tb_frame_t *f, const room_t *r)
{
    if (grow_for_one((void **)&c->snap, &c->snap_cap, c->snap_n, QUEUE_MIN_CAP, sizeof(*c->snap)))
        return; /* out of memory: the snapshot lacks this message */
    tb_frame_ref(f);
    c->snap[c->snap_n++] = (snap_t){.frame = f, .room = r};
}

#ifdef TB_CHECK_INVARIANTS
/* Aborts when cond does not hold: the invariants of struct tb_conn (sanitizer builds). */
#define CONN_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "hub invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The invariants of struct tb_conn that cost O(rooms) to check, not O(snapshot). */
static void conn_check(const tb_hub_t *h, const tb_conn_t *c)
{
    CONN_CHECK(c->last_seq <= h->seq);
    CONN_CHECK(c->q_len <= (uint32_t)h->cfg->limits.send_queue_messages &&
               (c->q_len == 0 || c->q_len <= c->q_cap));
    CONN_CHECK(c->catching_up || c->snap_i == c->snap_n);
    CONN_CHECK(c->snap_i == c->snap_n || conn_joined_room(c, c->snap[c->snap_i].room));
    if (!c->catching_up)
        return;
    CONN_CHECK(c->cursor <= h->seq && c->had_max <= h->seq);
    for (uint32_t i = 0; i < c->n_rooms; i++) {
        const joined_t *j = &c->rooms[i];
        CONN_CHECK(j->had_to == j->from_seq ||
                   (j->from_seq <= j->had_to && j->had_to == c->had_max));
    }
}
/* The invariants of the pending snapshot (struct tb_conn), O(pending frames): each is sent for
 * a room c holds, in non-decreasing from_seq of those rooms. */
static void snap_check(tb_hub_t *h, const tb_conn_t *c)
{
    uint64_t from = 0;
    rooms_mark(h, c, NULL);
    for (uint32_t i = c->snap_i; i < c->snap_n; i++) {
        const room_t *r = c->snap[i].room;
        CONN_CHECK(r->mark == h->marks && r->mark_from >= from);
        from = r->mark_from;
    }
}
#else
static void conn_check(const tb_hub_t *h, const tb_conn_t *c)
{
    (void)h;
    (void)c;
}

static void snap_check(tb_hub_t *h, const tb_conn_t *c)
{
    (void)h;
    (void)c;
}
#endif

/* True when c's next pending snapshot frame is due: the cursor reached its room's from_seq. */
static bool snap_due(const tb_conn_t *c)
{
    return c->snap_i < c->snap_n &&
           conn_joined_room(c, c->snap[c->snap_i].room)->from_seq <= c->cursor;
}

/* Queues the marked copy of c's next pending snapshot frame. */
static void snap_send_next(tb_hub_t *h, tb_conn_t *c)
{
    tb_frame_t *stored = c->snap[c->snap_i++].frame;
    h->counters.snapshot_messages++;
    conn_send_owned(h, c, tb_proto_snapshot(stored));
    tb_frame_unref(stored);
}

/*
 * True when a message with seq routed to rooms (n packed names) is owed to c: some joined room
 * owes it and, while seq is not past had_max, none had it already.
 */
static bool conn_owed(const tb_hub_t *h, const tb_conn_t *c, const char *rooms, size_t n,
                      uint64_t seq)
{
    bool owed = false;
    for (size_t i = 0; i < n; i++, rooms += strlen(rooms) + 1) {
        const joined_t *j = conn_joined_room(c, room_find(h, rooms, strlen(rooms)));
        if (!j || seq <= j->from_seq)
            continue;
        if (seq <= j->had_to)
            return false;
        if (seq > c->had_max)
            return true;
        owed = true;
    }
    return owed;
}

/* Moves c's cursor one seq on, queueing that message when c is owed it. */
static void replay_next(tb_hub_t *h, tb_conn_t *c)
{
    const char *rooms;
    size_t n;
    uint64_t seq = ++c->cursor;
    tb_frame_t *f = tb_history_get(h->hist, seq, &rooms, &n);
    if (!f || !conn_owed(h, c, rooms, n, seq))
        return;
    c->last_seq = seq;
    h->counters.replayed++;
    h->counters.deliveries++;
    conn_queue(h, c, f);
}

/*
 * Refills a catching-up connection's queue up to its fill mark: the pending snapshot frames
 * that are due, then owed messages from the history. Once the cursor reaches the bridge's last
 * seq the connection is live again. A cursor the history no longer covers means c fell too far
 * behind to be caught up: a slow consumer, whatever the slow_consumer policy.
 */
static void catch_up(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t fill = (uint32_t)h->cfg->limits.send_queue_messages * CATCH_UP_FILL_QUARTERS / 4;
    if (fill < 1)
        fill = 1;
    while (c->catching_up && !c->close_code && c->q_len < fill) {
        if (snap_due(c)) {
            snap_send_next(h, c);
        } else if (c->cursor == h->seq) {
            c->catching_up = false;
            c->last_seq = h->seq;
            snap_release(c);
        } else if (!tb_history_covers(h->hist, c->cursor, h->seq)) {
            slow_consumer(h, c);
        } else {
            replay_next(h, c);
        }
    }
    conn_check(h, c);
}

tb_frame_t *tb_hub_conn_peek(const tb_conn_t *c)
{
    return c->q_len ? *queue_at(c, 0) : NULL;
}

tb_frame_t *tb_hub_conn_at(const tb_conn_t *c, size_t i)
{
    return *queue_at(c, (uint32_t)i);
}

void tb_hub_conn_sent(tb_hub_t *h, tb_conn_t *c)
{
    if (!c->q_len)
        return;
    tb_frame_t *f = *queue_at(c, 0);
    h->counters.messages_out[f->kind < TB_FRAME_KIND_N ? f->kind : TB_FRAME_CONTROL]++;
    tb_frame_unref(f);
    c->q_head = (c->q_head + 1) & (c->q_cap - 1);
    c->q_len--;
    if (c->catching_up)
        catch_up(h, c);
}

size_t tb_hub_conn_queued(const tb_conn_t *c)
{
    return c->q_len;
}

int tb_hub_conn_close_code(const tb_conn_t *c)
{
    return c->close_code;
}

/* ---- hub life ---------------------------------------------------------------------------- */

static void random_epoch(char out[TB_EPOCH_LEN])
{
    uint64_t r = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&r, sizeof(r), 1, f) != 1)
        r = (uint64_t)tb_now_ms() ^ ((uint64_t)tb_mono_ms() << 20);
    if (f)
        fclose(f);
    snprintf(out, TB_EPOCH_LEN, "%016" PRIx64, r);
}

/*
 * The history ring holds history.messages for `since`, and never fewer than
 * limits.send_queue_messages: a catch-up (a snapshot draining at the reader's pace) may then
 * fall as far behind as a live connection's queue allows before it is a slow consumer, even
 * when history.messages is 0.
 */
static size_t history_capacity(const tb_config_t *cfg)
{
    int n = cfg->history.messages > cfg->limits.send_queue_messages
                ? cfg->history.messages
                : cfg->limits.send_queue_messages;
    return (size_t)n;
}

tb_hub_t *tb_hub_create(const tb_hub_opts_t *opts)
{
    tb_hub_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cfg = opts->cfg;
    h->auth = opts->auth;
    h->io = opts->io;
    h->transport = opts->transport;
    h->n_buckets = ROOM_BUCKETS_MIN;
    h->buckets = calloc(h->n_buckets, sizeof(*h->buckets));
    h->groups = tb_groups_create(opts->cfg->groups, opts->cfg->n_groups);
    h->lv = tb_lastvalue_create((size_t)opts->cfg->history.devices, opts->cfg->n_alerts);
    h->hist = tb_history_create(history_capacity(opts->cfg));
    h->events = calloc(opts->cfg->n_alerts ? opts->cfg->n_alerts : 1, sizeof(*h->events));
    h->alerts = opts->cfg->alerts;
    h->n_alerts = opts->cfg->n_alerts;
    if (!h->buckets || !h->groups || !h->lv || !h->hist || !h->events)
        goto fail;
    if (opts->epoch)
        snprintf(h->epoch, sizeof(h->epoch), "%s", opts->epoch);
    else
        random_epoch(h->epoch);
    return h;
fail:
    tb_hub_destroy(h);
    return NULL;
}

void tb_hub_destroy(tb_hub_t *h)
{
    if (!h)
        return;
    while (h->n_conns)
        tb_hub_conn_close(h, h->slots[h->n_conns - 1].c);
    free(h->slots);
    tb_groups_destroy(h->groups);
    tb_lastvalue_destroy(h->lv);
    tb_history_destroy(h->hist);
    free(h->events);
    if (h->alerts_owned)
        tb_alerts_free(h->alerts, h->n_alerts);
    free(h->buckets);
    free(h);
}

const char *tb_hub_epoch(const tb_hub_t *h)
{
    return h->epoch;
}

size_t tb_hub_connections(const tb_hub_t *h)
{
    return h->n_conns;
}

size_t tb_hub_rooms(const tb_hub_t *h)
{
    return h->n_rooms;
}

size_t tb_hub_devices(const tb_hub_t *h)
{
    return tb_lastvalue_count(h->lv);
}

size_t tb_hub_history_held(const tb_hub_t *h)
{
    return tb_history_count(h->hist);
}

const tb_hub_counters_t *tb_hub_counters(const tb_hub_t *h)
{
    return &h->counters;
}

static int cmp_room_ptr(const void *a, const void *b)
{
    return strcmp((*(room_t *const *)a)->name, (*(room_t *const *)b)->name);
}

json_t *tb_hub_rooms_json(const tb_hub_t *h)
{
    json_t *arr = json_array();
    room_t **all = malloc((h->n_rooms ? h->n_rooms : 1) * sizeof(*all));
    size_t n = 0;
    if (!arr || !all)
        goto done;
    for (uint32_t i = 0; i < h->n_buckets; i++)
        for (room_t *r = h->buckets[i]; r; r = r->next)
            all[n++] = r;
    qsort(all, n, sizeof(*all), cmp_room_ptr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I}", "room", all[i]->name, "subscribers",
                                             (json_int_t)all[i]->n_members));
done:
    free(all);
    return arr;
}

/* ---- connections ------------------------------------------------------------------------- */

/*
 * Takes g as c's grant (freeing the old one) and schedules its expiry: token_expiring
 * auth.expiry_warning_s before exp (never, when 0), then the 4001 close at exp.
 */
static void conn_set_grant(tb_hub_t *h, tb_conn_t *c, tb_grant_t *g)
{
    int64_t exp = tb_grant_exp(g), warn = h->cfg->auth.expiry_warning_s;
    tb_grant_free(c->grant);
    c->grant = g;
    c->warned = warn == 0;
    /* exp may be any claim value: only a past one is left without the subtraction. */
    h->slots[c->slot].deadline_s = (warn == 0 || exp < INT64_MIN + warn) ? exp : exp - warn;
}

static void send_connected(tb_hub_t *h, tb_conn_t *c)
{
    char id[24], now[TB_RFC3339_LEN];
    int64_t ms = tb_now_ms();
    snprintf(id, sizeof(id), "c%" PRIu64, c->id);
    tb_format_rfc3339_ms(ms, now);
    json_t *payload = json_pack("{s:s, s:s, s:s, s:s}", "connection_id", id, "server_time", now,
                                "epoch", h->epoch, "user", tb_grant_sub(c->grant));
    conn_send_owned(h, c, tb_proto_control("connected", payload, NULL, ms));
}

/* Room for one more slot; -1 when out of memory. */
static int slots_reserve(tb_hub_t *h)
{
    if (h->n_conns < h->cap_slots)
        return 0;
    size_t cap = h->cap_slots ? 2 * h->cap_slots : SLOTS_MIN;
    slot_t *s = realloc(h->slots, cap * sizeof(*s));
    if (!s)
        return -1;
    h->slots = s;
    h->cap_slots = cap;
    return 0;
}

tb_conn_t *tb_hub_conn_open(tb_hub_t *h, void *io, tb_grant_t *grant)
{
    tb_conn_t *c = slots_reserve(h) ? NULL : calloc(1, sizeof(*c));
    if (!c) {
        tb_grant_free(grant);
        return NULL;
    }
    c->io = io;
    c->slot = (uint32_t)h->n_conns++;
    h->slots[c->slot] = (slot_t){.c = c, .seen_ms = tb_mono_ms()};
    conn_set_grant(h, c, grant);
    c->id = ++h->next_conn_id;
    h->counters.connections_total++;
    send_connected(h, c);
    return c;
}

void tb_hub_conn_close(tb_hub_t *h, tb_conn_t *c)
{
    if (!c)
        return;
    snap_release(c); /* first: leaving the rooms then has no pending snapshot to sift */
    while (c->n_rooms)
        room_leave_slot(h, c, c->n_rooms - 1);
    free(c->rooms);
    queue_release(c);
    tb_grant_free(c->grant);
    h->slots[c->slot] = h->slots[--h->n_conns];
    h->slots[c->slot].c->slot = c->slot;
    free(c);
}

void tb_hub_set_groups(tb_hub_t *h, tb_groups_t *groups)
{
    tb_groups_destroy(h->groups);
    h->groups = groups;
}

void tb_hub_set_auth(tb_hub_t *h, const tb_auth_t *auth)
{
    h->auth = auth;
}

/* from[i]: the index in the running rules of the new rule i's name. -1 when one is missing. */
static int alert_order(const tb_hub_t *h, const tb_config_alert_t *alerts, size_t *from, char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < h->n_alerts; i++) {
        size_t j = 0;
        while (j < h->n_alerts && strcmp(h->alerts[j].name, alerts[i].name) != 0)
            j++;
        if (j == h->n_alerts) {
            tb_set_err(err, errlen,
                       "alerts: rule '%s' is new; adding or removing rules takes a restart",
                       alerts[i].name);
            return -1;
        }
        from[i] = j;
    }
    return 0;
}

/* Moves every device's firing marks to the rules' new positions (a permutation). */
static void reorder_marks(tb_hub_t *h, const size_t *from, uint64_t *tmp)
{
    for (tb_lv_entry_t *e = tb_lastvalue_oldest(h->lv); e; e = tb_lastvalue_newer(e)) {
        uint64_t *w = tb_lv_words(e);
        memcpy(tmp, w, h->n_alerts * sizeof(*w));
        for (size_t i = 0; i < h->n_alerts; i++)
            w[i] = tmp[from[i]];
    }
}

int tb_hub_set_alerts(tb_hub_t *h, tb_config_alert_t *alerts, size_t n, char *err, size_t errlen)
{
    size_t *from = NULL;
    uint64_t *tmp = NULL;
    int rc = -1;
    if (n != h->n_alerts) {
        tb_set_err(err, errlen,
                   "alerts: %zu rules instead of %zu; adding or removing rules takes a restart", n,
                   h->n_alerts);
        goto done;
    }
    if (n && (!(from = calloc(n, sizeof(*from))) || !(tmp = calloc(n, sizeof(*tmp))))) {
        tb_set_err(err, errlen, "out of memory");
        goto done;
    }
    if (n && alert_order(h, alerts, from, err, errlen))
        goto done;
    if (n)
        reorder_marks(h, from, tmp);
    if (h->alerts_owned)
        tb_alerts_free(h->alerts, h->n_alerts);
    h->alerts = alerts;
    h->alerts_owned = true;
    alerts = NULL;
    rc = 0;
done:
    tb_alerts_free(alerts, n);
    free(from);
    free(tmp);
    return rc;
}

void tb_hub_close_all(tb_hub_t *h, int code)
{
    for (size_t i = 0; i < h->n_conns; i++)
        conn_request_close(h, h->slots[i].c, code);
}

/* token_expiring: {exp, expires_in}, once per grant. */
static void send_expiring(tb_hub_t *h, tb_conn_t *c, int64_t now_s)
{
    int64_t exp = tb_grant_exp(c->grant);
    json_t *payload =
        json_pack("{s:I, s:I}", "exp", (json_int_t)exp, "expires_in", (json_int_t)(exp - now_s));
    conn_send_owned(h, c, tb_proto_control("token_expiring", payload, NULL, tb_now_ms()));
    c->warned = true;
    h->slots[c->slot].deadline_s = exp;
}

/* One tick's work for c, whose deadline has come. */
static void conn_deadline(tb_hub_t *h, tb_conn_t *c, int64_t now_s)
{
    if (tb_grant_exp(c->grant) <= now_s) {
        h->counters.token_expired++;
        conn_request_close(h, c, TB_CLOSE_TOKEN_EXPIRED);
    } else if (!c->warned) {
        send_expiring(h, c, now_s);
    }
}

void tb_hub_tick(tb_hub_t *h, int64_t now_ms)
{
    int64_t now_s = now_ms / 1000;
    /* One comparison per connection when nothing is due. The walk changes no slot: closes
     * asked for here happen later, in the transport. */
    for (size_t i = 0; i < h->n_conns; i++)
        if (h->slots[i].deadline_s <= now_s && !h->slots[i].c->close_code)
            conn_deadline(h, h->slots[i].c, now_s);
}

void tb_hub_conn_alive(tb_hub_t *h, tb_conn_t *c, int64_t mono_ms)
{
    slot_t *s = &h->slots[c->slot];
    s->seen_ms = mono_ms;
    s->pinged = false;
}

void tb_hub_heartbeat(tb_hub_t *h, int64_t mono_ms)
{
    int64_t ping_ms = (int64_t)h->cfg->heartbeat.ping_interval_s * 1000;
    int64_t drop_ms = (int64_t)h->cfg->heartbeat.pong_timeout_s * 1000;
    for (size_t i = 0; i < h->n_conns; i++) {
        slot_t *s = &h->slots[i];
        int64_t quiet = mono_ms - s->seen_ms;
        if (quiet >= drop_ms) {
            h->io.drop(h->transport, s->c->io);
        } else if (quiet >= ping_ms && !s->pinged) {
            s->pinged = true;
            h->io.ping(h->transport, s->c->io);
        }
    }
}

/* ---- device rooms and snapshots ---------------------------------------------------------- */

static bool names_have(const json_t *names, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

/* Queues, as pending snapshot frames of c for room r, device e's last status and telemetry. */
static void snapshot_device(tb_conn_t *c, const tb_lv_entry_t *e, const room_t *r)
{
    if (tb_lv_status(e))
        snap_push(c, tb_lv_status(e), r);
    if (tb_lv_telemetry(e))
        snap_push(c, tb_lv_telemetry(e), r);
}

/*
 * The first of e's group rooms and global that is in fresh, or NULL when there is none or e's
 * device room is in fresh too (that one brought e already).
 */
static const room_t *snapshot_by_scan(const tb_hub_t *h, const tb_lv_entry_t *e,
                                      const json_t *fresh)
{
    dev_rooms_t dr;
    device_rooms(h, tb_lv_device(e), tb_lv_group(e), &dr);
    if (names_have(fresh, dr.names[0]))
        return NULL;
    for (size_t i = 1; i < dr.n; i++)
        if (names_have(fresh, dr.names[i]))
            return room_find(h, dr.names[i], strlen(dr.names[i]));
    return NULL;
}

/*
 * Snapshot of the rooms just joined (fresh), each device once: the devices named by device
 * rooms in request order, then, when a group room or global was joined, every other device
 * in them from the least to the most recently updated.
 */
static void queue_snapshot(tb_hub_t *h, tb_conn_t *c, const json_t *fresh)
{
    bool scan = false;
    size_t i;
    json_t *v;
    json_array_foreach(fresh, i, v)
    {
        const char *name = json_string_value(v), *id;
        if (tb_room_parse(name, strlen(name), &id, NULL) != TB_ROOM_DEVICE) {
            scan = true;
            continue;
        }
        const tb_lv_entry_t *e = tb_lastvalue_find(h->lv, id);
        if (e)
            snapshot_device(c, e, room_find(h, name, strlen(name)));
    }
    for (const tb_lv_entry_t *e = scan ? tb_lastvalue_oldest(h->lv) : NULL; e;
         e = tb_lastvalue_newer(e)) {
        const room_t *r = snapshot_by_scan(h, e, fresh);
        if (r)
            snapshot_device(c, e, r);
    }
}

/* ---- client messages --------------------------------------------------------------------- */

/* Room lists of a subscribe answer, each a JSON array; fresh: joined by this request. */
typedef struct {
    json_t *joined, *invalid, *forbidden, *too_many, *fresh;
} sub_result_t;

static void subscribe_one(tb_hub_t *h, tb_conn_t *c, const char *room, uint64_t from_seq,
                          sub_result_t *res)
{
    json_t *name = json_string(room);
    json_t *into = res->joined;
    bool was_in = false;
    if (tb_room_parse(room, strlen(room), NULL, NULL) == TB_ROOM_INVALID)
        into = res->invalid;
    else if (!tb_grant_allows_room(c->grant, room))
        into = res->forbidden;
    else if ((was_in = conn_joined(h, c, room)))
        into = res->joined;
    else if (c->n_rooms >= (uint32_t)h->cfg->limits.max_rooms_per_connection)
        into = res->too_many;
    else if (room_join(h, c, room, from_seq))
        into = res->too_many; /* out of memory: the client can only try fewer rooms */
    else
        json_array_append(res->fresh, name);
    json_array_append_new(into, name);
}

/*
 * A `since` can be honoured when it names this epoch, is at most history.messages behind (the
 * ring may hold more, for catch-ups) and the history still holds everything after it, and,
 * while c is already catching up, when it is not behind c's cursor (what lies behind was
 * already sent or skipped).
 */
static bool can_recover(const tb_hub_t *h, const tb_conn_t *c, const tb_cmsg_t *m)
{
    if (!m->has_since || strcmp(m->since_epoch, h->epoch) != 0 ||
        !tb_history_covers(h->hist, m->since_seq, h->seq) ||
        h->seq - m->since_seq > (uint64_t)h->cfg->history.messages)
        return false;
    return !c->catching_up || m->since_seq >= c->cursor;
}

/*
 * Starts catching c up from from_seq: rooms it was already in have had every message up to now
 * live, so the replay skips those (also when a newly joined room owes them). A connection
 * already catching up keeps its cursor.
 */
static void catch_up_start(tb_hub_t *h, tb_conn_t *c, uint64_t from_seq)
{
    if (c->catching_up)
        return;
    for (uint32_t k = 0; k < c->n_rooms; k++)
        c->rooms[k].had_to = h->seq;
    c->had_max = c->n_rooms ? h->seq : 0; /* with no room held, nothing came live */
    c->catching_up = true;
    c->cursor = from_seq;
}

/* Sends an error listing rooms when the list is not empty (takes the list). */
static void rooms_error(tb_hub_t *h, tb_conn_t *c, const char *code, const char *message,
                        json_t *rooms, const json_t *request_id)
{
    if (json_array_size(rooms) == 0) {
        json_decref(rooms);
        return;
    }
    conn_error(h, c, code, message, rooms, request_id);
}

/*
 * Order on c: `subscribed`, then the snapshot of the rooms just joined or, when `since` can be
 * honoured, the replay of what they missed, then live messages — all through catch_up().
 */
static void handle_subscribe(tb_hub_t *h, tb_conn_t *c, const tb_cmsg_t *m)
{
    sub_result_t res = {json_array(), json_array(), json_array(), json_array(), json_array()};
    bool recover = can_recover(h, c, m);
    uint64_t from_seq = recover ? m->since_seq : h->seq;
    size_t i;
    json_t *r;
    c->subs++;
    catch_up_start(h, c, from_seq);
    json_array_foreach(m->rooms, i, r) subscribe_one(h, c, json_string_value(r), from_seq, &res);
    json_t *payload = json_pack("{s:O, s:I}", "rooms", res.joined, "seq", (json_int_t)h->seq);
    if (payload && m->has_since)
        json_object_set_new(payload, "recovered", json_boolean(recover));
    json_decref(res.joined);
    conn_send_owned(h, c, tb_proto_control("subscribed", payload, m->request_id, tb_now_ms()));
    if (!recover)
        queue_snapshot(h, c, res.fresh);
    json_decref(res.fresh);
    rooms_error(h, c, TB_ERR_BAD_REQUEST, "invalid room name", res.invalid, m->request_id);
    rooms_error(h, c, TB_ERR_FORBIDDEN, "room not granted by the token", res.forbidden,
                m->request_id);
    rooms_error(h, c, TB_ERR_TOO_MANY_ROOMS, "limits.max_rooms_per_connection reached",
                res.too_many, m->request_id);
    catch_up(h, c);
}

static void handle_unsubscribe(tb_hub_t *h, tb_conn_t *c, const tb_cmsg_t *m)
{
    json_t *left = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(m->rooms, i, r)
    {
        if (room_leave(h, c, json_string_value(r)))
            json_array_append(left, r);
    }
    if (json_array_size(left))
        queue_drop_left(h, c);
    json_t *payload = json_pack("{s:o}", "rooms", left);
    conn_send_owned(h, c, tb_proto_control("unsubscribed", payload, m->request_id, tb_now_ms()));
    conn_check(h, c);
}

/* Leaves the rooms the new grant no longer allows, and what is queued for them alone; returns
 * them as a JSON array. */
static json_t *leave_ungranted(tb_hub_t *h, tb_conn_t *c)
{
    json_t *left = json_array();
    bool any = false;
    for (uint32_t i = c->n_rooms; i-- > 0;) {
        if (!tb_grant_allows_room(c->grant, c->rooms[i].room->name)) {
            json_array_append_new(left, json_string(c->rooms[i].room->name));
            room_leave_slot(h, c, i);
            any = true;
        }
    }
    if (any)
        queue_drop_left(h, c);
    return left;
}

static void handle_refresh(tb_hub_t *h, tb_conn_t *c, const tb_cmsg_t *m)
{
    tb_grant_t *g = NULL;
    int rc = tb_auth_verify(h->auth, m->token, strlen(m->token), tb_now_ms() / 1000, &g);
    if (rc != TB_AUTH_OK || strcmp(tb_grant_sub(g), tb_grant_sub(c->grant)) != 0) {
        tb_grant_free(g);
        conn_error(h, c, rc == TB_AUTH_OK ? TB_ERR_FORBIDDEN : tb_auth_err_code(rc),
                   "refresh token refused", NULL, m->request_id);
        return;
    }
    conn_set_grant(h, c, g);
    json_t *left = leave_ungranted(h, c);
    if (json_array_size(left))
        conn_send_owned(
            h, c,
            tb_proto_control("unsubscribed", json_pack("{s:O}", "rooms", left), NULL, tb_now_ms()));
    json_decref(left);
    json_t *payload = json_pack("{s:I}", "exp", (json_int_t)tb_grant_exp(g));
    conn_send_owned(h, c, tb_proto_control("refreshed", payload, m->request_id, tb_now_ms()));
    conn_check(h, c);
}

/* Counts c's message against client_messages_per_s; false when over the limit. */
static bool rate_ok(tb_hub_t *h, tb_conn_t *c, bool *first_refusal)
{
    int64_t window = tb_mono_ms() / 1000;
    if (window != c->rl_window) {
        c->rl_window = window;
        c->rl_count = 0;
    }
    c->rl_count++;
    *first_refusal = c->rl_count == (uint32_t)h->cfg->limits.client_messages_per_s + 1;
    return c->rl_count <= (uint32_t)h->cfg->limits.client_messages_per_s;
}

static void dispatch(tb_hub_t *h, tb_conn_t *c, const tb_cmsg_t *m)
{
    switch (m->type) {
    case TB_CMSG_SUBSCRIBE:
        handle_subscribe(h, c, m);
        break;
    case TB_CMSG_UNSUBSCRIBE:
        handle_unsubscribe(h, c, m);
        break;
    case TB_CMSG_PING:
        conn_send_owned(h, c, tb_proto_control("pong", NULL, m->request_id, tb_now_ms()));
        break;
    case TB_CMSG_REFRESH:
        handle_refresh(h, c, m);
        break;
    }
}

void tb_hub_conn_receive(tb_hub_t *h, tb_conn_t *c, const char *msg, size_t len)
{
    tb_cmsg_t m;
    const char *err_code, *err_msg;
    bool first_refusal;
    h->counters.client_messages++;
    if (c->close_code)
        return;
    if (!rate_ok(h, c, &first_refusal)) {
        h->counters.rate_limited++;
        /* One answer per second is enough; answering each would let the client fill its queue. */
        if (first_refusal)
            conn_error(h, c, TB_ERR_RATE_LIMITED, "limits.client_messages_per_s exceeded", NULL,
                       NULL);
        return;
    }
    if (tb_cmsg_parse(msg, len, &m, &err_code, &err_msg) == 0)
        dispatch(h, c, &m);
    else
        conn_error(h, c, err_code, err_msg, NULL, m.request_id);
    tb_cmsg_clear(&m);
}

/* ---- fan-out ----------------------------------------------------------------------------- */

static void deliver_room(tb_hub_t *h, const char *name, tb_frame_t *f)
{
    room_t *r = room_find(h, name, strlen(name));
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_members; i++) {
        tb_conn_t *c = r->members[i].conn;
        /* A catching-up connection gets this message from the history, in order. */
        if (c->catching_up || c->last_seq == f->seq)
            continue;
        c->last_seq = f->seq;
        h->counters.deliveries++;
        conn_queue(h, c, f);
    }
}

/* Records f (which has its seq) in the history and queues it on the members of rooms. */
static void route(tb_hub_t *h, tb_frame_t *f, const char *const *rooms, size_t n)
{
    if (tb_history_add(h->hist, f, rooms, n))
        tb_log(TB_LOG_ERROR, "out of memory recording a message in the history", "seq=%" PRIu64,
               f->seq);
    /* A room named twice (topic group equal to a configured one) is harmless: the
     * per-connection last_seq guard already makes delivery at-most-once. */
    for (size_t i = 0; i < n; i++)
        deliver_room(h, rooms[i], f);
}

/*
 * Routes one alert transition of device e as a message of its own (next seq, same rooms as
 * the sample). The rule's word in e holds the firing message's seq while it fires; both
 * messages of a firing/resolved pair carry the alert_id "<rule>:<device>:<firing seq>".
 */
static void emit_alert(tb_hub_t *h, tb_lv_entry_t *e, const tb_alert_event_t *ev,
                       const char *timestamp, const dev_rooms_t *dr)
{
    const tb_config_alert_t *rule = &h->alerts[ev->rule];
    uint64_t *mark = &tb_lv_words(e)[ev->rule];
    uint64_t seq = ++h->seq;
    char id[ALERT_ID_MAX];
    snprintf(id, sizeof(id), "%s:%s:%" PRIu64, rule->name, tb_lv_device(e),
             ev->firing ? seq : *mark);
    *mark = ev->firing ? seq : 0;
    h->counters.alerts++;
    json_t *payload = tb_alerts_payload(rule, ev, tb_lv_device(e), id, timestamp);
    /* Kind status: the drop_oldest policy never drops an alert. */
    tb_frame_t *f =
        payload ? tb_proto_device("alert", dr->names[0], payload, seq, tb_now_ms(), TB_FRAME_STATUS)
                : NULL;
    json_decref(payload);
    if (!f) {
        tb_log(TB_LOG_ERROR, "out of memory encoding an alert", "seq=%" PRIu64, seq);
        return;
    }
    route(h, f, dr->ptrs, dr->n);
    tb_frame_unref(f);
}

static void raise_alerts(tb_hub_t *h, tb_lv_entry_t *e, const tb_msg_t *m, const dev_rooms_t *dr)
{
    const char *ts = json_string_value(json_object_get(m->payload, "timestamp"));
    size_t n = tb_alerts_eval(h->alerts, h->n_alerts, m->device_id,
                              json_object_get(m->payload, "fields"), tb_lv_words(e), h->events);
    for (size_t i = 0; i < n; i++)
        emit_alert(h, e, &h->events[i], ts ? ts : "", dr);
}

void tb_hub_ingest(tb_hub_t *h, tb_msg_t *m)
{
    dev_rooms_t dr;
    bool telemetry = m->kind == TB_MSG_TELEMETRY;
    device_rooms(h, m->device_id, m->group, &dr);
    uint64_t seq = ++h->seq;
    tb_frame_t *f = tb_proto_device_spliced(telemetry ? "telemetry" : "device_status", dr.names[0],
                                            m->payload_json, m->payload_json_len, seq, tb_now_ms(),
                                            telemetry ? TB_FRAME_TELEMETRY : TB_FRAME_STATUS);
    h->counters.device_messages++;
    tb_lv_entry_t *e = tb_lastvalue_update(h->lv, m, f);
    h->counters.device_evictions = tb_lastvalue_evictions(h->lv);
    if (f) {
        route(h, f, dr.ptrs, dr.n);
        tb_frame_unref(f);
    } else {
        tb_log(TB_LOG_ERROR, "out of memory encoding a device message", "seq=%" PRIu64, seq);
    }
    if (e && telemetry)
        raise_alerts(h, e, m, &dr);
    tb_msg_free(m);
}

uint64_t tb_hub_publish(tb_hub_t *h, const char *room, const char *type, const json_t *payload)
{
    uint64_t seq = ++h->seq;
    bool telemetry = strcmp(type, "telemetry") == 0;
    tb_frame_t *f = tb_proto_device(type, room, payload, seq, tb_now_ms(),
                                    telemetry ? TB_FRAME_TELEMETRY : TB_FRAME_STATUS);
    if (!f)
        return 0;
    h->counters.published++;
    route(h, f, &room, 1);
    tb_frame_unref(f);
    return seq;
}
