/*
 * telebridge-wsframe-rate — the frame guard's cost (src/wsframe.c): feeds a cache-resident
 * 64 KiB stream of masked text frames of one payload size, in 4 KiB reads as lws makes them,
 * many times over, and prints the time per frame and per byte.
 *
 *   telebridge-wsframe-rate [payload bytes, default 100]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telebridge/wsframe.h"

#define STREAM_BYTES (64u << 10)
#define READ_BYTES 4096u
#define ROUNDS 20000
#define PAYLOAD_MAX 65535

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Fills buf with whole frames of plen payload bytes; the bytes used. */
static size_t fill(uint8_t *buf, size_t cap, size_t plen, size_t *frames)
{
    size_t n = 0, hdr = plen < 126 ? 6 : 8;
    *frames = 0;
    while (n + hdr + plen <= cap) {
        buf[n++] = 0x81;
        if (plen < 126) {
            buf[n++] = (uint8_t)(0x80 | plen);
        } else {
            buf[n++] = 0x80 | 126;
            buf[n++] = (uint8_t)(plen >> 8);
            buf[n++] = (uint8_t)plen;
        }
        memset(buf + n, 0, 4 + plen);
        n += 4 + plen;
        (*frames)++;
    }
    return n;
}

int main(int argc, char **argv)
{
    static uint8_t buf[STREAM_BYTES];
    size_t plen = argc > 1 ? strtoul(argv[1], NULL, 10) : 100, frames;
    if (plen == 0 || plen > PAYLOAD_MAX || plen + 8 > STREAM_BYTES) {
        fprintf(stderr, "payload bytes: 1..%d\n", PAYLOAD_MAX);
        return 2;
    }
    size_t n = fill(buf, sizeof(buf), plen, &frames);
    tb_wsframe_t *v = tb_wsframe_create();
    if (!v)
        return 1;
    double t0 = now_s();
    for (int r = 0; r < ROUNDS; r++)
        for (size_t at = 0; at < n; at += READ_BYTES)
            if (tb_wsframe_feed(v, buf + at, n - at < READ_BYTES ? n - at : READ_BYTES))
                return 1;
    double dt = (now_s() - t0) / ROUNDS;
    printf("payload %zu B: %.1f ns per frame, %.3f ns per byte\n", plen, dt * 1e9 / (double)frames,
           dt * 1e9 / (double)n);
    tb_wsframe_destroy(v);
    return 0;
}
