/* wsdeflate — shared permessage-deflate streams; see include/telebridge/wsdeflate.h. */
#include "telebridge/wsdeflate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libdeflate.h>
#include <zlib.h>

/* The empty stored block a receiver appends to every message (§7.2.2). */
static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
/*
 * What is left on the wire of the empty stored block that follows a block with BFINAL set
 * (RFC 7692 §7.2.3.3): its header bits (BFINAL 0, BTYPE 00) and padding, one octet; its
 * LEN/NLEN are the tail above, which the receiver appends.
 */
#define WSDEFLATE_STORED_HEADER 0x00

struct tb_wsdeflate {
    struct libdeflate_compressor *tx;
    z_stream rx;
    bool rx_init;
    size_t min_bytes;
    size_t max_message;
    unsigned char *out; /* compression output, out_cap bytes */
    size_t out_cap;
    char *inflated; /* max_message + 1 bytes once a message was inflated */
};

tb_wsdeflate_t *tb_wsdeflate_create(int level, size_t min_bytes, size_t max_message)
{
    if (level < 1 || level > 9 || max_message == 0 || max_message >= SIZE_MAX)
        return NULL;
    tb_wsdeflate_t *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    z->min_bytes = min_bytes;
    z->max_message = max_message;
    z->tx = libdeflate_alloc_compressor(level);
    z->rx_init = inflateInit2(&z->rx, -TB_WSDEFLATE_WINDOW_MAX) == Z_OK;
    if (!z->tx || !z->rx_init) {
        tb_wsdeflate_destroy(z);
        return NULL;
    }
    return z;
}

void tb_wsdeflate_destroy(tb_wsdeflate_t *z)
{
    if (!z)
        return;
    if (z->tx)
        libdeflate_free_compressor(z->tx);
    if (z->rx_init)
        inflateEnd(&z->rx);
    free(z->out);
    free(z->inflated);
    free(z);
}

int tb_wsdeflate_worth(const tb_wsdeflate_t *z, size_t len)
{
    return len >= z->min_bytes;
}

/* The output buffer with at least cap bytes. 0, or -ENOMEM. */
static int out_reserve(tb_wsdeflate_t *z, size_t cap)
{
    if (cap <= z->out_cap)
        return 0;
    unsigned char *p = realloc(z->out, cap);
    if (!p)
        return -ENOMEM;
    z->out = p;
    z->out_cap = cap;
    return 0;
}

int tb_wsdeflate_compress(tb_wsdeflate_t *z, const void *in, size_t len, const unsigned char **out,
                          size_t *outlen)
{
    size_t bound = libdeflate_deflate_compress_bound(z->tx, len);
    if (bound >= SIZE_MAX - 1 || out_reserve(z, bound + 1))
        return -ENOMEM;
    /* A whole DEFLATE stream: no context takeover, its last block has BFINAL set. */
    size_t n = libdeflate_deflate_compress(z->tx, in, len, z->out, bound);
    if (n == 0)
        return -ENOMEM; /* cannot happen within the bound */
    z->out[n] = WSDEFLATE_STORED_HEADER;
    *out = z->out;
    *outlen = n + 1;
    return 0;
}

/* Feeds in[0..len) to the inflater while output room remains; 0, -E2BIG or -EINVAL. */
static int inflate_some(tb_wsdeflate_t *z, const void *in, size_t len, bool *ended)
{
    z->rx.next_in = (Bytef *)(uintptr_t)in;
    z->rx.avail_in = (uInt)len;
    while (z->rx.avail_in > 0 && !*ended) {
        if (z->rx.avail_out == 0)
            return -E2BIG;
        int rc = inflate(&z->rx, Z_SYNC_FLUSH);
        if (rc == Z_STREAM_END)
            *ended = true;
        else if (rc == Z_BUF_ERROR && z->rx.avail_out == 0)
            return -E2BIG;
        else if (rc != Z_OK)
            return -EINVAL;
    }
    return 0;
}

int tb_wsdeflate_inflate(tb_wsdeflate_t *z, const void *in, size_t len, const char **out,
                         size_t *outlen)
{
    bool ended = false;
    if (len > UINT32_MAX)
        return -E2BIG;
    if (!z->inflated && !(z->inflated = malloc(z->max_message + 1)))
        return -ENOMEM;
    if (inflateReset(&z->rx) != Z_OK)
        return -ENOMEM;
    /* One byte past the bound: producing it proves the message is too big. */
    z->rx.next_out = (Bytef *)z->inflated;
    z->rx.avail_out = (uInt)(z->max_message + 1);
    int rc = inflate_some(z, in, len, &ended);
    if (rc == 0 && !ended)
        rc = inflate_some(z, tail, sizeof(tail), &ended);
    if (rc)
        return rc;
    size_t n = z->max_message + 1 - z->rx.avail_out;
    if (n > z->max_message)
        return -E2BIG;
    *out = z->inflated;
    *outlen = n;
    return 0;
}

