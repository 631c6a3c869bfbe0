/* bench_core — see bench_core.h. */
#define _GNU_SOURCE /* memmem */
#include "bench_core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* RFC 6455 §5.2 */
#define WS_FIN 0x80
#define WS_RSV1 0x40
#define WS_RSV23 0x30
#define WS_OPCODE 0x0F
#define WS_MASK 0x80
#define WS_LEN7 0x7F
#define WS_LEN_16 126
#define WS_LEN_64 127
#define WS_CONTROL_MAX 125
#define WS_MASK_LEN 4

/* MQTT 3.1.1 §2.2, §3 */
#define MQTT_REMLEN_MAX_BYTES 4
#define MQTT_CONNECT_BYTE 0x10
#define MQTT_SUBSCRIBE_BYTE 0x82
#define MQTT_PROTOCOL_LEVEL 4
#define MQTT_CLEAN_SESSION 0x02
#define MQTT_QOS_SHIFT 1
#define MQTT_QOS_MASK 0x3
#define MQTT_SUB_PACKET_ID 1
/* Longest remaining length the bench writes in its own packets: fits one or two bytes. */
#define MQTT_REMLEN_2_MAX 16383

/* Histogram: SUB_BITS of precision, exact below 2 * SUB. */
#define HIST_SUB_BITS 10
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 50
#define HIST_BUCKETS (2 * HIST_SUB + (HIST_MAX_BITS - HIST_SUB_BITS - 1) * HIST_SUB)

/* A stamp has at most this many digits: it fits a uint64_t. */
#define STAMP_MAX_DIGITS 19
/* A bench device id's two numbers (run, device) fit an unsigned. */
#define DEVICE_MAX_DIGITS 9

/* Spreads the mix over each run of 100 subscribers: 37 is prime to 100. */
#define MIX_STRIDE 37

static bool ws_opcode_known(uint8_t op)
{
    return op <= TB_BENCH_WS_BINARY || (op >= TB_BENCH_WS_CLOSE && op <= TB_BENCH_WS_PONG);
}

long tb_bench_ws_parse(const uint8_t *buf, size_t len, uint64_t max_len, bool rsv1_ok,
                       tb_bench_ws_frame_t *f)
{
    if (len < 2)
        return 0;
    uint8_t op = buf[0] & WS_OPCODE;
    bool rsv1 = buf[0] & WS_RSV1;
    if ((buf[0] & WS_RSV23) || (buf[1] & WS_MASK) || !ws_opcode_known(op))
        return -1;
    if (rsv1 && (!rsv1_ok || (op != TB_BENCH_WS_TEXT && op != TB_BENCH_WS_BINARY)))
        return -1;
    size_t hdr = 2;
    uint64_t plen = buf[1] & WS_LEN7;
    if (plen == WS_LEN_16 || plen == WS_LEN_64) {
        size_t n = plen == WS_LEN_16 ? 2 : 8;
        if (len < hdr + n)
            return 0;
        plen = 0;
        for (size_t i = 0; i < n; i++)
            plen = plen << 8 | buf[hdr + i];
        hdr += n;
    }
    f->fin = buf[0] & WS_FIN;
    f->rsv1 = rsv1;
    f->opcode = op;
    if (f->opcode >= TB_BENCH_WS_CLOSE && (plen > WS_CONTROL_MAX || !f->fin))
        return -1;
    if (plen > max_len)
        return -1;
    if (len - hdr < plen)
        return 0;
    f->payload = buf + hdr;
    f->len = plen;
    return (long)(hdr + plen);
}

size_t tb_bench_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, const void *payload, size_t len)
{
    size_t hdr = 2 + WS_MASK_LEN + (len > WS_CONTROL_MAX ? (len > UINT16_MAX ? 8 : 2) : 0);
    if (cap < hdr || cap - hdr < len)
        return 0;
    size_t n = 0;
    out[n++] = (uint8_t)(WS_FIN | (opcode & WS_OPCODE));
    if (len <= WS_CONTROL_MAX) {
        out[n++] = (uint8_t)(WS_MASK | len);
    } else if (len <= UINT16_MAX) {
        out[n++] = WS_MASK | WS_LEN_16;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = WS_MASK | WS_LEN_64;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)((uint64_t)len >> shift);
    }
    memset(out + n, 0, WS_MASK_LEN);
    n += WS_MASK_LEN;
    if (len)
        memcpy(out + n, payload, len);
    return n + len;
}

