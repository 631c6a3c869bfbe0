/*
 * telebridge-bench — a load generator for telebridge and its peers.
 *
 * Opens N WebSocket subscribers (epoll, non-blocking sockets, several 127.0.0.x source
 * addresses), joins each to one room of the mix, publishes telemetry over MQTT from a second
 * thread (libmosquitto) at a fixed rate or as fast as the subscribers receive it, and measures
 * deliveries, loss and end-to-end latency from the send time each message carries. Prints one
 * JSON line on stdout and a table on stderr. Exit status: 0 done (with --check: and nothing
 * lost, no subscriber failed), 1 failure, 2 usage error.
 *
 * Targets (--target): telebridge and node speak the bridge protocol (connected, subscribe,
 * subscribed); mqtt-ws is MQTT 3.1.1 over WebSocket (mosquitto's listener); raw is the ceiling
 * server, which sends every message to every subscriber with no handshake after the upgrade.
 *
 * Workload: devices d0..dD-1 of run r, device k in group g(k mod G), published on
 * "bench/g<j>/r<run>d<k>/telemetry" as {"bench_t":<CLOCK_MONOTONIC ns>,"value":<i>}.
 *
 * Idle connections (--idle N) are opened beside the subscribers, as a fleet of quiet dashboard
 * tabs: the same handshake and token, then a subscription to a room no device publishes to
 * (device:r<run>-idle; MQTT: bench/idle/r<run>/telemetry), or none with --idle-bare. Afterwards
 * they only answer pings, so the server's heartbeat keeps them open.
 *
 * Every subscriber is checked on its own: at the end, the messages it received of this run are
 * compared with those published to its room, and the report counts the subscribers that
 * received fewer (`conns_missing`, a subscriber that never got ready included) or more
 * (`conns_extra`), and those whose room got no message, whose check proves nothing
 * (`conns_unchecked`). Several bench processes may load one fleet of bridges at once (tools/bench/
 * fleet.sh): a message of another process's run (its device id names the run) reaching a group
 * or global subscriber is counted as `foreign`, apart from this run's deliveries; --source-base
 * gives each process its own source addresses, and --ready-file / --go-file line their runs up:
 * each creates its ready file once connected and keeps serving its connections (pings
 * included) until the go file exists, then publishes.
 *
 * --deflate offers permessage-deflate as Chromium does (TB_BENCH_PMD_OFFER), inflates every
 * compressed message (a window per connection when the server keeps its context, else one
 * inflater reset per message) and checks the inflated bytes as it checks plain ones; the report
 * counts the bytes on the wire and the bytes of the messages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_core.h"

#define EXIT_USAGE 2
#define NS_PER_S 1000000000ULL
#define NS_PER_US 1000ULL
#define READ_BUF (256 * 1024)
#define MAX_EVENTS 512
#define EPOLL_WAIT_MS 5
/* Longest server frame the bench accepts (a bridge frame is a few hundred bytes). */
#define MAX_FRAME (1u << 20)
#define REQUEST_MAX 4096
#define HEADER_MAX 4096
/* How the bridge marks last-value snapshot frames in their envelope. */
#define SNAPSHOT_MARK "\"snapshot\":true"
#define TOPIC_MAX 128
#define PAYLOAD_MAX 320
#define SEQ_KEY "\"seq\":"
/* Inflated messages kept (tb_bench_zcache_t): more than the messages in flight at once. */
#define ZCACHE_SLOTS 1024
#define ZCACHE_MAX_LEN 4096
#define DEMO_FIRMWARE "1.4.2" /* tools/simulate.py's */
#define CLIENT_ID_MAX 32
/* One source address per this many connections (a loopback address has ~28k ports). */
#define SUBS_PER_SOURCE 20000
#define LOOPBACK_LAST 254 /* source addresses are 127.0.0.1..254 */
#define DEFAULT_SUBS 1000
#define DEFAULT_DEVICES 100
#define DEFAULT_GROUPS 10
#define DEFAULT_DURATION_S 5.0
#define DEFAULT_WINDOW 64
#define DEFAULT_PARALLEL 256
#define DEFAULT_DRAIN_S 3.0
#define CONNECT_TIMEOUT_BASE_S 30.0
#define CONNECT_TIMEOUT_PER_SUB_S 0.01
#define MQTT_KEEPALIVE_S 60
#define MQTT_CONNECT_WAIT_NS (5 * NS_PER_S)
#define PUBLISH_POLL_NS 20000L
#define GO_WAIT_S 600 /* the longest --go-file wait */
#define GO_POLL_MS 50
#define PERCENT 100.0

typedef enum { TARGET_TELEBRIDGE = 0, TARGET_NODE, TARGET_MQTT_WS, TARGET_RAW } target_t;

static const char *const TARGET_NAMES[] = {"telebridge", "node", "mqtt-ws", "raw"};

/* What a published message holds besides its stamp and counter. */
typedef enum { PAYLOAD_MINIMAL = 0, PAYLOAD_DEMO } payload_t;

static const char *const PAYLOAD_NAMES[] = {"minimal", "demo"};

typedef enum {
    ST_CONNECTING = 0,
    ST_HANDSHAKE,
    ST_WAIT_WELCOME, /* bridge: `connected`; MQTT: CONNACK */
    ST_WAIT_JOINED,  /* bridge: `subscribed`; MQTT: SUBACK */
    ST_READY,
    ST_DEAD
} conn_state_t;

/* Longest --subscribe-options. */
#define SUB_OPTIONS_MAX 256

typedef struct {
    const char *host;
    int port;
    const char *path;
    const char *token;
    target_t target;
    unsigned subs;
    unsigned idle;           /* idle connections opened beside the subscribers */
    bool idle_bare;          /* idle connections subscribe to nothing */
    bool deflate;            /* offer permessage-deflate */
    const char *sub_options; /* members added to each subscriber's subscribe payload, or NULL */
    payload_t payload;
    tb_bench_mix_t mix;
    unsigned devices;
    unsigned groups;
    unsigned sources;
    unsigned source_base; /* the first source address is 127.0.0.<source_base> */
    const char *mqtt_host;
    int mqtt_port;
    int qos;
    double rate;    /* messages/s; 0: as fast as delivered (closed loop, `window` in flight) */
    double offered; /* deliveries/s; > 0: sets rate to offered / mean fan-out after connecting */
    double duration_s;
    double messages;         /* > 0: stop after this many messages (or the duration) */
    const char *exec_before; /* a shell command run before publishing, or NULL */
    const char *exec_after;  /* a shell command run after the last delivery, or NULL */
    const char *ready_file;  /* created once every connection is made, or NULL */
    const char *go_file;     /* publishing waits for it to exist, or NULL */
    const char *hist_file;   /* the latency histogram is written there, or NULL */
    unsigned window;
    unsigned parallel;
    double drain_s;
    int server_pid;
    int broker_pid;
    bool check;
    const char *label;
} opts_t;

/* Bytes of a frame or packet that arrived in part, kept until the rest comes. */
typedef struct {
    uint8_t *data;
    uint32_t len;
    uint32_t cap;
} carry_t;

typedef struct {
    int fd;
    uint8_t state;
    uint8_t kind;       /* tb_bench_room_t */
    bool idle;          /* one of the --idle connections */
    bool deflate;       /* permessage-deflate negotiated */
    bool keep_window;   /* ... without server_no_context_takeover: inflate with c->z */
    uint8_t msg_opcode; /* the fragmented message in c->msg: its opcode, 0 when none */
    bool msg_deflated;
    uint32_t room;
    uint32_t received; /* this run's messages delivered to it (not snapshots, not foreign) */
    uint64_t last_seq; /* of the last live bridge message */
    carry_t ws;
    carry_t mqtt;
    carry_t msg;
    tb_bench_inflater_t *z; /* created with the first compressed message, keep_window only */
} conn_t;

/* What the publisher thread shares with the receiving one. */
typedef struct {
    const opts_t *o;
    char (*topics)[TOPIC_MAX];
    const uint64_t *fanout; /* deliveries each device's message should make */
    uint64_t *per_device;   /* messages published per device; read once the thread is joined */
    atomic_ullong published;
    atomic_ullong sent; /* messages libmosquitto has written (QoS 0) or had acknowledged */
    atomic_ullong expected;
    atomic_ullong delivered;
    atomic_bool connected;
    atomic_bool done;
    atomic_bool failed;
    struct mosquitto *mosq;
    double rate;        /* messages/s published at; 0: closed loop */
    double mean_fanout; /* deliveries per message, averaged over the devices */
    uint64_t t_first_ns;
    uint64_t t_last_ns;
} pub_t;

