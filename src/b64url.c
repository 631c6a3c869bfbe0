/*
 * b64url — base64url on OpenSSL's EVP_EncodeBlock; see include/telebridge/b64url.h.
 *
 * EVP_EncodeBlock writes the standard alphabet ('+', '/') with '=' padding and a NUL; the output
 * is translated to the URL-safe alphabet and the padding dropped. It encodes a chunk at a time
 * into a local buffer (wiped after), so out need only hold the unpadded result.
 */
#include "telebridge/b64url.h"

#include <openssl/evp.h>
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

bool tb_b64url_chars_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}
