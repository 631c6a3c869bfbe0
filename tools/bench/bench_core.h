/*
 * bench_core — the pure parts of telebridge-bench, kept apart so they are unit-tested
 * (tests/unit/test_bench.c): WebSocket client framing (RFC 6455), the few MQTT 3.1.1 packets a
 * subscriber needs, the latency stamp in a message, the room mix, and a latency histogram.
 *
 * Nothing here does I/O or allocates except tb_bench_hist_create(). Parsers never read past the
 * length they are given and report "need more bytes" (0) apart from "malformed" (-1).
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
    uint8_t opcode;
    const uint8_t *payload; /* points into the parsed buffer; unmasked frames only */
    uint64_t len;
} tb_bench_ws_frame_t;

/*
 * Parses one frame at buf[0..len). Returns the bytes it takes (> 0) and fills *f, 0 when buf
 * holds only part of it, -1 when it is malformed: reserved bits set, an unknown opcode, a
 * masked frame (servers never mask, RFC 6455 §5.1), a control frame over 125 bytes or
 * fragmented, or a length over max_len.
 */
long tb_bench_ws_parse(const uint8_t *buf, size_t len, uint64_t max_len, tb_bench_ws_frame_t *f);

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

#endif