typedef struct {
    const opts_t *o;
    conn_t *conns;
    int epfd;
    uint8_t *rbuf;
    uint8_t *ibuf;                 /* an inflated message */
    tb_bench_inflater_t *shared_z; /* for connections without keep_window */
    tb_bench_zcache_t *zcache;     /* their messages, inflated once per distinct bytes */
    tb_bench_hist_t *hist;
    char request[REQUEST_MAX];
    size_t request_len;
    unsigned run_id;
    uint64_t run_t0;
    uint64_t now;
    unsigned total; /* o->subs + o->idle connections, subscribers first */
    unsigned ready, dead, failed_handshake, closed_later, inflight;
    unsigned idle_ready, idle_closed; /* the idle ones among ready and closed_later */
    uint64_t delivered, stale, protocol_errors;
    uint64_t idle_received; /* stamped messages that reached an idle connection */
    uint64_t foreign;       /* messages of another bench process's run (group and global rooms) */
    uint64_t misrouted;     /* messages of this run from a device the connection's room lacks */
    unsigned conns_missing, conns_extra;  /* subscribers given fewer / more than published */
    unsigned conns_unchecked;             /* subscribers whose room got no message at all */
    uint64_t pings;                       /* pings answered, on any connection */
    unsigned deflate_conns, window_conns; /* negotiated; of those, server context kept */
    uint64_t deflated_messages, zcache_hits;
    uint64_t wire_bytes, message_bytes;      /* received from run_t0 on: all bytes; messages' */
    uint64_t out_of_order;                   /* a live message whose seq is not above the last */
    unsigned server_closes, last_close_code; /* Close frames received; the last one's code */
    uint64_t last_delivery_ns;
} bench_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns)
{
    return (double)ns / (double)NS_PER_S;
}

/* What a frame handler returns when the server sent a Close frame (other failures: -1). */
#define CONN_CLOSED (-2)

/* ---- per-connection I/O --------------------------------------------------------------------- */

static void conn_free_buffers(conn_t *c)
{
    free(c->ws.data);
    free(c->mqtt.data);
    free(c->msg.data);
    tb_bench_inflater_free(c->z);
    c->ws = (carry_t){0};
    c->mqtt = (carry_t){0};
    c->msg = (carry_t){0};
    c->z = NULL;
}

/* inflight counts the subscribers between conn_start() and READY. */
static void conn_kill(bench_t *b, conn_t *c)
{
    if (c->state == ST_DEAD)
        return;
    if (c->state == ST_READY) {
        b->ready--;
        b->closed_later++;
        if (c->idle) {
            b->idle_ready--;
            b->idle_closed++;
        }
    } else {
        b->inflight--;
        b->failed_handshake++;
    }
    c->state = ST_DEAD;
    b->dead++;
    close(c->fd);
    c->fd = -1;
    conn_free_buffers(c);
}

static void conn_ready(bench_t *b, conn_t *c)
{
    c->state = ST_READY;
    b->ready++;
    b->idle_ready += c->idle;
    b->inflight--;
}

/* Small writes to a fresh socket go out whole; a short one is a failure. */
static int conn_send(conn_t *c, const void *buf, size_t len)
{
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : -1;
}

static int conn_send_frame(conn_t *c, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t out[TB_BENCH_WS_MAX_HDR + REQUEST_MAX];
    size_t n = tb_bench_ws_encode(out, sizeof(out), opcode, payload, len);
    return n ? conn_send(c, out, n) : -1;
}

static int carry_append(carry_t *k, const uint8_t *data, size_t len)
{
    if (len > MAX_FRAME || k->len + len > 2 * MAX_FRAME)
        return -1;
    if (k->len + len > k->cap) {
        uint32_t cap = k->cap ? k->cap : 256;
        while (cap < k->len + len)
            cap *= 2;
        uint8_t *p = realloc(k->data, cap);
        if (!p)
            return -1;
        k->data = p;
        k->cap = cap;
    }
    memcpy(k->data + k->len, data, len);
    k->len += (uint32_t)len;
    return 0;
}

/* Keeps buf[used..len) for the next read; frees the carry when nothing is left. */
static int carry_keep(carry_t *k, const uint8_t *buf, size_t used, size_t len)
{
    if (buf == k->data) {
        memmove(k->data, k->data + used, len - used);
        k->len = (uint32_t)(len - used);
    } else if (used < len) {
        k->len = 0;
        if (carry_append(k, buf + used, len - used) != 0)
            return -1;
    }
    if (k->len == 0) {
        free(k->data);
        *k = (carry_t){0};
    }
    return 0;
}

/* ---- the subscriber's protocol -------------------------------------------------------------- */

/* Whether subscriber c's room gets device d's messages. */
static bool conn_wants(const opts_t *o, const conn_t *c, unsigned d)
{
    return o->target == TARGET_RAW || c->kind == TB_BENCH_ROOM_GLOBAL ||
           (c->kind == TB_BENCH_ROOM_DEVICE && c->room == d) ||
           (c->kind == TB_BENCH_ROOM_GROUP && c->room == d % o->groups);
}

/*
 * Sorts out a message that names a bench device: 1 when it is another run's (foreign), -1 when
 * it is this run's but c's room does not cover its device, 0 otherwise (a message that names no
 * bench device, as MQTT payloads and the raw server's do, included).
 */
static int check_origin(bench_t *b, const conn_t *c, const uint8_t *msg, size_t len)
{
    unsigned run, dev;
    if (tb_bench_find_device(msg, len, &run, &dev) != 0)
        return 0;
    if (run != b->run_id)
        return 1;
    return dev < b->o->devices && conn_wants(b->o, c, dev) ? 0 : -1;
}

static void on_stamped(bench_t *b, conn_t *c, const uint8_t *msg, size_t len)
{
    uint64_t stamp;
    if (tb_bench_find_stamp(msg, len, &stamp) != 0)
        return; /* not a bench message (a control answer, a status) */
    if (c->idle) {
        b->idle_received++;
        return;
    }
    int origin = check_origin(b, c, msg, len);
    if (origin != 0) {
        b->foreign += origin > 0;
        b->misrouted += origin < 0;
        return;
    }
    /*
     * A snapshot (last values sent on subscribe, maybe before run_t0 is set) or a stamp from
     * before this run is not a delivery of this run: its age is not a latency.
     */
    if (stamp < b->run_t0 || memmem(msg, len, SNAPSHOT_MARK, strlen(SNAPSHOT_MARK))) {
        b->stale++;
        return;
    }
    uint64_t seq;
    if (tb_bench_find_number(msg, len, SEQ_KEY, &seq) == 0) {
        b->out_of_order += seq <= c->last_seq;
        c->last_seq = seq;
    }
    b->delivered++;
    c->received++;
    b->last_delivery_ns = b->now;
    tb_bench_hist_record(b->hist, b->now > stamp ? b->now - stamp : 0);
}

static bool has(const uint8_t *msg, size_t len, const char *needle)
{
    return memmem(msg, len, needle, strlen(needle)) != NULL;
}

/* Every bridge message is a JSON object: a cut or spliced one rarely still looks like one. */
static int on_text(bench_t *b, conn_t *c, const uint8_t *msg, size_t len)
{
    if (len < 2 || msg[0] != '{' || msg[len - 1] != '}')
        return -1;
    if (c->state == ST_READY) {
        on_stamped(b, c, msg, len);
        return 0;
    }
    if (c->state == ST_WAIT_WELCOME && has(msg, len, "\"type\":\"connected\"")) {
        char sub[TOPIC_MAX + 64 + SUB_OPTIONS_MAX];
        static const char *const fmt[] = {"device:r%ud%u", "group:g%u", "global"};
        char room[TOPIC_MAX];
        if (c->idle && b->o->idle_bare) {
            conn_ready(b, c);
            return 0;
        }
        if (c->idle)
            snprintf(room, sizeof(room), "device:r%u-idle", b->run_id);
        else
            snprintf(room, sizeof(room), fmt[c->kind], c->kind == 0 ? b->run_id : c->room, c->room);
        const char *opts = c->idle ? NULL : b->o->sub_options;
        int n = snprintf(sub, sizeof(sub),
                         "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"%s\"]%s%s}}", room,
                         opts ? "," : "", opts ? opts : "");
        if (n < 0 || (size_t)n >= sizeof(sub))
            return -1;
        c->state = ST_WAIT_JOINED;
        return conn_send_frame(c, TB_BENCH_WS_TEXT, sub, (size_t)n);
    }
    if (c->state == ST_WAIT_JOINED && has(msg, len, "\"type\":\"subscribed\"")) {
        conn_ready(b, c);
        return 0;
    }
    if (has(msg, len, "\"type\":\"error\""))
        return -1;
    return 0;
}

