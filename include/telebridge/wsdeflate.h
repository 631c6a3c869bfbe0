/*
 * wsdeflate — the service thread's one compressor and one inflater for permessage-deflate
 * (RFC 7692), negotiated without context takeover in both directions: every message is
 * compressed and inflated on its own, so one of each serves every connection and no
 * connection holds compression state.
 *
 * Server messages are a whole raw DEFLATE stream made by libdeflate (its last block has BFINAL
 * set) followed by one 0x00 octet, the header of an empty stored block whose 00 00 ff ff the
 * receiver appends (§7.2.3.3). Client messages end in a sync flush whose 00 00 ff ff tail was
 * stripped on the wire (§7.2.1); zlib inflates them with the tail appended again (§7.2.2).
 *
 * Threads: one tb_wsdeflate_t belongs to one thread (the service thread); nothing is locked.
 * Memory: the compressor (libdeflate's, allocated at create), the inflater (zlib's), an output
 * buffer for compression grown to the largest message compressed, and an inflate buffer of
 * max_message + 1 bytes allocated on the first inflate — a decompression bomb costs no more.
 */
#ifndef TELEBRIDGE_WSDEFLATE_H
#define TELEBRIDGE_WSDEFLATE_H

#include <stddef.h>

/* RFC 7692 §7.1.2: LZ77 window sizes a peer may ask for, in bits. */
#define TB_WSDEFLATE_WINDOW_MIN 8
#define TB_WSDEFLATE_WINDOW_MAX 15

typedef struct tb_wsdeflate tb_wsdeflate_t;

/*
 * level: libdeflate compression level 1..9. min_bytes: messages shorter than this are not worth
 * compressing (tb_wsdeflate_worth()). max_message: the largest inflated client message.
 * NULL when out of memory or a value is out of range.
 */
tb_wsdeflate_t *tb_wsdeflate_create(int level, size_t min_bytes, size_t max_message);
/* NULL is a no-op. */
void tb_wsdeflate_destroy(tb_wsdeflate_t *z);

/* True when a message of len bytes is at least the configured minimum. */
int tb_wsdeflate_worth(const tb_wsdeflate_t *z, size_t len);

/*
 * Compresses in[0..len) as one message. Returns 0 with *out pointing at *outlen bytes that
 * stay valid until the next call on z, or -ENOMEM.
 */
int tb_wsdeflate_compress(tb_wsdeflate_t *z, const void *in, size_t len, const unsigned char **out,
                          size_t *outlen);

/*
 * Inflates one compressed client message in[0..len). Returns 0 with *out pointing at *outlen
 * bytes (at most max_message) that stay valid until the next call on z; -E2BIG as soon as the
 * output would pass max_message (nothing more is inflated); -EINVAL when in is not valid
 * DEFLATE data; -ENOMEM.
 */
int tb_wsdeflate_inflate(tb_wsdeflate_t *z, const void *in, size_t len, const char **out,
                         size_t *outlen);

/*
 * Negotiation (RFC 7692 §7.1). Reads the first permessage-deflate offer in a
 * Sec-WebSocket-Extensions value (NUL-terminated). Returns 0 with *window_bits set to the
 * offer's server_max_window_bits (TB_WSDEFLATE_WINDOW_MAX when absent), or -1 when there is no
 * such offer or it cannot be accepted as offered: an unknown or repeated parameter, a value
 * where none belongs, none where one is required, or one out of 8..15. Later offers are not
 * considered (declining is always allowed; the connection then works uncompressed).
 */
int tb_wsdeflate_offer(const char *header, unsigned *window_bits);

/*
 * The parameters of the answer to an accepted offer, "; server_no_context_takeover;
 * client_no_context_takeover" and, when window_bits < TB_WSDEFLATE_WINDOW_MAX,
 * "; server_max_window_bits=N", into buf (len bytes, NUL included). Returns the length
 * written, or -1 when buf is too small.
 */
int tb_wsdeflate_answer(unsigned window_bits, char *buf, size_t len);

#endif
