/*
 * wsframe — checks the frame headers of the bytes a WebSocket client sends, for what lws 4.1.6
 * does not check itself (RFC 6455 §5.1, §5.2, §5.5, §5.5.1, RFC 7692 §6.1):
 *   - every client frame is masked;
 *   - a control frame's payload is at most 125 bytes, in the 7-bit length form;
 *   - a 64-bit length has its top bit clear;
 *   - a close frame's payload is empty or a 2-byte code followed by UTF-8 (1-byte: 1002,
 *     a reason that is not UTF-8: 1007);
 *   - RSV1 (permessage-deflate's "compressed" bit) is never set on a control frame or a
 *     continuation frame.
 * What lws does check (opcodes, RSV bits without an extension, fragmentation, close codes) is
 * not repeated here: the validator only follows frame boundaries for those frames.
 *
 * The validator is fed the byte stream in pieces of any size, starting at a frame boundary. It
 * reads headers byte by byte and skips payloads by arithmetic (only a close frame's payload, at
 * most 125 bytes, is read, to check its reason as it passes), so its cost is per frame, not per
 * byte; its state is 24 bytes.
 *
 * Single-threaded: one owner per validator. Created and destroyed by the owner.
 */
#ifndef TELEBRIDGE_WSFRAME_H
#define TELEBRIDGE_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/* The close codes a violation fails the connection with. */
#define TB_WSFRAME_PROTOCOL_ERROR 1002
#define TB_WSFRAME_INVALID_PAYLOAD 1007

typedef struct tb_wsframe tb_wsframe_t;

/* A new validator at a frame boundary; NULL when out of memory. Freed with destroy. */
tb_wsframe_t *tb_wsframe_create(void);
/* n validators in one allocation (n > 0), each at a frame boundary; NULL when out of memory.
 * Freed with destroy of the returned pointer. */
tb_wsframe_t *tb_wsframe_create_n(size_t n);
/* The i-th (i < n) validator of tb_wsframe_create_n(n). */
tb_wsframe_t *tb_wsframe_nth(tb_wsframe_t *v, size_t i);
/* Back at a frame boundary with no violation, for a new stream. */
void tb_wsframe_reset(tb_wsframe_t *v);
void tb_wsframe_destroy(tb_wsframe_t *v);

/*
 * Checks the next len bytes of the stream. 0 while no violation was found, else the close code
 * (TB_WSFRAME_PROTOCOL_ERROR or TB_WSFRAME_INVALID_PAYLOAD); once a violation is found every
 * later call returns the same code without reading its bytes.
 */
int tb_wsframe_feed(tb_wsframe_t *v, const uint8_t *buf, size_t len);

/* The close reason text of the violation found (at most 123 bytes), "" before any. */
const char *tb_wsframe_reason(const tb_wsframe_t *v);

#endif