static int mqtt_filter(const bench_t *b, const conn_t *c, char *out, size_t cap)
{
    const opts_t *o = b->o;
    if (c->idle)
        return snprintf(out, cap, "bench/idle/r%u/telemetry", b->run_id);
    switch (c->kind) {
    case TB_BENCH_ROOM_DEVICE:
        return snprintf(out, cap, "bench/g%u/r%ud%u/telemetry", c->room % o->groups, b->run_id,
                        c->room);
    case TB_BENCH_ROOM_GROUP:
        return snprintf(out, cap, "bench/g%u/+/telemetry", c->room);
    default:
        return snprintf(out, cap, "bench/+/+/telemetry");
    }
}

static int on_mqtt_packet(bench_t *b, conn_t *c, const tb_bench_mqtt_packet_t *p)
{
    uint8_t out[REQUEST_MAX];
    if (p->type == TB_BENCH_MQTT_PUBLISH && c->state == ST_READY) {
        const uint8_t *payload;
        size_t len;
        if (tb_bench_mqtt_publish_payload(p, &payload, &len) != 0)
            return -1;
        on_stamped(b, c, payload, len);
    } else if (p->type == TB_BENCH_MQTT_CONNACK && c->state == ST_WAIT_WELCOME) {
        char filter[TOPIC_MAX];
        if (p->body_len != 2 || p->body[1] != 0)
            return -1;
        if (c->idle && b->o->idle_bare) {
            conn_ready(b, c);
            return 0;
        }
        mqtt_filter(b, c, filter, sizeof(filter));
        size_t n = tb_bench_mqtt_subscribe(out, sizeof(out), filter);
        c->state = ST_WAIT_JOINED;
        return n ? conn_send_frame(c, TB_BENCH_WS_BINARY, out, n) : -1;
    } else if (p->type == TB_BENCH_MQTT_SUBACK && c->state == ST_WAIT_JOINED) {
        if (p->body_len != 3 || p->body[2] > 2)
            return -1;
        conn_ready(b, c);
    }
    return 0;
}

/* MQTT packets may span WebSocket frames: they are reassembled in c->mqtt. */
static int on_binary(bench_t *b, conn_t *c, const uint8_t *data, size_t len)
{
    const uint8_t *buf = data;
    if (c->mqtt.len) {
        if (carry_append(&c->mqtt, data, len) != 0)
            return -1;
        buf = c->mqtt.data;
        len = c->mqtt.len;
    }
    size_t used = 0;
    for (;;) {
        tb_bench_mqtt_packet_t p;
        long n = tb_bench_mqtt_parse(buf + used, len - used, &p);
        if (n < 0 || (n > 0 && on_mqtt_packet(b, c, &p) != 0))
            return -1;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    return carry_keep(&c->mqtt, buf, used, len);
}

/* The inflater for c's next compressed message; NULL when out of memory. */
static tb_bench_inflater_t *inflater_for(bench_t *b, conn_t *c)
{
    tb_bench_inflater_t **z = c->keep_window ? &c->z : &b->shared_z;
    if (!*z)
        *z = tb_bench_inflater_create();
    return *z;
}

/* One whole message, compressed (RSV1 on its first frame) or not. */
static int on_message(bench_t *b, conn_t *c, uint8_t opcode, bool deflated, const uint8_t *data,
                      size_t len)
{
    if (deflated) {
        size_t n;
        const uint8_t *hit = c->keep_window ? NULL : tb_bench_zcache_get(b->zcache, data, len, &n);
        if (hit) {
            b->zcache_hits++;
        } else {
            tb_bench_inflater_t *z = inflater_for(b, c);
            if (!z || tb_bench_inflate(z, data, len, c->keep_window, b->ibuf, MAX_FRAME, &n) != 0)
                return -1;
            if (!c->keep_window)
                tb_bench_zcache_put(b->zcache, data, len, b->ibuf, n);
            hit = b->ibuf;
        }
        b->deflated_messages++;
        data = hit;
        len = n;
    }
    if (b->run_t0)
        b->message_bytes += len;
    return opcode == TB_BENCH_WS_TEXT ? on_text(b, c, data, len) : on_binary(b, c, data, len);
}

/* A text or binary frame or a continuation; fragments are gathered in c->msg. */
static int on_data_frame(bench_t *b, conn_t *c, const tb_bench_ws_frame_t *f)
{
    if (f->opcode != 0) {
        if (c->msg_opcode)
            return -1; /* a new message inside a fragmented one */
        if (f->fin)
            return on_message(b, c, f->opcode, f->rsv1, f->payload, f->len);
        c->msg_opcode = f->opcode;
        c->msg_deflated = f->rsv1;
        return carry_append(&c->msg, f->payload, f->len);
    }
    if (!c->msg_opcode || carry_append(&c->msg, f->payload, f->len) != 0)
        return -1;
    if (!f->fin)
        return 0;
    carry_t m = c->msg;
    uint8_t opcode = c->msg_opcode;
    c->msg = (carry_t){0};
    c->msg_opcode = 0;
    int rc = on_message(b, c, opcode, c->msg_deflated, m.data, m.len);
    free(m.data);
    return rc;
}

static int on_frame(bench_t *b, conn_t *c, const tb_bench_ws_frame_t *f)
{
    switch (f->opcode) {
    case 0:
    case TB_BENCH_WS_TEXT:
    case TB_BENCH_WS_BINARY:
        return on_data_frame(b, c, f);
    case TB_BENCH_WS_PING:
        b->pings++;
        return conn_send_frame(c, TB_BENCH_WS_PONG, f->payload, f->len);
    case TB_BENCH_WS_PONG:
        return 0;
    default:
        b->server_closes++;
        b->last_close_code = f->len >= 2 ? (unsigned)(f->payload[0] << 8 | f->payload[1]) : 0;
        return CONN_CLOSED;
    }
}

static int on_ws_bytes(bench_t *b, conn_t *c, const uint8_t *data, size_t len)
{
    const uint8_t *buf = data;
    if (c->ws.len) {
        if (carry_append(&c->ws, data, len) != 0)
            return -1;
        buf = c->ws.data;
        len = c->ws.len;
    }
    size_t used = 0;
    while (c->state != ST_DEAD) {
        tb_bench_ws_frame_t f;
        long n = tb_bench_ws_parse(buf + used, len - used, MAX_FRAME, c->deflate, &f);
        int rc = n > 0 ? on_frame(b, c, &f) : 0;
        if (n < 0 || rc != 0)
            return n < 0 ? -1 : rc;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    return carry_keep(&c->ws, buf, used, len);
}

/* After the 101: the bridge protocol waits for `connected`, MQTT sends CONNECT, raw is ready. */
static int on_upgraded(bench_t *b, conn_t *c)
{
    c->state = ST_WAIT_WELCOME;
    if (b->o->target == TARGET_RAW) {
        conn_ready(b, c);
    } else if (b->o->target == TARGET_MQTT_WS) {
        uint8_t out[REQUEST_MAX];
        char id[CLIENT_ID_MAX];
        snprintf(id, sizeof(id), "b%u-%u", b->run_id, (unsigned)(c - b->conns));
        size_t n = tb_bench_mqtt_connect(out, sizeof(out), id);
        return n ? conn_send_frame(c, TB_BENCH_WS_BINARY, out, n) : -1;
    }
    return 0;
}

/* The answer's extensions: permessage-deflate only when offered, nothing else. */
static int on_extensions(bench_t *b, conn_t *c, const char *head, size_t len)
{
    tb_bench_pmd_t pmd;
    int rc = tb_bench_pmd_answer(head, len, &pmd);
    if (rc < 0 || (rc == 1 && !b->o->deflate))
        return -1;
    c->deflate = rc == 1;
    c->keep_window = c->deflate && !pmd.server_no_context_takeover;
    b->deflate_conns += c->deflate;
    b->window_conns += c->keep_window;
    return 0;
}

static int on_handshake_bytes(bench_t *b, conn_t *c, const uint8_t *data, size_t len)
{
    static const char ok[] = "HTTP/1.1 101";
    if (carry_append(&c->ws, data, len) != 0 || c->ws.len > HEADER_MAX)
        return -1;
    uint8_t *end = memmem(c->ws.data, c->ws.len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    if (c->ws.len < sizeof(ok) - 1 || memcmp(c->ws.data, ok, sizeof(ok) - 1) != 0)
        return -1;
    size_t head = (size_t)(end - c->ws.data) + 4;
    size_t rest = c->ws.len - head;
    if (on_extensions(b, c, (const char *)c->ws.data, head) != 0)
        return -1;
    uint8_t tail[HEADER_MAX];
    memcpy(tail, end + 4, rest);
    free(c->ws.data);
    c->ws = (carry_t){0};
    if (on_upgraded(b, c) != 0)
        return -1;
    return rest ? on_ws_bytes(b, c, tail, rest) : 0;
}

static void on_readable(bench_t *b, conn_t *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, b->rbuf, READ_BUF, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_kill(b, c);
            return;
        }
        b->now = now_ns();
        if (b->run_t0)
            b->wire_bytes += (uint64_t)n;
        int rc = c->state == ST_HANDSHAKE ? on_handshake_bytes(b, c, b->rbuf, (size_t)n)
                                          : on_ws_bytes(b, c, b->rbuf, (size_t)n);
        if (rc != 0) {
            b->protocol_errors += rc != CONN_CLOSED;
            conn_kill(b, c);
            return;
        }
        if (n < READ_BUF)
            return;
    }
}

static void on_connected(bench_t *b, conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - b->conns)};
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 ||
        conn_send(c, b->request, b->request_len) != 0 ||
        epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        conn_kill(b, c);
        return;
    }
    c->state = ST_HANDSHAKE;
}