/* ---- negotiation -------------------------------------------------------------------------- */

#define PMD_NAME "permessage-deflate"

/* The parameters an offer may carry, RFC 7692 §7.1. */
enum { P_SERVER_NCT, P_CLIENT_NCT, P_SERVER_BITS, P_CLIENT_BITS, P_N };
static const char *const param_names[P_N] = {"server_no_context_takeover",
                                             "client_no_context_takeover", "server_max_window_bits",
                                             "client_max_window_bits"};

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* [*b, *e) with blanks and one pair of double quotes trimmed. */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_space(**b))
        (*b)++;
    while (*e > *b && is_space((*e)[-1]))
        (*e)--;
    if (*e - *b >= 2 && **b == '"' && (*e)[-1] == '"') {
        (*b)++;
        (*e)--;
    }
}

static bool span_is(const char *b, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - b) == n && strncasecmp(b, word, n) == 0;
}

/* A window size 8..15 in [b, e); -1 otherwise. */
static int window_value(const char *b, const char *e)
{
    int v = 0;
    if (b == e || e - b > 2)
        return -1;
    for (; b < e; b++) {
        if (*b < '0' || *b > '9')
            return -1;
        v = v * 10 + (*b - '0');
    }
    return v >= TB_WSDEFLATE_WINDOW_MIN && v <= TB_WSDEFLATE_WINDOW_MAX ? v : -1;
}

/* One "name[=value]" parameter in [b, e); 0, or -1 when it is not acceptable. */
static int offer_param(const char *b, const char *e, bool seen[P_N], unsigned *window_bits)
{
    const char *eq = memchr(b, '=', (size_t)(e - b));
    const char *ne = eq ? eq : e, *vb = eq ? eq + 1 : e, *ve = e;
    trim(&b, &ne);
    trim(&vb, &ve);
    int p = 0;
    while (p < P_N && !span_is(b, ne, param_names[p]))
        p++;
    if (p == P_N || seen[p])
        return -1;
    seen[p] = true;
    switch (p) {
    case P_SERVER_NCT:
    case P_CLIENT_NCT:
        return eq ? -1 : 0;
    case P_SERVER_BITS: {
        int v = eq ? window_value(vb, ve) : -1;
        if (v < 0)
            return -1;
        *window_bits = (unsigned)v;
        return 0;
    }
    default: /* client_max_window_bits: a hint, with or without a value */
        return !eq || window_value(vb, ve) >= 0 ? 0 : -1;
    }
}

/* One offer "name; p; p=v" in [b, e): 1 when it is not permessage-deflate, else 0 or -1. */
static int offer_element(const char *b, const char *e, unsigned *window_bits)
{
    bool seen[P_N] = {false};
    const char *semi = memchr(b, ';', (size_t)(e - b));
    const char *nb = b, *ne = semi ? semi : e;
    trim(&nb, &ne);
    if (!span_is(nb, ne, PMD_NAME))
        return 1;
    *window_bits = TB_WSDEFLATE_WINDOW_MAX;
    while (semi) {
        const char *pb = semi + 1;
        semi = memchr(pb, ';', (size_t)(e - pb));
        if (offer_param(pb, semi ? semi : e, seen, window_bits))
            return -1;
    }
    return 0;
}

int tb_wsdeflate_offer(const char *header, unsigned *window_bits)
{
    const char *b = header, *end = header + strlen(header);
    while (b < end) {
        const char *comma = memchr(b, ',', (size_t)(end - b));
        const char *e = comma ? comma : end;
        int rc = offer_element(b, e, window_bits);
        if (rc <= 0)
            return rc;
        b = e + 1;
    }
    return -1;
}

int tb_wsdeflate_answer(unsigned window_bits, char *buf, size_t len)
{
    int n;
    if (window_bits < TB_WSDEFLATE_WINDOW_MAX)
        n = snprintf(buf, len,
                     "; server_no_context_takeover; client_no_context_takeover; "
                     "server_max_window_bits=%u",
                     window_bits);
    else
        n = snprintf(buf, len, "; server_no_context_takeover; client_no_context_takeover");
    return n < 0 || (size_t)n >= len ? -1 : n;
}
