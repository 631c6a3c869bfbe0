/*
 * hub — rooms, connections, fan-out. Runs on the service thread only.
 *
 * The hub knows nothing of libwebsockets: the transport (ws_server.c) opens a tb_conn_t per
 * WebSocket, feeds it complete client messages, and writes the frames the hub queues on it.
 * The hub asks the transport for action through tb_hub_ops_t.
 *
 * Delivery: tb_hub_ingest() gives each device message the next bridge-wide `seq`, encodes it
 * once into a frame, and queues a reference on every connection in its device room, its groups'
 * rooms and `global` — once per connection however many of those it joined (a connection
 * remembers the last seq queued to it). Each connection's queue is allocated on first use,
 * grows by doubling, and is bounded by limits.send_queue_messages; past the bound the
 * connection is a slow consumer: it is closed with 1008 (its queue freed at once) or, with
 * slow_consumer "drop_oldest", its oldest queued telemetry is dropped.
 *
 * State: every routed message also goes into the history ring (history.h) and device messages
 * into the last-value store (lastvalue.h). A `subscribe` answers `subscribed`, then puts the
 * connection in catch-up: live fan-out skips it while tb_hub_conn_sent() refills its queue
 * (never past the bound) with the snapshot of the rooms just joined, or the replay of the
 * history after an honoured `since`, then with the history up to the last seq, after which
 * it is live again. Each joined room records the seq after which its messages are owed, and
 * rooms held before the subscribe the seq up to which they had theirs live, so nothing is
 * queued twice (also through two rooms) or skipped across the switch. A subscribe's snapshot
 * is queued once the replay reaches that subscribe's seq, never ahead of older messages.
 * Leaving rooms (unsubscribe, a narrowing refresh) hands a pending snapshot frame to another
 * room of its subscribe that holds its device, or drops it, and drops from the send queue the
 * device frames no room still held owes (docs/protocol.md, unsubscribe). Telemetry is checked
 * against the alert rules (alerts.h); transitions are routed as `alert` messages with their
 * own seq.
 *
 * Ownership: the hub owns every tb_conn_t between open and close, and the grant handed to
 * open. Frames returned by peek and at are borrowed until sent(), close, or the next
 * tb_hub_conn_receive() (which may drop queued frames): the transport takes a frame off with
 * sent() as it hands it to the socket, and keeps no other pointer to it.
 */
#ifndef TELEBRIDGE_HUB_H
#define TELEBRIDGE_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/auth.h"
#include "telebridge/config.h"
#include "telebridge/frame.h"
#include "telebridge/groups.h"
#include "telebridge/msg.h"
#include "telebridge/stats.h"

/* WebSocket close codes the hub asks for. */
#define TB_CLOSE_GOING_AWAY 1001
#define TB_CLOSE_POLICY 1008
#define TB_CLOSE_TOO_BIG 1009
#define TB_CLOSE_TOKEN_EXPIRED 4001

/* A `since` honoured by time replays what the bridge ingested from this long before it: the
 * margin for the clocks of two bridges and for when each got a message from the broker. */
#define TB_HUB_SINCE_TIME_OVERLAP_MS 2000

/* Longest epoch string (hex of 64 random bits) with its NUL. */
#define TB_EPOCH_LEN 17

typedef struct tb_hub tb_hub_t;
typedef struct tb_conn tb_conn_t;

/*
 * What the hub asks of the transport. `io` is always the transport's handle of one
 * connection, as given to tb_hub_conn_open(); `transport` is tb_hub_opts_t.transport.
 */
typedef struct {
    /* The connection has frames to write: arrange for tb_hub_conn_peek() to be called. */
    void (*want_write)(void *transport, void *io);
    /*
     * The hub wants the connection closed with code after its queue is written (the
     * queue is already empty for a slow consumer). The transport must also bound how long
     * that may take, since a slow consumer may never become writable.
     */
    void (*close)(void *transport, void *io, int code);
    /* The connection was quiet for heartbeat.ping_interval_s: send it a WebSocket ping. */
    void (*ping)(void *transport, void *io);
    /*
     * No sign of life for heartbeat.pong_timeout_s: drop the connection without a close frame.
     * Called while the hub walks its connections, so the transport must not close it (and
     * call tb_hub_conn_close()) before returning.
     */
    void (*drop)(void *transport, void *io);
    /*
     * Conflation (subscribe max_hz, slow_consumer "conflate") holds a message due at mono_ms
     * (tb_mono_ms()) earlier than any before: call tb_hub_send_held() then. NULL: the transport
     * calls tb_hub_send_held() on its own.
     */
    void (*wake_at)(void *transport, int64_t mono_ms);
} tb_hub_ops_t;

