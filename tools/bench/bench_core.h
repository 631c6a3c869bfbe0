/*
 * bench_core — the pure parts of telebridge-bench, kept apart so they are unit-tested
 * (tests/unit/test_bench.c): WebSocket client framing (RFC 6455), the few MQTT 3.1.1 packets a
 * subscriber needs, the latency stamp in a message, the room mix, a latency histogram, and the
 * client side of permessage-deflate (RFC 7692): the answer's parameters and the inflater.
 *
 * Nothing here does I/O or allocates except tb_bench_hist_create(),
 * tb_bench_inflater_create() and the inflate cache. Parsers never read past the length they are
 * given and report "need more bytes" (0) apart from "malformed" (-1). Single-threaded: each object
 * belongs to the thread that created it.
 */
#ifndef TELEBRIDGE_BENCH_CORE_H
#define TELEBRIDGE_BENCH_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- WebSocket framing --------------------------------------------------------------------- */

#define TB_BENCH_WS_TEXT 0x1
#define TB_BENCH_WS_BINARY 0x2
#define TB_BENCH_WS_CLOSE 0x8
#define TB_BENCH_WS_PING 0x9
#define TB_BENCH_WS_PONG 0xA
/* Longest header of a frame the bench sends: 2 + 8 length bytes + 4 mask bytes. */
#define TB_BENCH_WS_MAX_HDR 14

typedef struct {
    bool fin;
    bool rsv1; /* permessage-deflate: the message this frame starts is compressed */
    uint8_t opcode;
    const uint8_t *payload; /* points into the parsed buffer; unmasked frames only */
    uint64_t len;
} tb_bench_ws_frame_t;

/*
 * Parses one frame at buf[0..len). Returns the bytes it takes (> 0) and fills *f, 0 when buf
 * holds only part of it, -1 when it is malformed: RSV2 or RSV3 set, RSV1 set unless rsv1_ok
 * (permessage-deflate negotiated) and the frame is the first of a text or binary message
 * (RFC 7692 §6), an unknown opcode, a masked frame (servers never mask, RFC 6455 §5.1), a
 * control frame over 125 bytes or fragmented, or a length over max_len.
 */
long tb_bench_ws_parse(const uint8_t *buf, size_t len, uint64_t max_len, bool rsv1_ok,
                       tb_bench_ws_frame_t *f);

/*
 * Writes a final, masked client frame of opcode with payload into out (cap bytes). The mask
 * key is zero, so the payload bytes are unchanged (a valid key: the server unmasks by XOR).
 * Returns the frame's length, or 0 when cap is too small.
 */
size_t tb_bench_ws_encode(uint8_t *out, size_t cap, uint8_t opcode, const void *payload,
                          size_t len);

/* ---- MQTT 3.1.1 (subscriber side) ---------------------------------------------------------- */

#define TB_BENCH_MQTT_CONNACK 2
#define TB_BENCH_MQTT_PUBLISH 3
#define TB_BENCH_MQTT_SUBACK 9
#define TB_BENCH_MQTT_PINGRESP 13

typedef struct {
    uint8_t type;  /* packet type, the high nibble of the first byte */
    uint8_t flags; /* its low nibble */
    const uint8_t *body;
    size_t body_len;
} tb_bench_mqtt_packet_t;

/* One packet at buf[0..len): bytes taken (> 0), 0 when incomplete, -1 when malformed. */
long tb_bench_mqtt_parse(const uint8_t *buf, size_t len, tb_bench_mqtt_packet_t *p);
/* A PUBLISH packet's application payload; -1 when its body is malformed. */
int tb_bench_mqtt_publish_payload(const tb_bench_mqtt_packet_t *p, const uint8_t **payload,
                                  size_t *len);
/* CONNECT, clean session, no keep-alive, for client_id. Bytes written, 0 when cap is short. */
size_t tb_bench_mqtt_connect(uint8_t *out, size_t cap, const char *client_id);
/* SUBSCRIBE (packet id 1) to one filter at QoS 0. Bytes written, 0 when cap is short. */
size_t tb_bench_mqtt_subscribe(uint8_t *out, size_t cap, const char *filter);

/* ---- The latency stamp --------------------------------------------------------------------- */

/* The member every published message carries: its send time, CLOCK_MONOTONIC nanoseconds. */
#define TB_BENCH_STAMP_KEY "\"bench_t\":"

/* Finds the stamp in text[0..len) and stores it in *ns: 0, or -1 when absent or not a number. */
int tb_bench_find_stamp(const uint8_t *text, size_t len, uint64_t *ns);

/*
 * Finds the first `key` (a JSON member name with its quotes and colon, e.g. "\"seq\":") in
 * text[0..len) and stores the unsigned integer after it in *v: 0, or -1 when absent or not a
 * number that fits 19 digits.
 */
int tb_bench_find_number(const uint8_t *text, size_t len, const char *key, uint64_t *v);

/*
 * Finds the bench's device id in a bridge message text[0..len): the first "device_id" member
 * whose value is "r<run>d<device>" (tools/bench/bench.c names its devices so), and stores the
 * two numbers. 0, or -1 when there is no such member or it is not of that form (a number over
 * 9 digits included).
 */
int tb_bench_find_device(const uint8_t *text, size_t len, unsigned *run, unsigned *device);

/* ---- permessage-deflate (RFC 7692), client side -------------------------------------------- */

/* What Chromium offers (and Firefox, and Node's ws): the extension, any window for the client. */
#define TB_BENCH_PMD_OFFER "permessage-deflate; client_max_window_bits"

