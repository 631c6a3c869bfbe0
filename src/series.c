/* series — per-device rings of recent numeric values; see include/telebridge/series.h. */
#include "telebridge/series.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* One point: 16 bytes (docs/performance.md → Series store). */
typedef struct {
    int64_t t_ms;
    double v;
} point_t;

/*
 * One field's ring, one allocation: the header, cap points, then the field's name and its JSON
 * encoding (quoted and escaped once, for tb_series_encode()), each NUL-terminated.
 */
typedef struct {
    uint32_t head; /* index of the oldest point */
    uint32_t n;    /* points held, at most cap */
    uint32_t cap;
    uint32_t json_len; /* bytes of the encoded name */
    const char *name, *json_name;
    point_t pts[];
} ring_t;

struct tb_series {
    uint32_t n_fields;
    ring_t *rings[]; /* in the order first seen; reallocated by one for a new field */
};

/* Longest encoding of one point: "[", an int64, ",", a %.15g double, "],". */
#define POINT_JSON_MAX (1 + 20 + 1 + 24 + 2)

/* A ring for field name with cap points; NULL when out of memory. */
static ring_t *ring_new(const char *name, size_t cap)
{
    json_t *js = json_string(name);
    size_t name_len = strlen(name), json_len = js ? json_dumpb(js, NULL, 0, JSON_ENCODE_ANY) : 0;
    ring_t *r =
        json_len ? malloc(sizeof(*r) + cap * sizeof(point_t) + name_len + json_len + 2) : NULL;
    if (r) {
        char *chars = (char *)&r->pts[cap];
        memcpy(chars, name, name_len + 1);
        json_dumpb(js, chars + name_len + 1, json_len, JSON_ENCODE_ANY);
        chars[name_len + 1 + json_len] = '\0';
        *r = (ring_t){.cap = (uint32_t)cap,
                      .json_len = (uint32_t)json_len,
                      .name = chars,
                      .json_name = chars + name_len + 1};
    }
    json_decref(js);
    return r;
}

static void ring_push(ring_t *r, int64_t t_ms, double v)
{
    if (r->n < r->cap) {
        r->pts[(r->head + r->n) % r->cap] = (point_t){t_ms, v};
        r->n++;
        return;
    }
    r->pts[r->head] = (point_t){t_ms, v};
    r->head = (r->head + 1) % r->cap;
}

/* The ring of name, looked for first at index hint (fields tend to come in the same order). */
static ring_t *ring_find(const tb_series_t *s, const char *name, size_t hint)
{
    if (!s)
        return NULL;
    if (hint < s->n_fields && strcmp(s->rings[hint]->name, name) == 0)
        return s->rings[hint];
    for (uint32_t i = 0; i < s->n_fields; i++)
        if (strcmp(s->rings[i]->name, name) == 0)
            return s->rings[i];
    return NULL;
}

/* A new ring for name appended to *s (created when NULL); NULL at the field limit or OOM. */
static ring_t *ring_add(tb_series_t **s, const char *name, size_t points)
{
    uint32_t n = *s ? (*s)->n_fields : 0;
    if (n >= TB_SERIES_FIELDS_MAX)
        return NULL;
    ring_t *r = ring_new(name, points);
    tb_series_t *grown = r ? realloc(*s, sizeof(**s) + (n + 1) * sizeof(ring_t *)) : NULL;
    if (!grown) {
        free(r);
        return NULL;
    }
    grown->rings[n] = r;
    grown->n_fields = n + 1;
    *s = grown;
    return r;
}

size_t tb_series_add(tb_series_t **s, size_t points, const json_t *fields, int64_t t_ms)
{
    const char *key;
    json_t *v;
    size_t added = 0, pos = 0;
    json_object_foreach((json_t *)fields, key, v)
    {
        if (!json_is_number(v))
            continue;
        ring_t *r = ring_find(*s, key, pos++);
        if (r || (r = ring_add(s, key, points))) {
            ring_push(r, t_ms, json_number_value(v));
            added++;
        }
    }
    return added;
}

void tb_series_free(tb_series_t *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_fields; i++)
        free(s->rings[i]);
    free(s);
}

size_t tb_series_fields(const tb_series_t *s)
{
    return s ? s->n_fields : 0;
}

/* Integral values up to this magnitude are written as integers (doubles hold them exactly). */
#define EXACT_INT_MAX 1e15

/* Writes v in decimal at p; returns the bytes written. */
static size_t put_int(char *p, int64_t v)
{
    char digits[20];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        p[len++] = '-';
    while (n)
        p[len++] = digits[--n];
    return len;
}

/* Decimal places tried for a short decimal value (put_value()). */
#define SHORT_DECIMALS_MAX 6

