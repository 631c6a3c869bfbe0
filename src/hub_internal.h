/*
 * hub_internal.h — what the files of the hub share (src/hub.c, hub_rooms.c, hub_send.c,
 * hub_session.c, hub_conflate.c, hub_persist.c); not for any other module, which goes through
 * include/telebridge/hub.h. Same contract as hub.h: one thread (the transport's service thread)
 * calls all of it.
 */
#ifndef TELEBRIDGE_HUB_INTERNAL_H
#define TELEBRIDGE_HUB_INTERNAL_H

#include "telebridge/hub.h"

#include <stdbool.h>
#include <stdint.h>

#include "telebridge/alerts.h"
#include "telebridge/groups.h"
#include "telebridge/histfile.h"
#include "telebridge/history.h"
#include "telebridge/lastvalue.h"
#include "telebridge/project.h"
#include "telebridge/protocol.h"
#include "telebridge/room.h"
#include "telebridge/strhash.h"

/*
 * First allocations (each doubled as needed). A connection's send queue and joined rooms
 * start at what an idle dashboard holds, one room and a queue that the transport empties
 * (every connection carries them: docs/performance.md → Memory per idle connection); a
 * pending snapshot and a room's member list start larger, being fewer.
 */
#define QUEUE_MIN_CAP 2
#define CONN_MIN_ROOMS 1
#define SNAP_MIN_CAP 8
#define ROOM_MIN_MEMBERS 4
/* Projected frames the hub keeps for reuse (hub_conflate.c): distinct field sets per message. */
#define HUB_PCACHE 8
/* First size of the hub's array of connection slots (doubled as needed). */
#define SLOTS_MIN 64
/* Initial hash buckets for the room index; it doubles when rooms outnumber buckets. */
#define ROOM_BUCKETS_MIN 64
/* Room names of a device message: its device room, its groups, global. */
#define ROOMS_PER_MESSAGE (TB_GROUPS_PER_DEVICE_MAX + 2)

typedef struct room room_t;

/* One member of a room: the connection and where the room sits in its joined list. */
typedef struct {
    tb_conn_t *conn;
    uint32_t slot;
} member_t;

/*
 * One room a connection joined: the room, the seq after which the room's messages are owed to
 * the connection (the bridge's last seq when it joined, or the `since` it recovers from), where
 * the connection sits in its members, whether it already had them up to its catch-up's had_max or
 * only up to from_seq (its had_to, see catchup_t and joined_had_to()), the subscribe options it
 * follows (opt: 0 none, else 1 + an index into the connection's conn_x_t.opts) and the
 * connection's number of the subscribe that joined it. 24 bytes: every connection holds one.
 */
typedef struct {
    room_t *room;
    uint64_t from_seq;
    uint32_t pos : 25;     /* a room has fewer members than 2^25 (one per descriptor at most) */
    uint32_t had_live : 1; /* held when the current catch-up began: had_to is had_max */
    uint32_t opt : 6;      /* 0, or 1 + index in c->x->opts (HUB_OPTS_MAX sets at most) */
    uint32_t sub;
} joined_t;

/* Distinct option sets one connection's rooms may follow at once (joined_t.opt's 6 bits). */
#define HUB_OPTS_MAX 63
/* Members of one room at most (joined_t.pos's 25 bits). */
#define HUB_ROOM_MEMBERS_MAX (1u << 25)

/* One set of subscribe options (docs/protocol.md → Subscribe options) that joined rooms follow. */
typedef struct {
    uint32_t interval_ms; /* max_hz as the least time between two telemetry sends; 0: no cap */
    uint32_t refs;        /* joined rooms that follow it; 0: the slot is free */
    tb_project_t *fields; /* NULL: every field */
} hub_opts_t;

/*
 * One device a connection conflates (max_hz, or slow_consumer "conflate"): when it last sent the
 * device's telemetry and, while a message waits (seq != 0), the newest one held, in the hub's
 * due heap at due_ms. Allocated on the device's first capped message, freed with the connection
 * (or reclaimed when idle, conflate_entry_get()); nothing is allocated per message.
 */
