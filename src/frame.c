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
/* RFC 6455 §5.2: FIN + text opcode; 7-bit lengths up to 125, then 16-bit, then 64-bit. */
#define WS_FIN_TEXT 0x81
#define WS_LEN_16 126
#define WS_LEN_64 127
#define WS_LEN_7_MAX 125
#define WS_LEN_16_MAX 0xFFFF

_Static_assert(TB_FRAME_HEADROOM >= 10, "the headroom must hold the longest WebSocket header");

static const char *const kind_names[TB_FRAME_KIND_N] = {"control", "telemetry", "status"};

const char *tb_frame_kind_name(tb_frame_kind_t kind)
{
    return (kind >= 0 && kind < TB_FRAME_KIND_N) ? kind_names[kind] : "unknown";
}

/* Writes the unmasked text-frame header for f->len bytes just before the payload. */
static void frame_header(tb_frame_t *f)
{
    unsigned char hdr[10];
    uint8_t n = 0;
    uint64_t len = f->len;
    hdr[n++] = WS_FIN_TEXT;
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
    f->kind = (uint8_t)kind;
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

void tb_frame_unref(tb_frame_t *f)
{
    if (f && --f->refs == 0)
        free(f);
}
