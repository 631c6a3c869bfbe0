/* ws_write — the transport's write path; see src/ws_internal.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "telebridge/frame.h"
#include "telebridge/hub.h"
#include "telebridge/util.h"
#include "ws_internal.h"

/* Seconds a connection asked to close may take to take its close frame. */
#define CLOSE_GRACE_S 2
/* The payload of the bridge's pings (a client's pong echoes it). */
#define PING_PAYLOAD "tb"
/* First size of the array of connections a batch gave frames to (doubled as needed). */
#define PENDING_MIN 64

/*
 * Asks lws to close with code (it sends the Close frame when the callback returns -1, then
 * waits for the client's); from here on nothing else is written to the connection.
 */
int tb_ws_write_close(struct lws *wsi, pss_t *pss, int code, const char *why)
{
    pss->closing = true;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
    return -1;
}

/* The scratch buffer with room for len bytes after LWS_PRE, grown when needed (it only grows
 * past WS_COALESCE_MAX for a frame larger than that). NULL when out of memory. */
unsigned char *tb_ws_write_scratch(tb_server_t *s, size_t len)
{
    if (len > s->scratch_cap) {
        unsigned char *p = realloc(s->scratch, LWS_PRE + len);
        if (!p)
            return NULL;
        s->scratch = p;
        s->scratch_cap = len;
    }
    return s->scratch + LWS_PRE;
}

/*
 * Sends len raw bytes: straight to the socket while lws holds nothing for it, since lws_write
 * runs the extension chain even for LWS_WRITE_RAW, a cost paid on every delivery
 * (docs/performance.md → Instructions per delivery). What the kernel does not take goes through
 * lws_write, which keeps it and sends it first when the socket drains. Returns 0, or -1 on a
 * socket error.
 */
