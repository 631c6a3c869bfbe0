/* hub_send.c — the send ring, slow consumers and catch-up; see src/hub_internal.h. */
#include "hub_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/log.h"

/* A catching-up connection is refilled to this share of its queue bound (in quarters), so
 * control answers queued meanwhile still fit under the bound. */
#define CATCH_UP_FILL_QUARTERS 3

/* ---- send queues ------------------------------------------------------------------------- */

static tb_frame_t **queue_at(const tb_conn_t *c, uint32_t i)
{
    return &c->q[(c->q_head + i) & (c->q_cap - 1)];
}

void hub_queue_release(tb_conn_t *c)
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
 * frame that no room c still holds matches (hub_frame_match(): a message through a room that owed
 * it, i.e. joined before its seq; a snapshot copy through any room holding its device).
 * Control frames stay. The whole queue is c's to change: the transport takes each frame off
 * it (tb_hub_conn_sent()) as it hands it to the socket. O(queued frames × a message's rooms);
 * a snapshot copy is kept at once while global is held.
 */
void hub_queue_drop_left(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t kept = 0;
    bool none = hub_rooms_mark(h, c, NULL) == 0;
    const room_t *global = none ? NULL : hub_room_find(h, "global", strlen("global"));
    bool in_global = global && global->mark == h->marks; /* it holds every device */
    for (uint32_t i = 0; i < c->q_len; i++) {
        tb_frame_t *f = *queue_at(c, i);
        bool snapshot = tb_protocol_is_snapshot(f);
        if (f->seq && !(snapshot && in_global) &&
            (none || !hub_frame_match(h, f, snapshot ? UINT64_MAX : f->seq))) {
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

void hub_conn_request_close(tb_hub_t *h, tb_conn_t *c, int code)
{
    if (c->close_code)
        return;
    c->close_code = (uint16_t)code;
    h->ops.close(h->transport, c->io, code);
}

static void slow_consumer(tb_hub_t *h, tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++)
        if ((*queue_at(c, i))->seq)
            h->counters.dropped++;
    hub_queue_release(c);
    h->counters.slow_consumer_disconnects++;
    tb_log(TB_LOG_INFO, "slow consumer disconnected", "conn=%" PRIu64 " bound=%d", c->id,
           h->cfg->limits.send_queue_messages);
    hub_conn_request_close(h, c, TB_CLOSE_POLICY);
}

/* Removes queued frame i, keeping the order of the rest. */
static void queue_remove(tb_conn_t *c, uint32_t i)
{
    tb_frame_unref(*queue_at(c, i));
    for (uint32_t k = i; k + 1 < c->q_len; k++)
        *queue_at(c, k) = *queue_at(c, k + 1);
    c->q_len--;
}

/* drop_oldest: removes the oldest queued telemetry frame; false when there is none. */
static bool drop_oldest_telemetry(tb_hub_t *h, tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++) {
        if ((*queue_at(c, i))->kind != TB_FRAME_TELEMETRY)
            continue;
        queue_remove(c, i);
        h->counters.dropped++;
        return true;
    }
    return false;
}

/* True when telemetry of f's room (its device) is queued on c after position i. */
static bool newer_queued(const tb_conn_t *c, uint32_t i, const tb_frame_t *f)
{
    char room[TB_ROOM_MAX + 1], other[TB_ROOM_MAX + 1];
    size_t len = tb_protocol_device_room(f, room);
    for (uint32_t k = i + 1; len && k < c->q_len; k++) {
        const tb_frame_t *g = *queue_at(c, k);
        if (g->kind == TB_FRAME_TELEMETRY && tb_protocol_device_room(g, other) == len &&
            memcmp(room, other, len) == 0)
            return true;
    }
    return false;
}

/*
 * conflate: the oldest queued device telemetry gives way. When a newer message of its device is
 * queued behind it, that one will bring the device on; else the device's newest state is held
 * for c (hub_conflate_hold()). false when none could. O(queued frames).
 */
static bool conflate_oldest(tb_hub_t *h, tb_conn_t *c)
{
    for (uint32_t i = 0; i < c->q_len; i++) {
        tb_frame_t *f = *queue_at(c, i);
        if (f->kind != TB_FRAME_TELEMETRY)
            continue;
        if (newer_queued(c, i, f)) {
            queue_remove(c, i);
            h->counters.conflated++;
            return true;
        }
        if (hub_conflate_hold(h, c, f)) {
            queue_remove(c, i);
            return true;
        }
    }
    return false;
}

/* Makes room for one frame under the bound; false when c was closed as a slow consumer. */
static bool queue_make_room(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t bound = (uint32_t)h->cfg->limits.send_queue_messages;
    if (c->q_len >= bound) {
        tb_slow_policy_t policy = h->cfg->limits.slow_consumer;
        bool dropped = (policy == TB_SLOW_DROP_OLDEST && drop_oldest_telemetry(h, c)) ||
                       (policy == TB_SLOW_CONFLATE && conflate_oldest(h, c));
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
void hub_conn_queue(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
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
        h->ops.want_write(h->transport, c->io);
}

/* Queues a control frame made for c alone (f may be NULL when out of memory). */
void hub_conn_send_owned(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
{
    if (!f)
        return;
    hub_conn_queue(h, c, f);
    tb_frame_unref(f);
}

void hub_conn_error(tb_hub_t *h, tb_conn_t *c, const char *code, const char *message, json_t *rooms,
                    const json_t *request_id)
{
    h->counters.client_errors++;
    hub_conn_send_owned(h, c, tb_protocol_error(code, message, rooms, request_id, tb_now_ms()));
}

/* ---- catch-up: snapshot, then replay from the history, paced by the send queue -------- */

/*
 * Appends a reference to stored frame f (the last-value store's, as of now) to c's pending
 * snapshot, sent for joined room r; its marked copy is made only when it is queued, so a
 * pending snapshot costs two pointers per message and still shows the state of the moment of
 * the subscribe (frames are immutable: a later update replaces the store's frame, not this one).
 */
static void snap_push(tb_conn_t *c, tb_frame_t *f, const room_t *r, uint32_t series)
{
    catchup_t *u = c->cu;
    if (!u || hub_grow_for_one((void **)&u->snap, &u->snap_cap, u->snap_n, SNAP_MIN_CAP,
                               sizeof(*u->snap)))
        return; /* out of memory (no catch-up: c is closing): the snapshot lacks this message */
    tb_frame_ref(f);
    u->snap[u->snap_n++] = (snap_t){.frame = f, .room = r, .series = series};
}

void hub_snap_push(tb_conn_t *c, tb_frame_t *f, const room_t *r)
{
    snap_push(c, f, r, 0);
}

void hub_snap_push_series(tb_conn_t *c, tb_frame_t *f, const room_t *r, uint32_t n)
{
    snap_push(c, f, r, n);
}

/* Unreferences the pending snapshot frames of a catch-up and frees the array. */
static void snap_release(catchup_t *u)
{
    for (uint32_t i = u->snap_i; i < u->snap_n; i++)
        tb_frame_unref(u->snap[i].frame);
    free(u->snap);
    u->snap = NULL;
    u->snap_n = u->snap_i = u->snap_cap = 0;
}

bool hub_catchup_new(tb_hub_t *h, tb_conn_t *c)
{
    if (!(c->cu = calloc(1, sizeof(*c->cu))))
        slow_consumer(h, c);
    return c->cu != NULL;
}

void hub_catchup_free(tb_conn_t *c)
{
    if (!c->cu)
        return;
    snap_release(c->cu);
    free(c->cu);
    c->cu = NULL;
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
void hub_conn_check(const tb_hub_t *h, const tb_conn_t *c)
{
    CONN_CHECK(c->last_seq <= h->seq);
    CONN_CHECK(c->q_len <= (uint32_t)h->cfg->limits.send_queue_messages &&
               (c->q_len == 0 || c->q_len <= c->q_cap));
    if (c->x) {
        uint32_t with_opt = 0, refs = 0;
        for (uint32_t i = 0; i < c->n_rooms; i++) {
            CONN_CHECK(c->rooms[i].opt <= c->x->n_opts);
            CONN_CHECK(!c->rooms[i].opt || c->x->opts[c->rooms[i].opt - 1].refs > 0);
            with_opt += c->rooms[i].opt != 0;
        }
        for (uint32_t i = 0; i < c->x->n_opts; i++)
            refs += c->x->opts[i].refs;
        CONN_CHECK(refs == with_opt && c->x->n_opts <= HUB_OPTS_MAX);
    }
    const catchup_t *u = c->cu;
    if (!u)
        return;
    CONN_CHECK(u->snap_i == u->snap_n || hub_conn_joined_room(c, u->snap[u->snap_i].room));
    CONN_CHECK(u->cursor <= h->seq && u->had_max <= h->seq);
    for (uint32_t i = 0; i < c->n_rooms; i++) {
        const joined_t *j = &c->rooms[i];
        CONN_CHECK(!j->had_live || j->from_seq <= u->had_max);
    }
}

/* The invariants of the pending snapshot (catchup_t), O(pending frames): each is sent for
 * a room c holds, in non-decreasing from_seq of those rooms. */
static void snap_check(tb_hub_t *h, const tb_conn_t *c)
{
    uint64_t from = 0;
    const catchup_t *u = c->cu;
    if (!u)
        return;
    hub_rooms_mark(h, c, NULL);
    for (uint32_t i = u->snap_i; i < u->snap_n; i++) {
        const room_t *r = u->snap[i].room;
        CONN_CHECK(r->mark == h->marks && r->mark_from >= from);
        from = r->mark_from;
    }
}
#else
void hub_conn_check(const tb_hub_t *h, const tb_conn_t *c)
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

/*
 * c leaves the room of joined slot `slot`: each of its pending snapshot frames sent for that
 * room goes to another room of the same subscribe that holds the frame's device (global when
 * that subscribe joined it, else the first in routing order, hub_frame_match()), or is dropped
 * when there is none. That subscribe sent each device once and joined all its rooms with one
 * from_seq, so each device stays once and the order of the pending frames holds. A room of
 * another subscribe needs none: its own subscribe brought, or brings, the device's state.
 * O(pending frames), plus, for each frame of the room left, its device's rooms when its
 * subscribe holds others but not global; nothing when none is pending.
 */
void hub_snap_drop_room(tb_hub_t *h, tb_conn_t *c, uint32_t slot)
{
    catchup_t *u = c->cu;
    if (!u || u->snap_i == u->snap_n)
        return;
    const joined_t *left = &c->rooms[slot];
    bool heirs = hub_rooms_mark(h, c, left) > 0;
    room_t *global = heirs ? hub_room_find(h, "global", strlen("global")) : NULL;
    if (global && global->mark != h->marks)
        global = NULL; /* else it holds every device: no need to look further */
    uint32_t kept = u->snap_i;
    for (uint32_t i = u->snap_i; i < u->snap_n; i++) {
        snap_t e = u->snap[i];
        if (e.room == left->room) {
            e.room = global ? global : heirs ? hub_frame_match(h, e.frame, UINT64_MAX) : NULL;
            if (!e.room) {
                tb_frame_unref(e.frame);
                continue;
            }
        }
        u->snap[kept++] = e;
    }
    u->snap_n = kept;
    if (kept == u->snap_i)
        snap_release(u); /* frees the array too: nothing pending */
    else
        snap_check(h, c);
}

/* True when c's next pending snapshot frame is due: the cursor reached its room's from_seq. */
static bool snap_due(const tb_conn_t *c)
{
    const catchup_t *u = c->cu;
    return u->snap_i < u->snap_n &&
           hub_conn_joined_room(c, u->snap[u->snap_i].room)->from_seq <= u->cursor;
}

static bool series_keep(const char *name, void *fields)
{
    return tb_project_has(fields, name);
}

/*
 * Queues the series message of pending entry e: the last e->series values of its device as the
 * series store holds them now, cut to the `fields` of the room's subscribe. Nothing when the
 * device was evicted meanwhile or keeps no value of those fields.
 */
static void series_send(tb_hub_t *h, tb_conn_t *c, const snap_t *e)
{
    char room[TB_ROOM_MAX + 1];
    const char *id;
    bool none;
    size_t len = tb_protocol_device_room(e->frame, room);
    if (!len || tb_room_parse(room, len, &id, NULL) != TB_ROOM_DEVICE)
        return;
    tb_lastvalue_entry_t *d = tb_lastvalue_find(h->lv, id);
    const hub_opts_t *o = hub_opts_of(c, hub_conn_joined_room(c, e->room));
    tb_project_t *fields = o ? o->fields : NULL;
    tb_frame_t *f = d ? tb_series_frame(*tb_lastvalue_series(d), id, e->series,
                                        fields ? series_keep : NULL, fields, tb_now_ms(), &none)
                      : NULL;
    if (f)
        h->counters.series_messages++;
    hub_conn_send_owned(h, c, f);
}

/* Queues c's next pending snapshot entry: a stored frame's marked copy, or a series message. */
static void snap_send_next(tb_hub_t *h, tb_conn_t *c)
{
    snap_t e = c->cu->snap[c->cu->snap_i++];
    if (e.series) {
        series_send(h, c, &e);
    } else if (c->x) {
        hub_conflate_snapshot(h, c, tb_protocol_snapshot(e.frame), e.room);
    } else {
        h->counters.snapshot_messages++;
        hub_conn_send_owned(h, c, tb_protocol_snapshot(e.frame));
    }
    tb_frame_unref(e.frame);
}

/* The seq up to which catching-up c already had the messages of joined room j (catchup_t). */
static uint64_t joined_had_to(const tb_conn_t *c, const joined_t *j)
{
    return j->had_live ? c->cu->had_max : j->from_seq;
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
        const joined_t *j = hub_conn_joined_room(c, hub_room_find(h, rooms, strlen(rooms)));
        if (!j || seq <= j->from_seq)
            continue;
        if (seq <= joined_had_to(c, j))
            return false;
        if (seq > c->cu->had_max)
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
    uint64_t seq = ++c->cu->cursor;
    tb_frame_t *f = tb_history_get(h->hist, seq, &rooms, &n);
    if (!f || !conn_owed(h, c, rooms, n, seq))
        return;
    c->last_seq = seq;
    h->counters.replayed++;
    if (c->x) {
        hub_conflate_replay(h, c, f, rooms, n);
        return;
    }
    h->counters.deliveries++;
    hub_conn_queue(h, c, f);
}

/*
 * Refills a catching-up connection's queue up to its fill mark: the pending snapshot frames
 * that are due, then owed messages from the history. Once the cursor reaches the bridge's last
 * seq the connection is live again. A cursor the history no longer covers means c fell too far
 * behind to be caught up: a slow consumer, whatever the slow_consumer policy.
 */
void hub_catch_up(tb_hub_t *h, tb_conn_t *c)
{
    uint32_t fill = (uint32_t)h->cfg->limits.send_queue_messages * CATCH_UP_FILL_QUARTERS / 4;
    if (fill < 1)
        fill = 1;
    while (c->cu && !c->close_code && c->q_len < fill) {
        if (snap_due(c)) {
            snap_send_next(h, c);
        } else if (c->cu->cursor == h->seq) {
            c->last_seq = h->seq;
            hub_catchup_free(c);
        } else if (!tb_history_covers(h->hist, c->cu->cursor, h->seq)) {
            slow_consumer(h, c);
        } else {
            replay_next(h, c);
        }
    }
    hub_conn_check(h, c);
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
    /* slow_consumer "conflate" ends once the queue drained to half its bound. */
    if (c->x && c->x->slow && c->q_len <= (uint32_t)h->cfg->limits.send_queue_messages / 2) {
        c->x->slow = false;
        c->x->gen++;
    }
    if (c->cu)
        hub_catch_up(h, c);
}

size_t tb_hub_conn_queued(const tb_conn_t *c)
{
    return c->q_len;
}

int tb_hub_conn_close_code(const tb_conn_t *c)
{
    return c->close_code;
}