typedef struct conflate_entry {
    tb_strhash_node_t node; /* in its connection's conn_x_t.entries, keyed by id */
    tb_conn_t *conn;
    tb_frame_t *held;  /* a reference to the newest held message, or NULL */
    uint64_t sent_seq; /* the seq of the newest state sent: older messages bring nothing */
    int64_t sent_ms;   /* tb_mono_ms() of the last send; INT64_MIN before the first */
    int64_t due_ms;    /* while held: when it may go */
    uint32_t heap_i;   /* while held: its index in tb_hub.due */
    char id[];         /* the device id */
} conflate_entry_t;

/* A device id with its length and strhash hash (len 0: not computed yet, hub_device_key()),
 * computed once per routed message for all the connections that conflate it. */
typedef struct {
    const char *id;
    size_t len;
    uint32_t hash;
    /* The routed frame's payload object and envelope time, for projecting it without a parse
     * (tb_project_payload()); NULL when not at hand. */
    const tb_frame_t *frame;
    const json_t *payload;
    int64_t ms;
} hub_device_t;

/* A cached union of several option sets' fields, for a message matching rooms of each. */
typedef struct {
    uint64_t mask; /* bit i: opts[i]; 0: unused */
    tb_project_t *fields;
} fields_union_t;

#define CONN_UNIONS 4

/*
 * What a connection that uses subscribe options holds beyond struct tb_conn, allocated by the
 * first subscribe with max_hz or fields (or when slow_consumer "conflate" first holds it back) and
 * freed with the connection (hub_conflate.c); other connections carry only the NULL pointer.
 */
typedef struct {
    hub_opts_t *opts; /* opts[0..n_opts): joined_t.opt - 1 indexes it */
    uint32_t n_opts, cap_opts;
    bool slow; /* slow_consumer "conflate" holds back its telemetry (hub_send.c) */
    /* The last message's policy (hub_conflate.c conn_policy()): for the same rooms, while gen
     * (bumped by every change of the rooms' options, and of slow) stays. */
    uint32_t gen, policy_gen;
    uint32_t policy_interval;
    uint32_t policy_n;
    bool policy_matched;
    tb_project_t *policy_fields;
    room_t *policy_rooms[ROOMS_PER_MESSAGE];
    tb_strhash_t entries; /* conflate_entry_t by device id; buckets allocated on first use */
    fields_union_t unions[CONN_UNIONS];
} conn_x_t;

/*
 * A pending snapshot frame: a reference to a stored frame and the joined room it is sent for; or,
 * with series N > 0, a pending `series` message of the last N values of the device whose last
 * telemetry frame is `frame` (read from the series store when it is queued, so pending series
 * cost no more than a snapshot frame until then).
 */
typedef struct {
    tb_frame_t *frame;
    const room_t *room;
    uint32_t series;
} snap_t;

struct room {
    tb_strhash_node_t node; /* in the room index, keyed by name */
    uint32_t n_members;
    uint32_t cap_members;
    member_t *members;
    /* For one pass over a connection's queue or snapshot (hub_rooms_mark()): mark is that pass's
     * stamp exactly when the connection holds the room, mark_from its from_seq then. */
    uint64_t mark, mark_from;
    char name[];
};

/*
 * A connection catching up (after a subscribe), allocated by the subscribe and freed once the
 * connection is live again, so that idle connections do not carry it. Live fan-out skips the
 * connection; tb_hub_conn_sent() refills its queue from snap[snap_i..snap_n) (references to
 * the stored frames of its snapshots, marked as they are queued) and from the history after
 * `cursor`, until the cursor reaches the bridge's last seq.
 *
 * What c has been sent, for each joined room j (H: the bridge's last seq):
 * - live (c->cu is NULL): every message of j.room with a seq in (j.from_seq, H], once.
 * - catching up: every message of j.room with a seq in (j.from_seq, max(j.had_to, cursor)],
 *   once; those after are queued as the cursor passes them, unless another joined room
 *   already had them. cursor <= H and had_max <= H. j.had_to (joined_had_to()) is had_max, the
 *   bridge's last seq when catch-up began, for rooms joined before (everything up to then came
 *   live), and j.from_seq for rooms joined since (nothing of theirs came yet). A message is
 *   thus owed when some joined room owes it (seq > from_seq) and none had it (seq <= had_to).
 * - a pending snapshot frame is the state as of its room's from_seq and is queued when the
 *   cursor reaches that seq, before the messages after it; snap[snap_i..) is in
 *   non-decreasing from_seq of its rooms.
 */
