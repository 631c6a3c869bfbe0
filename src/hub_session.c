/* hub_session.c — a connection's messages: subscribe, unsubscribe, refresh, ping, the
 * rate limit; see src/hub_internal.h. */
#include "hub_internal.h"

#include <string.h>

#include "telebridge/auth.h"
#include "telebridge/util.h"

/* ---- device rooms and snapshots ---------------------------------------------------------- */

static bool names_have(const json_t *names, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

/* Queues, as pending snapshot frames of c for room r, device e's last status and telemetry. */
static void snapshot_device(tb_conn_t *c, tb_lastvalue_entry_t *e, const room_t *r, uint32_t n)
{
    (void)n;
    if (tb_lastvalue_status(e))
        hub_snap_push(c, tb_lastvalue_status(e), r);
    if (tb_lastvalue_telemetry(e))
        hub_snap_push(c, tb_lastvalue_telemetry(e), r);
}

/* Queues, as a pending series entry of c for room r, device e's last n values of each field. */
static void series_device(tb_conn_t *c, tb_lastvalue_entry_t *e, const room_t *r, uint32_t n)
{
    if (tb_lastvalue_telemetry(e) && *tb_lastvalue_series(e))
        hub_snap_push_series(c, tb_lastvalue_telemetry(e), r, n);
}

/*
 * The first of e's group rooms and global that is in fresh, or NULL when there is none or e's
 * device room is in fresh too (that one brought e already).
 */
static const room_t *snapshot_by_scan(const tb_hub_t *h, const tb_lastvalue_entry_t *e,
                                      const json_t *fresh)
{
    dev_rooms_t dr;
    hub_device_rooms(h, tb_lastvalue_device(e), tb_lastvalue_group(e), &dr);
    if (names_have(fresh, dr.names[0]))
        return NULL;
    for (size_t i = 1; i < dr.n; i++)
        if (names_have(fresh, dr.names[i]))
            return hub_room_find(h, dr.names[i], strlen(dr.names[i]));
    return NULL;
}

typedef void (*device_fn)(tb_conn_t *c, tb_lastvalue_entry_t *e, const room_t *r, uint32_t n);

/*
 * Calls push(c, device, room, n) for each device of the rooms just joined (fresh), once: the
 * devices named by device rooms in request order, then, when a group room or global was joined,
 * every other device in them from the least to the most recently updated. A user: room holds no
 * device. The snapshot and the series are made so.
 */
static void for_fresh_devices(tb_hub_t *h, tb_conn_t *c, const json_t *fresh, device_fn push,
                              uint32_t n)
{
    bool scan = false;
    size_t i;
    json_t *v;
    json_array_foreach(fresh, i, v)
    {
        const char *name = json_string_value(v), *id;
        tb_room_kind_t kind = tb_room_parse(name, strlen(name), &id, NULL);
        if (kind != TB_ROOM_DEVICE) {
            scan = scan || kind != TB_ROOM_USER; /* a personal room holds no device */
            continue;
        }
        tb_lastvalue_entry_t *e = tb_lastvalue_find(h->lv, id);
        if (e)
            push(c, e, hub_room_find(h, name, strlen(name)), n);
    }
    for (tb_lastvalue_entry_t *e = scan ? tb_lastvalue_oldest(h->lv) : NULL; e;
         e = tb_lastvalue_newer(e)) {
        const room_t *r = snapshot_by_scan(h, e, fresh);
        if (r)
            push(c, e, r, n);
    }
}

/* ---- client messages --------------------------------------------------------------------- */

/* Room lists of a subscribe answer, each a JSON array; fresh: joined by this request. */
typedef struct {
    json_t *joined, *invalid, *forbidden, *too_many, *fresh;
} sub_result_t;

/* Joins room (or keeps it) for subscribe options opt (hub_opts_find()), filing it in res. */
static void subscribe_one(tb_hub_t *h, tb_conn_t *c, const char *room, uint64_t from_seq,
                          uint32_t opt, sub_result_t *res)
{
    json_t *name = json_string(room);
    json_t *into = res->joined;
    bool was_in = false;
    if (tb_room_parse(room, strlen(room), NULL, NULL) == TB_ROOM_INVALID)
        into = res->invalid;
    else if (!tb_grant_allows_room(c->grant, room))
        into = res->forbidden;
    else if ((was_in = hub_conn_joined(h, c, room)))
        into = res->joined;
    else if (c->n_rooms >= (uint32_t)h->cfg->limits.max_rooms_per_connection)
        into = res->too_many;
    else if (hub_room_join(h, c, room, from_seq))
        into = res->too_many; /* out of memory: the client can only try fewer rooms */
    else
        json_array_append(res->fresh, name);
    if (into == res->joined)
        hub_opts_set(c, (joined_t *)hub_conn_joined_room(c, hub_room_find(h, room, strlen(room))),
                     opt);
    json_array_append_new(into, name);
}

/*
 * The checks of a subscribe's options that need the configuration (the rest are the parser's):
 * NULL, or the bad_request message naming the option.
 */
static const char *options_refused(const tb_hub_t *h, const tb_protocol_cmsg_t *m)
{
    if (m->series > (uint32_t)h->cfg->history.series_points)
        return "payload.series must be an integer from 1 to history.series_points";
    return NULL;
}

/* How a subscribe's `since` is honoured: not, by seq, or by time. */
typedef enum { RECOVER_NONE = 0, RECOVER_SEQ, RECOVER_TIME } recover_t;

/* True when a replay of c after seq from misses nothing `since` may ask for: at most
 * history.messages behind (the ring may hold more, for catch-ups) and, while c is already
 * catching up, not behind c's cursor (what lies behind was already sent or skipped). */
static bool replay_ok(const tb_hub_t *h, const tb_conn_t *c, uint64_t from)
{
    return h->seq - from <= (uint64_t)h->cfg->history.messages && (!c->cu || from >= c->cu->cursor);
}

/*
 * Where a replay by seq for a request with max_hz starts: 1/R before the message at since_seq
 * was ingested, when the history holds that far. A capped connection's held state of a device
 * (its newest message at most 1/R older than the client's last message) is thus sent again
 * instead of lost at a reconnect (docs/protocol.md → Subscribe options); the overlap comes
 * through the cap, newest state last.
 */
static uint64_t capped_from(const tb_hub_t *h, const tb_conn_t *c, const tb_protocol_cmsg_t *m)
{
    int64_t ms = m->max_hz > 0 ? tb_history_ms(h->hist, m->since_seq) : INT64_MIN;
    if (ms == INT64_MIN)
        return m->since_seq;
    uint64_t after = tb_history_seq_before(h->hist, ms - hub_interval_ms(m->max_hz), m->since_seq);
    return tb_history_covers(h->hist, after, h->seq) && replay_ok(h, c, after) ? after
                                                                               : m->since_seq;
}

/*
 * A `since` is honoured by seq when it names this epoch and the history still holds everything
 * after its seq; else by time when it has one and the history holds everything ingested since
 * then (its horizon is not later), replaying what was ingested from TB_HUB_SINCE_TIME_OVERLAP_MS
 * before it. Both only when replay_ok(). *from: the seq the replay starts after.
 */
static recover_t recovery(const tb_hub_t *h, const tb_conn_t *c, const tb_protocol_cmsg_t *m,
                          uint64_t *from)
{
    if (!m->has_since)
        return RECOVER_NONE;
    if (strcmp(m->since_epoch, h->epoch) == 0 && tb_history_covers(h->hist, m->since_seq, h->seq) &&
        replay_ok(h, c, m->since_seq)) {
        *from = capped_from(h, c, m);
        return RECOVER_SEQ;
    }
    if (!m->has_since_time || tb_history_horizon(h->hist) > m->since_time_ms)
        return RECOVER_NONE;
    /* A capped request also covers what a cap held at the failover: 1/R when that is longer. */
    int64_t overlap = TB_HUB_SINCE_TIME_OVERLAP_MS, cap = hub_interval_ms(m->max_hz);
    uint64_t after =
        tb_history_seq_before(h->hist, m->since_time_ms - (cap > overlap ? cap : overlap), h->seq);
    if (!replay_ok(h, c, after))
        return RECOVER_NONE;
    *from = after;
    return RECOVER_TIME;
}

/*
 * Starts catching c up from from_seq: rooms it was already in have had every message up to now
 * live, so the replay skips those (also when a newly joined room owes them). A connection
 * already catching up keeps its cursor.
 */
static void catch_up_start(tb_hub_t *h, tb_conn_t *c, uint64_t from_seq)
{
    if (c->cu || !hub_catchup_new(h, c))
        return;
    for (uint32_t k = 0; k < c->n_rooms; k++)
        c->rooms[k].had_live = 1;
    c->cu->had_max = c->n_rooms ? h->seq : 0; /* with no room held, nothing came live */
    c->cu->cursor = from_seq;
}

/* Sends an error listing rooms when the list is not empty (takes the list). */
static void rooms_error(tb_hub_t *h, tb_conn_t *c, const char *code, const char *message,
                        json_t *rooms, const json_t *request_id)
{
    if (json_array_size(rooms) == 0) {
        json_decref(rooms);
        return;
    }
    hub_conn_error(h, c, code, message, rooms, request_id);
}

/*
 * Order on c: `subscribed`, then, with `series`, a series message per device of the rooms just
 * joined, then their snapshot or, when `since` can be honoured, the replay of what they missed,
 * then live messages — all through hub_catch_up(), paced by the send queue.
 */
static void handle_subscribe(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m)
{
    const char *refused = options_refused(h, m);
    uint32_t opt;
    if (refused) {
        hub_conn_error(h, c, TB_ERR_BAD_REQUEST, refused, NULL, m->request_id);
        return;
    }
    if (hub_opts_find(h, c, m, &opt)) {
        hub_conn_error(h, c, TB_ERR_BAD_REQUEST,
                       "payload: too many different max_hz/fields options on this connection", NULL,
                       m->request_id);
        return;
    }
    sub_result_t res = {json_array(), json_array(), json_array(), json_array(), json_array()};
    uint64_t from_seq = h->seq;
    recover_t mode = recovery(h, c, m, &from_seq);
    bool recover = mode != RECOVER_NONE;
    size_t i;
    json_t *r;
    c->subs++;
    catch_up_start(h, c, from_seq);
    json_array_foreach(m->rooms, i, r)
        subscribe_one(h, c, json_string_value(r), from_seq, opt, &res);
    json_t *payload = json_pack("{s:O, s:I}", "rooms", res.joined, "seq", (json_int_t)h->seq);
    if (payload && m->has_since)
        json_object_set_new(payload, "recovered", json_boolean(recover));
    if (payload && recover)
        json_object_set_new(payload, "mode", json_string(mode == RECOVER_SEQ ? "seq" : "time"));
    json_decref(res.joined);
    hub_conn_send_owned(h, c,
                        tb_protocol_control("subscribed", payload, m->request_id, tb_now_ms()));
    if (m->series)
        for_fresh_devices(h, c, res.fresh, series_device, m->series);
    if (!recover)
        for_fresh_devices(h, c, res.fresh, snapshot_device, 0);
    json_decref(res.fresh);
    rooms_error(h, c, TB_ERR_BAD_REQUEST, "invalid room name", res.invalid, m->request_id);
    rooms_error(h, c, TB_ERR_FORBIDDEN, "room not granted by the token", res.forbidden,
                m->request_id);
    rooms_error(h, c, TB_ERR_TOO_MANY_ROOMS, "limits.max_rooms_per_connection reached",
                res.too_many, m->request_id);
    hub_catch_up(h, c);
}

static void handle_unsubscribe(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m)
{
    json_t *left = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(m->rooms, i, r)
    {
        if (hub_room_leave(h, c, json_string_value(r)))
            json_array_append(left, r);
    }
    if (json_array_size(left))
        hub_queue_drop_left(h, c);
    json_t *payload = json_pack("{s:o}", "rooms", left);
    hub_conn_send_owned(h, c,
                        tb_protocol_control("unsubscribed", payload, m->request_id, tb_now_ms()));
    hub_conn_check(h, c);
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
            hub_room_leave_slot(h, c, i);
            any = true;
        }
    }
    if (any)
        hub_queue_drop_left(h, c);
    return left;
}

