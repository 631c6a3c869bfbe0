/*
 * frame — an encoded server message, shared by every connection it is queued on.
 *
 * A device message is encoded once into one frame; each recipient's send queue holds a
 * reference, not a copy. Frames are used by the service thread only, so the reference count is
 * a plain integer.
 *
 * Layout of data[]: TB_FRAME_HEADROOM bytes, the payload, a NUL (so it can be logged or parsed
 * in tests). The last hdr_len bytes of the headroom hold the frame's complete WebSocket header
 * (FIN, text opcode, unmasked length) — a server frame is the same bytes for every recipient —
 * so tb_frame_wire() is ready to send as it is.
 *
 * permessage-deflate connections get the same frame compressed (tb_frame_wire_deflate()): the
 * first such recipient compresses it once with the service thread's deflater, and the copy —
 * its own header with RSV1 set, then the compressed payload — is kept beside the plain bytes
 * for every later recipient and freed with the frame. A frame that compression does not pay
 * for (shorter than the configured minimum, or not made smaller) is remembered as plain.
 */
#ifndef TELEBRIDGE_FRAME_H
#define TELEBRIDGE_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/wsdeflate.h"

/* At least LWS_PRE (ws_server.c checks) and the longest WebSocket header (10 bytes). */
#define TB_FRAME_HEADROOM 16

/* What the frame carries; the drop_oldest slow-consumer policy only drops telemetry. */
typedef enum {
    TB_FRAME_CONTROL = 0,
    TB_FRAME_TELEMETRY,
    TB_FRAME_STATUS,
    TB_FRAME_KIND_N
} tb_frame_kind_t;

/* "control", "telemetry" or "status", for /metrics; "unknown" out of range. */
const char *tb_frame_kind_name(tb_frame_kind_t kind);

/* The state of a frame's compressed copy. */
typedef enum {
    TB_FRAME_DEFLATE_UNTRIED = 0, /* no compressing recipient yet */
    TB_FRAME_DEFLATE_MADE,        /* zwire holds it */
    TB_FRAME_DEFLATE_PLAIN        /* not worth it (or out of memory): everyone gets it plain */
} tb_frame_deflate_t;

typedef struct tb_frame {
    uint32_t refs;
    uint32_t len;         /* payload bytes, excluding headroom and the NUL */
    uint64_t seq;         /* bridge-wide sequence of a device message; 0 for control frames */
    int64_t ingest_us;    /* tb_now_us() when its message came in (MQTT, publish); 0: none */
    uint8_t kind;         /* tb_frame_kind_t */
    uint8_t hdr_len;      /* bytes of WebSocket header before the payload */
    uint8_t deflate;      /* tb_frame_deflate_t: has the compressed copy been made? */
    uint32_t zlen;        /* bytes of zwire */
    unsigned char *zwire; /* the compressed frame, header included; NULL unless made */
    unsigned char data[]; /* TB_FRAME_HEADROOM + len + 1 bytes */
} tb_frame_t;

/* Copies len bytes into a new frame with one reference. NULL when out of memory. */
tb_frame_t *tb_frame_new(const char *payload, size_t len, tb_frame_kind_t kind, uint64_t seq);

/*
 * Allocates a frame with one reference for len payload bytes, header and NUL already written;
 * the caller fills the len bytes at tb_frame_payload(). NULL when out of memory.
 */
tb_frame_t *tb_frame_alloc(size_t len, tb_frame_kind_t kind, uint64_t seq);

/* The encoding of every JSON frame: compact, insertion order, reals to 15 significant digits. */
#define TB_FRAME_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/*
 * Encodes obj with TB_FRAME_JSON_FLAGS into a new frame with one reference.
 * NULL when out of memory or when obj cannot be encoded.
 */
tb_frame_t *tb_frame_from_json(const json_t *obj, tb_frame_kind_t kind, uint64_t seq);

/*
 * Encodes obj with TB_FRAME_JSON_FLAGS into a new NUL-terminated buffer of at most max bytes
 * (NUL excluded), for splicing into frames later. Returns 0 with *out (the caller frees it) and
 * *len set, -E2BIG when the encoding is longer than max, -ENOMEM when out of memory or when obj
 * cannot be encoded; *out and *len are untouched on failure.
 */
int tb_frame_json_encode(const json_t *obj, size_t max, char **out, size_t *len);

static inline char *tb_frame_payload(tb_frame_t *f)
{
    return (char *)f->data + TB_FRAME_HEADROOM;
}

/* The whole WebSocket frame, header and payload; *len receives its size. */
static inline const unsigned char *tb_frame_wire(const tb_frame_t *f, size_t *len)
{
    *len = (size_t)f->hdr_len + f->len;
    return f->data + TB_FRAME_HEADROOM - f->hdr_len;
}

/*
 * The frame for a permessage-deflate connection whose LZ77 window is 2^window_bits bytes
 * (its server_max_window_bits, else TB_WSDEFLATE_WINDOW_MAX): the compressed copy, made with z
 * on the first call, with *len its size; or NULL when this recipient gets tb_frame_wire()
 * (the frame is remembered as plain, or its payload is longer than that window, which the
 * copy compressed with the full window may then reach back across).
 */
const unsigned char *tb_frame_wire_deflate(tb_frame_t *f, tb_wsdeflate_t *z, unsigned window_bits,
                                           size_t *len);

static inline void tb_frame_ref(tb_frame_t *f)
{
    f->refs++;
}

/* Drops one reference; frees the frame (and its compressed copy) with the last. NULL is a
 * no-op. */
void tb_frame_unref(tb_frame_t *f);

#endif
