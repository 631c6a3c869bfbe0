/* Unit tests for frames and their compressed copy: headers, lazy creation, one copy shared by
 * every compressing recipient, the size threshold, the window bound, freed with the frame
 * (LeakSanitizer checks that under the ASan build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/frame.h"
#include "telebridge/wsdeflate.h"

#include "fixtures.h"

#define MAX_MESSAGE (1u << 20)
#define LEVEL 6
#define MIN_BYTES 64

typedef struct {
    tb_wsdeflate_t *tx; /* the bridge's */
    tb_wsdeflate_t *rx; /* a client's */
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->tx = tb_wsdeflate_create(LEVEL, MIN_BYTES, MAX_MESSAGE);
    fx->rx = tb_wsdeflate_create(LEVEL, 0, MAX_MESSAGE);
    *state = fx;
    return fx->tx && fx->rx ? 0 : -1;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    tb_wsdeflate_destroy(fx->tx);
    tb_wsdeflate_destroy(fx->rx);
    free(fx);
    return 0;
}

/* A telemetry-like payload of about len bytes (it compresses well). */
static tb_frame_t *telemetry_frame(size_t len)
{
    char *buf = malloc(len + 64);
    size_t n = 0;
    for (int i = 0; n < len; i++)
        n += (size_t)snprintf(buf + n, 64, "{\"device\":\"sensor-%03d\",\"t\":21.%d},", i % 100,
                              i % 10);
    tb_frame_t *f = tb_frame_new(buf, len, TB_FRAME_TELEMETRY, 1);
    free(buf);
    return f;
}

/* len bytes drawn from 64 letters: compressible to about 3/4, never below. */
static tb_frame_t *noisy_frame(size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *buf = malloc(len);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = abc[(x >> 16) & 63];
    }
    tb_frame_t *f = tb_frame_new(buf, len, TB_FRAME_TELEMETRY, 1);
    free(buf);
    return f;
}

/* Parses the header of wire (n bytes): checks FIN+RSV1+text and returns the payload. */
static const unsigned char *check_header(const unsigned char *wire, size_t n, size_t *plen)
{
    size_t h = 2, len = wire[1] & 0x7f;
    assert_int_equal(wire[0], 0xC1);
    if (len == 126) {
        len = ((size_t)wire[2] << 8) | wire[3];
        h = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | wire[2 + i];
        h = 10;
    }
    assert_int_equal(h + len, n);
    *plen = len;
    return wire + h;
}

static void check_inflates_to(fx_t *fx, const unsigned char *wire, size_t n, tb_frame_t *f)
{
    size_t plen, got;
    const char *out;
    const unsigned char *p = check_header(wire, n, &plen);
    assert_int_equal(tb_wsdeflate_inflate(fx->rx, p, plen, &out, &got), 0);
    assert_int_equal(got, f->len);
    assert_memory_equal(out, tb_frame_payload(f), got);
}

static void test_copy_is_made_lazily_and_shared(void **state)
{
    fx_t *fx = *state;
    tb_frame_t *f = telemetry_frame(2000);
    size_t n1, n2;
    assert_int_equal(f->deflate, TB_FRAME_DEFLATE_UNTRIED);
    assert_null(f->zwire);
    const unsigned char *w1 = tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n1);
    assert_non_null(w1);
    assert_int_equal(f->deflate, TB_FRAME_DEFLATE_MADE);
    assert_true(n1 < f->len / 2);
    /* Another frame compressed in between does not touch the first's copy. */
    tb_frame_t *g = noisy_frame(50000);
    size_t ng;
    assert_non_null(tb_frame_wire_deflate(g, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &ng));
    const unsigned char *w2 = tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n2);
    assert_ptr_equal(w1, w2);
    assert_int_equal(n1, n2);
    check_inflates_to(fx, w2, n2, f);
    check_inflates_to(fx, g->zwire, g->zlen, g);
    /* The plain bytes are untouched. */
    size_t plain;
    assert_int_equal(tb_frame_wire(f, &plain)[0], 0x81);
    assert_int_equal(plain, f->hdr_len + f->len);
    tb_frame_unref(g);
    tb_frame_unref(f);
}

static void test_copy_lives_as_long_as_the_frame(void **state)
{
    fx_t *fx = *state;
    tb_frame_t *f = telemetry_frame(1000);
    size_t n;
    tb_frame_ref(f); /* two recipients */
    const unsigned char *w = tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n);
    assert_non_null(w);
    tb_frame_unref(f); /* the first recipient is done */
    assert_int_equal(f->refs, 1);
    assert_ptr_equal(tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n), w);
    check_inflates_to(fx, w, n, f);
    tb_frame_unref(f); /* frees both */
}

static void test_small_and_incompressible_frames_stay_plain(void **state)
{
    fx_t *fx = *state;
    size_t n;
    tb_frame_t *small = telemetry_frame(MIN_BYTES - 1);
    assert_null(tb_frame_wire_deflate(small, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n));
    assert_int_equal(small->deflate, TB_FRAME_DEFLATE_PLAIN);
    assert_null(small->zwire);
    tb_frame_unref(small);
    tb_frame_t *at = telemetry_frame(MIN_BYTES + 200);
    assert_non_null(tb_frame_wire_deflate(at, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n));
    tb_frame_unref(at);
    /* Compression that does not make the frame smaller is not used. */
    char bytes[100];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (char)((i * 7919u + 13u) % 251u);
    tb_frame_t *f = tb_frame_new(bytes, sizeof(bytes), TB_FRAME_TELEMETRY, 1);
    assert_null(tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n));
    assert_int_equal(f->deflate, TB_FRAME_DEFLATE_PLAIN);
    tb_frame_unref(f);
}

/* A client's server_max_window_bits: frames longer than its window go to it plain, while the
 * copy still serves the full-window clients. */
static void test_window_bound(void **state)
{
    fx_t *fx = *state;
    size_t n;
    tb_frame_t *f = telemetry_frame(1000);
    assert_null(tb_frame_wire_deflate(f, fx->tx, 9, &n));
    assert_non_null(tb_frame_wire_deflate(f, fx->tx, 10, &n));
    assert_non_null(tb_frame_wire_deflate(f, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n));
    assert_null(tb_frame_wire_deflate(f, fx->tx, 9, &n));
    tb_frame_unref(f);
}

/* Compressed lengths past 125 and 65535 take the 16- and 64-bit header forms. */
static void test_long_headers(void **state)
{
    fx_t *fx = *state;
    size_t n;
    tb_frame_t *mid = noisy_frame(1000);
    const unsigned char *w = tb_frame_wire_deflate(mid, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n);
    assert_non_null(w);
    assert_int_equal(w[1], 126);
    check_inflates_to(fx, w, n, mid);
    tb_frame_unref(mid);
    tb_frame_t *big = noisy_frame(200000);
    w = tb_frame_wire_deflate(big, fx->tx, TB_WSDEFLATE_WINDOW_MAX, &n);
    assert_non_null(w);
    assert_int_equal(w[1], 127);
    check_inflates_to(fx, w, n, big);
    tb_frame_unref(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_copy_is_made_lazily_and_shared),
        FIXTURES_TEST(test_copy_lives_as_long_as_the_frame),
        FIXTURES_TEST(test_small_and_incompressible_frames_stay_plain),
        FIXTURES_TEST(test_window_bound),
        FIXTURES_TEST(test_long_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
