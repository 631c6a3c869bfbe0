/* frame — shared encoded messages; see include/telebridge/frame.h. */
#include "telebridge/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * TB_FRAME_JSON_FLAGS has numbers to 15 significant digits: every decimal a sensor can write in
 * 15 digits survives unchanged (21.33 stays 21.33, where jansson's default 17 digits prints
 * 21.329999999999998).
 */
/* Encodings up to this size take one pass through a stack buffer; larger ones take two. */
#define FRAME_STACK_ENCODE 4096
/* RFC 6455 §5.2: FIN + text opcode (+ RSV1: compressed, RFC 7692 §6); 7-bit lengths up to 125,
 * then 16-bit, then 64-bit. */
#define WS_FIN_TEXT 0x81
#define WS_RSV1 0x40
#define WS_HEADER_MAX 10
#define WS_LEN_16 126
#define WS_LEN_64 127
#define WS_LEN_7_MAX 125
#define WS_LEN_16_MAX 0xFFFF

_Static_assert(TB_FRAME_HEADROOM >= WS_HEADER_MAX,
               "the headroom must hold the longest WebSocket header");

static const char *const kind_names[TB_FRAME_KIND_N] = {"control", "telemetry", "status"};

const char *tb_frame_kind_name(tb_frame_kind_t kind)
{
    return (kind >= 0 && kind < TB_FRAME_KIND_N) ? kind_names[kind] : "unknown";
}

/* Writes the unmasked header of a text frame of len payload bytes into hdr; returns its size. */
static uint8_t ws_header(unsigned char hdr[WS_HEADER_MAX], unsigned char first, uint64_t len)
{
    uint8_t n = 0;
    hdr[n++] = first;
    if (len <= WS_LEN_7_MAX) {
        hdr[n++] = (unsigned char)len;
    } else if (len <= WS_LEN_16_MAX) {
        hdr[n++] = WS_LEN_16;
        hdr[n++] = (unsigned char)(len >> 8);
        hdr[n++] = (unsigned char)len;
    } else {
        hdr[n++] = WS_LEN_64;
        for (int shift = 56; shift >= 0; shift -= 8)
            hdr[n++] = (unsigned char)(len >> shift);
    }
    return n;
}

/* Writes the frame's header just before the payload. */
static void frame_header(tb_frame_t *f)
{
    unsigned char hdr[WS_HEADER_MAX];
    uint8_t n = ws_header(hdr, WS_FIN_TEXT, f->len);
    f->hdr_len = n;
    memcpy(f->data + TB_FRAME_HEADROOM - n, hdr, n);
}

tb_frame_t *tb_frame_alloc(size_t len, tb_frame_kind_t kind, uint64_t seq)
{
    if (len > UINT32_MAX)
        return NULL;
    tb_frame_t *f = malloc(sizeof(*f) + TB_FRAME_HEADROOM + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
    f->seq = seq;
    f->ingest_us = 0;
    f->kind = (uint8_t)kind;
    f->deflate = TB_FRAME_DEFLATE_UNTRIED;
    f->zlen = 0;
    f->zwire = NULL;
    f->data[TB_FRAME_HEADROOM + len] = '\0';
    frame_header(f);
    return f;
}

tb_frame_t *tb_frame_new(const char *payload, size_t len, tb_frame_kind_t kind, uint64_t seq)
{
    tb_frame_t *f = tb_frame_alloc(len, kind, seq);
    if (f)
        memcpy(tb_frame_payload(f), payload, len);
    return f;
}

tb_frame_t *tb_frame_from_json(const json_t *obj, tb_frame_kind_t kind, uint64_t seq)
{
    char stackbuf[FRAME_STACK_ENCODE];
    size_t len = json_dumpb(obj, stackbuf, sizeof(stackbuf), TB_FRAME_JSON_FLAGS);
    if (len == 0)
        return NULL;
    if (len <= sizeof(stackbuf))
        return tb_frame_new(stackbuf, len, kind, seq);
    tb_frame_t *f = tb_frame_alloc(len, kind, seq);
    if (f && json_dumpb(obj, tb_frame_payload(f), len, TB_FRAME_JSON_FLAGS) != len) {
        free(f);
        return NULL;
    }
    return f;
}

int tb_frame_json_encode(const json_t *obj, size_t max, char **out, size_t *len)
{
    char stackbuf[FRAME_STACK_ENCODE];
    size_t n = json_dumpb(obj, stackbuf, sizeof(stackbuf), TB_FRAME_JSON_FLAGS);
    if (n == 0)
        return -ENOMEM;
    if (n > max)
        return -E2BIG;
    char *buf = malloc(n + 1);
    if (!buf)
        return -ENOMEM;
    if (n <= sizeof(stackbuf)) {
        memcpy(buf, stackbuf, n);
    } else if (json_dumpb(obj, buf, n, TB_FRAME_JSON_FLAGS) != n) {
        free(buf);
        return -ENOMEM;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Makes f's compressed copy with z, or marks f plain when it does not pay. */
static void deflate_frame(tb_frame_t *f, tb_wsdeflate_t *z)
{
    const unsigned char *out;
    size_t n;
    unsigned char hdr[WS_HEADER_MAX];
    f->deflate = TB_FRAME_DEFLATE_PLAIN;
    if (!tb_wsdeflate_worth(z, f->len) ||
        tb_wsdeflate_compress(z, tb_frame_payload(f), f->len, &out, &n))
        return;
    uint8_t h = ws_header(hdr, WS_FIN_TEXT | WS_RSV1, n);
    if ((size_t)h + n >= (size_t)f->hdr_len + f->len)
        return; /* no smaller than the plain frame */
    if (!(f->zwire = malloc(h + n)))
        return;
    memcpy(f->zwire, hdr, h);
    memcpy(f->zwire + h, out, n);
    f->zlen = (uint32_t)(h + n);
    f->deflate = TB_FRAME_DEFLATE_MADE;
}

const unsigned char *tb_frame_wire_deflate(tb_frame_t *f, tb_wsdeflate_t *z, unsigned window_bits,
                                           size_t *len)
{
    if (window_bits < TB_WSDEFLATE_WINDOW_MAX && f->len > (1u << window_bits))
        return NULL;
    if (f->deflate == TB_FRAME_DEFLATE_UNTRIED)
        deflate_frame(f, z);
    if (f->deflate != TB_FRAME_DEFLATE_MADE)
        return NULL;
    *len = f->zlen;
    return f->zwire;
}

void tb_frame_unref(tb_frame_t *f)
{
    if (f && --f->refs == 0) {
        free(f->zwire);
        free(f);
    }
}