long tb_bench_mqtt_parse(const uint8_t *buf, size_t len, tb_bench_mqtt_packet_t *p)
{
    size_t rem = 0, i = 1;
    unsigned shift = 0;
    for (;;) {
        if (i >= len)
            return 0;
        if (i > MQTT_REMLEN_MAX_BYTES)
            return -1;
        rem |= (size_t)(buf[i] & 0x7F) << shift;
        shift += 7;
        if (!(buf[i++] & 0x80))
            break;
    }
    if (len - i < rem)
        return 0;
    p->type = buf[0] >> 4;
    p->flags = buf[0] & 0x0F;
    p->body = buf + i;
    p->body_len = rem;
    return (long)(i + rem);
}

int tb_bench_mqtt_publish_payload(const tb_bench_mqtt_packet_t *p, const uint8_t **payload,
                                  size_t *len)
{
    if (p->type != TB_BENCH_MQTT_PUBLISH || p->body_len < 2)
        return -1;
    size_t off = 2 + ((size_t)p->body[0] << 8 | p->body[1]);
    if ((p->flags >> MQTT_QOS_SHIFT & MQTT_QOS_MASK) != 0)
        off += 2; /* packet identifier */
    if (off > p->body_len)
        return -1;
    *payload = p->body + off;
    *len = p->body_len - off;
    return 0;
}

/* Writes the fixed header for rem bytes; returns its length (2 or 3). */
static size_t mqtt_fixed_header(uint8_t *out, uint8_t first, size_t rem)
{
    out[0] = first;
    if (rem < 0x80) {
        out[1] = (uint8_t)rem;
        return 2;
    }
    out[1] = (uint8_t)(0x80 | (rem & 0x7F));
    out[2] = (uint8_t)(rem >> 7);
    return 3;
}

static size_t mqtt_put_string(uint8_t *out, const char *s, size_t len)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    memcpy(out + 2, s, len);
    return 2 + len;
}

size_t tb_bench_mqtt_connect(uint8_t *out, size_t cap, const char *client_id)
{
    static const char proto[] = "MQTT";
    size_t id_len = strlen(client_id);
    size_t rem = 2 + (sizeof(proto) - 1) + 1 + 1 + 2 + 2 + id_len;
    if (rem > MQTT_REMLEN_2_MAX || cap < rem + 3)
        return 0;
    size_t n = mqtt_fixed_header(out, MQTT_CONNECT_BYTE, rem);
    n += mqtt_put_string(out + n, proto, sizeof(proto) - 1);
    out[n++] = MQTT_PROTOCOL_LEVEL;
    out[n++] = MQTT_CLEAN_SESSION;
    out[n++] = 0; /* keep-alive 0: off */
    out[n++] = 0;
    n += mqtt_put_string(out + n, client_id, id_len);
    return n;
}

size_t tb_bench_mqtt_subscribe(uint8_t *out, size_t cap, const char *filter)
{
    size_t f_len = strlen(filter);
    size_t rem = 2 + 2 + f_len + 1;
    if (rem > MQTT_REMLEN_2_MAX || cap < rem + 3)
        return 0;
    size_t n = mqtt_fixed_header(out, MQTT_SUBSCRIBE_BYTE, rem);
    out[n++] = 0;
    out[n++] = MQTT_SUB_PACKET_ID;
    n += mqtt_put_string(out + n, filter, f_len);
    out[n++] = 0; /* QoS 0 */
    return n;
}

int tb_bench_find_stamp(const uint8_t *text, size_t len, uint64_t *ns)
{
    return tb_bench_find_number(text, len, TB_BENCH_STAMP_KEY, ns);
}

int tb_bench_find_number(const uint8_t *text, size_t len, const char *key, uint64_t *ns)
{
    const size_t klen = strlen(key);
    const uint8_t *k = memmem(text, len, key, klen);
    if (!k)
        return -1;
    size_t j = (size_t)(k - text) + klen;
    uint64_t v = 0;
    size_t digits = 0;
    for (; j < len && text[j] >= '0' && text[j] <= '9' && digits < STAMP_MAX_DIGITS; j++, digits++)
        v = v * 10 + (uint64_t)(text[j] - '0');
    if (digits == 0 || (j < len && text[j] >= '0' && text[j] <= '9'))
        return -1;
    *ns = v;
    return 0;
}

/* Reads 1..9 digits at text[*j..len) into *v and moves *j past them: 0, or -1. */
static int read_small(const uint8_t *text, size_t len, size_t *j, unsigned *v)
{
    size_t digits = 0;
    *v = 0;
    for (; *j < len && text[*j] >= '0' && text[*j] <= '9'; (*j)++, digits++) {
        if (digits == DEVICE_MAX_DIGITS)
            return -1;
        *v = *v * 10 + (unsigned)(text[*j] - '0');
    }
    return digits ? 0 : -1;
}

