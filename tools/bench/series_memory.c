/*
 * telebridge-series-memory — what the series store (src/series.c) costs: fills the last-value
 * store with DEVICES devices (one telemetry message each, as the hub does), then gives each
 * device POINTS messages of FIELDS numeric fields, and prints the RSS the series added, per
 * device and per 100,000 devices, the time of one tb_series_add() in the steady state (rings
 * full, values overwritten in place), and the time to encode every device's `series` message
 * of all POINTS values (what one subscribe to `global` with series: POINTS costs the service
 * thread, spread over the catch-up).
 *
 *   telebridge-series-memory [devices, default 100000] [fields, default 4] [points, default 60]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "telebridge/lastvalue.h"
#include "telebridge/protocol.h"
#include "telebridge/series.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Resident bytes of this process (/proc/self/statm). */
static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static json_t *fields_of(size_t n, double base)
{
    json_t *fields = json_object();
    char name[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "field_%zu", i);
        json_object_set_new(fields, name, json_real(base + (double)i));
    }
    return fields;
}

/* Puts one telemetry message per device into lv, with series rings absent. */
static int fill_devices(tb_lastvalue_t *lv, size_t devices, size_t n_fields)
{
    for (size_t d = 0; d < devices; d++) {
        tb_msg_t *m = tb_msg_new();
        if (!m)
            return -1;
        m->kind = TB_MSG_TELEMETRY;
        snprintf(m->device_id, sizeof(m->device_id), "sensor-%06zu", d);
        m->payload = json_pack("{s:s, s:o}", "device_id", m->device_id, "fields",
                               fields_of(n_fields, (double)d));
        tb_frame_t *f =
            tb_protocol_device("telemetry", "device:x", m->payload, d + 1, 0, TB_FRAME_TELEMETRY);
        tb_lastvalue_entry_t *e = f ? tb_lastvalue_update(lv, m, f) : NULL;
        tb_frame_unref(f);
        tb_msg_free(m);
        if (!e)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t devices = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t n_fields = argc > 2 ? strtoul(argv[2], NULL, 10) : 4;
    size_t points = argc > 3 ? strtoul(argv[3], NULL, 10) : 60;
    tb_lastvalue_t *lv = tb_lastvalue_create(devices, 0);
    json_t *fields = fields_of(n_fields, 20.5);
    if (!lv || !fields || devices == 0 || points == 0 || fill_devices(lv, devices, n_fields)) {
        fprintf(stderr, "telebridge-series-memory: set-up failed\n");
        return 1;
    }
    long before = rss_bytes();
    double t0 = now_s();
    for (size_t p = 0; p < points; p++)
        for (tb_lastvalue_entry_t *e = tb_lastvalue_oldest(lv); e; e = tb_lastvalue_newer(e))
            tb_series_add(tb_lastvalue_series(e), points, fields, (int64_t)p * 1000);
    double fill_s = now_s() - t0;
    long added = rss_bytes() - before;
    /* Steady state: every ring full, one more round overwrites in place. */
    t0 = now_s();
    for (tb_lastvalue_entry_t *e = tb_lastvalue_oldest(lv); e; e = tb_lastvalue_newer(e))
        tb_series_add(tb_lastvalue_series(e), points, fields, 1);
    double steady_us = (now_s() - t0) / (double)devices * 1e6;
    size_t bytes = 0;
    t0 = now_s();
    for (tb_lastvalue_entry_t *e = tb_lastvalue_oldest(lv); e; e = tb_lastvalue_newer(e)) {
        bool none;
        tb_frame_t *f = tb_series_frame(*tb_lastvalue_series(e), tb_lastvalue_device(e), points,
                                        NULL, NULL, 0, &none);
        bytes += f ? f->len : 0;
        tb_frame_unref(f);
    }
    double encode_s = now_s() - t0;
    printf("devices %zu, fields %zu, points %zu: series RSS +%.1f MB, %.0f B per device, "
           "%.1f MB per 100k devices; fill %.2f s; steady-state add %.3f us per message; "
           "every series message %.2f s (%.1f us and %zu B each)\n",
           devices, n_fields, points, (double)added / 1e6, (double)added / (double)devices,
           (double)added / (double)devices * 100000 / 1e6, fill_s, steady_us, encode_s,
           encode_s / (double)devices * 1e6, bytes / devices);
    json_decref(fields);
    tb_lastvalue_destroy(lv);
    return 0;
}