static void handle_refresh(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m)
{
    tb_grant_t *g = NULL;
    int rc = tb_auth_verify(h->auth, m->token, strlen(m->token), tb_now_ms() / 1000, &g);
    if (rc != TB_AUTH_OK || strcmp(tb_grant_sub(g), tb_grant_sub(c->grant)) != 0) {
        tb_grant_free(g);
        hub_conn_error(h, c, rc == TB_AUTH_OK ? TB_ERR_FORBIDDEN : tb_auth_err_code(rc),
                       "refresh token refused", NULL, m->request_id);
        return;
    }
    hub_conn_set_grant(h, c, g);
    json_t *left = leave_ungranted(h, c);
    if (json_array_size(left))
        hub_conn_send_owned(h, c,
                            tb_protocol_control("unsubscribed", json_pack("{s:O}", "rooms", left),
                                                NULL, tb_now_ms()));
    json_decref(left);
    json_t *payload = json_pack("{s:I}", "exp", (json_int_t)tb_grant_exp(g));
    hub_conn_send_owned(h, c,
                        tb_protocol_control("refreshed", payload, m->request_id, tb_now_ms()));
    hub_conn_check(h, c);
}

/* Counts c's message against client_messages_per_s; false when over the limit. */
static bool rate_ok(tb_hub_t *h, tb_conn_t *c, bool *first_refusal)
{
    int32_t window = (int32_t)(tb_mono_ms() / 1000);
    if (window != c->rl_window) {
        c->rl_window = window;
        c->rl_count = 0;
    }
    c->rl_count++;
    *first_refusal = c->rl_count == (uint32_t)h->cfg->limits.client_messages_per_s + 1;
    return c->rl_count <= (uint32_t)h->cfg->limits.client_messages_per_s;
}