static void conn_start(bench_t *b, conn_t *c, unsigned i)
{
    const opts_t *o = b->o;
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (o->source_base - 1) + i % o->sources);
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    c->idle = i >= o->subs;
    c->kind = (uint8_t)tb_bench_mix_pick(&o->mix, i);
    c->room = i % (c->kind == TB_BENCH_ROOM_GROUP ? o->groups : o->devices);
    c->state = ST_CONNECTING;
    b->inflight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = i};
    if (c->fd < 0 ||
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
        bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) ||
        epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        if (c->fd < 0)
            c->fd = dup(STDERR_FILENO); /* conn_kill closes one */
        conn_kill(b, c);
    }
}

static void poll_once(bench_t *b, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(b->epfd, ev, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = &b->conns[ev[i].data.u32];
        if (c->state == ST_DEAD)
            continue;
        if (c->state == ST_CONNECTING)
            on_connected(b, c);
        else if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(b, c);
    }
}

/* Opens every subscriber, at most o->parallel handshakes at once. 0, or -1 on timeout. */
static int connect_all(bench_t *b)
{
    const opts_t *o = b->o;
    double limit = CONNECT_TIMEOUT_BASE_S + CONNECT_TIMEOUT_PER_SUB_S * b->total;
    uint64_t deadline = now_ns() + (uint64_t)(limit * (double)NS_PER_S);
    unsigned next = 0;
    while (b->ready + b->dead < b->total) {
        while (next < b->total && b->inflight < o->parallel) {
            conn_start(b, &b->conns[next], next);
            next++;
        }
        poll_once(b, EPOLL_WAIT_MS);
        if (now_ns() > deadline)
            return -1;
    }
    return 0;
}

/* ---- the publisher thread ------------------------------------------------------------------- */

static void on_mqtt_connect(struct mosquitto *m, void *arg, int rc)
{
    (void)m;
    pub_t *p = arg;
    if (rc == 0)
        atomic_store(&p->connected, true);
    else
        atomic_store(&p->failed, true);
}

static void on_mqtt_publish(struct mosquitto *m, void *arg, int mid)
{
    (void)m;
    (void)mid;
    pub_t *p = arg;
    atomic_fetch_add(&p->sent, 1);
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / NS_PER_S), .tv_nsec = (long)(t % NS_PER_S)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/*
 * Closed loop: waits while more than the window of messages is in flight end to end, or until
 * end (a server that loses messages never drains its window).
 */
static void wait_window(pub_t *p, double mean_fanout, uint64_t end)
{
    uint64_t limit = (uint64_t)(p->o->window * mean_fanout) + 1;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = PUBLISH_POLL_NS};
    while (atomic_load(&p->expected) > atomic_load(&p->delivered) + limit &&
           !atomic_load(&p->failed) && now_ns() < end)
        nanosleep(&pause, NULL);
}

/*
 * Message i, sent at t. demo: what tools/simulate.py publishes (temperature, humidity,
 * battery; every second message in the fields/tags form), with the stamp and counter added.
 */
static int format_payload(char *out, size_t cap, payload_t kind, uint64_t t, uint64_t i)
{
    unsigned long long ut = (unsigned long long)t, ui = (unsigned long long)i;
    if (kind == PAYLOAD_MINIMAL)
        return snprintf(out, cap, "{%s%llu,\"value\":%llu}", TB_BENCH_STAMP_KEY, ut, ui);
    double temp = 19.5 + (double)(i * 7919 % 300) / 100.0;
    double hum = 40.0 + (double)(i * 104729 % 100) / 10.0;
    double batt = 100.0 - (double)(i % 2000) / 100.0;
    static const char *const kinds[] = {"thermo", "hygro", "multi"};
    if (i % 2)
        return snprintf(out, cap,
                        "{%s%llu,\"value\":%llu,\"temperature\":%.2f,\"humidity\":%.1f,"
                        "\"battery\":%.2f}",
                        TB_BENCH_STAMP_KEY, ut, ui, temp, hum, batt);
    return snprintf(out, cap,
                    "{\"fields\":{%s%llu,\"value\":%llu,\"temperature\":%.2f,\"humidity\":%.1f,"
                    "\"battery\":%.2f},\"tags\":{\"kind\":\"%s\",\"firmware\":\"%s\"}}",
                    TB_BENCH_STAMP_KEY, ut, ui, temp, hum, batt, kinds[i / 2 % 3], DEMO_FIRMWARE);
}

static int publish_all(pub_t *p, struct mosquitto *m)
{
    const opts_t *o = p->o;
    double mean = 0;
    for (unsigned d = 0; d < o->devices; d++)
        mean += (double)p->fanout[d] / o->devices;
    p->rate = o->offered > 0 && mean > 0 ? o->offered / mean : o->rate;
    p->mean_fanout = mean;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(o->duration_s * (double)NS_PER_S);
    p->t_first_ns = t0;
    for (uint64_t i = 0;; i++) {
        if (p->rate > 0)
            sleep_until(t0 + (uint64_t)((double)i * (double)NS_PER_S / p->rate));
        else
            wait_window(p, mean, end);
        uint64_t t = now_ns();
        if (t >= end || atomic_load(&p->failed) || (o->messages > 0 && (double)i >= o->messages))
            break;
        unsigned d = (unsigned)(i % o->devices);
        char payload[PAYLOAD_MAX];
        int n = format_payload(payload, sizeof(payload), o->payload, t, i);
        if (mosquitto_publish(m, NULL, p->topics[d], n, payload, o->qos, false) != MOSQ_ERR_SUCCESS)
            return -1;
        p->per_device[d]++;
        atomic_fetch_add(&p->expected, p->fanout[d]);
        atomic_fetch_add(&p->published, 1);
    }
    p->t_last_ns = now_ns();
    return 0;
}

/*
 * Connects the publisher before any subscriber opens: libmosquitto's loop uses select(), which
 * cannot watch a descriptor above FD_SETSIZE (1024). 0, or -1 (p->mosq NULL or unusable).
 */
