/* hub_persist.c — the hub's history and epoch across restarts (history.file, histfile.h):
 * restored when the hub is created, appended as messages are routed; see src/hub_internal.h. */
#include "hub_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "telebridge/log.h"
#include "telebridge/room.h"

/* The {group} of device's topic among a device message's rooms: a group room that is not one
 * of the configured groups of the device, copied into out (TB_ID_MAX + 1); "" when none. */
static void topic_group(const tb_hub_t *h, const char *device, const char *const *rooms, size_t n,
                        char *out)
{
    dev_rooms_t dr;
    const char *id;
    size_t len;
    out[0] = '\0';
    hub_device_rooms(h, device, "", &dr);
    for (size_t i = 1; i + 1 < n; i++) {
        bool configured = false;
        for (size_t k = 1; k + 1 < dr.n && !configured; k++)
            configured = strcmp(rooms[i], dr.names[k]) == 0;
        if (!configured && tb_room_parse(rooms[i], strlen(rooms[i]), &id, &len) == TB_ROOM_GROUP) {
            memcpy(out, id, len);
            out[len] = '\0';
            return;
        }
    }
}

/*
 * Folds a restored device message (telemetry or status from MQTT: routed to its device room
 * first and global last; not an alert or a published message) into the last-value store and
 * the series, as its ingest did, so that snapshots after a restart show what it held.
 */
static void restore_last_value(tb_hub_t *h, tb_frame_t *f, const tb_histfile_msg_t *m,
                               const char *const *rooms)
{
    static const char telemetry[] = "{\"type\":\"telemetry\",",
                      status[] = "{\"type\":\"device_status\",";
    bool is_t =
        m->len > sizeof(telemetry) && memcmp(m->payload, telemetry, sizeof(telemetry) - 1) == 0;
    bool is_s = m->len > sizeof(status) && memcmp(m->payload, status, sizeof(status) - 1) == 0;
    const char *device;
    size_t len;
    if ((!is_t && !is_s) || m->n_rooms < 2 || strcmp(rooms[m->n_rooms - 1], "global") != 0 ||
        tb_room_parse(rooms[0], strlen(rooms[0]), &device, &len) != TB_ROOM_DEVICE)
        return;
    json_t *env = json_loadb(m->payload, m->len, 0, NULL);
    json_t *payload = json_object_get(env, "payload");
    tb_msg_t *msg = json_is_object(payload) ? tb_msg_new() : NULL;
    if (msg) {
        msg->kind = is_t ? TB_MSG_TELEMETRY : TB_MSG_STATUS;
        memcpy(msg->device_id, device, len);
        msg->device_id[len] = '\0';
        topic_group(h, msg->device_id, rooms, m->n_rooms, msg->group);
        msg->ingest_ms = m->ms;
    }
    if (msg && tb_msg_set_payload(msg, json_incref(payload), TB_MSG_JSON_MAX(m->len)) == 0) {
        tb_lastvalue_entry_t *e = tb_lastvalue_update(h->lv, msg, f);
        if (e && is_t)
            hub_record_series(h, e, msg);
        h->counters.device_evictions = tb_lastvalue_evictions(h->lv);
    }
    tb_msg_free(msg);
    json_decref(env);
}

/* Puts one stored message back into the history, its frame rebuilt from the stored bytes. */
static void restore_message(void *arg, const tb_histfile_msg_t *m)
{
    tb_hub_t *h = arg;
    const char *rooms[UINT8_MAX];
    const char *p = m->rooms;
    for (size_t i = 0; i < m->n_rooms; i++, p += strlen(p) + 1)
        rooms[i] = p;
    tb_frame_t *f = tb_frame_new(m->payload, m->len, (tb_frame_kind_t)m->kind, m->seq);
    if (!f || tb_history_add(h->hist, f, m->ms, rooms, m->n_rooms))
        tb_log(TB_LOG_ERROR, "out of memory restoring the history", "seq=%" PRIu64, m->seq);
    if (f)
        restore_last_value(h, f, m, rooms);
    tb_frame_unref(f);
    h->seq = m->seq;
}

/*
 * Takes over what the file held: its epoch, unless the machine rebooted while the file was not
 * closed (then its last second may be lost, and with it seqs clients saw: a new epoch keeps
 * their `since` from matching reused seqs; `since.time` still finds the restored messages).
 */