int tb_bench_find_device(const uint8_t *text, size_t len, unsigned *run, unsigned *device)
{
    static const char key[] = "\"device_id\":\"r";
    const uint8_t *k = memmem(text, len, key, sizeof(key) - 1);
    if (!k)
        return -1;
    size_t j = (size_t)(k - text) + sizeof(key) - 1;
    unsigned r, d;
    if (read_small(text, len, &j, &r) != 0 || j >= len || text[j++] != 'd' ||
        read_small(text, len, &j, &d) != 0 || j >= len || text[j] != '"')
        return -1;
    *run = r;
    *device = d;
    return 0;
}

/* Parses one "kind=N" item of length len. */
static int mix_item(const char *s, size_t len, tb_bench_mix_t *mix)
{
    static const char *const names[] = {"device", "group", "global"};
    const char *eq = memchr(s, '=', len);
    if (!eq || eq + 1 == s + len || (size_t)(s + len - eq - 1) > 3)
        return -1;
    unsigned v = 0;
    for (const char *d = eq + 1; d < s + len; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        v = v * 10 + (unsigned)(*d - '0');
    }
    for (size_t k = 0; k < 3; k++) {
        if (strlen(names[k]) == (size_t)(eq - s) && memcmp(s, names[k], (size_t)(eq - s)) == 0) {
            mix->pct[k] = v;
            return 0;
        }
    }
    return -1;
}

int tb_bench_mix_parse(const char *text, tb_bench_mix_t *mix)
{
    tb_bench_mix_t m = {{0, 0, 0}};
    const char *s = text;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (mix_item(s, len, &m) != 0)
            return -1;
        if (!comma)
            break;
        s = comma + 1;
    }
    if (m.pct[0] + m.pct[1] + m.pct[2] != TB_BENCH_MIX_TOTAL)
        return -1;
    *mix = m;
    return 0;
}

tb_bench_room_t tb_bench_mix_pick(const tb_bench_mix_t *mix, uint64_t i)
{
    unsigned r = (unsigned)(i * MIX_STRIDE % TB_BENCH_MIX_TOTAL);
    if (r < mix->pct[TB_BENCH_ROOM_DEVICE])
        return TB_BENCH_ROOM_DEVICE;
    if (r < mix->pct[TB_BENCH_ROOM_DEVICE] + mix->pct[TB_BENCH_ROOM_GROUP])
        return TB_BENCH_ROOM_GROUP;
    return TB_BENCH_ROOM_GLOBAL;
}

struct tb_bench_hist {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
};

tb_bench_hist_t *tb_bench_hist_create(void)
{
    return calloc(1, sizeof(tb_bench_hist_t));
}

void tb_bench_hist_free(tb_bench_hist_t *h)
{
    free(h);
}

