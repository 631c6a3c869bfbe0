/*
 * b64url — base64url on OpenSSL's EVP_EncodeBlock; see include/telebridge/b64url.h.
 *
 * EVP_EncodeBlock writes the standard alphabet ('+', '/') with '=' padding and a NUL; the output
 * is translated to the URL-safe alphabet and the padding dropped. It encodes a chunk at a time
 * into a local buffer (wiped after), so out need only hold the unpadded result.
 */
#include "telebridge/b64url.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "telebridge/util.h"

/* Input bytes per EVP_EncodeBlock call: a multiple of 3, so only the last chunk is padded. */
#define B64URL_CHUNK 48

int tb_b64url_encode(const void *in, size_t len, char *out, size_t outsz)
{
    const unsigned char *src = in;
    unsigned char chunk[B64URL_CHUNK / 3 * 4 + 1];
    size_t want = TB_B64URL_LEN(len), done = 0;
    if (want >= outsz)
        return -1;
    for (size_t i = 0; i < len; i += B64URL_CHUNK) {
        size_t n = len - i < B64URL_CHUNK ? len - i : B64URL_CHUNK;
        size_t m = TB_B64URL_LEN(n);
        EVP_EncodeBlock(chunk, src + i, (int)n);
        for (size_t k = 0; k < m; k++)
            out[done + k] = chunk[k] == '+' ? '-' : chunk[k] == '/' ? '_' : (char)chunk[k];
        done += m;
    }
    out[done] = '\0';
    tb_wipe(chunk, sizeof(chunk)); /* callers encode MACs and wipe their own copy */
    return (int)done;
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

bool tb_b64url_chars_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b64url_value(s[i]) < 0)
            return false;
    return true;
}

/*
 * Decoded by hand rather than with EVP_DecodeBlock: that one takes the standard alphabet, skips
 * whitespace and needs padding, so the input would be copied, translated and padded first, and its
 * output length corrected for the padding; this loop is shorter than that glue.
 */
int tb_b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsz)
{
    uint32_t acc = 0;
    size_t bits = 0, n = 0;
    if (len % 4 == 1 || TB_B64URL_DECODED_LEN(len) > outsz)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* the unused low bits of the last character */
        return -1;
    return (int)n;
}