typedef struct {
    const tb_config_t *cfg; /* must outlive the hub */
    const tb_auth_t *auth;  /* for `refresh`; must outlive the hub */
    tb_hub_ops_t ops;
    void *transport;
    const char *epoch; /* NULL: a random one */
} tb_hub_opts_t;

/* Counters of the service thread, read for /stats and /metrics: the HUB entries of
 * TB_COUNTERS (stats.h), and one part of its DERIVED `dropped`. */
#define TB_HUB_C_INGEST(name, type)
#define TB_HUB_C_HUB(name, type) uint64_t name;
#define TB_HUB_C_DERIVED(name, type)
#define TB_HUB_V_INGEST(name, end)
#define TB_HUB_V_HUB(name, end) uint64_t name[end];
#define TB_HUB_V_DERIVED(name, end)
#define TB_HUB_FIELD_C(name, type, owner, section, help) TB_HUB_C_##owner(name, type)
#define TB_HUB_FIELD_V(name, type, owner, section, label, first, end, label_name, help)            \
    TB_HUB_V_##owner(name, end)

typedef struct {
    TB_COUNTERS(TB_HUB_FIELD_C, TB_HUB_FIELD_V)
    uint64_t dropped; /* device-message frames a connection lost to its queue bound */
    /* Arrival to socket write of each delivered frame, kept by the transport (ws_write.c)
     * through tb_hub_latency(). */
    tb_latency_t delivery_latency;
} tb_hub_counters_t;

/* NULL when out of memory. */
tb_hub_t *tb_hub_create(const tb_hub_opts_t *opts);
/* Closes nothing on the wire: the transport closes its connections first. Frees the rest. */
void tb_hub_destroy(tb_hub_t *h);

const char *tb_hub_epoch(const tb_hub_t *h);
size_t tb_hub_connections(const tb_hub_t *h);
size_t tb_hub_rooms(const tb_hub_t *h);
/* Devices in the last-value store; messages held by the history. */
size_t tb_hub_devices(const tb_hub_t *h);
size_t tb_hub_history_held(const tb_hub_t *h);
/* 1 while history.file is written (*bytes: its current segment's size), else 0 (*bytes 0). */
uint64_t tb_hub_history_file(const tb_hub_t *h, uint64_t *bytes);
const tb_hub_counters_t *tb_hub_counters(const tb_hub_t *h);
/* The delivery latency histogram, for the transport to count its writes in. */
tb_latency_t *tb_hub_latency(tb_hub_t *h);
/* Connections whose send queue holds more than half of limits.send_queue_messages: one
 * comparison per connection (for /metrics, not the hot path). */
size_t tb_hub_queues_over_half(const tb_hub_t *h);
/* [{"room": name, "subscribers": n}, …] sorted by name; caller owns it. */
json_t *tb_hub_rooms_json(const tb_hub_t *h);

/*
 * Opens a connection for transport handle io, taking ownership of grant, and queues its
 * `connected` message. NULL when out of memory (grant freed).
 */
tb_conn_t *tb_hub_conn_open(tb_hub_t *h, void *io, tb_grant_t *grant);
/* Leaves every room, releases the queue and the grant. NULL is a no-op. */
void tb_hub_conn_close(tb_hub_t *h, tb_conn_t *c);

/* Handles one complete client message (any bytes; the hub validates). */
void tb_hub_conn_receive(tb_hub_t *h, tb_conn_t *c, const char *msg, size_t len);
/* A sign of life at mono_ms (tb_mono_ms()): any frame received, a pong included. */
void tb_hub_conn_alive(tb_hub_t *h, tb_conn_t *c, int64_t mono_ms);

