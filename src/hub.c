/* hub — rooms, connections and fan-out; see include/telebridge/hub.h. This file: the hub's
 * life, its connections, the tick and heartbeat, ingest and publish. The rest of the hub:
 * hub_rooms.c, hub_send.c, hub_session.c (src/hub_internal.h). */
#include "hub_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/log.h"
#include "telebridge/util.h"

/* Longest alert_id: rule name, device id, seq, separators. */
#define ALERT_ID_MAX (TB_ID_MAX * 3)

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
    h->ops = opts->ops;
    h->transport = opts->transport;
    h->groups = tb_groups_create(opts->cfg->groups, opts->cfg->n_groups);
    h->lv = tb_lastvalue_create((size_t)opts->cfg->history.devices, opts->cfg->n_alerts);
    h->hist = tb_history_create(history_capacity(opts->cfg));
    h->events = calloc(opts->cfg->n_alerts ? opts->cfg->n_alerts : 1, sizeof(*h->events));
    h->alerts = opts->cfg->alerts;
    h->n_alerts = opts->cfg->n_alerts;
    h->wake_ms = INT64_MAX;
    if (tb_strhash_init(&h->rooms, ROOM_BUCKETS_MIN,
                        offsetof(room_t, name) - offsetof(room_t, node)) ||
        !h->groups || !h->lv || !h->hist || !h->events)
        goto fail;
    if (opts->epoch)
        snprintf(h->epoch, sizeof(h->epoch), "%s", opts->epoch);
    else
        random_epoch(h->epoch);
    /* This epoch ingested nothing before now: the history reaches back to its start. */
    tb_history_set_horizon(h->hist, tb_now_ms());
    hub_persist_start(h, history_capacity(opts->cfg), tb_now_ms());
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
    free(h->due);
    hub_pcache_release(h);
    tb_groups_destroy(h->groups);
    tb_lastvalue_destroy(h->lv);
    tb_histfile_close(h->file);
    tb_history_destroy(h->hist);
    free(h->events);
    if (h->alerts_owned)
        tb_alerts_free(h->alerts, h->n_alerts);
    tb_strhash_fini(&h->rooms);
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
    return h->rooms.count;
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

tb_latency_t *tb_hub_latency(tb_hub_t *h)
{
    return &h->counters.delivery_latency;
}

size_t tb_hub_queues_over_half(const tb_hub_t *h)
{
    size_t n = 0;
    uint32_t half = (uint32_t)h->cfg->limits.send_queue_messages / 2;
    for (size_t i = 0; i < h->n_conns; i++)
        n += h->slots[i].c->q_len > half;
    return n;
}

/* ---- connections ------------------------------------------------------------------------- */

/*
 * Takes g as c's grant (freeing the old one) and schedules its expiry: token_expiring
 * auth.expiry_warning_s before exp (never, when 0), then the 4001 close at exp.
 */
void hub_conn_set_grant(tb_hub_t *h, tb_conn_t *c, tb_grant_t *g)
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
    hub_conn_send_owned(h, c, tb_protocol_control("connected", payload, NULL, ms));
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
    hub_conn_set_grant(h, c, grant);
    c->id = ++h->next_conn_id;
    h->counters.connections_total++;
    send_connected(h, c);
    return c;
}

