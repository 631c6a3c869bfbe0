/* hub_conflate.c — subscribe options a connection's rooms follow (max_hz, fields) and the
 * conflation of capped telemetry; see src/hub_internal.h. */
#include "hub_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* slow_consumer "conflate": a connection past its bound gets each device's telemetry at most
 * once per this many ms (1 Hz) until its queue drains to half the bound (docs/configuration.md). */
#define SLOW_INTERVAL_MS 1000
/* A connection conflates at most this many devices, or history.devices when larger; past it a
 * device's telemetry goes at once (docs/protocol.md). */
#define CONFLATE_ENTRIES_MIN 1024
/* An entry neither holding nor sent for this long is as good as none (0.1 Hz's interval). */
#define ENTRY_IDLE_MS 10000

/* ---- option sets --------------------------------------------------------------------------- */

uint32_t hub_interval_ms(double max_hz)
{
    return max_hz > 0 ? (uint32_t)ceil(1000.0 / max_hz) : 0;
}

conn_x_t *hub_conn_x(tb_conn_t *c)
{
    if (!c->x && (c->x = calloc(1, sizeof(*c->x))))
        c->x->gen = 1; /* no policy remembered yet (policy_gen 0) */
    return c->x;
}

/* Forgets c's cached unions (an option set changed), and the remembered policy with them. */
static void unions_clear(conn_x_t *x)
{
    x->gen++;
    for (int i = 0; i < CONN_UNIONS; i++) {
        tb_project_unref(x->unions[i].fields);
        x->unions[i] = (fields_union_t){0};
    }
}

/*
 * The hub's one set equal to p (taking p's reference: p itself, now listed, or the listed one with
 * a new reference, p released). Sets no connection holds any more go first. NULL when out of
 * memory (p released).
 */
static tb_project_t *set_intern(tb_hub_t *h, tb_project_t *p)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < h->n_sets; i++) {
        if (!tb_project_shared(h->sets[i]))
            tb_project_unref(h->sets[i]);
        else
            h->sets[kept++] = h->sets[i];
    }
    h->n_sets = kept;
    for (uint32_t i = 0; i < h->n_sets; i++) {
        if (tb_project_equal(h->sets[i], p)) {
            tb_project_unref(p);
            return tb_project_ref(h->sets[i]);
        }
    }
    if (hub_grow_for_one((void **)&h->sets, &h->cap_sets, h->n_sets, 8, sizeof(*h->sets))) {
        tb_project_unref(p);
        return NULL;
    }
    h->sets[h->n_sets++] = tb_project_ref(p);
    return p;
}

int hub_opts_find(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m, uint32_t *opt)
{
    uint32_t interval = hub_interval_ms(m->max_hz), free_slot = UINT32_MAX;
    *opt = 0;
    if (!interval && !m->fields)
        return 0;
    conn_x_t *x = hub_conn_x(c);
    if (!x)
        return -1;
    tb_project_t *fields = m->fields ? tb_project_new(m->fields) : NULL;
    if (fields)
        fields = set_intern(h, fields);
    if (m->fields && !fields)
        return -1;
    for (uint32_t i = 0; i < x->n_opts; i++) {
        hub_opts_t *o = &x->opts[i];
        if (o->refs && o->interval_ms == interval && tb_project_equal(o->fields, fields)) {
            tb_project_unref(fields);
            *opt = i + 1;
            return 0;
        }
        if (!o->refs && free_slot == UINT32_MAX)
            free_slot = i;
    }
    if (free_slot == UINT32_MAX) {
        if (x->n_opts >= HUB_OPTS_MAX ||
            hub_grow_for_one((void **)&x->opts, &x->cap_opts, x->n_opts, 1, sizeof(*x->opts))) {
            tb_project_unref(fields);
            return -1;
        }
        free_slot = x->n_opts++;
    } else {
        tb_project_unref(x->opts[free_slot].fields); /* a set no room follows any more */
    }
    unions_clear(x);
    x->opts[free_slot] = (hub_opts_t){.interval_ms = interval, .fields = fields};
    *opt = free_slot + 1;
    return 0;
}