/* The next frame to write, or NULL. */
tb_frame_t *tb_hub_conn_peek(const tb_conn_t *c);
/* The i-th queued frame, i < tb_hub_conn_queued(c), for writing several at once. */
tb_frame_t *tb_hub_conn_at(const tb_conn_t *c, size_t i);
/* The oldest queued frame was written: drop it from the queue. */
void tb_hub_conn_sent(tb_hub_t *h, tb_conn_t *c);
/* Frames waiting on c. */
size_t tb_hub_conn_queued(const tb_conn_t *c);
/* Non-zero once the hub has asked for c to be closed: the close code. */
int tb_hub_conn_close_code(const tb_conn_t *c);

/*
 * Routes one device message; takes ownership of m. It gets the next seq, updates the
 * last-value store, goes into the history and to its rooms; telemetry is then checked
 * against the alert rules, each firing/resolved transition routed as an `alert` message
 * with the following seq to the same rooms.
 */
void tb_hub_ingest(tb_hub_t *h, tb_msg_t *m);

/*
 * Writes to history.file what was routed since the last call (one write(); nothing without a
 * file): the transport calls it at the end of each batch, before the batch's frames are
 * written to sockets, so that a crash never loses from the file a message a client got.
 * tb_hub_publish() calls it itself.
 */
void tb_hub_flush(tb_hub_t *h);

/*
 * Routes a message from POST /api/v1/publish: type, a valid room (tb_room_parse), payload
 * (borrowed) — the caller validated them. It gets the next seq, goes into the history and
 * to that room's members only (its envelope `room` is that room); the last-value store is
 * not changed. Returns its seq, or 0 when out of memory (the seq is then a hole).
 */
uint64_t tb_hub_publish(tb_hub_t *h, const char *room, const char *type, const json_t *payload);

/*
 * Periodic work (once a second): fdatasync()s history.file when it was written to, sends
 * `token_expiring` ({exp, expires_in}) once per grant when auth.expiry_warning_s (0: never)
 * remain before its exp, and closes connections whose token expired with 4001. A `refresh` replaces
 * the grant and re-arms both. Costs one comparison per connection when nothing is due.
 */
void tb_hub_tick(tb_hub_t *h, int64_t now_ms);

/*
 * Sends the conflated telemetry due by mono_ms (tb_mono_ms()): for each connection and device held
 * back, the device's newest state (docs/protocol.md → Subscribe options). Returns when the next
 * is due, or -1 when nothing is held. O(due entries × log held).
 */
int64_t tb_hub_send_held(tb_hub_t *h, int64_t mono_ms);

/*
 * Heartbeats (once a second, mono_ms from tb_mono_ms()): a connection quiet since its open or
 * its last tb_hub_conn_alive() for heartbeat.ping_interval_s gets one ops.ping, and after
 * heartbeat.pong_timeout_s an ops.drop (again each call until the transport closes it). One
 * comparison per connection; no timer per connection.
 */
void tb_hub_heartbeat(tb_hub_t *h, int64_t mono_ms);

/*
 * Reload (SIGHUP): replaces the group map, taking ownership of groups (the old map is freed),
 * and the verifier used by `refresh` (borrowed; it must outlive the hub or the next call).
 * Open connections and their rooms are untouched.
 */
void tb_hub_set_groups(tb_hub_t *h, tb_groups_t *groups);
void tb_hub_set_auth(tb_hub_t *h, const tb_auth_t *auth);
/*
 * Reload: replaces the alert rules, taking alerts[0..n) in every case. The new set must hold
 * the same rule names as the running one (in any order; thresholds, bounds, severity, field and
 * devices may all change): a device's firing state follows its rule by name and then resolves
 * by the new definition. Returns 0, or -1 with a message in err (errlen bytes) when
 * a rule is added or removed (that takes a restart) or memory runs out; the running rules stay.
 */
int tb_hub_set_alerts(tb_hub_t *h, tb_config_alert_t *alerts, size_t n, char *err, size_t errlen);

/* Asks every connection to close with code after its queue is written. */
void tb_hub_close_all(tb_hub_t *h, int code);

/* The close frame's reason text for a TB_CLOSE_* code ("slow consumer", …). */
const char *tb_hub_close_reason(int code);

#endif
