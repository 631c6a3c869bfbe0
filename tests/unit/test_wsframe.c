/*
 * Tests for wsframe: the client frame checks lws lacks (docs/protocol.md → Framing). Streams of
 * good frames pass however they are cut; each violation gives its close code and reason, and
 * sticks; payload bytes are never taken for headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "telebridge/wsframe.h"

#define STREAM_MAX 4096
#define FIN 0x80
#define RSV1 0x40
#define TEXT 0x1
#define CONT 0x0
#define CLOSE 0x8
#define PING 0x9
#define PONG 0xA

typedef struct {
    uint8_t b[STREAM_MAX];
    size_t n;
} stream_t;

/* Appends one frame: form 0 picks the shortest length form, 126/127 force one. */
static void put_frame(stream_t *s, uint8_t first, const void *payload, size_t len, int masked,
                      int form)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    const uint8_t *p = payload;
    if (!form)
        form = len < 126 ? 0 : len < 65536 ? 126 : 127;
    assert_true(s->n + 14 + len <= STREAM_MAX);
    s->b[s->n++] = first;
    s->b[s->n++] = (uint8_t)((masked ? 0x80 : 0) | (form ? form : (int)len));
    if (form == 126) {
        s->b[s->n++] = (uint8_t)(len >> 8);
        s->b[s->n++] = (uint8_t)len;
    } else if (form == 127) {
        for (int shift = 56; shift >= 0; shift -= 8)
            s->b[s->n++] = (uint8_t)((uint64_t)len >> shift);
    }
    if (masked) {
        memcpy(s->b + s->n, key, 4);
        s->n += 4;
    }
    for (size_t i = 0; i < len; i++)
        s->b[s->n++] = masked ? p[i] ^ key[i % 4] : p[i];
}

static void put(stream_t *s, uint8_t first, const char *text)
{
    put_frame(s, first, text, strlen(text), 1, 0);
}

/* A stream of every good kind of frame. */
static void good_stream(stream_t *s)
{
    static uint8_t big[1000];
    /* Payload bytes that would be violations if read as a header: unmasked, long control. */
    memset(big, 0x89, sizeof(big));
    s->n = 0;
    put(s, FIN | TEXT, "{\"type\":\"ping\"}");
    put_frame(s, FIN | TEXT, big, sizeof(big), 1, 0);
    put_frame(s, FIN | TEXT, "short", 5, 1, 127);
    put_frame(s, FIN | TEXT, "short", 5, 1, 126);
    put(s, TEXT, "{\"type\":");
    put(s, FIN | PING, "between");
    put(s, CONT, "\"ping\"");
    put(s, FIN | CONT, "}");
    put(s, FIN | RSV1 | TEXT, "compressed first frame");
    put(s, RSV1 | TEXT, "compressed, fragmented");
    put(s, FIN | CONT, "rest");
    put_frame(s, FIN | PING, "", 0, 1, 0);
    put_frame(s, FIN | PONG, big, 125, 1, 0);
    put_frame(s, FIN | CLOSE, "", 0, 1, 0);
    put_frame(s, FIN | CLOSE, "\x03\xe8", 2, 1, 0);
    put_frame(s, FIN | CLOSE,
              "\x03\xe8"
              "bye \xc3\xa9\xe2\x82\xac",
              11, 1, 0);
    /* U+1F600, U+10FFFF, U+D7FF: the edges of the 4- and 3-byte ranges. */
    put_frame(s, FIN | CLOSE, "\x03\xe8\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf", 13, 1, 0);
}

static void test_good_stream_whole_and_cut_everywhere(void **state)
{
    stream_t s;
    (void)state;
    good_stream(&s);
    tb_wsframe_t *v = tb_wsframe_create();
    assert_non_null(v);
    assert_int_equal(tb_wsframe_feed(v, s.b, s.n), 0);
    assert_string_equal(tb_wsframe_reason(v), "");
    tb_wsframe_destroy(v);
    /* One byte at a time, then every two-piece cut. */
    v = tb_wsframe_create();
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(tb_wsframe_feed(v, s.b + i, 1), 0);
    tb_wsframe_destroy(v);
    for (size_t cut = 0; cut <= s.n; cut++) {
        v = tb_wsframe_create();
        assert_int_equal(tb_wsframe_feed(v, s.b, cut), 0);
        assert_int_equal(tb_wsframe_feed(v, s.b + cut, s.n - cut), 0);
        tb_wsframe_destroy(v);
    }
}