static int publisher_connect(pub_t *p)
{
    const opts_t *o = p->o;
    char id[CLIENT_ID_MAX];
    snprintf(id, sizeof(id), "tb-bench-%d", (int)getpid());
    if (!(p->mosq = mosquitto_new(id, true, p)))
        return -1;
    mosquitto_connect_callback_set(p->mosq, on_mqtt_connect);
    mosquitto_publish_callback_set(p->mosq, on_mqtt_publish);
    if (mosquitto_connect(p->mosq, o->mqtt_host, o->mqtt_port, MQTT_KEEPALIVE_S) !=
            MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(p->mosq) != MOSQ_ERR_SUCCESS)
        return -1;
    uint64_t deadline = now_ns() + MQTT_CONNECT_WAIT_NS;
    while (!atomic_load(&p->connected) && !atomic_load(&p->failed) && now_ns() < deadline)
        sleep_until(now_ns() + (uint64_t)PUBLISH_POLL_NS);
    return atomic_load(&p->connected) ? 0 : -1;
}

static void publisher_close(pub_t *p)
{
    if (!p->mosq)
        return;
    mosquitto_disconnect(p->mosq);
    mosquitto_loop_stop(p->mosq, false);
    mosquitto_destroy(p->mosq);
    p->mosq = NULL;
}

static void *publisher_main(void *arg)
{
    pub_t *p = arg;
    if (publish_all(p, p->mosq) != 0)
        atomic_store(&p->failed, true);
    /* Disconnecting discards what libmosquitto still holds: wait until it is all out. */
    uint64_t deadline = now_ns() + MQTT_CONNECT_WAIT_NS;
    while (atomic_load(&p->sent) < atomic_load(&p->published) && now_ns() < deadline)
        sleep_until(now_ns() + (uint64_t)PUBLISH_POLL_NS);
    atomic_store(&p->done, true);
    return NULL;
}

/* ---- measurements ---------------------------------------------------------------------------- */

typedef struct {
    double cpu_s; /* utime + stime */
    long rss_kb;
} proc_sample_t;

/* A process's CPU time and RSS from /proc; -1 values when pid is 0 or gone. */
static proc_sample_t proc_sample(int pid)
{
    proc_sample_t s = {-1, -1};
    char path[64], buf[1024];
    if (pid <= 0)
        return s;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long ut, st;
        /* fields 14 and 15; the command (field 2) may hold spaces but not ") " */
        if (fgets(buf, sizeof(buf), f) && strrchr(buf, ')') &&
            sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) == 2)
            s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof(buf), f))
        if (sscanf(buf, "VmRSS: %ld kB", &s.rss_kb) == 1)
            break;
    if (f)
        fclose(f);
    return s;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double cpu_pct(double a, double b, double wall_s)
{
    return a < 0 || b < 0 || wall_s <= 0 ? -1 : (b - a) / wall_s * PERCENT;
}

/* ---- the run -------------------------------------------------------------------------------- */

typedef struct {
    uint64_t t_connect_ns;
    long rss_before_kb, rss_connected_kb;
    proc_sample_t server0, server1, broker0, broker1;
    double self0, self1;
    uint64_t t0, t1; /* when the samples were taken */
} measures_t;

/* Deliveries each device's message should make, counted over the subscribers that are READY. */
static uint64_t *fanouts(const bench_t *b)
{
    const opts_t *o = b->o;
    uint64_t *fan = calloc(o->devices, sizeof(*fan));
    if (!fan)
        return NULL;
    for (unsigned i = 0; i < o->subs; i++) {
        const conn_t *c = &b->conns[i];
        if (c->state != ST_READY)
            continue;
        for (unsigned d = 0; d < o->devices; d++)
            fan[d] += conn_wants(o, c, d);
    }
    return fan;
}

/*
 * Compares what each subscriber received with what was published to its room (p->per_device is
 * complete once the publisher thread is joined) and fills b->conns_missing and b->conns_extra;
 * a subscriber that never got ready counts as missing when its room had messages. 0, or -1
 * when out of memory.
 */
static int check_conns(bench_t *b, const pub_t *p)
{
    const opts_t *o = b->o;
    uint64_t all = 0;
    uint64_t *group = calloc(o->groups, sizeof(*group));
    if (!group)
        return -1;
    for (unsigned d = 0; d < o->devices; d++) {
        all += p->per_device[d];
        group[d % o->groups] += p->per_device[d];
    }
    for (unsigned i = 0; i < o->subs; i++) {
        const conn_t *c = &b->conns[i];
        uint64_t want = p->per_device[c->room];
        if (o->target == TARGET_RAW || c->kind == TB_BENCH_ROOM_GLOBAL)
            want = all;
        else if (c->kind == TB_BENCH_ROOM_GROUP)
            want = group[c->room];
        b->conns_missing += c->received < want;
        b->conns_extra += c->received > want;
        b->conns_unchecked += want == 0;
    }
    free(group);
    return 0;
}

static bool drained(const bench_t *b, pub_t *p, uint64_t pub_end)
{
    uint64_t quiet_since = b->last_delivery_ns > pub_end ? b->last_delivery_ns : pub_end;
    return b->delivered >= atomic_load(&p->expected) ||
           b->now - quiet_since > (uint64_t)(b->o->drain_s * (double)NS_PER_S);
}

/*
 * --ready-file and --go-file: creates the one, then serves the connections until the other
 * exists. 0, or -1 when the ready file cannot be created or the go file does not come within
 * GO_WAIT_S.
 */
static int wait_go(bench_t *b)
{
    const opts_t *o = b->o;
    if (o->ready_file) {
        int fd = open(o->ready_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "telebridge-bench: cannot create %s: %s\n", o->ready_file,
                    strerror(errno));
            return -1;
        }
        close(fd);
    }
    uint64_t deadline = now_ns() + GO_WAIT_S * NS_PER_S;
    while (o->go_file && access(o->go_file, F_OK) != 0) {
        if (now_ns() > deadline) {
            fprintf(stderr, "telebridge-bench: no %s after %d s\n", o->go_file, GO_WAIT_S);
            return -1;
        }
        poll_once(b, GO_POLL_MS);
    }
    return 0;
}

/* Runs a --exec-before/--exec-after command (NULL: none); 0 when it exited 0. */
static int run_hook(const char *cmd)
{
    if (!cmd)
        return 0;
    fflush(NULL);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "telebridge-bench: '%s' failed (%d)\n", cmd, rc);
    return rc == 0 ? 0 : -1;
}

/* Publishes from a second thread while this one receives; then waits for the stragglers. */
static int run_publish(bench_t *b, pub_t *p, measures_t *m)
{
    const opts_t *o = b->o;
    pthread_t th;
    m->server0 = proc_sample(o->server_pid);
    m->broker0 = proc_sample(o->broker_pid);
    m->self0 = self_cpu_s();
    m->t0 = now_ns();
    b->run_t0 = m->t0;
    if (run_hook(o->exec_before) != 0 || pthread_create(&th, NULL, publisher_main, p) != 0)
        return -1;
    uint64_t pub_end = 0;
    for (;;) {
        poll_once(b, EPOLL_WAIT_MS);
        atomic_store(&p->delivered, b->delivered);
        b->now = now_ns();
        if (!pub_end && atomic_load(&p->done)) {
            pub_end = b->now;
            m->server1 = proc_sample(o->server_pid);
            m->broker1 = proc_sample(o->broker_pid);
            m->self1 = self_cpu_s();
            m->t1 = pub_end;
        }
        if (pub_end && drained(b, p, pub_end))
            break;
    }
    pthread_join(th, NULL);
    return atomic_load(&p->failed) || run_hook(o->exec_after) != 0 ? -1 : 0;
}

/*
 * The idle connections and the server's CPU time per message and per delivery (what the
 * idle-heavy and compressing figures are computed from). 0, or -1 when out of memory.
 */