typedef struct {
    uint64_t cursor;
    uint64_t had_max; /* the largest had_to (0 when no room was held): past it, none had anything */
    snap_t *snap;
    uint32_t snap_n, snap_i, snap_cap;
} catchup_t;

struct tb_conn {
    /* Fields in decreasing alignment, so that the struct has no padding inside (its size is in
     * docs/performance.md → Memory per idle connection). */
    void *io;
    tb_grant_t *grant;
    uint64_t id;
    uint64_t last_seq; /* seq of the last device message queued: the live fan-out's guard */
    tb_frame_t **q;    /* ring of queued frames, allocated on first use */
    uint32_t q_cap, q_head, q_len;
    uint32_t slot; /* its index in the hub's slots */
    catchup_t *cu; /* while catching up, else NULL */
    joined_t *rooms;
    conn_x_t *x;   /* subscribe options and their state, or NULL (none used yet) */
    uint32_t subs; /* subscribes handled: joined_t.sub of the rooms the current one joins */
    uint32_t n_rooms, cap_rooms;
    uint32_t rl_count;
    int32_t rl_window;   /* the second (tb_mono_ms() / 1000) the rate-limit count belongs to */
    uint16_t close_code; /* a WebSocket close code, < 5000 */
    bool warned;         /* token_expiring was sent for the current grant */
    bool pinged;         /* ops.ping was called since its slot's seen_ms */
};

/*
 * The open connections, one slot each in a dense array with what the once-a-second walks of
 * tb_hub_tick() and tb_hub_heartbeat() compare, so that they read memory in order and touch a
 * connection only when something is due, a deadline or a quiet connection's ping and its pong
 * (a walk of a linked list of connections missed the cache at every one: docs/performance.md).
 * 24 bytes a connection. A closed connection's slot is filled with the last one.
 */
typedef struct {
    tb_conn_t *c;
    int64_t deadline_s; /* when tb_hub_tick() next has work for c: the warning, then the exp */
    int64_t seen_ms;    /* tb_mono_ms() of c's last sign of life (or of its open) */
} slot_t;

struct tb_hub {
    const tb_config_t *cfg;
    const tb_auth_t *auth;
    tb_hub_ops_t ops;
    void *transport;
    tb_groups_t *groups;
    tb_lastvalue_t *lv;
    tb_history_t *hist;
    tb_histfile_t *file;      /* history.file's writer; NULL: memory only (hub_persist.c) */
    tb_alert_event_t *events; /* one per alert rule: an ingest's transitions */
    /* The rules: cfg's until a reload hands over its own (alerts_owned); always n_alerts of
     * them, the count the last-value store's per-device words were sized for. */
    tb_config_alert_t *alerts;
    size_t n_alerts;
    bool alerts_owned;
    tb_strhash_t rooms; /* the room index (hub_rooms.c) */
    slot_t *slots;
    size_t n_conns, cap_slots;
    uint64_t seq;
    uint64_t marks; /* the stamp of the last hub_rooms_mark() */
    uint64_t next_conn_id;
    /* Conflation (hub_conflate.c): held entries of every connection, a min-heap on due_ms; the
     * transport's wake-up as last asked (ops.wake_at); the mono ms of the batch being routed. */
    conflate_entry_t **due;
    uint32_t n_due, cap_due;
    int64_t wake_ms;
    int64_t route_ms;
    /* Projected copies of recent frames, shared by the recipients of one field set. */
    struct {
        tb_frame_t *src, *out; /* out NULL: none of src's fields is in the set */
        tb_project_t *fields;
    } pcache[HUB_PCACHE];
    uint32_t pcache_next;
    /* Every distinct field set in use, one reference each (hub_opts_find()); a set only this
     * array holds is dropped when the next one is added. */
    tb_project_t **sets;
    uint32_t n_sets, cap_sets;
    char epoch[TB_EPOCH_LEN];
    tb_hub_counters_t counters;
};