static void test_long_payload_is_skipped_not_stored(void **state)
{
    /* A 2^40-byte frame: its header, then 64 KiB of its payload at a time. */
    static const uint8_t hdr[] = {FIN | TEXT, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    static uint8_t chunk[65536];
    tb_wsframe_t *v = tb_wsframe_create();
    (void)state;
    memset(chunk, 0x09, sizeof(chunk)); /* unmasked pings, were it a header */
    assert_int_equal(tb_wsframe_feed(v, hdr, sizeof(hdr)), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(tb_wsframe_feed(v, chunk, sizeof(chunk)), 0);
    tb_wsframe_destroy(v);
}

typedef struct {
    const char *name;
    int code;
    const char *reason;
} violation_t;

/* The bad frames one put_frame() builds, and what each violates. A NULL payload is len zero
 * bytes. */
static const struct {
    uint8_t first;
    const char *payload;
    size_t len;
    int masked, form;
    violation_t want;
} k_frame_cases[] = {
    {FIN | TEXT, "{}", 2, 0, 0, {"unmasked text", 1002, "unmasked frame"}},
    {FIN | PING, "", 0, 0, 0, {"unmasked empty ping", 1002, "unmasked frame"}},
    {FIN | PING, NULL, 126, 1, 0, {"ping of 126", 1002, "control frame over 125 bytes"}},
    {FIN | PONG, NULL, 5, 1, 126, {"pong, 16-bit form", 1002, "control frame over 125 bytes"}},
    {FIN | CLOSE, NULL, 2, 1, 127, {"close, 64-bit form", 1002, "control frame over 125 bytes"}},
    {FIN | CLOSE, "\x03", 1, 1, 0, {"close of 1 byte", 1002, "close payload of 1 byte"}},
    {FIN | CLOSE,
     "\x03\xe8"
     "bad \xff",
     7,
     1,
     0,
     {"close reason not utf-8", 1007, "close reason not utf-8"}},
    {FIN | CLOSE,
     "\x03\xe8"
     "cut \xe2\x82",
     8,
     1,
     0,
     {"close reason cut", 1007, "close reason not utf-8"}},
    {FIN | CLOSE,
     "\x03\xe8\xc0\xaf",
     4,
     1,
     0,
     {"close reason overlong", 1007, "close reason not utf-8"}},
    {FIN | CLOSE,
     "\x03\xe8\xed\xa0\x80",
     5,
     1,
     0,
     {"close reason surrogate", 1007, "close reason not utf-8"}},
    {FIN | CLOSE,
     "\x03\xe8\xf4\x90\x80\x80",
     6,
     1,
     0,
     {"close reason above U+10FFFF", 1007, "close reason not utf-8"}},
};
#define N_FRAME_CASES (sizeof(k_frame_cases) / sizeof(k_frame_cases[0]))

/* Builds case i's bad frame after one good frame; false past the last case. Case 0 is
 * k_frame_cases[0], the unmasked text frame. */
static bool bad_case(size_t i, stream_t *s, violation_t *want)
{
    static const uint8_t pad[200];
    s->n = 0;
    put(s, FIN | TEXT, "{\"type\":\"ping\"}");
    *want = (violation_t){NULL, 1002, NULL};
    if (i < N_FRAME_CASES) {
        const char *payload = k_frame_cases[i].payload;
        put_frame(s, k_frame_cases[i].first, payload ? (const void *)payload : pad,
                  k_frame_cases[i].len, k_frame_cases[i].masked, k_frame_cases[i].form);
        *want = k_frame_cases[i].want;
        return true;
    }
    switch (i - N_FRAME_CASES) {
    case 0:
        put(s, FIN | RSV1 | PING, "p");
        *want = (violation_t){"rsv1 ping", 1002, "rsv1 on a control or continuation frame"};
        break;
    case 1:
        put(s, RSV1 | TEXT, "a");
        put(s, FIN | RSV1 | CONT, "b");
        *want = (violation_t){"rsv1 continuation", 1002, "rsv1 on a control or continuation frame"};
        break;
    case 2: {
        static const uint8_t top[] = {FIN | TEXT, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
        memcpy(s->b + s->n, top, sizeof(top));
        s->n += sizeof(top);
        *want = (violation_t){"64-bit top bit", 1002, "length with its top bit set"};
        break;
    }
    default:
        return false;
    }
    return true;
}

static void test_each_violation(void **state)
{
    stream_t s;
    violation_t want;
    (void)state;
    for (size_t i = 0; bad_case(i, &s, &want); i++) {
        /* Whole, then one byte at a time: the same verdict, found at the same byte. */
        tb_wsframe_t *v = tb_wsframe_create();
        int rc = tb_wsframe_feed(v, s.b, s.n);
        if (rc != want.code || strcmp(tb_wsframe_reason(v), want.reason) != 0)
            fail_msg("%s: %d '%s'", want.name, rc, tb_wsframe_reason(v));
        /* Sticky: later bytes, good or not, change nothing. */
        assert_int_equal(tb_wsframe_feed(v, s.b, 2), want.code);
        tb_wsframe_destroy(v);
        v = tb_wsframe_create();
        size_t at = 0;
        while (at < s.n && tb_wsframe_feed(v, s.b + at, 1) == 0)
            at++;
        if (at == s.n || tb_wsframe_feed(v, NULL, 0) != want.code)
            fail_msg("%s: not found byte by byte", want.name);
        tb_wsframe_destroy(v);
    }
}

/* Case 0: the good ping, then an unmasked text frame; the tests below cut it at byte 21. */
static void unmasked_text_case(stream_t *s)
{
    violation_t want;
    assert_true(bad_case(0, s, &want));
}

static void test_good_prefix_of_a_violation_passes(void **state)
{
    stream_t s;
    (void)state;
    /* A violation is found only once its bytes are there: the good frame alone passes. */
    unmasked_text_case(&s);
    tb_wsframe_t *v = tb_wsframe_create();
    assert_int_equal(tb_wsframe_feed(v, s.b, 21), 0); /* 6 + 15: the good ping */
    assert_int_equal(tb_wsframe_feed(v, s.b + 21, 1), 0);
    assert_int_equal(tb_wsframe_feed(v, s.b + 22, 1), 1002);
    tb_wsframe_destroy(v);
}

static void test_array_members_are_independent_and_reset(void **state)
{
    stream_t s;
    (void)state;
    unmasked_text_case(&s);
    tb_wsframe_t *arr = tb_wsframe_create_n(3);
    assert_non_null(arr);
    assert_int_equal(tb_wsframe_feed(tb_wsframe_nth(arr, 1), s.b, s.n), 1002);
    assert_int_equal(tb_wsframe_feed(tb_wsframe_nth(arr, 0), s.b, 21), 0);
    assert_int_equal(tb_wsframe_feed(tb_wsframe_nth(arr, 2), s.b, 21), 0);
    tb_wsframe_reset(tb_wsframe_nth(arr, 1));
    assert_string_equal(tb_wsframe_reason(tb_wsframe_nth(arr, 1)), "");
    assert_int_equal(tb_wsframe_feed(tb_wsframe_nth(arr, 1), s.b, 21), 0);
    tb_wsframe_destroy(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_stream_whole_and_cut_everywhere),
        cmocka_unit_test(test_long_payload_is_skipped_not_stored),
        cmocka_unit_test(test_each_violation),
        cmocka_unit_test(test_good_prefix_of_a_violation_passes),
        cmocka_unit_test(test_array_members_are_independent_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
