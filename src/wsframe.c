/* wsframe — client frame-header checks lws lacks; see include/telebridge/wsframe.h. */
#include "telebridge/wsframe.h"

#include <stdbool.h>
#include <stdlib.h>

#define RSV1 0x40
#define OPCODE 0x0f
#define CONTROL 0x08
#define OP_CONTINUATION 0x0
#define OP_CLOSE 0x8
#define MASK 0x80
#define LEN7 0x7f
#define LEN_16 126
#define LEN_64 127
#define CONTROL_MAX 125
#define MASK_KEY_LEN 4

enum { ST_HEADER, ST_PAYLOAD, ST_CLOSE_PAYLOAD, ST_FAILED };

/* The violations, by index (0: none); the last one is the only 1007. */
enum { WHY_NONE, WHY_UNMASKED, WHY_CONTROL_LEN, WHY_RSV1, WHY_CLOSE_1, WHY_TOP_BIT, WHY_UTF8 };
static const char *const reasons[] = {
    "",
    "unmasked frame",
    "control frame over 125 bytes",
    "rsv1 on a control or continuation frame",
    "close payload of 1 byte",
    "length with its top bit set",
    "close reason not utf-8",
};

/* Small (one exists for every connection): headers are taken apart as they come and a close
 * payload is checked as it passes, nothing is kept. */
struct tb_wsframe {
    uint64_t left; /* the frame's payload bytes still to come (the length, while in the header) */
    uint8_t state;
    uint8_t hdr_len;   /* header bytes seen */
    uint8_t first;     /* the header's first byte: FIN, RSV, opcode */
    uint8_t len7;      /* the 7-bit length field */
    uint8_t close_pos; /* close payload bytes seen (<= 125) */
    uint8_t u_need;    /* UTF-8 of the close reason: continuation bytes still expected, */
    uint8_t u_lo;      /* and the range the next one must be in */
    uint8_t u_hi;
    uint8_t key[MASK_KEY_LEN];
    uint8_t why;
};

tb_wsframe_t *tb_wsframe_create(void)
{
    return tb_wsframe_create_n(1);
}

tb_wsframe_t *tb_wsframe_create_n(size_t n)
{
    return n ? calloc(n, sizeof(tb_wsframe_t)) : NULL;
}

tb_wsframe_t *tb_wsframe_nth(tb_wsframe_t *v, size_t i)
{
    return v + i;
}

void tb_wsframe_reset(tb_wsframe_t *v)
{
    *v = (tb_wsframe_t){0};
}

void tb_wsframe_destroy(tb_wsframe_t *v)
{
    free(v);
}

static int code_of(uint8_t why)
{
    return why == WHY_NONE   ? 0
           : why == WHY_UTF8 ? TB_WSFRAME_INVALID_PAYLOAD
                             : TB_WSFRAME_PROTOCOL_ERROR;
}

const char *tb_wsframe_reason(const tb_wsframe_t *v)
{
    return reasons[v->why];
}

static int fail(tb_wsframe_t *v, uint8_t why)
{
    v->state = ST_FAILED;
    v->why = why;
    return code_of(why);
}

/* The header's length, from its first two bytes. */
static size_t header_len(const tb_wsframe_t *v)
{
    return 2 + MASK_KEY_LEN + (v->len7 == LEN_16 ? 2 : v->len7 == LEN_64 ? 8 : 0);
}

/* Checks the second header byte against the first; 0 or the violation. */
static int second_byte(tb_wsframe_t *v, uint8_t c)
{
    uint8_t op = v->first & OPCODE;
    v->len7 = c & LEN7;
    if (!(c & MASK))
        return fail(v, WHY_UNMASKED);
    if ((op & CONTROL) && v->len7 > CONTROL_MAX)
        return fail(v, WHY_CONTROL_LEN);
    if ((v->first & RSV1) && ((op & CONTROL) || op == OP_CONTINUATION))
        return fail(v, WHY_RSV1);
    if (op == OP_CLOSE && v->len7 == 1)
        return fail(v, WHY_CLOSE_1);
    v->left = v->len7 < LEN_16 ? v->len7 : 0;
    return 0;
}

/* One header byte; 0 or the violation. The extended length builds up in v->left. */
static int header_byte(tb_wsframe_t *v, uint8_t c)
{
    size_t at = v->hdr_len++, key_at = header_len(v) - MASK_KEY_LEN;
    if (at == 0) {
        v->first = c;
        return 0;
    }
    if (at == 1)
        return second_byte(v, c);
    if (at < key_at) {
        if (at == 2 && v->len7 == LEN_64 && (c & 0x80))
            return fail(v, WHY_TOP_BIT);
        v->left = v->left << 8 | c;
        return 0;
    }
    v->key[at - key_at] = c;
    if (v->hdr_len == header_len(v)) {
        v->state = (v->first & OPCODE) == OP_CLOSE ? ST_CLOSE_PAYLOAD : ST_PAYLOAD;
        v->hdr_len = 0;
        v->close_pos = 0;
        v->u_need = 0;
    }
    return 0;
}

/* One byte of the close reason into the UTF-8 check (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF); false when it cannot be UTF-8. */
static bool utf8_step(tb_wsframe_t *v, uint8_t c)
{
    if (v->u_need) {
        if (c < v->u_lo || c > v->u_hi)
            return false;
        v->u_need--;
        v->u_lo = 0x80;
        v->u_hi = 0xbf;
        return true;
    }
    v->u_lo = 0x80;
    v->u_hi = 0xbf;
    if (c < 0x80)
        return true;
    if (c >= 0xc2 && c <= 0xdf)
        v->u_need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        v->u_need = 2;
    else if (c >= 0xf0 && c <= 0xf4)
        v->u_need = 3;
    else
        return false;
    if (c == 0xe0)
        v->u_lo = 0xa0; /* overlong */
    else if (c == 0xed)
        v->u_hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        v->u_lo = 0x90; /* overlong */
    else if (c == 0xf4)
        v->u_hi = 0x8f; /* above U+10FFFF */
    return true;
}

/* n close payload bytes at p, unmasked: the first two are the code, the rest the reason. */
static int close_bytes(tb_wsframe_t *v, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, v->close_pos++) {
        uint8_t c = p[i] ^ v->key[v->close_pos & 3];
        if (v->close_pos >= 2 && !utf8_step(v, c))
            return fail(v, WHY_UTF8);
    }
    return 0;
}

/* A frame whose payload is complete ends: a close reason must not end inside a character. */
static int frame_done(tb_wsframe_t *v)
{
    if (v->state == ST_CLOSE_PAYLOAD && v->u_need)
        return fail(v, WHY_UTF8);
    v->state = ST_HEADER;
    return 0;
}

int tb_wsframe_feed(tb_wsframe_t *v, const uint8_t *buf, size_t len)
{
    const uint8_t *p = buf, *end = buf + len;
    while (v->state != ST_FAILED) {
        if (v->state != ST_HEADER && v->left == 0 && frame_done(v))
            break;
        if (p == end)
            break;
        if (v->state == ST_HEADER) {
            if (header_byte(v, *p++))
                break;
            continue;
        }
        size_t n = (size_t)(end - p) < v->left ? (size_t)(end - p) : (size_t)v->left;
        if (v->state == ST_CLOSE_PAYLOAD && close_bytes(v, p, n))
            break;
        v->left -= n;
        p += n;
    }
    return code_of(v->why);
}