/* Room names of one device's messages, with pointers to them in ptrs. */
typedef struct {
    char names[ROOMS_PER_MESSAGE][TB_ROOM_MAX + 1];
    const char *ptrs[ROOMS_PER_MESSAGE];
    size_t n;
} dev_rooms_t;

/* ---- room index and membership (hub_rooms.c) ---------------------------------------------- */

/* The room called name (len bytes, not necessarily terminated), or NULL. */
room_t *hub_room_find(const tb_hub_t *h, const char *name, size_t len);
/* The rooms of names[0..n) that exist, at most ROOMS_PER_MESSAGE, into out; how many. */
size_t hub_rooms_resolve(const tb_hub_t *h, const char *const *names, size_t n, room_t **out);
/* The rooms of a device message: its device room first, its topic group, its groups, global. */
void hub_device_rooms(const tb_hub_t *h, const char *device, const char *group, dev_rooms_t *out);
/* Marks the rooms c holds for one pass (all, or like's subscribe's others); returns how many. */
uint32_t hub_rooms_mark(tb_hub_t *h, const tb_conn_t *c, const joined_t *like);
/* The first of f's rooms marked by the last hub_rooms_mark() with a from_seq below after. */
room_t *hub_frame_match(const tb_hub_t *h, const tb_frame_t *f, uint64_t after);
/* Grows an array of elem-sized items to hold one more; 0, or -1 when out of memory. */
int hub_grow_for_one(void **arr, uint32_t *cap, uint32_t n, uint32_t min_cap, size_t elem);
/* The joined entry of room r in c, or NULL. */
const joined_t *hub_conn_joined_room(const tb_conn_t *c, const room_t *r);
bool hub_conn_joined(const tb_hub_t *h, const tb_conn_t *c, const char *name);
/* Adds c to room name (creating it), owed its messages after from_seq; 0, or -1 (no memory). */
int hub_room_join(tb_hub_t *h, tb_conn_t *c, const char *name, uint64_t from_seq);
/* Removes entry slot of c's joined list from its room, sifting c's pending snapshot. */
void hub_room_leave_slot(tb_hub_t *h, tb_conn_t *c, uint32_t slot);
/* Leaves the room called name; true when c was in it. */
bool hub_room_leave(tb_hub_t *h, tb_conn_t *c, const char *name);

/* ---- send ring, slow consumers, catch-up (hub_send.c) --------------------------------------- */

/* Unreferences c's queued frames and frees its ring. */
void hub_queue_release(tb_conn_t *c);
/* After c left rooms: drops the queued device frames no room c still holds matches. */
void hub_queue_drop_left(tb_hub_t *h, tb_conn_t *c);
/* Asks the transport to close c with code, once. */
void hub_conn_request_close(tb_hub_t *h, tb_conn_t *c, int code);
/* Queues a reference to f on c under the bound and policy; nothing once c is closing. */
void hub_conn_queue(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f);
/* Queues a control frame made for c alone and drops the caller's reference (f may be NULL). */
void hub_conn_send_owned(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f);
/* Counts and queues an error frame (takes rooms, may be NULL). */
void hub_conn_error(tb_hub_t *h, tb_conn_t *c, const char *code, const char *message, json_t *rooms,
                    const json_t *request_id);
/* Appends a reference to stored frame f to c's pending snapshot, sent for joined room r. */
void hub_snap_push(tb_conn_t *c, tb_frame_t *f, const room_t *r);
/* Appends to c's pending snapshot the series message (last n values) of the device whose last
 * telemetry frame is f, sent for joined room r. */
void hub_snap_push_series(tb_conn_t *c, tb_frame_t *f, const room_t *r, uint32_t n);
/* Allocates c's catch-up state (catchup_t); false, c closed as a slow consumer (as when its
 * queue cannot grow), when out of memory. */
bool hub_catchup_new(tb_hub_t *h, tb_conn_t *c);
/* Ends c's catch-up, if any: unreferences its pending snapshot frames and frees its state. */
void hub_catchup_free(tb_conn_t *c);
/* Before c leaves joined slot slot: hands its pending snapshot frames on, or drops them. */
void hub_snap_drop_room(tb_hub_t *h, tb_conn_t *c, uint32_t slot);
/* Aborts on a broken invariant of struct tb_conn (TB_CHECK_INVARIANTS builds); else nothing. */
void hub_conn_check(const tb_hub_t *h, const tb_conn_t *c);
/* Refills a catching-up connection's queue up to its fill mark; live again at the last seq. */
void hub_catch_up(tb_hub_t *h, tb_conn_t *c);

