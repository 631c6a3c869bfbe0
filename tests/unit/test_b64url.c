/*
 * Unit tests for b64url: RFC 4648 §10's vectors in the URL-safe alphabet, the two characters
 * that differ from standard base64, no padding for every length mod 3, the output bound, and the
 * alphabet check; every length 0..200 against a bit-by-bit encoder written here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "telebridge/b64url.h"

#define OUT_MAX 512
#define MAX_IN 200

static const char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

typedef struct {
    const char *in;
    size_t len;
    const char *want;
} vector_t;

/* RFC 4648 §10's vectors, then 62 and 63 as '-' and '_' (standard base64 has '+' and '/');
 * no '=' at any length. */
static void test_vectors(void **state)
{
    (void)state;
    static const vector_t v[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xef\xbe", 3, "----"},
        {"\xff\xff\xff", 3, "____"},
        {"\xfb\xff", 2, "-_8"},
        {"\xff", 1, "_w"},
        {"\x00", 1, "AA"},
        {"\x00\x00", 2, "AAA"},
        {"\x00\x00\x00\x00", 4, "AAAAAA"},
    };
    char out[OUT_MAX];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'X', sizeof(out));
        assert_int_equal(tb_b64url_encode(v[i].in, v[i].len, out, sizeof(out)), strlen(v[i].want));
        assert_string_equal(out, v[i].want);
    }
}

/* The lengths 0, 2 and 3 mod 4 are what 0, 1 and 2 bytes mod 3 make; 1 mod 4 never appears. */
static void test_lengths_mod_4(void **state)
{
    (void)state;
    unsigned char in[MAX_IN] = {0};
    char out[OUT_MAX];
    for (size_t n = 0; n <= MAX_IN; n++) {
        int got = tb_b64url_encode(in, n, out, sizeof(out));
        assert_int_equal(got, TB_B64URL_LEN(n));
        assert_int_equal((size_t)got, (n * 4 + 2) / 3);
        assert_int_not_equal(got % 4, 1);
        assert_int_equal(got % 4, n % 3 == 0 ? 0 : n % 3 + 1);
    }
}

/* Exactly TB_B64URL_LEN(n) + 1 bytes suffice; one fewer fails and leaves out untouched. */
static void test_output_bound(void **state)
{
    (void)state;
    static const char in[] = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    char out[OUT_MAX];
    for (size_t n = 0; n < sizeof(in); n++) {
        size_t need = TB_B64URL_LEN(n) + 1;
        memset(out, 'X', sizeof(out));
        assert_int_equal(tb_b64url_encode(in, n, out, need - 1), -1);
        assert_int_equal(out[0], 'X');
        assert_int_equal(tb_b64url_encode(in, n, out, need), (int)need - 1);
        assert_int_equal(out[need - 1], '\0');
    }
}

/* The encoding written out bit by bit, six at a time. */
static void reference(const unsigned char *in, size_t len, char *out)
{
    size_t bits = len * 8, o = 0;
    for (size_t b = 0; b < bits; b += 6) {
        unsigned v = 0;
        for (size_t k = 0; k < 6; k++) {
            size_t bit = b + k;
            unsigned one = bit < bits ? (in[bit / 8] >> (7 - bit % 8)) & 1u : 0u;
            v = v << 1 | one;
        }
        out[o++] = k_alphabet[v];
    }
    out[o] = '\0';
}

/* Every length across the encoder's chunk boundaries, with bytes covering every value. */
static void test_matches_reference(void **state)
{
    (void)state;
    unsigned char in[MAX_IN];
    char got[OUT_MAX], want[OUT_MAX];
    for (size_t i = 0; i < MAX_IN; i++)
        in[i] = (unsigned char)(i * 167 + 13);
    for (size_t n = 0; n <= MAX_IN; n++) {
        reference(in, n, want);
        assert_int_equal(tb_b64url_encode(in, n, got, sizeof(got)), strlen(want));
        assert_string_equal(got, want);
    }
}

static void test_chars_ok(void **state)
{
    (void)state;
    static const char bad[] = "+/=. \n\t\"\\*~";
    char one[2] = {0};
    assert_true(tb_b64url_chars_ok("", 0));
    assert_true(tb_b64url_chars_ok(k_alphabet, strlen(k_alphabet)));
    for (size_t i = 0; i < strlen(bad); i++) {
        one[0] = bad[i];
        assert_false(tb_b64url_chars_ok(one, 1));
    }
    assert_false(tb_b64url_chars_ok("Zm9v\x80", 5));
    assert_false(tb_b64url_chars_ok("Zm9vYg==", 8)); /* padding is not part of base64url here */
    assert_false(tb_b64url_chars_ok("Zm\0v", 4));
    assert_true(tb_b64url_chars_ok("Zm9v+", 4)); /* only len bytes are read */
    /* Every byte value outside the alphabet is refused. */
    for (int c = 1; c < 256; c++) {
        one[0] = (char)c;
        assert_int_equal(tb_b64url_chars_ok(one, 1), strchr(k_alphabet, c) != NULL);
    }
}

/* The decoder inverts the encoder at every length, and refuses what it never writes. */
static void test_decode(void **state)
{
    (void)state;
    unsigned char in[MAX_IN], back[MAX_IN];
    char text[OUT_MAX];
    for (size_t i = 0; i < MAX_IN; i++)
        in[i] = (unsigned char)(i * 167 + 13);
    for (size_t n = 0; n <= MAX_IN; n++) {
        int len = tb_b64url_encode(in, n, text, sizeof(text));
        assert_int_equal(TB_B64URL_DECODED_LEN((size_t)len), n);
        assert_int_equal(tb_b64url_decode(text, (size_t)len, back, n), n);
        assert_memory_equal(back, in, n);
        if (n)
            assert_int_equal(tb_b64url_decode(text, (size_t)len, back, n - 1), -1);
    }
    assert_int_equal(tb_b64url_decode("Zm9vYg", 6, back, sizeof(back)), 4);
    assert_memory_equal(back, "foob", 4);
    assert_int_equal(tb_b64url_decode("Zm9vYh", 6, back, sizeof(back)), -1); /* low bits set */
    assert_int_equal(tb_b64url_decode("Zm9vY", 5, back, sizeof(back)), -1);  /* 5 % 4 == 1 */
    assert_int_equal(tb_b64url_decode("Zm9vYg==", 8, back, sizeof(back)), -1);
    assert_int_equal(tb_b64url_decode("Zm+v", 4, back, sizeof(back)), -1);
    assert_int_equal(tb_b64url_decode("-_-_", 4, back, sizeof(back)), 3);
    assert_memory_equal(back, "\xfb\xff\xbf", 3);
    assert_int_equal(tb_b64url_decode("", 0, back, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),      cmocka_unit_test(test_lengths_mod_4),
        cmocka_unit_test(test_output_bound), cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_chars_ok),     cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