static void adopt(tb_hub_t *h, const tb_histfile_loaded_t *l)
{
    int64_t horizon = tb_history_horizon(h->hist);
    tb_history_set_horizon(h->hist, horizon > l->horizon_ms ? horizon : l->horizon_ms);
    if (!l->clean && !l->same_boot) {
        tb_log(TB_LOG_WARN,
               "history file was not closed before the machine restarted: its last second may "
               "be lost, so a new epoch",
               "old_epoch=%s epoch=%s", l->epoch, h->epoch);
        return;
    }
    snprintf(h->epoch, sizeof(h->epoch), "%s", l->epoch);
}

/* Loads the file into the history; the horizon then is the file's (or now, when fresh). */
static void load(tb_hub_t *h, const char *path, int64_t now_ms)
{
    char err[256];
    tb_histfile_loaded_t l;
    tb_history_set_horizon(h->hist, INT64_MIN);
    if (tb_histfile_load(path, restore_message, h, &l, err, sizeof(err))) {
        tb_log(TB_LOG_WARN, "history file unusable, starting afresh (new epoch)", "error=\"%s\"",
               err);
        l.epoch[0] = '\0';
    }
    if (!l.epoch[0]) {
        tb_history_set_horizon(h->hist, now_ms);
        return;
    }
    if (l.last_seq > h->seq)
        h->seq = l.last_seq; /* messages after the last one held were holes */
    adopt(h, &l);
    tb_log(TB_LOG_INFO, "history restored",
           "path=\"%s\" epoch=%s seq=%" PRIu64 " messages=%zu held=%zu ignored_bytes=%zu "
           "clean=%s",
           path, h->epoch, h->seq, l.messages, tb_history_count(h->hist), l.ignored_bytes,
           l.clean ? "true" : "false");
}

/* The seq of the oldest held message, or h->seq + 1 when none is held. */
static uint64_t oldest_held(const tb_hub_t *h, size_t capacity)
{
    uint64_t s = h->seq >= capacity ? h->seq - capacity + 1 : 1;
    while (s <= h->seq && tb_history_ms(h->hist, s) == INT64_MIN)
        s++;
    return s;
}

/* Appends every held message from seq first on, oldest first, to the new segment. */
static void write_held(tb_hub_t *h, uint64_t first)
{
    for (uint64_t s = first; s <= h->seq; s++) {
        const char *rooms;
        size_t n;
        tb_frame_t *f = tb_history_get(h->hist, s, &rooms, &n);
        if (f)
            tb_histfile_append(h->file, f, tb_history_ms(h->hist, s), rooms, n);
    }
}

void hub_persist_start(tb_hub_t *h, size_t capacity, int64_t now_ms)
{
    char err[256], path[TB_CONFIG_PATH_MAX + 1];
    if (!h->cfg->history.file)
        return;
    if (tb_config_history_file(h->cfg, path, sizeof(path), err, sizeof(err)) != 0 ||
        !(h->file = tb_histfile_open(path, capacity, err, sizeof(err)))) {
        tb_log(TB_LOG_ERROR, "cannot use the history file: history in memory only, new epoch",
               "error=\"%s\"", err);
        return;
    }
    load(h, path, now_ms);
    uint64_t first = oldest_held(h, capacity);
    if (tb_histfile_begin(h->file, h->epoch, tb_history_horizon(h->hist), first - 1, err,
                          sizeof(err)) == 0) {
        write_held(h, first);
        if (tb_histfile_commit(h->file, err, sizeof(err)) == 0)
            return;
    }
    tb_histfile_close(h->file);
    h->file = NULL;
    tb_log(TB_LOG_ERROR, "cannot write the history file: history in memory only", "error=\"%s\"",
           err);
}

void hub_persist_record(tb_hub_t *h, const tb_frame_t *f, int64_t ms)
{
    const char *rooms;
    size_t n;
    if (tb_history_get(h->hist, f->seq, &rooms, &n))
        tb_histfile_append(h->file, f, ms, rooms, n);
}

void tb_hub_flush(tb_hub_t *h)
{
    if (h->file)
        tb_histfile_flush(h->file);
}

uint64_t tb_hub_history_file(const tb_hub_t *h, uint64_t *bytes)
{
    bool on = h->file && tb_histfile_on(h->file);
    *bytes = on ? tb_histfile_size(h->file) : 0;
    return on;
}