typedef struct {
    bool server_no_context_takeover; /* each server message can be inflated on its own */
    bool client_no_context_takeover;
    unsigned server_max_window_bits; /* 8..15; 15 when the answer does not say */
    unsigned client_max_window_bits; /* 8..15; 15 when the answer does not say */
} tb_bench_pmd_t;

/*
 * Reads the Sec-WebSocket-Extensions lines of an HTTP response head[0..len) (status line and
 * header lines, CRLF separated), to the TB_BENCH_PMD_OFFER offer. Returns 1 when the server
 * accepted permessage-deflate (*p filled), 0 when it answered no extension, -1 when the answer
 * is one a client must fail (RFC 7692 §7.1): another extension, permessage-deflate twice, an
 * unknown or repeated parameter, a window-bits value outside 8..15 or missing.
 */
int tb_bench_pmd_answer(const char *head, size_t len, tb_bench_pmd_t *p);

/* Raw DEFLATE inflater for messages (zlib); owned by its creator, freed by _free. */
typedef struct tb_bench_inflater tb_bench_inflater_t;

/* NULL when out of memory. */
tb_bench_inflater_t *tb_bench_inflater_create(void);
void tb_bench_inflater_free(tb_bench_inflater_t *z);

/*
 * Inflates one message's payload in[0..len) into out[0..cap) and stores its length in
 * *out_len, after appending the 00 00 ff ff that the sender removed (RFC 7692 §7.2.2). With
 * keep_window the inflater keeps its 32 KiB window for the next message (the server did not
 * negotiate server_no_context_takeover, so its messages may refer to earlier ones); without it
 * the inflater is reset, and each message must stand alone. Returns 0, -1 when the payload is
 * not valid DEFLATE, -2 when the message inflates to more than cap bytes; after an error the
 * inflater is reset.
 */
int tb_bench_inflate(tb_bench_inflater_t *z, const uint8_t *in, size_t len, bool keep_window,
                     uint8_t *out, size_t cap, size_t *out_len);

/*
 * The messages lately inflated, keyed by their exact compressed bytes. Without context takeover
 * a message's inflated bytes depend on its compressed bytes alone, and a bridge that compresses
 * each frame once sends the same bytes to every recipient: one load generator playing many
 * clients then inflates each distinct message once, and stays cheaper than the server it
 * measures. Never for messages inflated with a kept window. Entries hold copies; a new entry
 * replaces the one in its slot.
 */
typedef struct tb_bench_zcache tb_bench_zcache_t;

/* Holds up to `slots` messages of at most max_len bytes (compressed and inflated); NULL on OOM. */
tb_bench_zcache_t *tb_bench_zcache_create(size_t slots, size_t max_len);
void tb_bench_zcache_free(tb_bench_zcache_t *c);
/* The inflated bytes of compressed in[0..len) (length in *out_len), or NULL when not held. */
const uint8_t *tb_bench_zcache_get(const tb_bench_zcache_t *c, const uint8_t *in, size_t len,
                                   size_t *out_len);
/* Keeps in[0..len) -> out[0..out_len); does nothing when either is over max_len. */
void tb_bench_zcache_put(tb_bench_zcache_t *c, const uint8_t *in, size_t len, const uint8_t *out,
                         size_t out_len);

/* ---- The room mix -------------------------------------------------------------------------- */

typedef enum {
    TB_BENCH_ROOM_DEVICE = 0,
    TB_BENCH_ROOM_GROUP,
    TB_BENCH_ROOM_GLOBAL
} tb_bench_room_t;

#define TB_BENCH_MIX_TOTAL 100

typedef struct {
    unsigned pct[3]; /* indexed by tb_bench_room_t; they sum to TB_BENCH_MIX_TOTAL */
} tb_bench_mix_t;

/* Parses "device=60,group=30,global=10" (any order, missing kinds are 0): 0, or -1. */
int tb_bench_mix_parse(const char *text, tb_bench_mix_t *mix);
/*
 * The room kind of subscriber i. Every run of 100 consecutive subscribers holds exactly the
 * mix's percentages, spread out rather than in blocks.
 */
tb_bench_room_t tb_bench_mix_pick(const tb_bench_mix_t *mix, uint64_t i);

/* ---- Latency histogram --------------------------------------------------------------------- */

/*
 * Counts values (nanoseconds) in log-linear buckets: exact below 2048, then within 1/1024
 * relative; values up to 2^50 (beyond: counted in the last bucket).
 */
typedef struct tb_bench_hist tb_bench_hist_t;

/* NULL when out of memory. */
tb_bench_hist_t *tb_bench_hist_create(void);
void tb_bench_hist_free(tb_bench_hist_t *h);
void tb_bench_hist_record(tb_bench_hist_t *h, uint64_t value);
uint64_t tb_bench_hist_count(const tb_bench_hist_t *h);
uint64_t tb_bench_hist_max(const tb_bench_hist_t *h);
/*
 * The value at quantile q (0 < q <= 1): the upper bound of the bucket holding the
 * ceil(q * count)-th smallest value, never above the maximum recorded. 0 when empty.
 */
uint64_t tb_bench_hist_quantile(const tb_bench_hist_t *h, double q);
/*
 * Walks the non-empty buckets in ascending order, so that histograms of several processes can
 * be merged: from *i (start at 0), finds the next bucket holding values, stores its upper bound
 * (for the overflow bucket, the maximum recorded) in *upper and its count in *count, and moves
 * *i past it. Returns false, changing nothing, when no bucket is left.
 */
bool tb_bench_hist_next(const tb_bench_hist_t *h, size_t *i, uint64_t *upper, uint64_t *count);

#endif
