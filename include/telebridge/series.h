/*
 * series — one device's recent values of each numeric telemetry field, for the `series`
 * subscribe option (docs/protocol.md → Series): a chart is drawn the moment a dashboard opens.
 *
 * A tb_series_t belongs to one device's last-value record (lastvalue.h keeps the pointer and
 * frees it with the record, so a device's series is evicted with its last value). Per field it
 * holds a ring of the last `points` values (history.series_points) with their times, t_ms the
 * message's `timestamp` in Unix milliseconds; oldest first when read.
 *
 * Bounded: `points` per field, TB_SERIES_FIELDS_MAX fields per device (a field first seen when
 * the device already has that many is not kept). Only numbers are kept (JSON integers and reals;
 * strings, booleans and nulls are not). A field's ring is allocated once, when the field is
 * first seen, at its full size; later values overwrite the oldest in place, so the steady state
 * allocates nothing. Service thread only; memory per device: docs/performance.md → Series store.
 *
 * Ownership: tb_series_add() creates the record behind *s, the caller (the last-value record)
 * owns it and frees it with tb_series_free().
 */
#ifndef TELEBRIDGE_SERIES_H
#define TELEBRIDGE_SERIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"

/* Most numeric fields one device keeps a series for. */
#define TB_SERIES_FIELDS_MAX 16

typedef struct tb_series tb_series_t;

/*
 * Appends, for each numeric member of the JSON object fields, the point (t_ms, value) to that
 * field's ring in *s, creating *s and rings as needed (points > 0 values each; every call for
 * one record passes the same points). A field that cannot be kept (the field limit, or out of
 * memory) is skipped; the others are still added. Returns the fields added.
 */
size_t tb_series_add(tb_series_t **s, size_t points, const json_t *fields, int64_t t_ms);

/* NULL is a no-op. */
void tb_series_free(tb_series_t *s);

/* Fields with a ring in s (0 for NULL). */
size_t tb_series_fields(const tb_series_t *s);

/*
 * Which fields a reader wants: keep(name, ctx) true for those to encode. NULL keep: every field.
 */
typedef bool (*tb_series_keep_fn)(const char *name, void *ctx);

/*
 * Encodes the last n values of each kept field of s as the JSON object
 *   {"<field>": [[t_ms, value], …], …}
 * (oldest first; fields in the order first seen) into a new NUL-terminated buffer, *out (the
 * caller frees it), *len its length. Returns 0, or -1 when out of memory. A NULL s, or one with
 * no kept field, encodes as {}.
 */
int tb_series_encode(const tb_series_t *s, size_t n, tb_series_keep_fn keep, void *ctx, char **out,
                     size_t *len);

/*
 * The `series` message of device (a valid device id, tb_id_valid()) with s's last n values of
 * each kept field, as a control frame (seq 0) with one reference, the caller's:
 *   {"type":"series","room":"device:<device>","payload":{"device_id":"<device>",
 *    "fields":{…tb_series_encode()…}},"timestamp":"<now_ms, RFC 3339>"}
 * NULL with *none true when no field is kept (nothing to send), with *none false when out of
 * memory.
 */
tb_frame_t *tb_series_frame(const tb_series_t *s, const char *device, size_t n,
                            tb_series_keep_fn keep, void *ctx, int64_t now_ms, bool *none);

/*
 * The value at position i (0 = oldest) of field name's ring, false when there is none: for
 * tests and tools.
 */
bool tb_series_point(const tb_series_t *s, const char *name, size_t i, int64_t *t_ms, double *v);
/* Values held for field name (0 when it has no ring). */
size_t tb_series_count(const tb_series_t *s, const char *name);

/*
 * The message time of an RFC 3339 timestamp ("2026-11-23T13:26:03.123Z", any fraction, "Z" or
 * an offset) in Unix milliseconds; fallback when ts is NULL or not such a timestamp.
 */
int64_t tb_series_time_ms(const char *ts, int64_t fallback);

#endif