static int send_raw(struct lws *wsi, unsigned char *buf, size_t len)
{
    ssize_t n = 0;
    if (!lws_partial_buffered(wsi)) {
        n = send(lws_get_socket_fd(wsi), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (n < 0)
            n = 0;
        if ((size_t)n == len)
            return 0;
    }
    size_t rest = len - (size_t)n;
    return lws_write(wsi, buf + n, rest, LWS_WRITE_RAW) < (int)rest ? -1 : 0;
}

/*
 * The bytes of f for this connection: its compressed copy on a permessage-deflate connection
 * (made by the first such recipient, shared by the rest), else — and for frames that stay
 * plain — the frame as built.
 */
static const unsigned char *conn_wire(tb_server_t *s, const pss_t *pss, tb_frame_t *f, size_t *len)
{
    const unsigned char *wire =
        pss->deflate ? tb_frame_wire_deflate(f, s->z, pss->window_bits, len) : NULL;
    return wire ? wire : tb_frame_wire(f, len);
}

/* ---- delivery latency ------------------------------------------------------------------ */

/*
 * telebridge_delivery_latency_seconds at one clock read per write callback or batch, not per
 * recipient (the wall clock in microseconds, as the MQTT thread stamps arrivals with the read that
 * also gives their ingest_ms; a step of the clock shows as one odd sample, a negative one as 0):
 * the frames written meanwhile count from that read, and a run of frames of one arrival stamp (one
 * message to many connections, the fan-out case) is one observation, its weight the frames the hub
 * counted as sent (messages_out) during the run, so a delivery costs the transport one comparison.
 * Frames without a stamp (control frames, snapshot copies) are not counted; frames whose write
 * failed are not either (the hub never saw them sent).
 */
static uint64_t frames_out(const tb_server_t *s)
{
    const uint64_t *out = tb_hub_counters(s->hub)->messages_out;
    uint64_t n = 0;
    for (int k = 0; k < TB_FRAME_KIND_N; k++)
        n += out[k];
    return n;
}

/* Ends the current run, unsent frames of the write in progress excluded. */
static void latency_flush(tb_server_t *s, uint64_t unsent)
{
    uint64_t at = frames_out(s) + unsent;
    if (s->lat_key && at > s->lat_from)
        tb_latency_observe(tb_hub_latency(s->hub), s->lat_now - s->lat_key, at - s->lat_from);
    s->lat_from = at;
}

static void latency_begin(tb_server_t *s)
{
    latency_flush(s, 0);
    s->lat_now = tb_now_us();
}

static void latency_switch(tb_server_t *s, int64_t key, uint64_t unsent)
{
    latency_flush(s, unsent);
    s->lat_key = key;
}

/* Frame f, after `unsent` frames of the same write, is being written (by hand inline: it runs
 * once per delivery). */
#define LATENCY_COUNT(s, f, unsent)                                                                \
    do {                                                                                           \
        if ((f)->ingest_us != (s)->lat_key)                                                        \
            latency_switch((s), (f)->ingest_us, (unsent));                                         \
    } while (0)

/* ---- writes -------------------------------------------------------------------------------- */

/*
 * Every connection, compressing or not: the frames carry their own WebSocket headers, so the
 * queued ones leave in one raw write — straight from the shared frame when only one fits, else
 * gathered into the scratch buffer (a copy, no allocation) up to WS_COALESCE_MAX bytes.
 * Returns the frames written, or -1.
 */
static int write_raw(tb_server_t *s, struct lws *wsi, const pss_t *pss)
{
    const tb_conn_t *c = pss->conn;
    size_t len, used = 0;
    int n = 0;
    tb_frame_t *f = tb_hub_conn_at(c, 0);
    const unsigned char *wire = conn_wire(s, pss, f, &len);
    if (tb_hub_conn_queued(c) == 1 || len > WS_COALESCE_MAX / 2) {
        LATENCY_COUNT(s, f, 0);
        return send_raw(wsi, (unsigned char *)wire, len) ? -1 : 1;
    }
    for (size_t i = 0; i < tb_hub_conn_queued(c); i++) {
        f = tb_hub_conn_at(c, i);
        wire = conn_wire(s, pss, f, &len);
        if (used + len > WS_COALESCE_MAX)
            break;
        LATENCY_COUNT(s, f, (uint64_t)n);
        memcpy(s->scratch + LWS_PRE + used, wire, len); /* scratch_cap >= WS_COALESCE_MAX */
        used += len;
        n++;
    }
    return send_raw(wsi, s->scratch + LWS_PRE, used) ? -1 : n;
}

/*
 * A ping, before any queued frame: lws frames it (it goes through no extension) and keeps what
 * the kernel does not take. It carries PING_PAYLOAD because lws 4.1.6 does not pass a pong with
 * an empty payload to the callback (LWS_CALLBACK_RECEIVE_PONG), and the pong is the sign of
 * life. One write per callback, so the queue waits for the next one.
 */
static int write_ping(struct lws *wsi, pss_t *pss)
{
    unsigned char buf[LWS_PRE + sizeof(PING_PAYLOAD)];
    size_t len = sizeof(PING_PAYLOAD) - 1;
    pss->ping_due = false;
    memcpy(buf + LWS_PRE, PING_PAYLOAD, len);
    if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_PING) < (int)len)
        return -1;
    if (tb_hub_conn_queued(pss->conn) || tb_hub_conn_close_code(pss->conn))
        lws_callback_on_writable(wsi);
    return 0;
}

/*
 * One lws_write per WRITEABLE callback, carrying as many queued frames as fit: a reader that
 * keeps up drains its queue every loop iteration, so only a socket that stays full lets the
 * queue reach its bound.
 */
int tb_ws_write_on_writeable(tb_server_t *s, struct lws *wsi, pss_t *pss)
{
    if (!pss->conn || pss->closing)
        return 0;
    if (pss->ping_due)
        return write_ping(wsi, pss);
    if (tb_hub_conn_queued(pss->conn)) {
        latency_begin(s);
        int n = write_raw(s, wsi, pss);
        for (int i = 0; i < n; i++)
            tb_hub_conn_sent(s->hub, pss->conn);
        latency_flush(s, 0);
        if (n < 0)
            return -1;
        if (tb_hub_conn_queued(pss->conn) || tb_hub_conn_close_code(pss->conn))
            lws_callback_on_writable(wsi);
        return 0;
    }
    int code = tb_hub_conn_close_code(pss->conn);
    return code ? tb_ws_write_close(wsi, pss, code, tb_hub_close_reason(code)) : 0;
}