/* Writes the k-digit decimal fraction frac of a value at p (k digits, leading zeros kept). */
static size_t put_fraction(char *p, uint64_t frac, int k)
{
    for (int i = k - 1; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return (size_t)k;
}

/*
 * Writes v as a JSON number at p; returns the bytes written. An integer, or a decimal of at most
 * SHORT_DECIMALS_MAX places that reads back as v (21.5, 0.25, -3.125: most telemetry), is
 * written without stdio; anything else as "%.15g", like the bridge's other frames. Both spell a
 * short decimal the same way, so the choice never shows.
 */
static size_t put_value(char *p, double v)
{
    static const double p10[SHORT_DECIMALS_MAX + 1] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    for (int k = 0; k <= SHORT_DECIMALS_MAX; k++) {
        double m = v * p10[k];
        if (!(m > -EXACT_INT_MAX && m < EXACT_INT_MAX) || m != (double)(int64_t)m ||
            (double)(int64_t)m / p10[k] != v || (v == 0 && signbit(v)))
            continue;
        int64_t im = (int64_t)m;
        uint64_t u = im < 0 ? (uint64_t)0 - (uint64_t)im : (uint64_t)im, unit = (uint64_t)p10[k];
        size_t len = 0;
        if (im < 0)
            p[len++] = '-';
        len += put_int(p + len, (int64_t)(u / unit));
        if (k == 0)
            return len;
        p[len++] = '.';
        return len + put_fraction(p + len, u % unit, k);
    }
    return (size_t)snprintf(p, POINT_JSON_MAX, "%.15g", v);
}

/*
 * Appends one point as "[t,v]" at p; returns the bytes written. Without stdio for the time and
 * for short values (most of a series' characters), since a subscribe to `global` with series
 * encodes every point of every device (docs/performance.md → Series store).
 */
static size_t put_point(char *p, const point_t *pt)
{
    char *start = p;
    *p++ = '[';
    p += put_int(p, pt->t_ms);
    *p++ = ',';
    p += put_value(p, pt->v);
    *p++ = ']';
    return (size_t)(p - start);
}

/* Encodes ring r's last n points as "<name>":[…] at p; returns the bytes written. */
static size_t put_ring(char *p, const ring_t *r, size_t n)
{
    char *start = p;
    size_t skip = r->n > n ? r->n - n : 0;
    memcpy(p, r->json_name, r->json_len);
    p += r->json_len;
    *p++ = ':';
    *p++ = '[';
    for (size_t i = skip; i < r->n; i++) {
        if (i > skip)
            *p++ = ',';
        p += put_point(p, &r->pts[(r->head + i) % r->cap]);
    }
    *p++ = ']';
    return (size_t)(p - start);
}

int tb_series_encode(const tb_series_t *s, size_t n, tb_series_keep_fn keep, void *ctx, char **out,
                     size_t *len)
{
    size_t bound = 3; /* "{}" and the NUL */
    for (uint32_t i = 0; s && i < s->n_fields; i++)
        bound += s->rings[i]->json_len + 4 +
                 (n < s->rings[i]->n ? n : s->rings[i]->n) * (POINT_JSON_MAX + 1);
    char *buf = malloc(bound), *p = buf;
    if (!buf)
        return -1;
    *p++ = '{';
    for (uint32_t i = 0; s && i < s->n_fields; i++) {
        const ring_t *r = s->rings[i];
        if (keep && !keep(r->name, ctx))
            continue;
        if (p > buf + 1)
            *p++ = ',';
        p += put_ring(p, r, n);
    }
    *p++ = '}';
    *p = '\0';
    *out = buf;
    *len = (size_t)(p - buf);
    return 0;
}

/* Copies len bytes of src to p; returns the end. */
static char *put(char *p, const char *src, size_t len)
{
    memcpy(p, src, len);
    return p + len;
}

tb_frame_t *tb_series_frame(const tb_series_t *s, const char *device, size_t n,
                            tb_series_keep_fn keep, void *ctx, int64_t now_ms, bool *none)
{
    char *fields = NULL, ts[TB_RFC3339_LEN];
    size_t fields_len = 0;
    tb_frame_t *f = NULL;
    *none = false;
    if (tb_series_encode(s, n, keep, ctx, &fields, &fields_len))
        return NULL;
    if (fields_len == 2) { /* "{}" */
        *none = true;
        free(fields);
        return NULL;
    }
    tb_format_rfc3339_ms(now_ms, ts);
    static const char k_room[] = "{\"type\":\"series\",\"room\":\"device:",
                      k_payload[] = "\",\"payload\":{\"device_id\":\"",
                      k_fields[] = "\",\"fields\":", k_ts[] = "},\"timestamp\":\"", k_end[] = "\"}";
    size_t dev_len = strlen(device), ts_len = strlen(ts);
    size_t len = sizeof(k_room) + sizeof(k_payload) + sizeof(k_fields) + sizeof(k_ts) +
                 sizeof(k_end) - 5 + 2 * dev_len + fields_len + ts_len;
    if ((f = tb_frame_alloc(len, TB_FRAME_CONTROL, 0))) {
        char *p = tb_frame_payload(f);
        p = put(p, k_room, sizeof(k_room) - 1);
        p = put(p, device, dev_len);
        p = put(p, k_payload, sizeof(k_payload) - 1);
        p = put(p, device, dev_len);
        p = put(p, k_fields, sizeof(k_fields) - 1);
        p = put(p, fields, fields_len);
        p = put(p, k_ts, sizeof(k_ts) - 1);
        p = put(p, ts, ts_len);
        put(p, k_end, sizeof(k_end) - 1);
    }
    free(fields);
    return f;
}

bool tb_series_point(const tb_series_t *s, const char *name, size_t i, int64_t *t_ms, double *v)
{
    const ring_t *r = ring_find(s, name, 0);
    if (!r || i >= r->n)
        return false;
    const point_t *pt = &r->pts[(r->head + i) % r->cap];
    *t_ms = pt->t_ms;
    *v = pt->v;
    return true;
}

size_t tb_series_count(const tb_series_t *s, const char *name)
{
    const ring_t *r = ring_find(s, name, 0);
    return r ? r->n : 0;
}

int64_t tb_series_time_ms(const char *ts, int64_t fallback)
{
    int64_t ms;
    return ts && tb_parse_rfc3339_ms(ts, strlen(ts), &ms) == 0 ? ms : fallback;
}