/* ---- subscribe options and conflation (hub_conflate.c) ------------------------------------ */

/*
 * The opt value (joined_t.opt) for the options of subscribe m on c: 0 when m sets neither max_hz
 * nor fields, else 1 + the index of an equal set c already has or of a new one. Equal field sets
 * of all connections are one object (tb_hub.sets), so that the projection cache matches them by
 * pointer. Takes no
 * reference (hub_opts_set() does). 0 and *opt, or -1 when out of memory or when c would hold
 * more than HUB_OPTS_MAX sets.
 */
int hub_opts_find(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m, uint32_t *opt);
/* max_hz as whole milliseconds between two sends, rounded up (never more than R a second); 0
 * for 0 (no cap). */
uint32_t hub_interval_ms(double max_hz);
/* Makes joined room j of c follow the option set opt (0: none), releasing the one it had. */
void hub_opts_set(tb_conn_t *c, joined_t *j, uint32_t opt);
/* The option set joined room j follows, or NULL. */
const hub_opts_t *hub_opts_of(const tb_conn_t *c, const joined_t *j);
/* Frees c's conn_x_t and its held messages (after its rooms were left). */
void hub_opts_free(tb_hub_t *h, tb_conn_t *c);
/* c's conn_x_t, allocated on first use; NULL when out of memory. */
conn_x_t *hub_conn_x(tb_conn_t *c);

/*
 * Delivers device frame f, routed to rooms[0..n) (those that exist), to c, which has a
 * conn_x_t: telemetry follows the least restrictive of c's rooms among them (uncapped and every
 * field win, else the highest max_hz and the union of the fields), is projected to its fields
 * (not sent when none is there) and, when capped and sent less than the interval ago, held: the
 * device's newest state goes when the interval has passed (tb_hub_send_held()). device: the
 * device of an ingested message (its key filled in on first use), NULL (no conflation) for a
 * published one. Other frames are
 * queued as they are.
 */
void hub_conflate_deliver(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f, room_t *const *rooms, size_t n,
                          hub_device_t *device);
/* The same for a frame replayed from the history (its packed room names, see history.h). */
void hub_conflate_replay(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f, const char *packed, size_t n);
/* Queues snapshot copy s (one reference, taken) of a device frame on c, sent for room r: projected
 * to the fields r follows; dropped when none of them is there. */
void hub_conflate_snapshot(tb_hub_t *h, tb_conn_t *c, tb_frame_t *s, const room_t *r);
/* slow_consumer "conflate": queued telemetry frame f gives way, its device's state held for c
 * (which then conflates at 1 Hz until its queue drains to half). Takes a reference to f; false
 * when f is no device's message or out of memory (nothing held). */
bool hub_conflate_hold(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f);
/* Releases the hub's projection cache and field sets (before destroy). */
void hub_pcache_release(tb_hub_t *h);

/* ---- history.file (hub_persist.c) ----------------------------------------------------------- */

/* With history.file: restores the epoch, the last seq and the history (capacity messages) from
 * it, then writes it anew and keeps h->file appending; without, or when it cannot be written
 * (logged), nothing. Called once by tb_hub_create(), after the history and a fresh epoch. */
void hub_persist_start(tb_hub_t *h, size_t capacity, int64_t now_ms);
/* Appends f (just recorded in the history at ms) to h->file, which must be set. */
void hub_persist_record(tb_hub_t *h, const tb_frame_t *f, int64_t ms);

/* ---- core (hub.c) ------------------------------------------------------------------------ */

/* Takes g as c's grant (freeing the old one) and schedules its warning and expiry. */
void hub_conn_set_grant(tb_hub_t *h, tb_conn_t *c, tb_grant_t *g);
/* Appends telemetry m's numeric fields to device e's series (history.series_points each). */
void hub_record_series(tb_hub_t *h, tb_lastvalue_entry_t *e, const tb_msg_t *m);

#endif