void tb_hub_conn_close(tb_hub_t *h, tb_conn_t *c)
{
    if (!c)
        return;
    hub_catchup_free(c); /* first: leaving the rooms then has no pending snapshot to sift */
    while (c->n_rooms)
        hub_room_leave_slot(h, c, c->n_rooms - 1);
    free(c->rooms);
    hub_opts_free(h, c);
    hub_queue_release(c);
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
    for (tb_lastvalue_entry_t *e = tb_lastvalue_oldest(h->lv); e; e = tb_lastvalue_newer(e)) {
        uint64_t *w = tb_lastvalue_words(e);
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
        hub_conn_request_close(h, h->slots[i].c, code);
}

/* token_expiring: {exp, expires_in}, once per grant. */
static void send_expiring(tb_hub_t *h, tb_conn_t *c, int64_t now_s)
{
    int64_t exp = tb_grant_exp(c->grant);
    json_t *payload =
        json_pack("{s:I, s:I}", "exp", (json_int_t)exp, "expires_in", (json_int_t)(exp - now_s));
    hub_conn_send_owned(h, c, tb_protocol_control("token_expiring", payload, NULL, tb_now_ms()));
    c->warned = true;
    h->slots[c->slot].deadline_s = exp;
}

/* One tick's work for c, whose deadline has come. */
static void conn_deadline(tb_hub_t *h, tb_conn_t *c, int64_t now_s)
{
    if (tb_grant_exp(c->grant) <= now_s) {
        h->counters.token_expired++;
        hub_conn_request_close(h, c, TB_CLOSE_TOKEN_EXPIRED);
    } else if (!c->warned) {
        send_expiring(h, c, now_s);
    }
}

void tb_hub_tick(tb_hub_t *h, int64_t now_ms)
{
    int64_t now_s = now_ms / 1000;
    if (h->file)
        tb_histfile_sync(h->file);
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
    c->pinged = false;
}

void tb_hub_heartbeat(tb_hub_t *h, int64_t mono_ms)
{
    int64_t ping_ms = (int64_t)h->cfg->heartbeat.ping_interval_s * 1000;
    int64_t drop_ms = (int64_t)h->cfg->heartbeat.pong_timeout_s * 1000;
    for (size_t i = 0; i < h->n_conns; i++) {
        slot_t *s = &h->slots[i];
        int64_t quiet = mono_ms - s->seen_ms;
        if (quiet >= drop_ms) {
            h->ops.drop(h->transport, s->c->io);
        } else if (quiet >= ping_ms && !s->c->pinged) {
            s->c->pinged = true;
            h->ops.ping(h->transport, s->c->io);
        }
    }
}

/* ---- fan-out ----------------------------------------------------------------------------- */

/*
 * Queues f on the members of room r (one of rooms[0..n)) that have not had it. A connection with
 * subscribe options or conflation (c->x) goes through hub_conflate_deliver(); the others cost
 * what they did before options existed.
 */
static void deliver_room(tb_hub_t *h, room_t *r, tb_frame_t *f, room_t *const *rooms, size_t n,
                         hub_device_t *device)
{
    for (uint32_t i = 0; i < r->n_members; i++) {
        tb_conn_t *c = r->members[i].conn;
        /* A catching-up connection gets this message from the history, in order. */
        if (c->cu || c->last_seq == f->seq)
            continue;
        c->last_seq = f->seq;
        if (c->x) {
            if (!h->route_ms)
                h->route_ms = tb_mono_ms();
            hub_conflate_deliver(h, c, f, rooms, n, device);
            continue;
        }
        h->counters.deliveries++;
        hub_conn_queue(h, c, f);
    }
}

/*
 * Records f (which has its seq, routed at ms) in the history and queues it on the members of rooms.
 * device: the device id of an ingested message (for conflation), NULL for a published one;
 * payload: its payload object (for projections), or NULL.
 */
static void route(tb_hub_t *h, tb_frame_t *f, int64_t ms, const char *const *names, size_t n,
                  const char *device, const json_t *payload)
{
    room_t *rooms[ROOMS_PER_MESSAGE];
    size_t k;
    hub_device_t dev = {.id = device, .frame = f, .payload = payload, .ms = ms};
    if (tb_history_add(h->hist, f, ms, names, n))
        tb_log(TB_LOG_ERROR, "out of memory recording a message in the history", "seq=%" PRIu64,
               f->seq);
    else if (h->file)
        hub_persist_record(h, f, ms);
    /* A room named twice (topic group equal to a configured one) is harmless: the
     * per-connection last_seq guard already makes delivery at-most-once. */
    k = hub_rooms_resolve(h, names, n, rooms);
    for (size_t i = 0; i < k; i++)
        deliver_room(h, rooms[i], f, rooms, k, device ? &dev : NULL);
    h->route_ms = 0;
}

/*
 * Routes one alert transition of device e as a message of its own (next seq, same rooms as
 * the sample). The rule's word in e holds the firing message's seq while it fires; both
 * messages of a firing/resolved pair carry the alert_id "<rule>:<device>:<firing seq>".
 */
static void emit_alert(tb_hub_t *h, tb_lastvalue_entry_t *e, const tb_alert_event_t *ev,
                       const tb_msg_t *m, const char *timestamp, const dev_rooms_t *dr)
{
    const tb_config_alert_t *rule = &h->alerts[ev->rule];
    uint64_t *mark = &tb_lastvalue_words(e)[ev->rule];
    uint64_t seq = ++h->seq;
    char id[ALERT_ID_MAX];
    snprintf(id, sizeof(id), "%s:%s:%" PRIu64, rule->name, tb_lastvalue_device(e),
             ev->firing ? seq : *mark);
    *mark = ev->firing ? seq : 0;
    h->counters.alerts++;
    json_t *payload = tb_alerts_payload(rule, ev, tb_lastvalue_device(e), id, timestamp);
    int64_t now = tb_now_ms();
    /* Kind status: the drop_oldest policy never drops an alert. */
    tb_frame_t *f =
        payload ? tb_protocol_device("alert", dr->names[0], payload, seq, now, TB_FRAME_STATUS)
                : NULL;
    json_decref(payload);
    if (!f) {
        tb_log(TB_LOG_ERROR, "out of memory encoding an alert", "seq=%" PRIu64, seq);
        return;
    }
    f->ingest_us = m->ingest_us; /* its latency runs from the sample's arrival */
    route(h, f, now, dr->ptrs, dr->n, NULL, NULL);
    tb_frame_unref(f);
}

static void raise_alerts(tb_hub_t *h, tb_lastvalue_entry_t *e, const tb_msg_t *m,
                         const dev_rooms_t *dr)
{
    const char *ts = json_string_value(json_object_get(m->payload, "timestamp"));
    size_t n =
        tb_alerts_eval(h->alerts, h->n_alerts, m->device_id, json_object_get(m->payload, "fields"),
                       tb_lastvalue_words(e), h->events);
    for (size_t i = 0; i < n; i++)
        emit_alert(h, e, &h->events[i], m, ts ? ts : "", dr);
}

/* Appends telemetry m's numeric fields to device e's series (history.series_points each). */
void hub_record_series(tb_hub_t *h, tb_lastvalue_entry_t *e, const tb_msg_t *m)
{
    if (h->cfg->history.series_points == 0)
        return;
    const char *ts = json_string_value(json_object_get(m->payload, "timestamp"));
    tb_series_add(tb_lastvalue_series(e), (size_t)h->cfg->history.series_points,
                  json_object_get(m->payload, "fields"), tb_series_time_ms(ts, m->ingest_ms));
}

void tb_hub_ingest(tb_hub_t *h, tb_msg_t *m)
{
    dev_rooms_t dr;
    bool telemetry = m->kind == TB_MSG_TELEMETRY;
    hub_device_rooms(h, m->device_id, m->group, &dr);
    uint64_t seq = ++h->seq;
    int64_t now = tb_now_ms();
    tb_frame_t *f = tb_protocol_device_spliced(
        telemetry ? "telemetry" : "device_status", dr.names[0], m->payload_json,
        m->payload_json_len, seq, now, telemetry ? TB_FRAME_TELEMETRY : TB_FRAME_STATUS);
    h->counters.device_messages++;
    if (f)
        f->ingest_us = m->ingest_us;
    tb_lastvalue_entry_t *e = tb_lastvalue_update(h->lv, m, f);
    h->counters.device_evictions = tb_lastvalue_evictions(h->lv);
    if (f) {
        route(h, f, now, dr.ptrs, dr.n, telemetry ? m->device_id : NULL, m->payload);
        tb_frame_unref(f);
    } else {
        tb_log(TB_LOG_ERROR, "out of memory encoding a device message", "seq=%" PRIu64, seq);
    }
    if (e && telemetry) {
        hub_record_series(h, e, m);
        raise_alerts(h, e, m, &dr);
    }
    tb_msg_free(m);
}

uint64_t tb_hub_publish(tb_hub_t *h, const char *room, const char *type, const json_t *payload)
{
    uint64_t seq = ++h->seq;
    bool telemetry = strcmp(type, "telemetry") == 0;
    int64_t now_us = tb_now_us(), now = now_us / 1000;
    tb_frame_t *f = tb_protocol_device(type, room, payload, seq, now,
                                       telemetry ? TB_FRAME_TELEMETRY : TB_FRAME_STATUS);
    if (!f)
        return 0;
    f->ingest_us = now_us; /* one clock read, as an ingested message's ingest_ms and ingest_us */
    h->counters.published++;
    route(h, f, now, &room, 1, NULL, NULL);
    tb_hub_flush(h); /* outside a batch: into the file before the frame reaches a socket */
    tb_frame_unref(f);
    return seq;
}