static size_t hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned shift = msb - HIST_SUB_BITS;
    return 2 * HIST_SUB + (size_t)(shift - 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The largest value bucket idx holds. */
static uint64_t hist_upper(size_t idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    size_t k = idx - 2 * HIST_SUB;
    unsigned shift = (unsigned)(k / HIST_SUB) + 1;
    uint64_t m = HIST_SUB + k % HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void tb_bench_hist_record(tb_bench_hist_t *h, uint64_t value)
{
    h->buckets[hist_index(value)]++;
    h->count++;
    if (value > h->max)
        h->max = value;
}

uint64_t tb_bench_hist_count(const tb_bench_hist_t *h)
{
    return h->count;
}

uint64_t tb_bench_hist_max(const tb_bench_hist_t *h)
{
    return h->max;
}

uint64_t tb_bench_hist_quantile(const tb_bench_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            if (i == HIST_BUCKETS - 1)
                return h->max; /* the overflow bucket has no upper bound */
            uint64_t up = hist_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

bool tb_bench_hist_next(const tb_bench_hist_t *h, size_t *i, uint64_t *upper, uint64_t *count)
{
    for (size_t k = *i; k < HIST_BUCKETS; k++) {
        if (!h->buckets[k])
            continue;
        *upper = k == HIST_BUCKETS - 1 ? h->max : hist_upper(k);
        *count = h->buckets[k];
        *i = k + 1;
        return true;
    }
    return false;
}

/* ---- permessage-deflate ---------------------------------------------------------------------- */

#define PMD_NAME "permessage-deflate"
#define PMD_HEADER "sec-websocket-extensions:"
#define PMD_BITS_MIN 8
#define PMD_BITS_MAX 15
#define PMD_TAIL_LEN 4
/* zlib's raw DEFLATE with the largest window: it inflates what any smaller window produced. */
#define ZLIB_RAW_WINDOW (-15)

static bool pmd_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces at both ends of s[*a..*b). */
static void pmd_trim(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && pmd_space(s[*a]))
        (*a)++;
    while (*b > *a && pmd_space(s[*b - 1]))
        (*b)--;
}

static bool pmd_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* A window-bits value, maybe quoted (RFC 7692 §7.1.2): 8..15, or -1. */
static int pmd_bits(const char *v, size_t len)
{
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    if (len < 1 || len > 2)
        return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n >= PMD_BITS_MIN && n <= PMD_BITS_MAX && v[0] != '0' ? n : -1;
}

/* One parameter s[0..len) ("name" or "name=value") into *p; seen tracks repeats. 0, or -1. */
static int pmd_param(const char *s, size_t len, tb_bench_pmd_t *p, unsigned *seen)
{
    static const char *const names[] = {"server_no_context_takeover", "client_no_context_takeover",
                                        "server_max_window_bits", "client_max_window_bits"};
    const char *eq = memchr(s, '=', len);
    size_t a = 0, b = eq ? (size_t)(eq - s) : len;
    pmd_trim(s, &a, &b);
    size_t va = eq ? (size_t)(eq - s) + 1 : len, vb = len;
    pmd_trim(s, &va, &vb);
    for (unsigned k = 0; k < 4; k++) {
        if (!pmd_is(s + a, b - a, names[k]))
            continue;
        if (*seen & (1u << k))
            return -1;
        *seen |= 1u << k;
        if (k < 2) {
            if (eq)
                return -1;
            *(k == 0 ? &p->server_no_context_takeover : &p->client_no_context_takeover) = true;
            return 0;
        }
        int bits = eq ? pmd_bits(s + va, vb - va) : -1;
        if (bits < 0)
            return -1;
        *(k == 2 ? &p->server_max_window_bits : &p->client_max_window_bits) = (unsigned)bits;
        return 0;
    }
    return -1;
}

/* One extension of the answer, s[0..len): 0 permessage-deflate (into *p), or -1. */
static int pmd_extension(const char *s, size_t len, tb_bench_pmd_t *p)
{
    size_t a = 0, b = len;
    const char *semi = memchr(s, ';', len);
    if (semi)
        b = (size_t)(semi - s);
    pmd_trim(s, &a, &b);
    if (!pmd_is(s + a, b - a, PMD_NAME))
        return -1;
    unsigned seen = 0;
    while (semi) {
        const char *start = semi + 1;
        semi = memchr(start, ';', (size_t)(s + len - start));
        const char *end = semi ? semi : s + len;
        if (pmd_param(start, (size_t)(end - start), p, &seen) != 0)
            return -1;
    }
    return 0;
}

/* The value of one Sec-WebSocket-Extensions line, v[0..len); *found counts extensions. */
static int pmd_header_value(const char *v, size_t len, tb_bench_pmd_t *p, unsigned *found)
{
    size_t start = 0;
    while (start <= len) {
        const char *comma = memchr(v + start, ',', len - start);
        size_t end = comma ? (size_t)(comma - v) : len;
        size_t a = start, b = end;
        pmd_trim(v, &a, &b);
        if (a < b) {
            if (++*found > 1 || pmd_extension(v + a, b - a, p) != 0)
                return -1;
        }
        start = end + 1;
    }
    return 0;
}

int tb_bench_pmd_answer(const char *head, size_t len, tb_bench_pmd_t *p)
{
    tb_bench_pmd_t r = {.server_max_window_bits = PMD_BITS_MAX,
                        .client_max_window_bits = PMD_BITS_MAX};
    const size_t hlen = sizeof(PMD_HEADER) - 1;
    unsigned found = 0;
    const char *line = memchr(head, '\n', len); /* skips the status line */
    while (line && (size_t)(line + 1 - head) < len) {
        line++;
        size_t rest = len - (size_t)(line - head);
        const char *nl = memchr(line, '\n', rest);
        size_t n = nl ? (size_t)(nl - line) : rest;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n >= hlen && strncasecmp(line, PMD_HEADER, hlen) == 0 &&
            pmd_header_value(line + hlen, n - hlen, &r, &found) != 0)
            return -1;
        line = nl;
    }
    if (!found)
        return 0;
    *p = r;
    return 1;
}

struct tb_bench_inflater {
    z_stream zs;
};

tb_bench_inflater_t *tb_bench_inflater_create(void)
{
    tb_bench_inflater_t *z = calloc(1, sizeof(*z));
    if (z && inflateInit2(&z->zs, ZLIB_RAW_WINDOW) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void tb_bench_inflater_free(tb_bench_inflater_t *z)
{
    if (!z)
        return;
    inflateEnd(&z->zs);
    free(z);
}

/* Feeds in[0..len) on; 0, 1 at the end of the DEFLATE stream, -1 corrupt, -2 over cap. */
static int inflate_some(z_stream *zs, const uint8_t *in, size_t len)
{
    zs->next_in = (Bytef *)(uintptr_t)in;
    zs->avail_in = (uInt)len;
    while (zs->avail_in > 0) {
        int rc = inflate(zs, Z_SYNC_FLUSH);
        if (rc == Z_STREAM_END)
            return 1;          /* BFINAL: anything after it (the tail we add) is not DEFLATE data */
        if (rc == Z_BUF_ERROR) /* no progress: out is full, or the input is cut */
            return zs->avail_out == 0 ? -2 : -1;
        if (rc != Z_OK)
            return -1;
    }
    return 0;
}

int tb_bench_inflate(tb_bench_inflater_t *z, const uint8_t *in, size_t len, bool keep_window,
                     uint8_t *out, size_t cap, size_t *out_len)
{
    static const uint8_t tail[PMD_TAIL_LEN] = {0x00, 0x00, 0xff, 0xff};
    z_stream *zs = &z->zs;
    if (len > UINT32_MAX || cap > UINT32_MAX)
        return -2;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    int rc = inflate_some(zs, in, len);
    if (rc == 0)
        rc = inflate_some(zs, tail, sizeof(tail));
    *out_len = cap - zs->avail_out;
    if (rc == 0 && zs->avail_out == 0) {
        /* out is full: inflate may hold more of the message than fitted */
        uint8_t spare;
        zs->next_out = &spare;
        zs->avail_out = 1;
        int more = inflate(zs, Z_SYNC_FLUSH);
        if (zs->avail_out == 0)
            rc = -2;
        else if (more != Z_OK && more != Z_BUF_ERROR && more != Z_STREAM_END)
            rc = -1;
    }
    if (rc < 0 || rc == 1 || !keep_window)
        inflateReset(zs);
    return rc < 0 ? rc : 0;
}

/* ---- the inflate cache ------------------------------------------------------------------------
 */

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

typedef struct {
    uint64_t hash;
    size_t len, out_len; /* len 0: empty */
    uint8_t *bytes;      /* the compressed bytes, then the inflated ones */
} zcache_slot_t;

struct tb_bench_zcache {
    size_t slots, max_len;
    zcache_slot_t slot[];
};

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

tb_bench_zcache_t *tb_bench_zcache_create(size_t slots, size_t max_len)
{
    if (slots == 0)
        return NULL;
    tb_bench_zcache_t *c = calloc(1, sizeof(*c) + slots * sizeof(zcache_slot_t));
    if (c) {
        c->slots = slots;
        c->max_len = max_len;
    }
    return c;
}

void tb_bench_zcache_free(tb_bench_zcache_t *c)
{
    for (size_t i = 0; c && i < c->slots; i++)
        free(c->slot[i].bytes);
    free(c);
}

const uint8_t *tb_bench_zcache_get(const tb_bench_zcache_t *c, const uint8_t *in, size_t len,
                                   size_t *out_len)
{
    if (len == 0 || len > c->max_len)
        return NULL;
    uint64_t h = fnv1a(in, len);
    const zcache_slot_t *s = &c->slot[h % c->slots];
    if (s->len != len || s->hash != h || memcmp(s->bytes, in, len) != 0)
        return NULL;
    *out_len = s->out_len;
    return s->bytes + len;
}

void tb_bench_zcache_put(tb_bench_zcache_t *c, const uint8_t *in, size_t len, const uint8_t *out,
                         size_t out_len)
{
    if (len == 0 || len > c->max_len || out_len > c->max_len)
        return;
    uint64_t h = fnv1a(in, len);
    zcache_slot_t *s = &c->slot[h % c->slots];
    uint8_t *bytes = malloc(len + out_len + 1);
    if (!bytes)
        return; /* the cache is only an economy */
    memcpy(bytes, in, len);
    if (out_len)
        memcpy(bytes + len, out, out_len);
    free(s->bytes);
    *s = (zcache_slot_t){.hash = h, .len = len, .out_len = out_len, .bytes = bytes};
}
