/* ticket_codec — a ticket's bytes, MAC and text; the format is in src/ticket_internal.h. */
#include "ticket_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Bytes of the fixed fields: version, issuer, nonce, three times, sub length, two counts. */
#define HEAD_LEN (1 + TB_TICKET_ISSUER_LEN + TB_TICKET_NONCE_LEN + 3 * 8 + 3 * 2)
#define U16_MAX 0xffffu

/* A bounded writer: once a put would pass cap, ok turns false and nothing more is written. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    bool ok;
} writer_t;

static void put(writer_t *w, const void *src, size_t len)
{
    if (!w->ok || len > w->cap - w->n) {
        w->ok = false;
        return;
    }
    memcpy(w->p + w->n, src, len);
    w->n += len;
}

static void put_be(writer_t *w, uint64_t v, size_t bytes)
{
    unsigned char b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    put(w, b, bytes);
}

static void put_str(writer_t *w, const char *s)
{
    size_t len = strlen(s);
    if (len > U16_MAX)
        w->ok = false;
    put_be(w, len, 2);
    put(w, s, len);
}

static void hmac(const unsigned char key[TB_TICKET_KEY_LEN], const unsigned char *body, size_t len,
                 unsigned char mac[TB_TICKET_MAC_LEN])
{
    unsigned int n = TB_TICKET_MAC_LEN;
    HMAC(EVP_sha256(), key, TB_TICKET_KEY_LEN, body, len, mac, &n);
}

int tb_ticket_codec_seal(const unsigned char *body, size_t len,
                         const unsigned char key[TB_TICKET_KEY_LEN], char *out, size_t outsz)
{
    unsigned char raw[TB_TICKET_RAW_MAX];
    if (len > sizeof(raw) - TB_TICKET_MAC_LEN ||
        TB_B64URL_LEN(len + TB_TICKET_MAC_LEN) > TB_TICKET_TEXT_MAX)
        return -1;
    memcpy(raw, body, len);
    hmac(key, raw, len, raw + len);
    int n = tb_b64url_encode(raw, len + TB_TICKET_MAC_LEN, out, outsz);
    tb_wipe(raw, sizeof(raw));
    return n;
}

int tb_ticket_codec_encode(const tb_ticket_head_t *h, const tb_grant_t *g,
                           const unsigned char key[TB_TICKET_KEY_LEN], char *out, size_t outsz)
{
    unsigned char body[TB_TICKET_RAW_MAX];
    writer_t w = {.p = body, .cap = sizeof(body) - TB_TICKET_MAC_LEN, .ok = true};
    size_t n_rooms, n_scopes;
    const char *const *strs = tb_grant_strs(g, &n_rooms, &n_scopes);
    put_be(&w, TB_TICKET_VERSION, 1);
    put(&w, h->issuer, sizeof(h->issuer));
    put(&w, h->nonce, sizeof(h->nonce));
    put_be(&w, (uint64_t)h->issued_ms, 8);
    put_be(&w, (uint64_t)h->expires_ms, 8);
    put_be(&w, (uint64_t)tb_grant_exp(g), 8);
    put_str(&w, tb_grant_sub(g));
    if (n_rooms > U16_MAX || n_scopes > U16_MAX)
        return -1;
    put_be(&w, n_rooms, 2);
    put_be(&w, n_scopes, 2);
    for (size_t i = 0; i < n_rooms + n_scopes; i++)
        put_str(&w, strs[i]);
    int n = w.ok ? tb_ticket_codec_seal(body, w.n, key, out, outsz) : -1;
    tb_wipe(body, sizeof(body));
    return n;
}

/* A bounded reader: a take past the end turns ok false and yields zeros / NULL. */
typedef struct {
    const unsigned char *p;
    size_t n, len;
    bool ok;
} reader_t;

static const unsigned char *take(reader_t *r, size_t len)
{
    if (!r->ok || len > r->len - r->n) {
        r->ok = false;
        return NULL;
    }
    r->n += len;
    return r->p + r->n - len;
}

static uint64_t take_be(reader_t *r, size_t bytes)
{
    const unsigned char *b = take(r, bytes);
    uint64_t v = 0;
    for (size_t i = 0; b && i < bytes; i++)
        v = v << 8 | b[i];
    return v;
}

/* A length-prefixed string without NUL into *s; false when it is not one. */
static bool take_str(reader_t *r, tb_grant_str_t *s)
{
    s->len = (size_t)take_be(r, 2);
    s->str = (const char *)take(r, s->len);
    return r->ok && !memchr(s->str, '\0', s->len);
}

/* Parses the verified body[0..len): 0, -1 (not this format) or -2 (out of memory). */
static int parse(const unsigned char *body, size_t len, tb_ticket_head_t *h, tb_grant_t **g)
{
    reader_t r = {.p = body, .len = len, .ok = true};
    tb_grant_str_t sub, *strs = NULL;
    int rc = -1;
    if (take_be(&r, 1) != TB_TICKET_VERSION)
        return -1;
    tb_ticket_head_t head;
    memcpy(head.issuer, take(&r, sizeof(head.issuer)), sizeof(head.issuer));
    memcpy(head.nonce, take(&r, sizeof(head.nonce)), sizeof(head.nonce));
    head.issued_ms = (int64_t)take_be(&r, 8);
    head.expires_ms = (int64_t)take_be(&r, 8);
    int64_t exp = (int64_t)take_be(&r, 8);
    if (!take_str(&r, &sub))
        return -1;
    size_t n_rooms = (size_t)take_be(&r, 2), n_scopes = (size_t)take_be(&r, 2);
    /* Each string takes at least its 2 length bytes: a count beyond that is a lie. */
    if (!r.ok || n_rooms + n_scopes > (len - r.n) / 2)
        return -1;
    if (n_rooms + n_scopes && !(strs = malloc((n_rooms + n_scopes) * sizeof(*strs))))
        return -2;
    for (size_t i = 0; i < n_rooms + n_scopes; i++)
        if (!take_str(&r, &strs[i]))
            goto done;
    if (r.n != len)
        goto done;
    rc = (*g = tb_grant_new(sub.str, sub.len, exp, strs, n_rooms, n_scopes)) ? 0 : -2;
    if (!rc)
        *h = head;
done:
    free(strs);
    return rc;
}

int tb_ticket_codec_decode(const char *text, size_t len, const unsigned char key[TB_TICKET_KEY_LEN],
                           tb_ticket_head_t *h, tb_grant_t **g)
{
    unsigned char raw[TB_TICKET_RAW_MAX], mac[TB_TICKET_MAC_LEN];
    int n = len <= TB_TICKET_TEXT_MAX ? tb_b64url_decode(text, len, raw, sizeof(raw)) : -1;
    if (n < HEAD_LEN + TB_TICKET_MAC_LEN)
        return -1;
    size_t body = (size_t)n - TB_TICKET_MAC_LEN;
    hmac(key, raw, body, mac);
    int rc = CRYPTO_memcmp(mac, raw + body, sizeof(mac)) == 0 ? parse(raw, body, h, g) : -1;
    tb_wipe(raw, sizeof(raw));
    return rc;
}
