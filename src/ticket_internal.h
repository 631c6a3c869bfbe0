/*
 * ticket_internal.h — the ticket's wire format, shared by ticket.c (the store) and
 * ticket_codec.c (encoding, signing, parsing); tests/unit/test_ticket.c and
 * tests/fuzz/fuzz_ticket.c use it to make tickets the store never would.
 *
 * A ticket's text is the unpadded base64url of these bytes, integers big-endian:
 *
 *   version    1   TB_TICKET_VERSION
 *   issuer     8   the issuing store's random id
 *   nonce     16   random, per ticket: with the issuer, what "single use" remembers
 *   issued_ms  8   Unix ms, the issuer's clock
 *   expires_ms 8   Unix ms: min(issued + TTL, the token's exp)
 *   grant_exp  8   the token's exp, Unix seconds
 *   sub        2 + n       length, then the bytes (no NUL)
 *   n_rooms    2, n_scopes 2
 *   strings    (2 + n) each, rooms first, then scopes (no NUL)
 *   mac       32   HMAC-SHA256 with the key over every byte before it
 *
 * Nothing follows the MAC, and the decoder refuses any other length, version or count. Within
 * TB_TICKET_TEXT_MAX characters there are at most TB_TICKET_RAW_MAX bytes.
 */
#ifndef TELEBRIDGE_TICKET_INTERNAL_H
#define TELEBRIDGE_TICKET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "telebridge/b64url.h"
#include "telebridge/grant.h"
#include "telebridge/ticket.h"

#define TB_TICKET_VERSION 1
#define TB_TICKET_ISSUER_LEN 8
#define TB_TICKET_NONCE_LEN 16
#define TB_TICKET_MAC_LEN 32
#define TB_TICKET_RAW_MAX TB_B64URL_DECODED_LEN(TB_TICKET_TEXT_MAX)

/* The fields before the grant. */
typedef struct {
    unsigned char issuer[TB_TICKET_ISSUER_LEN];
    unsigned char nonce[TB_TICKET_NONCE_LEN];
    int64_t issued_ms;
    int64_t expires_ms;
} tb_ticket_head_t;

/* Writes the ticket of h and g, signed with key, to out (outsz bytes, NUL-terminated). Returns its
 * length, or -1 when it would be longer than TB_TICKET_TEXT_MAX or outsz allows. */
int tb_ticket_codec_encode(const tb_ticket_head_t *h, const tb_grant_t *g,
                           const unsigned char key[TB_TICKET_KEY_LEN], char *out, size_t outsz);

/* Signs body[0..len) (the bytes before the MAC, whatever they are) with key and writes the ticket
 * text to out (outsz bytes); its length, or -1 as for tb_ticket_codec_encode(). */
int tb_ticket_codec_seal(const unsigned char *body, size_t len,
                         const unsigned char key[TB_TICKET_KEY_LEN], char *out, size_t outsz);

/*
 * Checks text[0..len) (any bytes) against key and parses it: 0 with *h filled and a new grant in
 * *g (the caller frees it); -1 when it is not a ticket signed with key in this format; -2 when out
 * of memory. *h and *g are untouched unless 0 is returned.
 */
int tb_ticket_codec_decode(const char *text, size_t len, const unsigned char key[TB_TICKET_KEY_LEN],
                           tb_ticket_head_t *h, tb_grant_t **g);

#endif