static int report_extra(json_t *r, const bench_t *b, pub_t *p, const measures_t *m)
{
    double cpu =
        m->server0.cpu_s < 0 || m->server1.cpu_s < 0 ? -1 : m->server1.cpu_s - m->server0.cpu_s;
    uint64_t published = atomic_load(&p->published);
    double us = (double)NS_PER_S / (double)NS_PER_US;
    double per_msg = cpu >= 0 && published ? cpu * us / (double)published : -1;
    double per_delivery = cpu >= 0 && b->delivered ? cpu * us / (double)b->delivered : -1;
    double wire_per = b->delivered ? (double)b->wire_bytes / (double)b->delivered : -1;
    json_t *x = json_pack(
        "{s:i, s:i, s:i, s:I, s:I, s:f, s:f, s:f}", "idle", (int)b->o->idle, "idle_ready",
        (int)(b->idle_ready + b->idle_closed), "idle_closed", (int)b->idle_closed, "idle_received",
        (json_int_t)b->idle_received, "pings", (json_int_t)b->pings, "server_cpu_s", cpu,
        "server_cpu_us_per_message", per_msg, "server_cpu_us_per_delivery", per_delivery);
    json_t *z = json_pack(
        "{s:b, s:s, s:s?, s:i, s:i, s:I, s:I, s:I, s:I, s:f, s:I, s:i, s:i}", "deflate",
        b->o->deflate, "payload", PAYLOAD_NAMES[b->o->payload], "subscribe_options",
        b->o->sub_options, "deflate_conns", (int)b->deflate_conns, "context_takeover_conns",
        (int)b->window_conns, "deflated_messages", (json_int_t)b->deflated_messages,
        "inflate_cache_hits", (json_int_t)b->zcache_hits, "wire_bytes", (json_int_t)b->wire_bytes,
        "message_bytes", (json_int_t)b->message_bytes, "wire_bytes_per_delivery", wire_per,
        "out_of_order", (json_int_t)b->out_of_order, "server_closes", (int)b->server_closes,
        "last_close_code", (int)b->last_close_code);
    json_t *v =
        json_pack("{s:i, s:i, s:i, s:I, s:I, s:i, s:i}", "conns_missing", (int)b->conns_missing,
                  "conns_extra", (int)b->conns_extra, "conns_unchecked", (int)b->conns_unchecked,
                  "foreign", (json_int_t)b->foreign, "misrouted", (json_int_t)b->misrouted,
                  "source_base", (int)b->o->source_base, "sources", (int)b->o->sources);
    int rc = x && z && v && json_object_update(r, x) == 0 && json_object_update(r, z) == 0 &&
                     json_object_update(r, v) == 0
                 ? 0
                 : -1;
    json_decref(x);
    json_decref(z);
    json_decref(v);
    return rc;
}

