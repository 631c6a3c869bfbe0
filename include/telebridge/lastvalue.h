/*
 * lastvalue — the last known state of each device, for the snapshot a subscriber gets first.
 *
 * Per device: the telemetry merged field by field (a device that sends temperature and
 * humidity in separate messages shows both; tags merge the same way; `timestamp` is the
 * latest message's) and the last status, each with the `seq` of the message that last
 * changed it, plus the `{group}` the device's topic named last and a caller-sized array of
 * per-device words (the hub keeps alert state there, so it is bounded and evicted with the
 * device) and the device's series (series.h), likewise freed with the record.
 *
 * Bounded: at most max_devices records; a new device past the bound evicts the least recently
 * updated one (an LRU list kept in update order), counted in tb_lastvalue_evictions().
 * max_devices 0 keeps nothing. Service thread only.
 *
 * The state is stored as encoded frames, mostly the very frames routed (see lastvalue.c).
 *
 * Ownership: the store owns its records; record pointers and strings it returns are borrowed
 * and valid until the next tb_lastvalue_update() or tb_lastvalue_destroy(); take a reference
 * to a frame to keep it longer.
 */
#ifndef TELEBRIDGE_LASTVALUE_H
#define TELEBRIDGE_LASTVALUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"
#include "telebridge/msg.h"
#include "telebridge/series.h"

typedef struct tb_lastvalue tb_lastvalue_t;
typedef struct tb_lastvalue_entry tb_lastvalue_entry_t;

/* n_words: per-device uint64_t words for the caller, zero on a new record. NULL when out of memory.
 */
tb_lastvalue_t *tb_lastvalue_create(size_t max_devices, size_t n_words);
/* NULL is a no-op. */
void tb_lastvalue_destroy(tb_lastvalue_t *lv);

/*
 * Folds device message m (normalised payload, see normalize.h), routed as frame f (the
 * encoded envelope with m's "payload", f->seq its seq), into its device's record, creating
 * the record (evicting the least recently updated one when full) and making it the most
 * recent. The record keeps a reference to f, or, when m's field or tag names differ from the
 * stored ones, a new frame: f's envelope with the merged payload. f NULL (it could not be encoded)
 * only refreshes the record's place and group. Returns the record, or NULL when the store
 * keeps nothing or is out of memory (the store is then unchanged but for an eviction).
 */
tb_lastvalue_entry_t *tb_lastvalue_update(tb_lastvalue_t *lv, const tb_msg_t *m, tb_frame_t *f);

/* The record of device, or NULL. */
tb_lastvalue_entry_t *tb_lastvalue_find(const tb_lastvalue_t *lv, const char *device);

/* Iteration in update order: the least recently updated record, then each next newer one. */
tb_lastvalue_entry_t *tb_lastvalue_oldest(const tb_lastvalue_t *lv);
tb_lastvalue_entry_t *tb_lastvalue_newer(const tb_lastvalue_entry_t *e);

size_t tb_lastvalue_count(const tb_lastvalue_t *lv);
uint64_t tb_lastvalue_evictions(const tb_lastvalue_t *lv);

const char *tb_lastvalue_device(const tb_lastvalue_entry_t *e);
/* The last {group} of the device's topic, "" when none. */
const char *tb_lastvalue_group(const tb_lastvalue_entry_t *e);
/*
 * The device's last telemetry (merged) and last status as device-message frames (borrowed,
 * see the ownership note), each the envelope of the latest message folded in, with its seq
 * and timestamp; NULL before the first of each.
 */
tb_frame_t *tb_lastvalue_telemetry(const tb_lastvalue_entry_t *e);
tb_frame_t *tb_lastvalue_status(const tb_lastvalue_entry_t *e);
/* The caller's n_words words of this record. */
uint64_t *tb_lastvalue_words(tb_lastvalue_entry_t *e);
/* The record's series (NULL until the caller's first tb_series_add()); the record owns what
 * it points to and frees it with tb_series_free() when the device is evicted or the store
 * destroyed. */
tb_series_t **tb_lastvalue_series(tb_lastvalue_entry_t *e);

#endif
