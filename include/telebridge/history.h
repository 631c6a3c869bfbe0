/*
 * history — the last N routed messages, indexed by `seq`, for `subscribe` with `since`.
 *
 * A ring of capacity entries; entry for seq s sits in slot s % capacity, so a lookup is one
 * index. Each entry holds a reference to the message's frame (the very frame the live
 * fan-out queued, no copy) and the names of the rooms it was routed to, so a replay can
 * match it against a connection's rooms. Adding seq s drops whatever entry its slot held.
 *
 * Seqs are added in increasing order; a seq that was never added (a message that could not
 * be encoded) is a hole: tb_history_get() answers NULL for it, as for one that was dropped.
 * capacity 0 keeps nothing. Service thread only.
 *
 * Each entry also holds the time it was recorded (the bridge's ingest time, Unix ms, which is
 * its envelope `timestamp`), for `since` by time: the horizon is the latest time of an entry
 * dropped so far (or the start set with tb_history_set_horizon(), 0 at creation), so every
 * message recorded after the horizon is still held.
 */
#ifndef TELEBRIDGE_HISTORY_H
#define TELEBRIDGE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"

typedef struct tb_history tb_history_t;

/* NULL when out of memory. */
tb_history_t *tb_history_create(size_t capacity);
/* Releases every held reference. NULL is a no-op. */
void tb_history_destroy(tb_history_t *h);

/*
 * Records f (its seq, which must exceed every seq added before) as routed to rooms[0..n),
 * taking a new reference to f and copying the names. Returns 0, or -1 when out of memory
 * (nothing recorded: a hole). A no-op returning 0 when capacity is 0.
 */
int tb_history_add(tb_history_t *h, tb_frame_t *f, int64_t ms, const char *const *rooms, size_t n);

/*
 * True when since <= last and every message after seq `since` up to `last` that was recorded
 * is still held, i.e. a replay from since would miss nothing (since == last always is).
 */
bool tb_history_covers(const tb_history_t *h, uint64_t since, uint64_t last);

/*
 * The frame of seq (borrowed, valid until the entry is dropped) and its room names packed
 * as n consecutive NUL-terminated strings in *rooms; NULL when seq is not held.
 */
tb_frame_t *tb_history_get(const tb_history_t *h, uint64_t seq, const char **rooms, size_t *n);

/* The recording time of seq, or INT64_MIN when seq is not held. */
int64_t tb_history_ms(const tb_history_t *h, uint64_t seq);

/* Every message recorded later than the horizon (Unix ms) is held, holes aside. */
int64_t tb_history_horizon(const tb_history_t *h);
/* Sets the horizon: when the history began (a bridge's start, a restored file's horizon). */
void tb_history_set_horizon(tb_history_t *h, int64_t ms);

/*
 * For a replay by time: the seq after which every held entry up to last was recorded at or
 * after from_ms — scanning back from last, the first held entry recorded before from_ms, else
 * the seq before the oldest the ring can hold. Whether the history reaches back that far is
 * the horizon's question. O(entries scanned).
 */
uint64_t tb_history_seq_before(const tb_history_t *h, int64_t from_ms, uint64_t last);

/* Entries currently held. */
size_t tb_history_count(const tb_history_t *h);

#endif