static json_t *report_json(const bench_t *b, pub_t *p, const measures_t *m)
{
    const opts_t *o = b->o;
    double pub_s = secs(p->t_last_ns - p->t_first_ns);
    uint64_t expected = atomic_load(&p->expected);
    uint64_t span = b->last_delivery_ns > p->t_first_ns ? b->last_delivery_ns - p->t_first_ns : 0;
    double wall = secs(m->t1 - m->t0);
    long rss_delta = m->rss_connected_kb - m->rss_before_kb;
    double q[] = {0.5, 0.99, 0.999};
    uint64_t lat[3];
    for (int i = 0; i < 3; i++)
        lat[i] = tb_bench_hist_quantile(b->hist, q[i]) / NS_PER_US;
    unsigned idle_ready = b->idle_ready + b->idle_closed;
    json_t *r = json_pack(
        "{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, "
        "s:I, "
        "s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:I, s:I}",
        "label", o->label ? o->label : TARGET_NAMES[o->target], "target", TARGET_NAMES[o->target],
        "subscribers", (int)o->subs, "ready", (int)(b->ready + b->closed_later - idle_ready),
        "rate", p->rate, "offered_per_s", p->rate * p->mean_fanout, "publish_s", pub_s, "published",
        (json_int_t)atomic_load(&p->published), "expected", (json_int_t)expected, "delivered",
        (json_int_t)b->delivered, "lost",
        (json_int_t)(expected > b->delivered ? expected - b->delivered : 0), "stale",
        (json_int_t)b->stale, "deliveries_per_s", span ? (double)b->delivered / secs(span) : 0.0,
        "messages_per_s", pub_s > 0 ? (double)atomic_load(&p->published) / pub_s : 0.0, "p50_us",
        (json_int_t)lat[0], "p99_us", (json_int_t)lat[1], "p999_us", (json_int_t)lat[2], "max_us",
        (json_int_t)(tb_bench_hist_max(b->hist) / NS_PER_US), "server_cpu_pct",
        cpu_pct(m->server0.cpu_s, m->server1.cpu_s, wall), "broker_cpu_pct",
        cpu_pct(m->broker0.cpu_s, m->broker1.cpu_s, wall), "server_rss_kb",
        (json_int_t)m->rss_connected_kb, "rss_per_conn_bytes",
        m->rss_before_kb >= 0 && b->ready ? (double)rss_delta * 1024.0 / b->ready : -1.0,
        "connects_per_s",
        m->t_connect_ns ? (double)(b->ready + b->closed_later) / secs(m->t_connect_ns) : 0.0,
        "bench_cpu_pct", cpu_pct(m->self0, m->self1, wall), "failed_connects",
        (json_int_t)b->failed_handshake, "closed_during_run", (json_int_t)b->closed_later,
        "protocol_errors", (json_int_t)b->protocol_errors);
    if (r && report_extra(r, b, p, m) != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static void print_table(json_t *r)
{
    static const char *const keys[] = {"label",
                                       "subscribers",
                                       "rate",
                                       "messages_per_s",
                                       "published",
                                       "expected",
                                       "delivered",
                                       "lost",
                                       "conns_missing",
                                       "foreign",
                                       "deliveries_per_s",
                                       "p50_us",
                                       "p99_us",
                                       "p999_us",
                                       "max_us",
                                       "server_cpu_pct",
                                       "broker_cpu_pct",
                                       "bench_cpu_pct",
                                       "server_rss_kb",
                                       "rss_per_conn_bytes",
                                       "connects_per_s",
                                       "failed_connects",
                                       "closed_during_run",
                                       "idle_ready",
                                       "server_cpu_us_per_message",
                                       "deflate_conns",
                                       "wire_bytes_per_delivery"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(r, keys[i]);
        if (json_is_string(v))
            fprintf(stderr, "  %-20s %s\n", keys[i], json_string_value(v));
        else if (json_is_integer(v))
            fprintf(stderr, "  %-20s %lld\n", keys[i], (long long)json_integer_value(v));
        else
            fprintf(stderr, "  %-20s %.1f\n", keys[i], json_real_value(v));
    }
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int build_request(bench_t *b)
{
    const opts_t *o = b->o;
    int n = snprintf(b->request, sizeof(b->request),
                     "GET %s%s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s\r\n",
                     o->path, o->token ? "?token=" : "", o->token ? o->token : "", o->host, o->port,
                     o->target == TARGET_MQTT_WS ? "Sec-WebSocket-Protocol: mqtt\r\n" : "",
                     o->deflate ? "Sec-WebSocket-Extensions: " TB_BENCH_PMD_OFFER "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(b->request))
        return -1;
    b->request_len = (size_t)n;
    return 0;
}

static char (*make_topics(const bench_t *b))[TOPIC_MAX]
{
    const opts_t *o = b->o;
    char(*t)[TOPIC_MAX] = calloc(o->devices, TOPIC_MAX);
    for (unsigned d = 0; t && d < o->devices; d++)
        snprintf(t[d], TOPIC_MAX, "bench/g%u/r%ud%u/telemetry", d % o->groups, b->run_id, d);
    return t;
}

/* Raises the open-file limit to the hard one: each subscriber is a descriptor. */
static void raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fprintf(stderr, "telebridge-bench: open-file limit %llu < %u connections\n",
                (unsigned long long)rl.rlim_cur, need);
}

static int bench_init(bench_t *b, const opts_t *o)
{
    *b = (bench_t){.o = o, .epfd = -1};
    b->run_id = (unsigned)((now_ns() ^ (uint64_t)getpid()) % 1000000);
    b->total = o->subs + o->idle;
    b->conns = calloc(b->total, sizeof(conn_t));
    b->rbuf = malloc(READ_BUF);
    b->ibuf = malloc(MAX_FRAME);
    b->zcache = tb_bench_zcache_create(ZCACHE_SLOTS, ZCACHE_MAX_LEN);
    b->hist = tb_bench_hist_create();
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!b->conns || !b->rbuf || !b->ibuf || !b->zcache || !b->hist || b->epfd < 0 ||
        build_request(b) != 0)
        return -1;
    return 0;
}

static void bench_free(bench_t *b)
{
    for (unsigned i = 0; b->conns && i < b->total; i++)
        if (b->conns[i].state != ST_DEAD && b->conns[i].fd >= 0) {
            close(b->conns[i].fd);
            conn_free_buffers(&b->conns[i]);
        }
    free(b->conns);
    free(b->rbuf);
    free(b->ibuf);
    tb_bench_inflater_free(b->shared_z);
    tb_bench_zcache_free(b->zcache);
    tb_bench_hist_free(b->hist);
    if (b->epfd >= 0)
        close(b->epfd);
}

/*
 * --hist-file: the latency histogram's non-empty buckets, one "upper-bound-ns count" line each
 * in ascending order, for merging the histograms of several bench processes (fleet.sh).
 * 0, or -1 when the file cannot be written.
 */
static int write_hist(const bench_t *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "telebridge-bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t i = 0;
    uint64_t up, n;
    while (tb_bench_hist_next(b->hist, &i, &up, &n))
        fprintf(f, "%llu %llu\n", (unsigned long long)up, (unsigned long long)n);
    return fclose(f) == 0 ? 0 : -1;
}

/* Connects, publishes, reports. Returns the exit status. */
static int bench_run(const opts_t *o)
{
    bench_t b;
    measures_t m = {0};
    pub_t p = {.o = o};
    int status = 1;
    uint64_t *fan = NULL;
    raise_nofile(o->subs + o->idle + 64);
    if (bench_init(&b, o) != 0)
        goto out;
    if (o->duration_s > 0 && publisher_connect(&p) != 0) {
        fprintf(stderr, "telebridge-bench: cannot connect to the broker %s:%d\n", o->mqtt_host,
                o->mqtt_port);
        goto out;
    }
    m.rss_before_kb = proc_sample(o->server_pid).rss_kb;
    uint64_t t = now_ns();
    if (connect_all(&b) != 0)
        fprintf(stderr, "telebridge-bench: connect phase timed out\n");
    m.t_connect_ns = now_ns() - t;
    m.rss_connected_kb = proc_sample(o->server_pid).rss_kb;
    if (wait_go(&b) != 0)
        goto out;
    fan = fanouts(&b);
    p.fanout = fan;
    p.topics = make_topics(&b);
    p.per_device = calloc(o->devices, sizeof(*p.per_device));
    if (!fan || !p.topics || !p.per_device)
        goto out;
    if (o->duration_s > 0 && run_publish(&b, &p, &m) != 0)
        fprintf(stderr, "telebridge-bench: publishing failed\n");
    if (check_conns(&b, &p) != 0)
        goto out;
    json_t *r = report_json(&b, &p, &m);
    if (!r)
        goto out;
    char *line = json_dumps(r, JSON_COMPACT);
    if (line)
        printf("%s\n", line);
    free(line);
    print_table(r);
    json_decref(r);
    if (o->hist_file && write_hist(&b, o->hist_file) != 0)
        goto out;
    bool clean = b.failed_handshake == 0 && b.closed_later == 0 && b.out_of_order == 0 &&
                 b.conns_missing == 0 && b.conns_extra == 0 && b.misrouted == 0 &&
                 !atomic_load(&p.failed) && b.delivered == atomic_load(&p.expected) &&
                 (o->duration_s <= 0 || b.delivered > 0);
    status = !o->check || clean ? 0 : 1;
out:
    publisher_close(&p);
    free(fan);
    free(p.topics);
    free(p.per_device);
    bench_free(&b);
    return status;
}

/* ---- options --------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: telebridge-bench [options]\n"
            "  --target T        telebridge (default) | node | mqtt-ws | raw\n"
            "  --host H --port P WebSocket server (127.0.0.1:8080); --path (/ws, mqtt-ws: /mqtt)\n"
            "  --token JWT       sent as ?token= (or env TB_BENCH_TOKEN)\n"
            "  --subs N          subscribers (%d); --sources K: 127.0.0.1..K (1 per %d conns)\n"
            "  --source-base A   the first source address is 127.0.0.A (1), so A..A+K-1\n"
            "  --idle N          idle connections besides: handshake, token, a subscription to a\n"
            "                    room nobody publishes to (--idle-bare: none), then only pongs\n"
            "  --deflate         offer permessage-deflate as Chromium does; inflate, check\n"
            "  --payload P       minimal (default): stamp and counter; demo: tools/simulate.py's\n"
            "  --subscribe-options M   JSON members added to the subscribers' subscribe payload,\n"
            "                    e.g. '\"max_hz\":1' (telebridge; the loss check then counts what\n"
            "                    conflation folded away as missing)\n"
            "  --mix SPEC        device=60,group=30,global=10 (the default)\n"
            "  --devices D --groups G   devices published round-robin (%d), groups (%d)\n"
            "  --mqtt-host H --mqtt-port P --qos Q   the broker to publish to (127.0.0.1:1883, 1)\n"
            "  --rate R          messages/s; 0 (default): as fast as delivered, --window W\n"
            "                    messages in flight end to end (%d)\n"
            "  --offered D       deliveries/s: sets the rate to D / the mean fan-out\n"
            "  --duration S      seconds of publishing (%.0f); 0: connect and measure only\n"
            "  --messages M      stop after M messages (or the duration, whichever is first)\n"
            "  --exec-before CMD --exec-after CMD   shell commands run just before publishing\n"
            "                    and after the last delivery (callgrind_control, perf …)\n"
            "  --ready-file F --go-file G   create F once connected, then serve the\n"
            "                    connections until G exists before publishing (several benches)\n"
            "  --hist-file F     write the latency histogram's buckets to F (for merging)\n"
            "  --parallel C      handshakes in flight (%d); --drain S: wait for stragglers (%.0f)\n"
            "  --server-pid PID --broker-pid PID   measure their CPU and RSS from /proc\n"
            "  --label NAME      the run's name in the report; --check: exit 1 on any loss\n",
            DEFAULT_SUBS, SUBS_PER_SOURCE, DEFAULT_DEVICES, DEFAULT_GROUPS, DEFAULT_WINDOW,
            DEFAULT_DURATION_S, DEFAULT_PARALLEL, DEFAULT_DRAIN_S);
}

static int parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static int parse_target(const char *s, target_t *t)
{
    for (size_t i = 0; i < sizeof(TARGET_NAMES) / sizeof(TARGET_NAMES[0]); i++)
        if (strcmp(s, TARGET_NAMES[i]) == 0) {
            *t = (target_t)i;
            return 0;
        }
    return -1;
}

enum {
    OPT_TARGET = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_PATH,
    OPT_TOKEN,
    OPT_SUBS,
    OPT_SOURCES,
    OPT_SOURCE_BASE,
    OPT_MIX,
    OPT_DEVICES,
    OPT_GROUPS,
    OPT_MQTT_HOST,
    OPT_MQTT_PORT,
    OPT_QOS,
    OPT_RATE,
    OPT_WINDOW,
    OPT_DURATION,
    OPT_PARALLEL,
    OPT_DRAIN,
    OPT_SERVER_PID,
    OPT_BROKER_PID,
    OPT_LABEL,
    OPT_CHECK,
    OPT_OFFERED,
    OPT_MESSAGES,
    OPT_EXEC_BEFORE,
    OPT_EXEC_AFTER,
    OPT_READY_FILE,
    OPT_GO_FILE,
    OPT_HIST_FILE,
    OPT_IDLE,
    OPT_IDLE_BARE,
    OPT_DEFLATE,
    OPT_PAYLOAD,
    OPT_SUB_OPTIONS,
    OPT_HELP
};

static const struct option LONG_OPTS[] = {{"target", 1, NULL, OPT_TARGET},
                                          {"host", 1, NULL, OPT_HOST},
                                          {"port", 1, NULL, OPT_PORT},
                                          {"path", 1, NULL, OPT_PATH},
                                          {"token", 1, NULL, OPT_TOKEN},
                                          {"subs", 1, NULL, OPT_SUBS},
                                          {"sources", 1, NULL, OPT_SOURCES},
                                          {"source-base", 1, NULL, OPT_SOURCE_BASE},
                                          {"mix", 1, NULL, OPT_MIX},
                                          {"devices", 1, NULL, OPT_DEVICES},
                                          {"groups", 1, NULL, OPT_GROUPS},
                                          {"mqtt-host", 1, NULL, OPT_MQTT_HOST},
                                          {"mqtt-port", 1, NULL, OPT_MQTT_PORT},
                                          {"qos", 1, NULL, OPT_QOS},
                                          {"rate", 1, NULL, OPT_RATE},
                                          {"window", 1, NULL, OPT_WINDOW},
                                          {"duration", 1, NULL, OPT_DURATION},
                                          {"parallel", 1, NULL, OPT_PARALLEL},
                                          {"drain", 1, NULL, OPT_DRAIN},
                                          {"server-pid", 1, NULL, OPT_SERVER_PID},
                                          {"broker-pid", 1, NULL, OPT_BROKER_PID},
                                          {"label", 1, NULL, OPT_LABEL},
                                          {"check", 0, NULL, OPT_CHECK},
                                          {"help", 0, NULL, OPT_HELP},
                                          {"offered", 1, NULL, OPT_OFFERED},
                                          {"messages", 1, NULL, OPT_MESSAGES},
                                          {"exec-before", 1, NULL, OPT_EXEC_BEFORE},
                                          {"exec-after", 1, NULL, OPT_EXEC_AFTER},
                                          {"ready-file", 1, NULL, OPT_READY_FILE},
                                          {"go-file", 1, NULL, OPT_GO_FILE},
                                          {"hist-file", 1, NULL, OPT_HIST_FILE},
                                          {"idle", 1, NULL, OPT_IDLE},
                                          {"idle-bare", 0, NULL, OPT_IDLE_BARE},
                                          {"deflate", 0, NULL, OPT_DEFLATE},
                                          {"payload", 1, NULL, OPT_PAYLOAD},
                                          {"subscribe-options", 1, NULL, OPT_SUB_OPTIONS},
                                          {NULL, 0, NULL, 0}};

/* Options with a number: its field in opts_t, that field's type, and its bounds. */
typedef enum { NUM_UNSIGNED, NUM_INT, NUM_DOUBLE } num_type_t;

static const struct {
    int opt;
    size_t offset;
    num_type_t type;
    double min, max;
} NUMBERS[] = {
    {OPT_PORT, offsetof(opts_t, port), NUM_INT, 1, 65535},
    {OPT_SUBS, offsetof(opts_t, subs), NUM_UNSIGNED, 1, 1000000},
    {OPT_IDLE, offsetof(opts_t, idle), NUM_UNSIGNED, 0, 1000000},
    {OPT_SOURCES, offsetof(opts_t, sources), NUM_UNSIGNED, 1, 250},
    {OPT_SOURCE_BASE, offsetof(opts_t, source_base), NUM_UNSIGNED, 1, 254},
    {OPT_DEVICES, offsetof(opts_t, devices), NUM_UNSIGNED, 1, 1000000},
    {OPT_GROUPS, offsetof(opts_t, groups), NUM_UNSIGNED, 1, 100000},
    {OPT_MQTT_PORT, offsetof(opts_t, mqtt_port), NUM_INT, 1, 65535},
    {OPT_QOS, offsetof(opts_t, qos), NUM_INT, 0, 2},
    {OPT_RATE, offsetof(opts_t, rate), NUM_DOUBLE, 0, 1e7},
    {OPT_WINDOW, offsetof(opts_t, window), NUM_UNSIGNED, 1, 1000000},
    {OPT_DURATION, offsetof(opts_t, duration_s), NUM_DOUBLE, 0, 86400},
    {OPT_PARALLEL, offsetof(opts_t, parallel), NUM_UNSIGNED, 1, 100000},
    {OPT_DRAIN, offsetof(opts_t, drain_s), NUM_DOUBLE, 0, 600},
    {OPT_OFFERED, offsetof(opts_t, offered), NUM_DOUBLE, 0, 1e9},
    {OPT_MESSAGES, offsetof(opts_t, messages), NUM_DOUBLE, 0, 1e12},
    {OPT_SERVER_PID, offsetof(opts_t, server_pid), NUM_INT, 1, 1 << 30},
    {OPT_BROKER_PID, offsetof(opts_t, broker_pid), NUM_INT, 1, 1 << 30},
};

/* Sets the numeric option opt from arg: 0, or -1 when it is not a number within its bounds. */
static int set_number(opts_t *o, int opt, const char *arg)
{
    size_t i = 0;
    while (NUMBERS[i].opt != opt)
        i++;
    double v;
    if (parse_number(arg, NUMBERS[i].min, NUMBERS[i].max, &v) != 0)
        return -1;
    char *field = (char *)o + NUMBERS[i].offset;
    if (NUMBERS[i].type == NUM_UNSIGNED)
        *(unsigned *)(void *)field = (unsigned)v;
    else if (NUMBERS[i].type == NUM_INT)
        *(int *)(void *)field = (int)v;
    else
        *(double *)(void *)field = v;
    return 0;
}

static int set_option(opts_t *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_TARGET:
        return parse_target(arg, &o->target);
    case OPT_HOST:
        o->host = arg;
        return 0;
    case OPT_PATH:
        o->path = arg;
        return 0;
    case OPT_TOKEN:
        o->token = arg;
        return 0;
    case OPT_MIX:
        return tb_bench_mix_parse(arg, &o->mix);
    case OPT_MQTT_HOST:
        o->mqtt_host = arg;
        return 0;
    case OPT_EXEC_BEFORE:
        o->exec_before = arg;
        return 0;
    case OPT_EXEC_AFTER:
        o->exec_after = arg;
        return 0;
    case OPT_READY_FILE:
        o->ready_file = arg;
        return 0;
    case OPT_GO_FILE:
        o->go_file = arg;
        return 0;
    case OPT_HIST_FILE:
        o->hist_file = arg;
        return 0;
    case OPT_LABEL:
        o->label = arg;
        return 0;
    case OPT_CHECK:
        o->check = true;
        return 0;
    case OPT_IDLE_BARE:
        o->idle_bare = true;
        return 0;
    case OPT_SUB_OPTIONS:
        if (strlen(arg) > SUB_OPTIONS_MAX)
            return -1;
        o->sub_options = arg;
        return 0;
    case OPT_DEFLATE:
        o->deflate = true;
        return 0;
    case OPT_PAYLOAD:
        for (size_t i = 0; i < sizeof(PAYLOAD_NAMES) / sizeof(PAYLOAD_NAMES[0]); i++)
            if (strcmp(arg, PAYLOAD_NAMES[i]) == 0) {
                o->payload = (payload_t)i;
                return 0;
            }
        return -1;
    default:
        return set_number(o, opt, arg);
    }
}

static void opts_defaults(opts_t *o)
{
    *o = (opts_t){.host = "127.0.0.1",
                  .port = 8080,
                  .subs = DEFAULT_SUBS,
                  .source_base = 1,
                  .devices = DEFAULT_DEVICES,
                  .groups = DEFAULT_GROUPS,
                  .mqtt_host = "127.0.0.1",
                  .mqtt_port = 1883,
                  .qos = 1,
                  .duration_s = DEFAULT_DURATION_S,
                  .window = DEFAULT_WINDOW,
                  .parallel = DEFAULT_PARALLEL,
                  .drain_s = DEFAULT_DRAIN_S,
                  .token = getenv("TB_BENCH_TOKEN")};
    tb_bench_mix_parse("device=60,group=30,global=10", &o->mix);
}

int main(int argc, char **argv)
{
    opts_t o;
    opts_defaults(&o);
    int opt;
    while ((opt = getopt_long(argc, argv, "", LONG_OPTS, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || set_option(&o, opt, optarg) != 0) {
            if (opt != '?')
                fprintf(stderr, "telebridge-bench: bad value: %s\n", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!o.path)
        o.path = o.target == TARGET_MQTT_WS ? "/mqtt" : "/ws";
    if (!o.sources)
        o.sources = (o.subs + o.idle + SUBS_PER_SOURCE - 1) / SUBS_PER_SOURCE;
    if (o.source_base + o.sources - 1 > LOOPBACK_LAST) {
        fprintf(stderr, "telebridge-bench: --source-base %u with %u sources passes 127.0.0.%d\n",
                o.source_base, o.sources, LOOPBACK_LAST);
        return EXIT_USAGE;
    }
    if (o.idle && o.target == TARGET_RAW) {
        fprintf(stderr, "telebridge-bench: --idle: the raw server sends everything to everyone\n");
        return EXIT_USAGE;
    }
    if (o.target == TARGET_MQTT_WS || o.target == TARGET_RAW)
        o.token = NULL;
    mosquitto_lib_init();
    int status = bench_run(&o);
    mosquitto_lib_cleanup();
    return status;
}