/*
 * Writes what each connection got from the batch just routed, at once: one raw write each,
 * not a poll round later from WRITEABLE (a reader that keeps up has room in its socket). lws
 * keeps whatever the kernel does not take and sends it first; connections with such bytes
 * still held, those closing, and any frames left after the write go through WRITEABLE as
 * before. Nothing is written once a Close frame has been sent or answered.
 */
static void flush_pending(tb_server_t *s)
{
    if (s->n_pending)
        latency_begin(s);
    for (size_t i = 0; i < s->n_pending; i++) {
        struct lws *wsi = s->pending[i];
        pss_t *pss = lws_wsi_user(wsi);
        tb_conn_t *c = pss->conn;
        if (c && !pss->closing && !lws_partial_buffered(wsi) && !tb_hub_conn_close_code(c) &&
            tb_hub_conn_queued(c)) {
            int n = write_raw(s, wsi, pss);
            if (n < 0) {
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                continue;
            }
            while (n-- > 0)
                tb_hub_conn_sent(s->hub, c);
            if (!tb_hub_conn_queued(c))
                continue;
        }
        lws_callback_on_writable(wsi);
    }
    latency_flush(s, 0);
    s->n_pending = 0;
}

/* ---- hub I/O ------------------------------------------------------------------------------- */

/* Remembers wsi for flush_pending; -1 when out of memory. */
static int pending_push(tb_server_t *s, struct lws *wsi)
{
    if (s->n_pending == s->cap_pending) {
        size_t cap = s->cap_pending ? 2 * s->cap_pending : PENDING_MIN;
        struct lws **p = realloc(s->pending, cap * sizeof(*p));
        if (!p)
            return -1;
        s->pending = p;
        s->cap_pending = cap;
    }
    s->pending[s->n_pending++] = wsi;
    return 0;
}

static void io_want_write(void *transport, void *io)
{
    tb_server_t *s = transport;
    if (s->routing && pending_push(s, io) == 0)
        return;
    lws_callback_on_writable(io);
}

static void io_ping(void *transport, void *io)
{
    (void)transport;
    pss_t *pss = lws_wsi_user(io);
    pss->ping_due = true;
    lws_callback_on_writable(io);
}

/* lws closes it when its timers next run, after the hub's walk (that is what ASYNC is for). */
static void io_drop(void *transport, void *io)
{
    (void)transport;
    lws_set_timeout(io, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void io_close(void *transport, void *io, int code)
{
    (void)transport;
    (void)code;
    /* A slow consumer may never become writable again: bound the wait for the close frame. */
    lws_set_timeout(io, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    lws_callback_on_writable(io);
}

/* Conflated telemetry is due: sends it and sleeps until the next is due. */
static void on_conflate(lws_sorted_usec_list_t *sul)
{
    tb_server_t *s = lws_container_of(sul, tb_server_t, conflate);
    int64_t now = tb_mono_ms(), next = tb_hub_send_held(s->hub, now);
    if (next >= 0)
        lws_sul_schedule(s->ctx, 0, &s->conflate, on_conflate,
                         (lws_usec_t)(next > now ? next - now : 0) * LWS_US_PER_MS);
}

/* The hub holds a message due at mono_ms, before anything else it holds. */
static void io_wake_at(void *transport, int64_t mono_ms)
{
    tb_server_t *s = transport;
    int64_t now = tb_mono_ms();
    lws_sul_schedule(s->ctx, 0, &s->conflate, on_conflate,
                     (lws_usec_t)(mono_ms > now ? mono_ms - now : 0) * LWS_US_PER_MS);
}

/* A bridge batch begins: want_write remembers the connections for flush_pending. */
static void batch_start(void *transport)
{
    tb_server_t *s = transport;
    s->routing = true;
}

static void batch_end(void *transport)
{
    tb_server_t *s = transport;
    s->routing = false;
    flush_pending(s);
}

void tb_ws_write_transport(tb_server_t *s, tb_bridge_transport_t *t)
{
    t->ops = (tb_hub_ops_t){.want_write = io_want_write,
                            .close = io_close,
                            .ping = io_ping,
                            .drop = io_drop,
                            .wake_at = io_wake_at};
    t->transport = s;
    t->batch_start = batch_start;
    t->batch_end = batch_end;
}
