/*
 * b64url — the base64url alphabet of RFC 4648 §5 without padding, as JWS (RFC 7515 §2) uses it.
 *
 * Pure functions on caller-owned buffers: nothing is allocated, any thread may call.
 */
#ifndef TELEBRIDGE_B64URL_H
#define TELEBRIDGE_B64URL_H

#include <stdbool.h>
#include <stddef.h>

/* Characters tb_b64url_encode() writes for n input bytes, without the NUL: ceil(n * 4 / 3). */
#define TB_B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/*
 * Encodes in[0..len) into out as unpadded base64url ('-' and '_' for 62 and 63, no '='), NUL
 * terminated. Returns the number of characters written, TB_B64URL_LEN(len); or -1 when out
 * (outsz bytes) cannot hold them and the NUL, then out is untouched. len must not exceed INT_MAX.
 */
int tb_b64url_encode(const void *in, size_t len, char *out, size_t outsz);

/* Bytes tb_b64url_decode() writes for n characters, when n % 4 != 1: floor(n * 3 / 4). */
#define TB_B64URL_DECODED_LEN(n) ((n) / 4 * 3 + ((n) % 4 ? (n) % 4 - 1 : 0))

/*
 * Decodes the unpadded base64url s[0..len) into out (outsz bytes). Returns the number of bytes
 * written, TB_B64URL_DECODED_LEN(len); or -1 when a character is outside the alphabet ('=' is),
 * len % 4 == 1, the last character carries bits that are not zero (so every byte string has
 * exactly one accepted encoding), or out cannot hold the result; out may then be partly written.
 * len must not exceed INT_MAX.
 */
int tb_b64url_decode(const char *s, size_t len, unsigned char *out, size_t outsz);

/* True when every one of s[0..len) is in the base64url alphabet [A-Za-z0-9_-]; '=' is not. The
 * length is not checked (one of 1 mod 4 decodes to nothing); len 0 is true. */
bool tb_b64url_chars_ok(const char *s, size_t len);

#endif