void hub_opts_set(tb_conn_t *c, joined_t *j, uint32_t opt)
{
    if (c->x)
        c->x->gen++;
    if (j->opt)
        c->x->opts[j->opt - 1].refs--;
    j->opt = opt & 0x3f;
    if (opt)
        c->x->opts[opt - 1].refs++;
}

const hub_opts_t *hub_opts_of(const tb_conn_t *c, const joined_t *j)
{
    return j->opt ? &c->x->opts[j->opt - 1] : NULL;
}

/* ---- the due heap: held entries of every connection, earliest first ------------------------ */

static void heap_set(tb_hub_t *h, uint32_t i, conflate_entry_t *e)
{
    h->due[i] = e;
    e->heap_i = i;
}

static void heap_up(tb_hub_t *h, uint32_t i)
{
    conflate_entry_t *e = h->due[i];
    while (i > 0 && h->due[(i - 1) / 2]->due_ms > e->due_ms) {
        heap_set(h, i, h->due[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, e);
}

static void heap_down(tb_hub_t *h, uint32_t i)
{
    conflate_entry_t *e = h->due[i];
    for (;;) {
        uint32_t k = 2 * i + 1;
        if (k >= h->n_due)
            break;
        if (k + 1 < h->n_due && h->due[k + 1]->due_ms < h->due[k]->due_ms)
            k++;
        if (h->due[k]->due_ms >= e->due_ms)
            break;
        heap_set(h, i, h->due[k]);
        i = k;
    }
    heap_set(h, i, e);
}

/* Adds e (due_ms set) and asks the transport to wake up for it when it is the earliest; 0, or -1
 * when out of memory. */
static int heap_push(tb_hub_t *h, conflate_entry_t *e)
{
    if (hub_grow_for_one((void **)&h->due, &h->cap_due, h->n_due, 16, sizeof(*h->due)))
        return -1;
    heap_set(h, h->n_due++, e);
    heap_up(h, e->heap_i);
    if (e->due_ms < h->wake_ms) {
        h->wake_ms = e->due_ms;
        if (h->ops.wake_at)
            h->ops.wake_at(h->transport, e->due_ms);
    }
    return 0;
}

static void heap_remove(tb_hub_t *h, conflate_entry_t *e)
{
    uint32_t i = e->heap_i;
    conflate_entry_t *last = h->due[--h->n_due];
    if (i == h->n_due)
        return;
    heap_set(h, i, last);
    heap_up(h, i);
    heap_down(h, last->heap_i);
}

/* ---- entries ------------------------------------------------------------------------------- */

/* Milliseconds since e last sent, INT64_MAX before its first send. */
static int64_t since_sent(const conflate_entry_t *e, int64_t now)
{
    return e->sent_ms == INT64_MIN ? INT64_MAX : now - e->sent_ms;
}

static size_t entries_max(const tb_hub_t *h)
{
    size_t n = (size_t)h->cfg->history.devices;
    return n > CONFLATE_ENTRIES_MIN ? n : CONFLATE_ENTRIES_MIN;
}

static void entry_free(tb_hub_t *h, conflate_entry_t *e)
{
    if (e->held) {
        heap_remove(h, e);
        tb_frame_unref(e->held);
    }
    free(e);
}

/* Frees the entries of c that hold nothing and sent nothing for ENTRY_IDLE_MS. */
static void entries_reclaim(tb_hub_t *h, conn_x_t *x, int64_t now)
{
    tb_strhash_node_t *n = tb_strhash_first(&x->entries);
    while (n) {
        conflate_entry_t *e = TB_STRHASH_ENTRY(n, conflate_entry_t, node);
        n = tb_strhash_next(&x->entries, n);
        if (!e->held && since_sent(e, now) >= ENTRY_IDLE_MS) {
            tb_strhash_remove(&x->entries, &e->node);
            entry_free(h, e);
        }
    }
}

/* Fills in d's length and hash when not yet done. */
static void device_key(hub_device_t *d)
{
    if (!d->len) {
        d->len = strlen(d->id);
        d->hash = tb_hash_fnv1a(d->id, d->len);
    }
}

/* c's entry of device, created on first use; NULL when out of memory or at the bound. */
static conflate_entry_t *entry_get(tb_hub_t *h, tb_conn_t *c, hub_device_t *d, int64_t now)
{
    conn_x_t *x = c->x;
    if (!x->entries.buckets &&
        tb_strhash_init(&x->entries, 8,
                        offsetof(conflate_entry_t, id) - offsetof(conflate_entry_t, node)))
        return NULL;
    device_key(d);
    size_t len = d->len;
    tb_strhash_node_t *n = tb_strhash_find_hash(&x->entries, d->id, len, d->hash);
    if (n)
        return TB_STRHASH_ENTRY(n, conflate_entry_t, node);
    if (x->entries.count >= entries_max(h))
        entries_reclaim(h, x, now);
    conflate_entry_t *e = x->entries.count < entries_max(h) ? malloc(sizeof(*e) + len + 1) : NULL;
    if (!e)
        return NULL;
    *e = (conflate_entry_t){.conn = c, .sent_ms = INT64_MIN};
    memcpy(e->id, d->id, len + 1);
    tb_strhash_insert(&x->entries, &e->node);
    return e;
}

/* Holds f (a new reference) in e, the newest held message, due interval after the last send.
 * 0, or -1 when out of memory (nothing held). */
static int entry_hold(tb_hub_t *h, conflate_entry_t *e, tb_frame_t *f, uint32_t interval,
                      int64_t now)
{
    if (e->held) {
        if (f->seq > e->held->seq) {
            tb_frame_ref(f);
            tb_frame_unref(e->held);
            e->held = f;
        }
        return 0;
    }
    e->due_ms = e->sent_ms == INT64_MIN ? now : e->sent_ms + interval;
    if (heap_push(h, e))
        return -1;
    tb_frame_ref(f);
    e->held = f;
    return 0;
}

void hub_opts_free(tb_hub_t *h, tb_conn_t *c)
{
    conn_x_t *x = c->x;
    if (!x)
        return;
    tb_strhash_node_t *n = tb_strhash_first(&x->entries);
    while (n) {
        conflate_entry_t *e = TB_STRHASH_ENTRY(n, conflate_entry_t, node);
        n = tb_strhash_next(&x->entries, n);
        entry_free(h, e);
    }
    tb_strhash_fini(&x->entries);
    unions_clear(x);
    for (uint32_t i = 0; i < x->n_opts; i++)
        tb_project_unref(x->opts[i].fields);
    free(x->opts);
    free(x);
    c->x = NULL;
}

/* ---- the policy a message follows on a connection ------------------------------------------ */

typedef struct {
    uint32_t interval_ms; /* 0: at once */
    tb_project_t *fields; /* NULL: every field; borrowed from c's sets */
    bool matched;         /* c holds one of the message's rooms */
} policy_t;

/* The union of the field sets of opts in mask, cached in x; NULL (every field) when out of memory.
 */
static tb_project_t *fields_union(conn_x_t *x, uint64_t mask)
{
    int slot = 0;
    for (int i = 0; i < CONN_UNIONS; i++) {
        if (x->unions[i].mask == mask)
            return x->unions[i].fields;
        if (!x->unions[i].mask)
            slot = i;
    }
    json_t *names = json_array();
    for (uint32_t i = 0; i < x->n_opts && names; i++) {
        if (!(mask & (UINT64_C(1) << i)))
            continue;
        const tb_project_t *p = x->opts[i].fields;
        for (size_t k = 0; k < tb_project_count(p); k++) {
            const char *name = tb_project_name(p, k);
            size_t j;
            json_t *v;
            bool dup = false;
            json_array_foreach(names, j, v) dup = dup || strcmp(json_string_value(v), name) == 0;
            if (!dup)
                json_array_append_new(names, json_string(name));
        }
    }
    tb_project_t *u = names ? tb_project_new(names) : NULL;
    json_decref(names);
    if (!u)
        return NULL;
    tb_project_unref(x->unions[slot].fields);
    x->unions[slot] = (fields_union_t){.mask = mask, .fields = u};
    return u;
}

static bool rooms_have(room_t *const *rooms, size_t n, const room_t *r)
{
    for (size_t i = 0; i < n; i++)
        if (rooms[i] == r)
            return true;
    return false;
}

/* The least restrictive of c's rooms among rooms[0..n): an uncapped room or one with every
 * field wins; else the smallest interval and the union of the field sets. */
static policy_t policy_compute(tb_conn_t *c, room_t *const *rooms, size_t n)
{
    policy_t p = {.interval_ms = UINT32_MAX};
    bool uncapped = false, all_fields = false, several = false;
    uint64_t mask = 0;
    for (uint32_t k = 0; k < c->n_rooms; k++) {
        const joined_t *j = &c->rooms[k];
        if (!rooms_have(rooms, n, j->room))
            continue;
        p.matched = true;
        const hub_opts_t *o = hub_opts_of(c, j);
        uncapped = uncapped || !o || !o->interval_ms;
        all_fields = all_fields || !o || !o->fields;
        if (o && o->interval_ms && o->interval_ms < p.interval_ms)
            p.interval_ms = o->interval_ms;
        if (o && o->fields) {
            several = several || (p.fields && !tb_project_equal(p.fields, o->fields));
            p.fields = p.fields ? p.fields : o->fields;
            mask |= UINT64_C(1) << (j->opt - 1);
        }
    }
    if (!p.matched || uncapped)
        p.interval_ms = 0;
    if (!p.matched || all_fields)
        p.fields = NULL;
    else if (several)
        p.fields = fields_union(c->x, mask);
    if (c->x->slow && p.interval_ms < SLOW_INTERVAL_MS)
        p.interval_ms = SLOW_INTERVAL_MS;
    return p;
}

/* policy_compute(), remembered for the next message of the same rooms: a fleet's messages to
 * one connection mostly match the same of its rooms (global, a group). */
static policy_t conn_policy(tb_conn_t *c, room_t *const *rooms, size_t n)
{
    conn_x_t *x = c->x;
    if (x->policy_gen == x->gen && x->policy_n == n &&
        memcmp(x->policy_rooms, rooms, n * sizeof(*rooms)) == 0)
        return (policy_t){.interval_ms = x->policy_interval,
                          .fields = x->policy_fields,
                          .matched = x->policy_matched};
    policy_t p = policy_compute(c, rooms, n);
    x->policy_gen = x->gen;
    x->policy_n = (uint32_t)n;
    memcpy(x->policy_rooms, rooms, n * sizeof(*rooms));
    x->policy_interval = p.interval_ms;
    x->policy_fields = p.fields;
    x->policy_matched = p.matched;
    return p;
}

/* ---- projection, shared between the recipients of one field set ---------------------------- */

void hub_pcache_release(tb_hub_t *h)
{
    for (uint32_t i = 0; i < h->n_sets; i++)
        tb_project_unref(h->sets[i]);
    free(h->sets);
    h->sets = NULL;
    h->n_sets = h->cap_sets = 0;
    for (int i = 0; i < HUB_PCACHE; i++) {
        tb_frame_unref(h->pcache[i].src);
        tb_frame_unref(h->pcache[i].out);
        tb_project_unref(h->pcache[i].fields);
    }
    memset(h->pcache, 0, sizeof(h->pcache));
}

/*
 * f with its fields cut to `fields` (f itself for NULL or a frame that is not telemetry),
 * borrowed from the hub's cache until HUB_PCACHE other projections were made: queue it at once.
 * NULL when none of f's fields is in the set, or when out of memory.
 */
static tb_frame_t *projected(tb_hub_t *h, tb_frame_t *f, tb_project_t *fields,
                             const hub_device_t *dev)
{
    if (!fields || f->kind != TB_FRAME_TELEMETRY)
        return f;
    for (int i = 0; i < HUB_PCACHE; i++)
        if (h->pcache[i].src == f && h->pcache[i].fields == fields) /* sets are interned */
            return h->pcache[i].out;
    bool none;
    tb_frame_t *out = dev && dev->payload && dev->frame == f
                          ? tb_project_payload(f, dev->payload, dev->ms, fields, &none)
                          : tb_project_frame(f, fields, &none);
    uint32_t i = h->pcache_next++ % HUB_PCACHE;
    tb_frame_unref(h->pcache[i].src);
    tb_frame_unref(h->pcache[i].out);
    tb_project_unref(h->pcache[i].fields);
    tb_frame_ref(f);
    h->pcache[i].src = f;
    h->pcache[i].out = out;
    h->pcache[i].fields = tb_project_ref(fields);
    return out;
}

static void send_now(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
{
    h->counters.deliveries++;
    hub_conn_queue(h, c, f);
}

/* ---- delivery ------------------------------------------------------------------------------ */

void hub_conflate_deliver(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f, room_t *const *rooms, size_t n,
                          hub_device_t *device)
{
    if (f->kind != TB_FRAME_TELEMETRY) {
        send_now(h, c, f); /* status and alerts are never held or cut */
        return;
    }
    policy_t p = conn_policy(c, rooms, n);
    tb_frame_t *out = projected(h, f, p.fields, device);
    if (!out)
        return; /* none of the fields asked for */
    int64_t now = h->route_ms ? h->route_ms : tb_mono_ms();
    bool full = c->x->slow && c->q_len >= (uint32_t)h->cfg->limits.send_queue_messages;
    conflate_entry_t *e =
        p.interval_ms && device && !c->close_code ? entry_get(h, c, device, now) : NULL;
    if (e && f->seq <= e->sent_seq)
        return; /* a newer state of the device went already (a replay behind a send) */
    if (e && (e->held || full || since_sent(e, now) < (int64_t)p.interval_ms) &&
        entry_hold(h, e, f, p.interval_ms, now) == 0) {
        h->counters.conflated++;
        return;
    }
    if (e) {
        e->sent_ms = now;
        e->sent_seq = f->seq;
    }
    send_now(h, c, out);
}

/* The device of a device-message frame (its envelope room device:<id>) into buf, or NULL. */
static const char *frame_device(const tb_frame_t *f, char buf[TB_ROOM_MAX + 1])
{
    const char *id;
    size_t len = tb_protocol_device_room(f, buf);
    return len && tb_room_parse(buf, len, &id, NULL) == TB_ROOM_DEVICE ? id : NULL;
}

/* The rooms (that exist) of packed names[0..n), at most ROOMS_PER_MESSAGE; how many. */
static size_t resolve_packed(const tb_hub_t *h, const char *packed, size_t n, room_t **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < ROOMS_PER_MESSAGE; i++, packed += strlen(packed) + 1) {
        room_t *r = hub_room_find(h, packed, strlen(packed));
        if (r)
            out[k++] = r;
    }
    return k;
}

void hub_conflate_replay(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f, const char *packed, size_t n)
{
    room_t *rooms[ROOMS_PER_MESSAGE];
    char buf[TB_ROOM_MAX + 1];
    size_t k = resolve_packed(h, packed, n, rooms);
    hub_device_t dev = {.id = frame_device(f, buf)};
    hub_conflate_deliver(h, c, f, rooms, k, dev.id ? &dev : NULL);
}

void hub_conflate_snapshot(tb_hub_t *h, tb_conn_t *c, tb_frame_t *s, const room_t *r)
{
    if (!s)
        return; /* out of memory making the copy */
    const joined_t *j = hub_conn_joined_room(c, r);
    const hub_opts_t *o = j ? hub_opts_of(c, j) : NULL;
    bool none = false;
    tb_frame_t *out = s;
    if (o && o->fields && s->kind == TB_FRAME_TELEMETRY) {
        out = tb_project_frame(s, o->fields, &none);
        tb_frame_unref(s);
    }
    if (out) {
        h->counters.snapshot_messages++;
        hub_conn_send_owned(h, c, out);
    }
}

/* ---- sending what was held ----------------------------------------------------------------- */

/* The rooms of held frame f of device e->id that exist: as the history recorded them, else the
 * device's rooms now. */
static size_t held_rooms(const tb_hub_t *h, const conflate_entry_t *e,
                         const tb_lastvalue_entry_t *lv, room_t **out)
{
    const char *packed;
    size_t n;
    if (tb_history_get(h->hist, e->held->seq, &packed, &n) == e->held)
        return resolve_packed(h, packed, n, out);
    dev_rooms_t dr;
    hub_device_rooms(h, e->id, lv ? tb_lastvalue_group(lv) : "", &dr);
    return hub_rooms_resolve(h, dr.ptrs, dr.n, out);
}

/*
 * e is due: queues the device's newest state — the last-value store's merged telemetry (every
 * field it holds, the newest value of each; the envelope, seq and timestamp of the newest
 * message), or the held message itself when the store no longer has the device — projected to the
 * fields c's rooms ask for now. A slow-consumer connection whose queue is still full waits
 * another interval.
 */
static void entry_send(tb_hub_t *h, conflate_entry_t *e, int64_t now)
{
    tb_conn_t *c = e->conn;
    if (!c->close_code && c->x->slow && c->q_len >= (uint32_t)h->cfg->limits.send_queue_messages) {
        e->due_ms = now + SLOW_INTERVAL_MS;
        if (heap_push(h, e) == 0)
            return;
    }
    tb_frame_t *held = e->held;
    const tb_lastvalue_entry_t *lv = tb_lastvalue_find(h->lv, e->id);
    tb_frame_t *state = lv ? tb_lastvalue_telemetry(lv) : NULL;
    room_t *rooms[ROOMS_PER_MESSAGE];
    size_t n = held_rooms(h, e, lv, rooms);
    e->held = NULL;
    if (!state || state->seq < held->seq)
        state = held;
    policy_t p = conn_policy(c, rooms, n);
    bool news = p.matched && !c->close_code && state->seq > e->sent_seq;
    tb_frame_t *out = news ? projected(h, state, p.fields, NULL) : NULL;
    if (out) {
        e->sent_ms = now;
        e->sent_seq = state->seq;
        send_now(h, c, out);
    }
    tb_frame_unref(held);
}

int64_t tb_hub_send_held(tb_hub_t *h, int64_t mono_ms)
{
    while (h->n_due && h->due[0]->due_ms <= mono_ms) {
        conflate_entry_t *e = h->due[0];
        heap_remove(h, e);
        entry_send(h, e, mono_ms);
    }
    h->wake_ms = h->n_due ? h->due[0]->due_ms : INT64_MAX;
    return h->n_due ? h->wake_ms : -1;
}

bool hub_conflate_hold(tb_hub_t *h, tb_conn_t *c, tb_frame_t *f)
{
    char buf[TB_ROOM_MAX + 1];
    hub_device_t dev = {.id = frame_device(f, buf)};
    int64_t now = tb_mono_ms();
    conn_x_t *x = hub_conn_x(c);
    conflate_entry_t *e = dev.id && x ? entry_get(h, c, &dev, now) : NULL;
    if (!e)
        return false;
    if (!x->slow)
        x->gen++;
    x->slow = true;
    if (entry_hold(h, e, f, SLOW_INTERVAL_MS, now))
        return false;
    h->counters.conflated++;
    return true;
}
