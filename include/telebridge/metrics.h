/*
 * metrics — the Prometheus text exposition (format 0.0.4) served at GET /metrics.
 *
 * Transport- and hub-free: the caller copies the counters into a tb_metrics_snapshot_t
 * (http_api.c does, on the service thread) and tb_metrics_render() writes the text into a
 * caller-owned buffer of bounded size; tb_metrics_stats_json() makes the /stats document of the
 * same snapshot. Both walk TB_COUNTERS (stats.h), so each counter is in both, once; the one
 * histogram (delivery latency, tb_latency_t) follows them in both. Every family
 * has a HELP and a TYPE line; names carry the "telebridge_" prefix and counters end in
 * "_total". Label values come from the modules' fixed reason/kind name tables, which hold only
 * [a-z0-9_] names, so none needs escaping.
 *
 * docs/operations.md lists every family.
 */
#ifndef TELEBRIDGE_METRICS_H
#define TELEBRIDGE_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/stats.h"

/* The Content-Type of the exposition. */
#define TB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Room for the whole exposition, with a wide margin over what it needs (about 6 KiB). */
#define TB_METRICS_TEXT_MAX (32 * 1024)

#define TB_METRICS_E_SPACE (-1) /* the text did not fit in the buffer */

/* A consistent-enough copy of every value exposed: one field per TB_COUNTERS entry (stats.h),
 * an array indexed by the label's enum for a V (plain numbers, no pointers). */
#define TB_METRICS_SNAP_C(name, type, owner, section, help) uint64_t name;
#define TB_METRICS_SNAP_V(name, type, owner, section, label, first, end, label_name, help)         \
    uint64_t name[end];

typedef struct {
    TB_COUNTERS(TB_METRICS_SNAP_C, TB_METRICS_SNAP_V)
    /* The one histogram, telebridge_delivery_latency_seconds (after the TB_COUNTERS families). */
    tb_latency_t delivery_latency;
} tb_metrics_snapshot_t;

/*
 * Writes the exposition of snap into buf (cap bytes, NUL-terminated) and its length, without
 * the NUL, into *len. Returns 0, or TB_METRICS_E_SPACE when cap is too small (buf then holds a
 * truncated prefix that must not be served).
 */
int tb_metrics_render(const tb_metrics_snapshot_t *snap, char *buf, size_t cap, size_t *len);

/*
 * The /stats document of snap (docs/operations.md → Stats): every TB_COUNTERS entry once in its
 * section, then the older keys kept for their readers. Caller owns it; NULL when out of memory.
 */
json_t *tb_metrics_stats_json(const tb_metrics_snapshot_t *snap);

#endif
