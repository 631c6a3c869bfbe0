/* wsdeflate — shared permessage-deflate streams; see include/telebridge/wsdeflate.h. */
#include "telebridge/wsdeflate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/*
 * A 2^(4+7)-entry hash: deflateReset() clears it for every message, and on telemetry-sized
 * messages zlib's default (8) compresses no better at nearly twice the instructions
 * (docs/performance.md).
 */
#define WSDEFLATE_MEM_LEVEL 4
/* The sync flush's empty stored block, stripped from and restored to every message. */
static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
/* Room beyond deflateBound() for the sync flush's empty block (5 bytes) and bit padding. */
#define WSDEFLATE_FLUSH_SLACK 16

struct tb_wsdeflate {
    z_stream tx;
    z_stream rx;
    bool tx_init, rx_init;
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
    z->tx_init = deflateInit2(&z->tx, level, Z_DEFLATED, -TB_WSDEFLATE_WINDOW_MAX,
                              WSDEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY) == Z_OK;
    z->rx_init = inflateInit2(&z->rx, -TB_WSDEFLATE_WINDOW_MAX) == Z_OK;
    if (!z->tx_init || !z->rx_init) {
        tb_wsdeflate_destroy(z);
        return NULL;
    }
    return z;
}

void tb_wsdeflate_destroy(tb_wsdeflate_t *z)
{
    if (!z)
        return;
    if (z->tx_init)
        deflateEnd(&z->tx);
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
    if (len > UINT32_MAX)
        return -ENOMEM;
    size_t need = deflateBound(&z->tx, (uLong)len) + WSDEFLATE_FLUSH_SLACK;
    if (out_reserve(z, need))
        return -ENOMEM;
    /* No context takeover: each message starts from an empty window. */
    if (deflateReset(&z->tx) != Z_OK)
        return -ENOMEM;
    z->tx.next_in = (Bytef *)(uintptr_t)in;
    z->tx.avail_in = (uInt)len;
    z->tx.next_out = z->out;
    z->tx.avail_out = (uInt)z->out_cap;
    int rc = deflate(&z->tx, Z_SYNC_FLUSH);
    /* deflateBound() plus the flush's slack always holds the whole output. */
    if (rc != Z_OK || z->tx.avail_in != 0 || z->tx.avail_out == 0)
        return -ENOMEM;
    size_t n = z->out_cap - z->tx.avail_out;
    if (n < sizeof(tail) || memcmp(z->out + n - sizeof(tail), tail, sizeof(tail)) != 0)
        return -ENOMEM;
    *out = z->out;
    *outlen = n - sizeof(tail);
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
