/* hub_persist.c — the hub's history and epoch across restarts (history.file, histfile.h):
 * restored when the hub is created, appended as messages are routed; see src/hub_internal.h. */
#include "hub_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "telebridge/log.h"

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
    char err[256];
    const char *path = h->cfg->history.file;
    if (!path)
        return;
    if (!(h->file = tb_histfile_open(path, capacity, err, sizeof(err)))) {
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