static void dispatch(tb_hub_t *h, tb_conn_t *c, const tb_protocol_cmsg_t *m)
{
    switch (m->type) {
    case TB_PROTOCOL_CMSG_SUBSCRIBE:
        handle_subscribe(h, c, m);
        break;
    case TB_PROTOCOL_CMSG_UNSUBSCRIBE:
        handle_unsubscribe(h, c, m);
        break;
    case TB_PROTOCOL_CMSG_PING:
        hub_conn_send_owned(h, c, tb_protocol_control("pong", NULL, m->request_id, tb_now_ms()));
        break;
    case TB_PROTOCOL_CMSG_REFRESH:
        handle_refresh(h, c, m);
        break;
    }
}

void tb_hub_conn_receive(tb_hub_t *h, tb_conn_t *c, const char *msg, size_t len)
{
    tb_protocol_cmsg_t m;
    const char *err_code, *err_msg;
    bool first_refusal;
    h->counters.client_messages++;
    if (c->close_code)
        return;
    if (!rate_ok(h, c, &first_refusal)) {
        h->counters.rate_limited++;
        /* One answer per second is enough; answering each would let the client fill its queue. */
        if (first_refusal)
            hub_conn_error(h, c, TB_ERR_RATE_LIMITED, "limits.client_messages_per_s exceeded", NULL,
                           NULL);
        return;
    }
    if (tb_protocol_cmsg_parse(msg, len, &m, &err_code, &err_msg) == 0)
        dispatch(h, c, &m);
    else
        hub_conn_error(h, c, err_code, err_msg, NULL, m.request_id);
    tb_protocol_cmsg_clear(&m);
}
