/* Tests for the hub: rooms, at-most-once fan-out, send-queue bounds, client messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "telebridge/auth.h"
#include "telebridge/histfile.h"
#include "telebridge/hub.h"
#include "telebridge/util.h"

#include "fixtures.h"

#define SECRET "unit-test-secret-unit-test-secret"
#define MAX_CLIENTS 8

/* A fake transport: records write requests and close requests per connection. */
typedef struct {
    int want_writes;
    int close_code;
    int pings, drops;
} fake_io_t;

typedef struct {
    tb_config_t cfg;
    tb_auth_t *auth;
    tb_hub_t *hub;
    fake_io_t io[MAX_CLIENTS];
    tb_conn_t *conn[MAX_CLIENTS];
} fixture_t;

static void want_write(void *transport, void *io)
{
    (void)transport;
    ((fake_io_t *)io)->want_writes++;
}

static void do_close(void *transport, void *io, int code)
{
    (void)transport;
    ((fake_io_t *)io)->close_code = code;
}

static void do_ping(void *transport, void *io)
{
    (void)transport;
    ((fake_io_t *)io)->pings++;
}

static void do_drop(void *transport, void *io)
{
    (void)transport;
    ((fake_io_t *)io)->drops++;
}

/* A token for sub expiring exp_in seconds from now, with the members of rooms_json (or NULL). */
static char *mint(const char *sub, const char *rooms_json, long exp_in)
{
    return fixtures_mint(SECRET, sub, tb_now_ms() / 1000 + exp_in, rooms_json);
}

static tb_grant_t *grant_for(fixture_t *f, const char *sub, const char *rooms_json, long exp_in)
{
    char *tok = mint(sub, rooms_json, exp_in);
    tb_grant_t *g = NULL;
    assert_int_equal(tb_auth_verify(f->auth, tok, strlen(tok), tb_now_ms() / 1000, &g), 0);
    free(tok);
    return g;
}

/* What the hub calls on the fake transport; every hub of this file uses them. */
static const tb_hub_ops_t fake_ops = {want_write, do_close, do_ping, do_drop, NULL};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tb_config_defaults(&f->cfg), 0);
    f->cfg.limits.send_queue_messages = 16;
    f->cfg.limits.max_rooms_per_connection = 3;
    f->cfg.limits.client_messages_per_s = 50;
    f->cfg.n_groups = 1;
    f->cfg.groups = calloc(1, sizeof(tb_config_group_t));
    f->cfg.groups[0].name = strdup("building-a");
    f->cfg.groups[0].n_patterns = 2;
    f->cfg.groups[0].patterns = calloc(3, sizeof(char *)); /* NULL-terminated, as config.h */
    f->cfg.groups[0].patterns[0] = strdup("sensor-temp-001");
    f->cfg.groups[0].patterns[1] = strdup("sensor-hum-*");
    f->auth = fixtures_auth(&f->cfg.auth, SECRET);
    f->hub = fixtures_hub(&f->cfg, f->auth, fake_ops, "00000000000000e1");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tb_hub_destroy(f->hub);
    tb_auth_destroy(f->auth);
    tb_config_free(&f->cfg);
    free(f);
    return 0;
}

static tb_conn_t *open_conn(fixture_t *f, int i, const char *rooms_json)
{
    f->conn[i] = tb_hub_conn_open(f->hub, &f->io[i], grant_for(f, "alice", rooms_json, 3600));
    assert_non_null(f->conn[i]);
    return f->conn[i];
}

/* Pops the next queued frame of c as parsed JSON (caller decrefs); NULL when none. */
static json_t *next_json(fixture_t *f, tb_conn_t *c)
{
    tb_frame_t *fr = tb_hub_conn_peek(c);
    if (!fr)
        return NULL;
    json_t *j = json_loadb(tb_frame_payload(fr), fr->len, 0, NULL);
    assert_non_null(j);
    tb_hub_conn_sent(f->hub, c);
    return j;
}

static const char *type_of(const json_t *j)
{
    return json_string_value(json_object_get(j, "type"));
}

/* Takes c's next message, which must be there and of type; the caller json_decref()s it. */
static json_t *next_of_type(fixture_t *f, tb_conn_t *c, const char *type)
{
    json_t *j = next_json(f, c);
    assert_non_null(j);
    assert_string_equal(type_of(j), type);
    return j;
}

static void expect_type(fixture_t *f, tb_conn_t *c, const char *type)
{
    json_decref(next_of_type(f, c, type));
}

/* open_conn(), then takes the `connected` message every connection gets first. */
static tb_conn_t *open_connected(fixture_t *f, int i, const char *rooms_json)
{
    tb_conn_t *c = open_conn(f, i, rooms_json);
    expect_type(f, c, "connected");
    return c;
}

static void send_text(fixture_t *f, tb_conn_t *c, const char *text)
{
    tb_hub_conn_receive(f->hub, c, text, strlen(text));
}

static void subscribe(fixture_t *f, tb_conn_t *c, const char *rooms_json)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"type\":\"subscribe\",\"payload\":{\"rooms\":%s}}", rooms_json);
    send_text(f, c, buf);
}

/* subscribe(), then takes its `subscribed` answer. */
static void subscribe_ok(fixture_t *f, tb_conn_t *c, const char *rooms_json)
{
    subscribe(f, c, rooms_json);
    expect_type(f, c, "subscribed");
}

/* open_connected() with the grant rooms_json, then subscribe_ok() to the rooms in subscribe_json.
 */
static tb_conn_t *open_subscribed(fixture_t *f, int i, const char *rooms_json,
                                  const char *subscribe_json)
{
    tb_conn_t *c = open_connected(f, i, rooms_json);
    subscribe_ok(f, c, subscribe_json);
    return c;
}

static void ingest(fixture_t *f, tb_msg_kind_t kind, const char *device, const char *group)
{
    tb_msg_t *m = tb_msg_new();
    m->kind = kind;
    snprintf(m->device_id, sizeof(m->device_id), "%s", device);
    snprintf(m->group, sizeof(m->group), "%s", group ? group : "");
    assert_int_equal(tb_msg_set_payload(m,
                                        json_pack("{s:s, s:s, s:{s:f}, s:{}}", "device_id", device,
                                                  "timestamp", "2026-01-01T00:00:00.000Z", "fields",
                                                  "temperature", 21.5, "tags"),
                                        TB_MSG_JSON_MAX(65536)),
                     0);
    tb_hub_ingest(f->hub, m);
}

/* Ingests a telemetry sample of device with the fields in fields_json. */
static void ingest_fields(fixture_t *f, const char *device, const char *fields_json)
{
    tb_msg_t *m = tb_msg_new();
    m->kind = TB_MSG_TELEMETRY;
    snprintf(m->device_id, sizeof(m->device_id), "%s", device);
    json_t *payload =
        json_pack("{s:s, s:s, s:o, s:{}}", "device_id", device, "timestamp",
                  "2026-01-01T00:00:00.000Z", "fields", json_loads(fields_json, 0, NULL), "tags");
    assert_int_equal(tb_msg_set_payload(m, payload, TB_MSG_JSON_MAX(65536)), 0);
    tb_hub_ingest(f->hub, m);
}

static json_int_t seq_of(const json_t *j)
{
    return json_integer_value(json_object_get(j, "seq"));
}

/* Takes the next message of c and checks its seq. */
static void expect_seq(fixture_t *f, tb_conn_t *c, json_int_t seq)
{
    json_t *j = next_json(f, c);
    assert_int_equal(seq_of(j), seq);
    json_decref(j);
}

/* Takes c's next message, which must be a snapshot of type at seq; the caller json_decref()s
 * it. */
static json_t *next_snapshot(fixture_t *f, tb_conn_t *c, const char *type, json_int_t seq)
{
    json_t *j = next_of_type(f, c, type);
    assert_true(json_is_true(json_object_get(j, "snapshot")));
    assert_int_equal(seq_of(j), seq);
    return j;
}

static const json_t *field_of(const json_t *j, const char *name)
{
    return json_object_get(json_object_get(json_object_get(j, "payload"), "fields"), name);
}

/* Recreates the hub on f->cfg (which the test may have changed) with the given epoch, as a
 * restart does. */
static void restart_hub(fixture_t *f, const char *epoch)
{
    tb_hub_destroy(f->hub);
    f->hub = fixtures_hub(&f->cfg, f->auth, fake_ops, epoch);
}

static void test_connected_first(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_conn(f, 0, "{\"rooms\":[\"global\"]}");
    json_t *j = next_of_type(f, c, "connected");
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(p, "epoch")), "00000000000000e1");
    assert_string_equal(json_string_value(json_object_get(p, "connection_id")), "c1");
    assert_non_null(json_string_value(json_object_get(p, "server_time")));
    assert_int_equal(f->io[0].want_writes, 1);
    json_decref(j);
    assert_null(next_json(f, c));
}

static void test_at_most_once_across_rooms(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *all = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    tb_conn_t *other = open_connected(f, 1, "{\"rooms\":[\"*\"]}");
    subscribe(f, all, "[\"device:sensor-hum-7\",\"group:building-a\",\"global\"]");
    subscribe(f, other, "[\"device:sensor-x\"]");
    expect_type(f, all, "subscribed");
    expect_type(f, other, "subscribed");

    ingest(f, TB_MSG_TELEMETRY, "sensor-hum-7", NULL);
    ingest(f, TB_MSG_STATUS, "sensor-hum-7", NULL);

    json_t *j = next_of_type(f, all, "telemetry");
    assert_string_equal(json_string_value(json_object_get(j, "room")), "device:sensor-hum-7");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 1);
    json_decref(j);
    j = next_of_type(f, all, "device_status");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 2);
    json_decref(j);
    assert_null(next_json(f, all));
    assert_null(next_json(f, other));
    assert_int_equal(tb_hub_counters(f->hub)->deliveries, 2);
}

static void test_group_from_topic_and_config(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"group:*\"]}", "[\"group:site-9\"]");
    ingest(f, TB_MSG_TELEMETRY, "dev-1", "site-9");       /* group from the topic */
    ingest(f, TB_MSG_TELEMETRY, "dev-2", NULL);           /* in no group */
    ingest(f, TB_MSG_TELEMETRY, "sensor-temp-001", NULL); /* only in building-a */
    expect_type(f, c, "telemetry");
    assert_null(next_json(f, c));
}

static void test_forbidden_and_partial_subscribe(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"device:sensor-*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"request_id\":\"r1\",\"payload\":{\"rooms\":"
              "[\"device:sensor-1\",\"global\",\"bogus\"]}}");
    json_t *j = next_of_type(f, c, "subscribed");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "r1");
    json_t *rooms = json_object_get(json_object_get(j, "payload"), "rooms");
    assert_int_equal(json_array_size(rooms), 1);
    assert_string_equal(json_string_value(json_array_get(rooms, 0)), "device:sensor-1");
    json_decref(j);
    j = next_of_type(f, c, "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "payload"), "code")),
                        "bad_request");
    json_decref(j);
    j = next_json(f, c);
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "code")), "forbidden");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "rooms"), 0)),
                        "global");
    json_decref(j);
}

/* A `since` of another epoch, or ahead of the bridge, cannot be honoured: recovered:false; a
 * plain subscribe carries no `recovered` at all. */
static void test_since_reports_not_recovered(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],"
              "\"since\":{\"epoch\":\"00000000000000e2\",\"seq\":0}}}");
    json_t *j = next_json(f, c);
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(type_of(j), "subscribed");
    assert_true(json_is_false(json_object_get(p, "recovered")));
    json_decref(j);
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:b\"],"
              "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":5}}}");
    j = next_json(f, c);
    assert_true(json_is_false(json_object_get(json_object_get(j, "payload"), "recovered")));
    json_decref(j);
    subscribe(f, c, "[\"device:a\"]");
    j = next_json(f, c);
    assert_null(json_object_get(json_object_get(j, "payload"), "recovered"));
    json_decref(j);
}

static void test_too_many_rooms(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"device:a\",\"device:b\",\"device:c\",\"device:d\",\"device:a\"]");
    json_t *j = next_json(f, c);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "payload"), "rooms")), 4);
    json_decref(j);
    j = next_json(f, c);
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "code")), "too_many_rooms");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "rooms"), 0)),
                        "device:d");
    json_decref(j);
    assert_int_equal(tb_hub_rooms(f->hub), 3);
}

static void test_unsubscribe_and_ping(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\",\"device:a\"]");
    send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"global\",\"device:z\"]}}");
    json_t *j = next_of_type(f, c, "unsubscribed");
    json_t *rooms = json_object_get(json_object_get(j, "payload"), "rooms");
    assert_int_equal(json_array_size(rooms), 1);
    assert_string_equal(json_string_value(json_array_get(rooms, 0)), "global");
    json_decref(j);
    ingest(f, TB_MSG_TELEMETRY, "b", NULL);
    assert_null(next_json(f, c));
    send_text(f, c, "{\"type\":\"ping\",\"request_id\":42}");
    j = next_of_type(f, c, "pong");
    assert_int_equal(json_integer_value(json_object_get(j, "request_id")), 42);
    json_decref(j);
    assert_int_equal(tb_hub_rooms(f->hub), 1);
}

static void expect_error_code(fixture_t *f, tb_conn_t *c, const char *code)
{
    json_t *j = next_of_type(f, c, "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "payload"), "code")),
                        code);
    json_decref(j);
}

static void test_bad_client_messages_keep_connection(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c, "not json");
    expect_error_code(f, c, "bad_request");
    send_text(f, c, "{\"type\":\"dance\"}");
    expect_error_code(f, c, "unknown_type");
    send_text(f, c, "[1,2]");
    expect_error_code(f, c, "bad_request");
    tb_hub_conn_receive(f->hub, c, "{\"type\":\"ping\",\"x\":\"\xff\"}", 20);
    expect_error_code(f, c, "bad_request");
    send_text(f, c, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":\"global\"}}");
    expect_error_code(f, c, "bad_request");
    send_text(f, c, "{\"type\":\"ping\"}");
    expect_type(f, c, "pong");
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    assert_int_equal(tb_hub_counters(f->hub)->client_errors, 5);
}

static void test_slow_consumer_disconnect(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *slow = open_conn(f, 0, "{\"rooms\":[\"*\"]}");
    tb_conn_t *fast = open_connected(f, 1, "{\"rooms\":[\"*\"]}");
    subscribe(f, slow, "[\"global\"]");
    subscribe_ok(f, fast, "[\"global\"]");
    /* slow already holds connected + subscribed: 14 more fill its bound of 16. */
    for (int i = 0; i < 40; i++) {
        ingest(f, TB_MSG_TELEMETRY, "d", NULL);
        expect_type(f, fast, "telemetry");
    }
    assert_int_equal(f->io[0].close_code, TB_CLOSE_POLICY);
    assert_int_equal(tb_hub_conn_close_code(slow), TB_CLOSE_POLICY);
    assert_int_equal(tb_hub_conn_queued(slow), 0);
    assert_int_equal(f->io[1].close_code, 0);
    assert_int_equal(tb_hub_counters(f->hub)->slow_consumer_disconnects, 1);
    assert_int_equal(tb_hub_counters(f->hub)->dropped, 15);
}

static void test_drop_oldest_keeps_latest(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.slow_consumer = TB_SLOW_DROP_OLDEST;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    for (int i = 0; i < 100; i++)
        ingest(f, TB_MSG_TELEMETRY, "d", NULL);
    assert_int_equal(tb_hub_conn_queued(c), 16);
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    json_t *j = next_json(f, c);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 85);
    json_decref(j);
    assert_int_equal(tb_hub_counters(f->hub)->dropped, 84);
}

static void test_rate_limit(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    int pongs = 0, limited = 0;
    /* A limit of 50 a second: 120 messages, sent far faster than that, must hit it even if
     * the loop happens to straddle a second boundary. */
    for (int i = 0; i < 120; i++) {
        send_text(f, c, "{\"type\":\"ping\"}");
        json_t *j;
        while ((j = next_json(f, c))) {
            pongs += strcmp(type_of(j), "pong") == 0;
            limited += strcmp(type_of(j), "error") == 0;
            json_decref(j);
        }
    }
    assert_true(pongs >= 50 && pongs < 120);
    assert_true(limited >= 1);
    assert_true(tb_hub_counters(f->hub)->rate_limited >= 1);
}

static void test_expiry_closes_4001(void **state)
{
    fixture_t *f = *state;
    f->conn[0] = tb_hub_conn_open(f->hub, &f->io[0], grant_for(f, "bob", NULL, 5));
    tb_hub_tick(f->hub, tb_now_ms());
    assert_int_equal(f->io[0].close_code, 0);
    tb_hub_tick(f->hub, tb_now_ms() + 10000);
    assert_int_equal(f->io[0].close_code, TB_CLOSE_TOKEN_EXPIRED);
}

/* heartbeat.*: one ping after ping_interval_s of quiet, drops from pong_timeout_s; a sign of
 * life starts the quiet over and re-arms the ping. */
static void test_heartbeat_ping_then_drop(void **state)
{
    fixture_t *f = *state;
    int64_t t = tb_mono_ms();
    f->cfg.heartbeat.ping_interval_s = 30;
    f->cfg.heartbeat.pong_timeout_s = 60;
    open_conn(f, 0, NULL);
    open_conn(f, 1, NULL);
    tb_hub_conn_alive(f->hub, f->conn[0], t);
    tb_hub_conn_alive(f->hub, f->conn[1], t);
    tb_hub_heartbeat(f->hub, t + 29999);
    assert_int_equal(f->io[0].pings + f->io[1].pings, 0);
    tb_hub_heartbeat(f->hub, t + 30000);
    tb_hub_heartbeat(f->hub, t + 31000);
    assert_int_equal(f->io[0].pings, 1);
    assert_int_equal(f->io[1].pings, 1);
    tb_hub_conn_alive(f->hub, f->conn[1], t + 40000); /* its pong */
    tb_hub_heartbeat(f->hub, t + 59999);
    assert_int_equal(f->io[0].drops, 0);
    tb_hub_heartbeat(f->hub, t + 60000);
    assert_int_equal(f->io[0].drops, 1);
    assert_int_equal(f->io[1].drops, 0);
    assert_int_equal(f->io[1].pings, 1);
    tb_hub_heartbeat(f->hub, t + 70000);
    assert_int_equal(f->io[1].pings, 2);
    assert_int_equal(f->io[1].drops, 0);
    assert_int_equal(f->io[0].close_code + f->io[1].close_code, 0); /* dropped, not closed */
}

/* Skips the frames queued on c, returning the next whose type is `type` (NULL: none). */
static json_t *find_type(fixture_t *f, tb_conn_t *c, const char *type)
{
    json_t *j;
    while ((j = next_json(f, c))) {
        if (strcmp(type_of(j), type) == 0)
            return j;
        json_decref(j);
    }
    return NULL;
}

static void test_token_expiring_once_per_grant(void **state)
{
    fixture_t *f = *state;
    char msg[1024];
    int64_t now = tb_now_ms();
    f->cfg.auth.expiry_warning_s = 60;
    f->conn[0] = tb_hub_conn_open(f->hub, &f->io[0], grant_for(f, "bob", NULL, 100));
    tb_hub_tick(f->hub, now);
    assert_null(find_type(f, f->conn[0], "token_expiring"));
    tb_hub_tick(f->hub, now + 45000);
    json_t *j = find_type(f, f->conn[0], "token_expiring");
    assert_non_null(j);
    json_t *p = json_object_get(j, "payload");
    int64_t exp = json_integer_value(json_object_get(p, "exp"));
    assert_int_equal(exp, now / 1000 + 100);
    assert_int_equal(json_integer_value(json_object_get(p, "expires_in")),
                     exp - (now + 45000) / 1000);
    json_decref(j);
    tb_hub_tick(f->hub, now + 46000);
    assert_null(next_json(f, f->conn[0]));
    /* A refresh re-arms the warning for the new exp; the connection is not closed. */
    char *tok = mint("bob", NULL, 200);
    snprintf(msg, sizeof(msg), "{\"type\":\"refresh\",\"payload\":{\"token\":\"%s\"}}", tok);
    free(tok);
    send_text(f, f->conn[0], msg);
    expect_type(f, f->conn[0], "refreshed");
    tb_hub_tick(f->hub, now + 120000);
    assert_null(next_json(f, f->conn[0]));
    assert_int_equal(f->io[0].close_code, 0);
    tb_hub_tick(f->hub, now + 150000);
    j = find_type(f, f->conn[0], "token_expiring");
    assert_non_null(j);
    json_decref(j);
    tb_hub_tick(f->hub, now + 201000);
    assert_int_equal(f->io[0].close_code, TB_CLOSE_TOKEN_EXPIRED);
}

static void test_no_warning_when_zero(void **state)
{
    fixture_t *f = *state;
    int64_t now = tb_now_ms();
    f->cfg.auth.expiry_warning_s = 0;
    f->conn[0] = tb_hub_conn_open(f->hub, &f->io[0], grant_for(f, "bob", NULL, 5));
    tb_hub_tick(f->hub, now + 4000);
    assert_null(find_type(f, f->conn[0], "token_expiring"));
    tb_hub_tick(f->hub, now + 6000);
    assert_int_equal(f->io[0].close_code, TB_CLOSE_TOKEN_EXPIRED);
}

static void test_close_leaves_rooms(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *a = open_conn(f, 0, "{\"rooms\":[\"*\"]}");
    tb_conn_t *b = open_conn(f, 1, "{\"rooms\":[\"*\"]}");
    subscribe(f, a, "[\"global\",\"device:x\"]");
    subscribe(f, b, "[\"global\"]");
    assert_int_equal(tb_hub_rooms(f->hub), 2);
    tb_hub_conn_close(f->hub, a);
    assert_int_equal(tb_hub_rooms(f->hub), 1);
    json_t *rooms = tb_hub_rooms_json(f->hub);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rooms, 0), "room")),
                        "global");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rooms, 0), "subscribers")),
                     1);
    json_decref(rooms);
    assert_int_equal(tb_hub_connections(f->hub), 1);
}

/* The snapshot follows `subscribed`, marked, fields merged across messages, each device once;
 * live messages follow it. */
static void test_snapshot_then_live(void **state)
{
    fixture_t *f = *state;
    ingest_fields(f, "sensor-hum-7", "{\"temperature\": 21.5}");
    ingest_fields(f, "sensor-hum-7", "{\"humidity\": 40}");
    ingest(f, TB_MSG_STATUS, "sensor-hum-7", NULL);
    ingest_fields(f, "other", "{\"x\": 1}");
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"group:building-a\",\"device:sensor-hum-7\"]");
    json_t *j = next_of_type(f, c, "subscribed");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "payload"), "seq")), 4);
    json_decref(j);
    json_decref(next_snapshot(f, c, "device_status", 3));
    j = next_snapshot(f, c, "telemetry", 2);
    assert_string_equal(json_string_value(json_object_get(j, "room")), "device:sensor-hum-7");
    assert_true(json_real_value(field_of(j, "temperature")) == 21.5);
    assert_int_equal(json_integer_value(field_of(j, "humidity")), 40);
    json_decref(j);
    ingest_fields(f, "sensor-hum-7", "{\"humidity\": 41}");
    j = next_of_type(f, c, "telemetry");
    assert_null(json_object_get(j, "snapshot"));
    assert_int_equal(seq_of(j), 5);
    json_decref(j);
    assert_null(next_json(f, c));
    assert_int_equal(tb_hub_devices(f->hub), 2);
}

/* Sends a subscribe to rooms_json with since {epoch, seq, time}; returns the `subscribed`
 * payload's `mode` ("" when absent) and asserts its `recovered`. */
static const char *subscribe_since_time(fixture_t *f, tb_conn_t *c, const char *rooms_json,
                                        const char *epoch, const char *time, bool recovered)
{
    static char mode[8];
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"type\":\"subscribe\",\"payload\":{\"rooms\":%s,"
             "\"since\":{\"epoch\":\"%s\",\"seq\":3,\"time\":\"%s\"}}}",
             rooms_json, epoch, time);
    send_text(f, c, buf);
    json_t *j = next_of_type(f, c, "subscribed");
    json_t *p = json_object_get(j, "payload");
    assert_int_equal(json_is_true(json_object_get(p, "recovered")), recovered);
    const char *m = json_string_value(json_object_get(p, "mode"));
    snprintf(mode, sizeof(mode), "%s", m ? m : "");
    json_decref(j);
    return mode;
}

/*
 * `since` with a `time` (docs/protocol.md, Recovery): another epoch's client is replayed what
 * this bridge ingested from 2 s before that time on (mode "time"); a time older than the
 * bridge's history gets recovered:false and the snapshot; this epoch's seq wins (mode "seq");
 * a bad time is a bad_request that joins nothing.
 */
static void test_since_time(void **state)
{
    fixture_t *f = *state;
    char now[TB_RFC3339_LEN], later[TB_RFC3339_LEN];
    for (int i = 0; i < 4; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a: 1 3, b: 2 4 */
    tb_format_rfc3339_ms(tb_now_ms(), now);
    tb_format_rfc3339_ms(tb_now_ms() + 3600 * 1000, later);
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    /* All four came within the overlap of now: a's are replayed, then live. */
    assert_string_equal(subscribe_since_time(f, c, "[\"device:a\"]", "00000000000000e2", now, true),
                        "time");
    expect_seq(f, c, 1);
    expect_seq(f, c, 3);
    assert_null(next_json(f, c));
    ingest_fields(f, "a", "{\"n\": 2}");
    expect_seq(f, c, 5);
    /* An hour ahead: nothing was ingested after it, nothing to replay, still recovered. */
    assert_string_equal(
        subscribe_since_time(f, c, "[\"device:b\"]", "00000000000000e2", later, true), "time");
    assert_null(next_json(f, c));
    /* Before the bridge started: its history does not reach back, so the snapshot. */
    tb_conn_t *d = open_connected(f, 1, "{\"rooms\":[\"*\"]}");
    assert_string_equal(subscribe_since_time(f, d, "[\"device:a\"]", "00000000000000e2",
                                             "2000-01-01T00:00:00Z", false),
                        "");
    json_t *j = next_of_type(f, d, "telemetry");
    assert_true(json_is_true(json_object_get(j, "snapshot")));
    json_decref(j);
    assert_null(next_json(f, d));
    /* This epoch: the seq decides (3 → a's 5), whatever the time says. */
    tb_conn_t *e = open_connected(f, 2, "{\"rooms\":[\"*\"]}");
    assert_string_equal(subscribe_since_time(f, e, "[\"device:a\"]", "00000000000000e1",
                                             "2000-01-01T00:00:00Z", true),
                        "seq");
    expect_seq(f, e, 5);
    assert_null(next_json(f, e));
    /* A bad time: bad_request naming it, nothing joined; the next subscribe is served. */
    send_text(f, e,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:b\"],"
              "\"since\":{\"epoch\":\"x\",\"seq\":0,\"time\":\"2026-13-01T00:00:00Z\"}}}");
    j = next_of_type(f, e, "error");
    json_t *p = json_object_get(j, "payload");
    assert_string_equal(json_string_value(json_object_get(p, "code")), "bad_request");
    assert_non_null(strstr(json_string_value(json_object_get(p, "message")), "payload.since.time"));
    json_decref(j);
    ingest_fields(f, "b", "{\"n\": 2}"); /* 6: e did not join device:b */
    assert_null(next_json(f, e));
    assert_string_equal(subscribe_since_time(f, e, "[\"device:b\"]", "00000000000000e2", now, true),
                        "time");
    expect_seq(f, e, 2);
    expect_seq(f, e, 4);
    expect_seq(f, e, 6);
    assert_null(next_json(f, e));
}

/* Makes the history file at path look written on another boot and never closed: drops its
 * final CLOSE record, rewrites the header's boot id (and its CRC); the layout of histfile.h. */
static void unclean_before_reboot(const char *path)
{
    enum { HDR_AT = TB_HISTFILE_MAGIC_LEN, BODY_AT = HDR_AT + 8, HDR_BODY = 69, CLOSE_REC = 9 };
    unsigned char buf[4096];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_true(n > BODY_AT + HDR_BODY + CLOSE_REC && n < sizeof(buf));
    assert_int_equal(buf[n - 1], 3); /* the CLOSE record's type */
    n -= CLOSE_REC;
    memset(buf + BODY_AT + 1 + TB_HISTFILE_EPOCH_LEN, 'z', TB_HISTFILE_BOOT_LEN);
    uint32_t crc = (uint32_t)crc32(0, buf + BODY_AT, HDR_BODY);
    for (int i = 0; i < 4; i++)
        buf[HDR_AT + 4 + i] = (unsigned char)(crc >> (8 * i));
    fp = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
}

/*
 * history.file (docs/operations.md → Restarts without a gap): a restarted hub keeps its epoch,
 * its seq and its history, so a `since` of before the restart is a replay by seq; a damaged
 * file gives a fresh start (a new epoch) and is written anew.
 */
static void test_history_file_restart(void **state)
{
    fixture_t *f = *state;
    char dir[] = "/tmp/tb-hub-histfile-XXXXXX", path[64], side[80];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/history", dir);
    f->cfg.history.file = strdup(path);
    restart_hub(f, "00000000000000e9"); /* no file yet: the fresh epoch */
    assert_string_equal(tb_hub_epoch(f->hub), "00000000000000e9");
    for (int i = 0; i < 5; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a: 1 3 5, b: 2 4 */
    restart_hub(f, "00000000000000ea");
    assert_string_equal(tb_hub_epoch(f->hub), "00000000000000e9");
    assert_int_equal(tb_hub_history_held(f->hub), 5);
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:a\"],"
              "\"since\":{\"epoch\":\"00000000000000e9\",\"seq\":1}}}");
    json_t *j = next_of_type(f, c, "subscribed");
    assert_true(json_is_true(json_object_get(json_object_get(j, "payload"), "recovered")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "payload"), "seq")), 5);
    json_decref(j);
    j = next_of_type(f, c, "telemetry"); /* the restored frame, byte for byte */
    assert_int_equal(seq_of(j), 3);
    assert_int_equal(json_integer_value(field_of(j, "n")), 1);
    json_decref(j);
    expect_seq(f, c, 5);
    ingest_fields(f, "a", "{\"n\": 2}");
    expect_seq(f, c, 6); /* seq continues */
    assert_null(next_json(f, c));
    /* A new subscriber's snapshot: b's last values, restored from the file with its frame. */
    tb_conn_t *b = open_subscribed(f, 2, "{\"rooms\":[\"*\"]}", "[\"device:b\"]");
    json_decref(next_snapshot(f, b, "telemetry", 4));
    assert_null(next_json(f, b));
    tb_hub_conn_close(f->hub, b);
    f->conn[2] = NULL;
    tb_hub_conn_close(f->hub, c);
    f->conn[0] = NULL;
    /* A damaged file: a fresh start with a new epoch, the file rewritten. */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fputs("garbage!", fp);
    fclose(fp);
    restart_hub(f, "00000000000000eb");
    assert_string_equal(tb_hub_epoch(f->hub), "00000000000000eb");
    assert_int_equal(tb_hub_history_held(f->hub), 0);
    ingest_fields(f, "a", "{\"n\": 3}");
    restart_hub(f, "00000000000000ec");
    assert_string_equal(tb_hub_epoch(f->hub), "00000000000000eb");
    assert_int_equal(tb_hub_history_held(f->hub), 1);
    /* Not closed, and written before the machine last booted (a power loss): its last second
     * may be gone, so a new epoch; the messages stay for since.time, the seq goes on. */
    tb_hub_destroy(f->hub);
    f->hub = NULL;
    unclean_before_reboot(path);
    restart_hub(f, "00000000000000ee");
    assert_string_equal(tb_hub_epoch(f->hub), "00000000000000ee");
    assert_int_equal(tb_hub_history_held(f->hub), 1);
    tb_conn_t *d = open_subscribed(f, 1, "{\"rooms\":[\"*\"]}", "[\"device:a\"]");
    json_t *snap = next_snapshot(f, d, "telemetry", 1); /* the last values were restored too */
    assert_int_equal(json_integer_value(field_of(snap, "n")), 3);
    json_decref(snap);
    assert_null(next_json(f, d));
    ingest_fields(f, "a", "{\"n\": 4}");
    expect_seq(f, d, 2);
    /* A device in a {group} of its topic is in that group's snapshot after a restart. */
    ingest(f, TB_MSG_TELEMETRY, "dev-1", "site-9"); /* 3 */
    restart_hub(f, "00000000000000ef");
    tb_conn_t *g = open_subscribed(f, 3, "{\"rooms\":[\"*\"]}", "[\"group:site-9\"]");
    json_decref(next_snapshot(f, g, "telemetry", 3));
    assert_null(next_json(f, g));
    tb_hub_destroy(f->hub);
    f->hub = NULL;
    f->conn[1] = f->conn[3] = NULL;
    const char *const suffixes[] = {"", ".1", ".lock"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        unlink(side);
    }
    assert_int_equal(rmdir(dir), 0);
    restart_hub(f, "00000000000000ed"); /* for teardown; the folder is gone: memory only */
}

/* `since` replays exactly the messages of the joined rooms after it, in order, then live. */
static void test_since_replays_owed_messages(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 6; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a: 1 3 5, b: 2 4 6 */
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:a\"],"
              "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":1}}}");
    json_t *j = next_json(f, c);
    assert_true(json_is_true(json_object_get(json_object_get(j, "payload"), "recovered")));
    json_decref(j);
    ingest_fields(f, "a", "{\"n\": 2}"); /* 7, live while the replay is queued */
    const json_int_t want[] = {3, 5, 7};
    for (size_t i = 0; i < 3; i++) {
        j = next_of_type(f, c, "telemetry");
        assert_null(json_object_get(j, "snapshot"));
        assert_int_equal(seq_of(j), want[i]);
        json_decref(j);
    }
    assert_null(next_json(f, c));
    ingest_fields(f, "a", "{\"n\": 3}");
    j = next_json(f, c);
    assert_int_equal(seq_of(j), 8);
    json_decref(j);
    assert_null(next_json(f, c));
}

/* A large gap is replayed from the history as the queue drains, never past the queue bound,
 * with live messages arriving meanwhile after it, each once and in order. */
static void test_large_replay_is_paced(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 200; i++)
        ingest_fields(f, "a", "{\"n\": 1}");
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:a\"],"
              "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":0}}}");
    expect_type(f, c, "subscribed");
    json_int_t next = 1;
    for (int round = 0; round < 1000 && next <= 250; round++) {
        assert_true(tb_hub_conn_queued(c) <= 16);
        if (round % 4 == 0 && round < 200)
            ingest_fields(f, "a", "{\"n\": 2}"); /* seqs 201..250 */
        json_t *j = next_json(f, c);
        assert_non_null(j);
        assert_int_equal(seq_of(j), next++);
        json_decref(j);
    }
    assert_int_equal(next, 251);
    assert_null(next_json(f, c));
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    assert_true(tb_hub_counters(f->hub)->replayed >= 200);
}

/* A connection that falls behind the history while catching up is a slow consumer. */
static void test_catch_up_past_history_closes(void **state)
{
    fixture_t *f = *state;
    f->cfg.history.messages = 32;
    restart_hub(f, "00000000000000e1");
    for (int i = 0; i < 30; i++)
        ingest_fields(f, "a", "{\"n\": 1}");
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:a\"],"
              "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":0}}}");
    json_t *j = next_json(f, c);
    assert_true(json_is_true(json_object_get(json_object_get(j, "payload"), "recovered")));
    json_decref(j);
    for (int i = 0; i < 40; i++)
        ingest_fields(f, "a", "{\"n\": 2}");
    assert_int_equal(tb_hub_conn_close_code(c), 0); /* nothing asked of c while it is not read */
    j = next_json(f, c);                            /* reading pulls the cursor: seq 2 is gone */
    json_decref(j);
    assert_int_equal(tb_hub_conn_close_code(c), TB_CLOSE_POLICY);
    assert_int_equal(tb_hub_conn_queued(c), 0);
}

/* A rule crossing its threshold three times, with noise inside the hysteresis band, fires and
 * resolves exactly three times; each alert follows its sample's seq, pairs share an id. */
static void test_alert_hysteresis(void **state)
{
    fixture_t *f = *state;
    tb_config_alert_t *a = calloc(1, sizeof(*a));
    a->name = strdup("high-temp");
    a->field = strdup("temperature");
    a->op = TB_OP_GT;
    a->threshold = 30;
    a->has_clear_below = true;
    a->clear_below = 29;
    a->severity = strdup("warning");
    a->devices = calloc(2, sizeof(char *));
    a->devices[0] = strdup("sensor-*");
    a->n_devices = 1;
    f->cfg.alerts = a;
    f->cfg.n_alerts = 1;
    restart_hub(f, "00000000000000e1");
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    const double temps[] = {25,   31, 29.5, 30.5, 31, 29.2, 28, 29.9,
                            30.5, 31, 28.9, 30,   35, 29.1, 20};
    char fields[64], fired_id[128] = "";
    int firing = 0, resolved = 0;
    for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++) {
        snprintf(fields, sizeof(fields), "{\"temperature\": %g}", temps[i]);
        ingest_fields(f, "sensor-1", fields);
        ingest_fields(f, "other-1", "{\"temperature\": 99}"); /* not watched by the rule */
        for (json_t *j; (j = next_json(f, c));) {
            if (strcmp(type_of(j), "alert") == 0) {
                json_t *p = json_object_get(j, "payload");
                const char *st = json_string_value(json_object_get(p, "state"));
                const char *id = json_string_value(json_object_get(p, "alert_id"));
                assert_string_equal(json_string_value(json_object_get(p, "device_id")), "sensor-1");
                assert_string_equal(json_string_value(json_object_get(p, "rule_name")),
                                    "high-temp");
                assert_true(json_number_value(json_object_get(p, "value")) == temps[i]);
                if (strcmp(st, "firing") == 0) {
                    assert_int_equal(firing, resolved);
                    firing++;
                    snprintf(fired_id, sizeof(fired_id), "%s", id);
                } else {
                    assert_string_equal(st, "resolved");
                    assert_string_equal(id, fired_id);
                    resolved++;
                }
            }
            json_decref(j);
        }
    }
    assert_int_equal(firing, 3);
    assert_int_equal(resolved, 3);
    assert_int_equal(tb_hub_counters(f->hub)->alerts, 6);
}

/* n rules watching every device: name[i] fires when field[i] > threshold[i]. */
static tb_config_alert_t *make_rules(const char *const *name, const char *const *field,
                                     const double *threshold, size_t n)
{
    tb_config_alert_t *a = calloc(n, sizeof(*a));
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        a[i].name = strdup(name[i]);
        a[i].field = strdup(field[i]);
        a[i].op = TB_OP_GT;
        a[i].threshold = threshold[i];
        a[i].severity = strdup("warning");
        a[i].devices = calloc(2, sizeof(char *));
        a[i].devices[0] = strdup("*");
        a[i].n_devices = 1;
    }
    return a;
}

/* The next alert's "rule_name state threshold" on c, or "" when c has no alert queued. */
static void next_alert(fixture_t *f, tb_conn_t *c, char *out, size_t cap)
{
    out[0] = '\0';
    for (json_t *j; !out[0] && (j = next_json(f, c)); json_decref(j)) {
        if (strcmp(type_of(j), "alert") != 0)
            continue;
        json_t *p = json_object_get(j, "payload");
        snprintf(out, cap, "%s %s %g", json_string_value(json_object_get(p, "rule_name")),
                 json_string_value(json_object_get(p, "state")),
                 json_number_value(json_object_get(p, "threshold")));
    }
}

/* next_alert() must read want ("" for none). */
static void expect_alert(fixture_t *f, tb_conn_t *c, const char *want)
{
    char got[128];
    next_alert(f, c, got, sizeof(got));
    assert_string_equal(got, want);
}

/* Reload of alert rules: a new definition applies from the next sample and a firing device
 * keeps its state by rule name, in any order; adding, removing or renaming a rule is refused
 * and leaves the running rules in force. */
static void test_alert_rules_reload(void **state)
{
    fixture_t *f = *state;
    char err[TB_CONFIG_ERR_LEN];
    static const char *const names[] = {"hot", "wet"}, *const fields[] = {"t", "h"};
    static const char *const swapped[] = {"wet", "hot"}, *const swapped_fields[] = {"h", "t"};
    static const char *const renamed[] = {"wet", "cold"};
    f->cfg.alerts = make_rules(names, fields, (const double[]){30, 80}, 2);
    f->cfg.n_alerts = 2;
    restart_hub(f, "00000000000000e1");
    tb_conn_t *c = open_conn(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"global\"]");
    ingest_fields(f, "sensor-1", "{\"t\": 35}");
    expect_alert(f, c, "hot firing 30");

    assert_int_equal(tb_hub_set_alerts(f->hub, make_rules(names, fields, (const double[]){1}, 1), 1,
                                       err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "1 rules instead of 2"));
    assert_int_equal(tb_hub_set_alerts(f->hub,
                                       make_rules(renamed, fields, (const double[]){1, 1}, 2), 2,
                                       err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "rule 'cold' is new"));
    ingest_fields(f, "sensor-1", "{\"h\": 90}"); /* the running rules still apply */
    expect_alert(f, c, "wet firing 80");

    assert_int_equal(
        tb_hub_set_alerts(f->hub, make_rules(swapped, swapped_fields, (const double[]){85, 50}, 2),
                          2, err, sizeof(err)),
        0);
    ingest_fields(f, "sensor-1", "{\"t\": 40, \"h\": 92}"); /* hot resolves, wet holds on */
    expect_alert(f, c, "hot resolved 50");
    expect_alert(f, c, "");
    ingest_fields(f, "sensor-2", "{\"t\": 55}");
    expect_alert(f, c, "hot firing 50");
}

/* A published message gets a seq, reaches that room's members only, and is in the history. */
static void test_publish_routes_to_room(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    tb_conn_t *d = open_connected(f, 1, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"group:ops\"]");
    subscribe(f, d, "[\"global\"]");
    expect_type(f, c, "subscribed");
    expect_type(f, d, "subscribed");
    json_t *payload = json_pack("{s:s}", "text", "hello");
    assert_int_equal(tb_hub_publish(f->hub, "group:ops", "notice", payload), 1);
    json_decref(payload);
    json_t *j = next_of_type(f, c, "notice");
    assert_string_equal(json_string_value(json_object_get(j, "room")), "group:ops");
    assert_int_equal(seq_of(j), 1);
    json_decref(j);
    assert_null(next_json(f, d));
    assert_int_equal(tb_hub_history_held(f->hub), 1);
}

/* Subscribes c to rooms_json with since {this epoch, seq}; asserts the answer's `recovered`. */
static void subscribe_since(fixture_t *f, tb_conn_t *c, const char *rooms_json, json_int_t seq,
                            bool recovered)
{
    char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"type\":\"subscribe\",\"payload\":{\"rooms\":%s,"
             "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":%lld}}}",
             rooms_json, (long long)seq);
    send_text(f, c, buf);
    json_t *j = next_of_type(f, c, "subscribed");
    assert_int_equal(json_is_true(json_object_get(json_object_get(j, "payload"), "recovered")),
                     recovered);
    json_decref(j);
}

/* docs/protocol.md, at most once: a replay skips what the connection already had through
 * another room. In global, x's 20 messages came live; device:x since the first of them brings
 * none of them again. */
static void test_since_skips_what_another_room_brought(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    for (json_int_t i = 1; i <= 20; i++) {
        ingest_fields(f, "x", "{\"n\": 1}");
        expect_seq(f, c, i);
    }
    subscribe_since(f, c, "[\"device:x\"]", 1, true);
    assert_null(next_json(f, c));
    ingest_fields(f, "x", "{\"n\": 2}");
    expect_seq(f, c, 21);
    assert_null(next_json(f, c));
    assert_int_equal(tb_hub_counters(f->hub)->replayed, 0);
}

/* The replay brings what the connection's other rooms did not: of global's messages since 0,
 * only those of the device outside group:building-a, in seq order, each once. */
static void test_since_replays_only_what_other_rooms_missed(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"group:building-a\"]");
    for (int i = 0; i < 10; i++) {
        ingest_fields(f, i % 2 ? "outside" : "sensor-hum-1", "{\"n\": 1}"); /* hum-1: odd */
        if (i % 2 == 0) {
            expect_seq(f, c, i + 1);
        }
    }
    subscribe_since(f, c, "[\"global\"]", 0, true);
    for (json_int_t want = 2; want <= 10; want += 2) {
        json_t *j = next_json(f, c);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "room")), "device:outside");
        assert_int_equal(seq_of(j), want);
        json_decref(j);
    }
    assert_null(next_json(f, c));
    ingest_fields(f, "sensor-hum-1", "{\"n\": 2}"); /* in both rooms: once */
    expect_seq(f, c, 11);
    assert_null(next_json(f, c));
}

/* docs/protocol.md: a subscribe while an earlier replay is still being sent gets its snapshot
 * (the state as of that subscribe) after the replayed messages up to that subscribe's seq,
 * never ahead of them. */
static void test_snapshot_waits_for_older_replay(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 40; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a odd seqs, b even, up to 40 */
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_since(f, c, "[\"device:a\"]", 0, true);
    subscribe(f, c, "[\"global\"]");     /* snapshot of a (39) and b (40), as of seq 40 */
    ingest_fields(f, "b", "{\"n\": 2}"); /* 41 */
    ingest_fields(f, "a", "{\"n\": 2}"); /* 42 */
    json_int_t want[26];
    size_t n_want = 0, got = 0;
    for (json_int_t s = 1; s <= 39; s += 2)
        want[n_want++] = s;
    want[n_want++] = -39; /* snapshots, marked negative */
    want[n_want++] = -40;
    want[n_want++] = 41;
    want[n_want++] = 42;
    for (json_t *j; (j = next_json(f, c));) {
        if (!json_object_get(j, "seq")) { /* the second `subscribed` */
            assert_string_equal(type_of(j), "subscribed");
            json_decref(j);
            continue;
        }
        json_int_t s = json_is_true(json_object_get(j, "snapshot")) ? -seq_of(j) : seq_of(j);
        assert_true(got < n_want);
        assert_int_equal(s, want[got]);
        got++;
        json_decref(j);
    }
    assert_int_equal(got, n_want);
    assert_int_equal(tb_hub_conn_close_code(c), 0);
}

/* A second subscribe while the first is still being replayed: the replay goes on, the new
 * room's snapshot follows it up to the subscribe, then its messages after it, in seq order. */
static void test_subscribe_while_catching_up(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 40; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a odd seqs, b even, up to 40 */
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    send_text(f, c,
              "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:a\"],"
              "\"since\":{\"epoch\":\"00000000000000e1\",\"seq\":0}}}");
    expect_type(f, c, "subscribed");
    assert_int_equal(tb_hub_conn_queued(c), 12); /* ¾ of the bound: 8 of a's 20 still wait */
    subscribe(f, c, "[\"device:b\"]");           /* b: snapshot (seq 40), then from 41 on */
    ingest_fields(f, "b", "{\"n\": 2}");         /* 41 */
    ingest_fields(f, "a", "{\"n\": 2}");         /* 42 */
    json_int_t a_seqs[32];
    size_t n_a = 0;
    int snapshots = 0, live_b = 0;
    for (json_t *j; (j = next_json(f, c));) {
        const char *room = json_string_value(json_object_get(j, "room"));
        if (json_is_true(json_object_get(j, "snapshot"))) {
            assert_string_equal(room, "device:b");
            assert_int_equal(seq_of(j), 40);
            snapshots++;
        } else if (room && strcmp(room, "device:a") == 0) {
            assert_true(n_a < 32);
            a_seqs[n_a++] = seq_of(j);
        } else if (room) {
            assert_int_equal(seq_of(j), 41);
            live_b++;
        }
        json_decref(j);
    }
    assert_int_equal(n_a, 21); /* 1, 3, …, 39, then 42 */
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(a_seqs[i], 2 * (json_int_t)i + 1);
    assert_int_equal(a_seqs[20], 42);
    assert_int_equal(snapshots, 1);
    assert_int_equal(live_b, 1);
    assert_int_equal(tb_hub_conn_close_code(c), 0);
}

/* Ingests one telemetry sample for each of n devices sensor-hum-<i> (all in building-a). */
static void ingest_hum_devices(fixture_t *f, int n)
{
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "sensor-hum-%d", i);
        ingest_fields(f, id, "{\"h\": 1}");
    }
}

/*
 * Drains c; returns how many snapshot frames came before the first frame of type `answer`
 * (in *before) and after it (returned). Fails when `answer` never comes.
 */
static int snapshots_after(fixture_t *f, tb_conn_t *c, const char *answer, int *before)
{
    int after = 0;
    bool answered = false;
    *before = 0;
    for (json_t *j; (j = next_json(f, c));) {
        if (json_is_true(json_object_get(j, "snapshot")))
            *(answered ? &after : before) += 1;
        else if (strcmp(type_of(j), answer) == 0)
            answered = true;
        json_decref(j);
    }
    assert_true(answered);
    return after;
}

/* docs/protocol.md, unsubscribe: the snapshot of a room left is dropped, what was pending and
 * what was queued: only frames already handed to the socket may arrive, before the answer. */
static void test_unsubscribe_drops_pending_snapshot(void **state)
{
    fixture_t *f = *state;
    ingest_hum_devices(f, 30);
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"group:building-a\"]");
    assert_int_equal(tb_hub_conn_queued(c), 12); /* 18 snapshot frames still wait */
    send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"group:building-a\"]}}");
    int before;
    assert_int_equal(snapshots_after(f, c, "unsubscribed", &before), 0);
    assert_int_equal(before, 0); /* none was written: the 12 queued went too */
    assert_int_equal(tb_hub_counters(f->hub)->snapshot_messages, 12);
}

/* docs/protocol.md, refresh: a narrowing refresh drops the pending snapshot of the rooms it
 * leaves, nothing of them comes after `refreshed`; a room still held keeps its snapshot. */
static void test_narrowing_refresh_drops_pending_snapshot(void **state)
{
    fixture_t *f = *state;
    ingest_hum_devices(f, 30);
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"global\"]");
    subscribe(f, c, "[\"device:sensor-hum-3\"]"); /* its snapshot waits behind global's */
    char *tok = mint("alice", "{\"rooms\":[\"device:sensor-hum-3\"]}", 3600);
    char msg[2048];
    snprintf(msg, sizeof(msg), "{\"type\":\"refresh\",\"payload\":{\"token\":\"%s\"}}", tok);
    free(tok);
    send_text(f, c, msg);
    int before;
    assert_int_equal(snapshots_after(f, c, "refreshed", &before), 1); /* sensor-hum-3's */
    assert_true(before <= 12);
    ingest_fields(f, "sensor-hum-4", "{\"h\": 2}"); /* global is left */
    ingest_fields(f, "sensor-hum-3", "{\"h\": 2}");
    expect_seq(f, c, 32);
    assert_null(next_json(f, c));
}

/* Leaving one room of a subscribe keeps the snapshot of the devices that another room of it,
 * global, still holds: each once. */
static void test_unsubscribe_keeps_snapshot_global_holds(void **state)
{
    fixture_t *f = *state;
    ingest_hum_devices(f, 20);
    ingest_fields(f, "outside", "{\"h\": 1}");
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"group:building-a\",\"global\"]");
    send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"group:building-a\"]}}");
    int before, after = snapshots_after(f, c, "unsubscribed", &before);
    assert_int_equal(before + after, 21);
    assert_int_equal(tb_hub_counters(f->hub)->snapshot_messages, 21);
}

/* Drains c; the device ids of the snapshot frames, in order, into ids (at most max); returns
 * how many came and in *answered at which of them the first `answer` came (-1: never). */
static int snapshot_ids(fixture_t *f, tb_conn_t *c, const char *answer, char ids[][32], int max,
                        int *answered)
{
    int n = 0;
    *answered = -1;
    for (json_t *j; (j = next_json(f, c)); json_decref(j)) {
        if (strcmp(type_of(j), answer) == 0 && *answered < 0)
            *answered = n;
        if (!json_is_true(json_object_get(j, "snapshot")))
            continue;
        assert_true(n < max);
        snprintf(ids[n++], 32, "%s", json_string_value(json_object_get(j, "room")) + 7);
    }
    return n;
}

/*
 * docs/protocol.md, unsubscribe: a device's snapshot still comes while another room of the same
 * subscribe holds the device. sensor-hum-3's goes with its device room, the others' with their
 * topic group floor-1; leaving both hands all of them to group:building-a, each device once,
 * the queued share before the answer and the rest after it. On main before this change only
 * the 12 queued frames came: the rest was dropped with the rooms.
 */
static void test_unsubscribe_hands_snapshot_to_a_room_of_the_subscribe(void **state)
{
    fixture_t *f = *state;
    char id[32], ids[40][32];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "sensor-hum-%d", i);
        ingest(f, TB_MSG_TELEMETRY, id, "floor-1"); /* seqs 1..30 */
    }
    ingest(f, TB_MSG_TELEMETRY, "outside", "floor-1"); /* 31: not in building-a */
    tb_conn_t *c =
        open_subscribed(f, 0, "{\"rooms\":[\"*\"]}",
                        "[\"device:sensor-hum-3\",\"group:floor-1\",\"group:building-a\"]");
    assert_int_equal(tb_hub_conn_queued(c), 12); /* 19 snapshot frames still wait */
    send_text(f, c,
              "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":"
              "[\"device:sensor-hum-3\",\"group:floor-1\"]}}");
    int answered, n = snapshot_ids(f, c, "unsubscribed", ids, 40, &answered);
    assert_int_equal(n, 30);
    assert_int_equal(answered, 12);
    assert_string_equal(ids[0], "sensor-hum-3"); /* request order held */
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "sensor-hum-%d", i);
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen += strcmp(ids[k], id) == 0;
        assert_int_equal(seen, 1);
    }
    ingest_fields(f, "sensor-hum-4", "{\"h\": 2}"); /* building-a is still held */
    expect_seq(f, c, 32);
    assert_null(next_json(f, c));
}

/*
 * A snapshot handed on keeps its place behind an older replay: while device:a is still being
 * replayed from `since` 0, a second subscribe joins group:floor-1 and group:building-a (its
 * snapshot, the state as of seq 24, goes with floor-1); leaving floor-1 hands it to
 * building-a, and it still comes after a's replay up to seq 24, each device once. On main
 * before this change it was dropped. The sanitizer build's invariant checks watch the order of
 * the pending frames.
 */
static void test_handed_snapshot_keeps_its_place(void **state)
{
    fixture_t *f = *state;
    char id[32];
    for (int i = 0; i < 20; i++)
        ingest_fields(f, "a", "{\"n\": 1}"); /* 1..20 */
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "sensor-hum-%d", i);
        ingest(f, TB_MSG_TELEMETRY, id, "floor-1"); /* 21..24 */
    }
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_since(f, c, "[\"device:a\"]", 0, true);
    subscribe(f, c, "[\"group:floor-1\",\"group:building-a\"]");
    send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"group:floor-1\"]}}");
    ingest_fields(f, "sensor-hum-2", "{\"h\": 2}"); /* 25, after the snapshot */
    json_int_t last = 0;
    int replayed = 0, snaps = 0, live = 0;
    for (json_t *j; (j = next_json(f, c)); json_decref(j)) {
        if (!json_object_get(j, "seq"))
            continue;
        if (json_is_true(json_object_get(j, "snapshot"))) {
            assert_int_equal(replayed, 20); /* never ahead of the replay up to seq 24 */
            assert_int_equal(live, 0);
            snaps++;
        } else if (seq_of(j) == 25) {
            live++;
        } else {
            assert_true(seq_of(j) > last && seq_of(j) <= 20);
            last = seq_of(j);
            replayed++;
        }
    }
    assert_int_equal(replayed, 20);
    assert_int_equal(snaps, 4);
    assert_int_equal(live, 1);
    assert_int_equal(tb_hub_conn_close_code(c), 0);
}

/* Drains c into a string of what came, space-separated: device messages by seq (a snapshot
 * frame as S<seq>), control frames by type. */
static void drain_summary(fixture_t *f, tb_conn_t *c, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (json_t *j; (j = next_json(f, c)); json_decref(j)) {
        const char *room = json_string_value(json_object_get(j, "room"));
        int n = room ? snprintf(out + used, cap - used, "%s%s%lld", used ? " " : "",
                                json_is_true(json_object_get(j, "snapshot")) ? "S" : "",
                                (long long)seq_of(j))
                     : snprintf(out + used, cap - used, "%s%s", used ? " " : "", type_of(j));
        assert_true(n > 0 && (size_t)n < cap - used);
        used += (size_t)n;
    }
}

/* drain_summary() must read want. */
static void expect_summary(fixture_t *f, tb_conn_t *c, const char *want)
{
    char got[256];
    drain_summary(f, c, got, sizeof(got));
    assert_string_equal(got, want);
}

static void unsubscribe(fixture_t *f, tb_conn_t *c, const char *rooms_json)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":%s}}", rooms_json);
    send_text(f, c, buf);
}

/*
 * docs/protocol.md, unsubscribe: what is queued for the rooms left alone is dropped, in order
 * and with the control frames kept. In device:a, device:b and global, leaving device:a keeps
 * a's messages (global still holds them) but drops the notice published to device:a alone;
 * leaving global then drops a's and c's, and b's stay. On main before this change every queued
 * frame still came, before the answers.
 */
static void test_unsubscribe_drops_queued_frames_of_rooms_left(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c =
        open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"device:a\",\"device:b\",\"global\"]");
    const char *devs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        ingest_fields(f, devs[i], "{\"n\": 1}"); /* 1..3 */
    send_text(f, c, "{\"type\":\"ping\"}");
    for (int i = 0; i < 3; i++)
        ingest_fields(f, devs[i], "{\"n\": 2}"); /* 4..6 */
    json_t *payload = json_pack("{s:s}", "text", "to a's room alone");
    assert_int_equal(tb_hub_publish(f->hub, "device:a", "notice", payload), 7);
    json_decref(payload);
    assert_int_equal(tb_hub_conn_queued(c), 8);
    unsubscribe(f, c, "[\"device:a\"]");
    assert_int_equal(tb_hub_conn_queued(c), 8); /* 1..6 and pong stay; 7 went, the answer came */
    unsubscribe(f, c, "[\"global\"]");
    expect_summary(f, c, "2 pong 5 unsubscribed unsubscribed");
    ingest_fields(f, "a", "{\"n\": 3}"); /* 8: no room of c holds a any more */
    ingest_fields(f, "b", "{\"n\": 3}"); /* 9 */
    expect_summary(f, c, "9");
    assert_int_equal(tb_hub_conn_close_code(c), 0);
}

/*
 * A queued message stays only through a room that owed it, i.e. joined before its seq: in
 * global, a's messages 1..3 are queued; joining device:a (its snapshot is a's state as of 3)
 * and leaving global drops 1..3 and keeps the snapshot. On main before this change 1..3 came.
 */
static void test_queued_messages_older_than_the_room_held_go(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    for (int i = 0; i < 3; i++)
        ingest_fields(f, "a", "{\"n\": 1}"); /* 1..3 */
    subscribe(f, c, "[\"device:a\"]");
    unsubscribe(f, c, "[\"global\"]");
    expect_summary(f, c, "subscribed S3 unsubscribed");
    ingest_fields(f, "a", "{\"n\": 2}");
    expect_summary(f, c, "4");
}

/*
 * docs/protocol.md, refresh: a narrowing refresh drops what is queued for the rooms it leaves;
 * nothing of them comes after `refreshed`. On main before this change b's queued messages
 * still came, before the answers.
 */
static void test_narrowing_refresh_drops_queued_frames(void **state)
{
    fixture_t *f = *state;
    char msg[2048];
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"device:a\",\"global\"]");
    for (int i = 0; i < 6; i++)
        ingest_fields(f, i % 2 ? "b" : "a", "{\"n\": 1}"); /* a odd, b even */
    char *tok = mint("alice", "{\"rooms\":[\"device:a\"]}", 3600);
    snprintf(msg, sizeof(msg), "{\"type\":\"refresh\",\"payload\":{\"token\":\"%s\"}}", tok);
    free(tok);
    send_text(f, c, msg);
    expect_summary(f, c, "1 3 5 unsubscribed refreshed");
}

/* Drains c; the number of snapshot frames that came. */
static int drain_snapshots(fixture_t *f, tb_conn_t *c)
{
    int n = 0;
    for (json_t *j; (j = next_json(f, c)); json_decref(j))
        n += json_is_true(json_object_get(j, "snapshot"));
    return n;
}

/* The pending snapshot is bounded by the rooms held: a reader that does not read and
 * subscribes to and leaves global over and over holds no more than once, and after the last
 * unsubscribe nothing of global comes (nothing was written yet). */
static void test_resubscribe_cycles_do_not_grow_snapshot(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.send_queue_messages = 256; /* room for the answers: fill 192 */
    restart_hub(f, "00000000000000e1");
    ingest_hum_devices(f, 300);
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    for (int i = 0; i < 20; i++) {
        subscribe(f, c, "[\"global\"]");
        send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"global\"]}}");
    }
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    assert_int_equal(tb_hub_conn_queued(c),
                     40); /* the answers: each unsubscribe dropped the rest */
    assert_int_equal(drain_snapshots(f, c), 0);
}

/* Leaving a room moves its pending snapshot to global only when the same subscribe joined
 * global: on a quiet bridge (no seq between the subscribes), joining and leaving a group room
 * over and over adds nothing to global's snapshot. */
static void test_group_cycles_under_global_do_not_grow_snapshot(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.send_queue_messages = 256;
    restart_hub(f, "00000000000000e1");
    ingest_hum_devices(f, 300);
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe(f, c, "[\"global\"]");
    for (int i = 0; i < 20; i++) {
        subscribe(f, c, "[\"group:building-a\"]");
        send_text(f, c,
                  "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"group:building-a\"]}}");
    }
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    assert_int_equal(drain_snapshots(f, c), 300); /* global's, each device once */
}

/* docs/configuration.md, history.messages 0: no recovery, but a snapshot still drains at the
 * reader's pace while messages arrive, without a slow-consumer close. */
static void test_no_history_catch_up_keeps_the_subscriber(void **state)
{
    fixture_t *f = *state;
    f->cfg.history.messages = 0;
    restart_hub(f, "00000000000000e1");
    ingest_hum_devices(f, 30);
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"group:building-a\"]");
    assert_int_equal(tb_hub_conn_queued(c), 12); /* 18 snapshot frames still wait */
    for (int i = 0; i < 3; i++)
        ingest_fields(f, "sensor-hum-5", "{\"h\": 2}"); /* 31..33, behind the snapshot */
    for (json_int_t want = 1; want <= 33; want++) {
        json_t *j = next_json(f, c);
        assert_non_null(j);
        assert_int_equal(seq_of(j), want);
        assert_int_equal(json_is_true(json_object_get(j, "snapshot")), want <= 30);
        json_decref(j);
    }
    assert_null(next_json(f, c));
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    subscribe_since(f, c, "[\"device:other\"]", 32, false); /* still no recovery */
}

/* A snapshot larger than the queue is paced too; messages arriving meanwhile wait behind it
 * and follow in order, none lost, none twice. */
static void test_large_snapshot_then_arrivals(void **state)
{
    fixture_t *f = *state;
    char id[32];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "sensor-hum-%d", i);
        ingest_fields(f, id, "{\"h\": 1}"); /* seqs 1..30, all in building-a */
    }
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"group:building-a\"]");
    assert_int_equal(tb_hub_conn_queued(c), 12); /* 18 snapshot frames still wait */
    for (int i = 0; i < 5; i++)
        ingest_fields(f, "sensor-hum-20", "{\"h\": 2}"); /* 31..35, behind the snapshot */
    for (json_int_t want = 1; want <= 35; want++) {
        json_t *j = next_json(f, c);
        assert_non_null(j);
        assert_int_equal(seq_of(j), want);
        assert_int_equal(json_is_true(json_object_get(j, "snapshot")), want <= 30);
        /* sensor-hum-20's snapshot, still pending when it changed, shows the subscribe's state */
        assert_int_equal(json_integer_value(field_of(j, "h")), want <= 30 ? 1 : 2);
        json_decref(j);
    }
    assert_null(next_json(f, c));
    ingest_fields(f, "sensor-hum-4", "{\"h\": 3}");
    expect_seq(f, c, 36); /* live again */
    assert_int_equal(tb_hub_counters(f->hub)->snapshot_messages, 30);
}

/* ---- subscribe options: fields, max_hz conflation, slow_consumer conflate -------------------- */

/* Sends a subscribe of rooms_json with the options in opts_json (members, may be "") and takes
 * its `subscribed`. */
static void subscribe_opts(fixture_t *f, tb_conn_t *c, const char *rooms_json, const char *opts)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"type\":\"subscribe\",\"payload\":{\"rooms\":%s%s%s}}",
             rooms_json, opts[0] ? "," : "", opts);
    send_text(f, c, buf);
    expect_type(f, c, "subscribed");
}

/* Takes c's next message, telemetry, and checks its fields equal fields_json. */
static json_int_t expect_fields(fixture_t *f, tb_conn_t *c, const char *fields_json)
{
    json_t *j = next_of_type(f, c, "telemetry");
    json_t *want = json_loads(fields_json, 0, NULL);
    if (!json_equal(json_object_get(json_object_get(j, "payload"), "fields"), want)) {
        char *got = json_dumps(j, JSON_COMPACT);
        fail_msg("want fields %s, got %s", fields_json, got);
    }
    json_int_t seq = seq_of(j);
    json_decref(want);
    json_decref(j);
    return seq;
}

static void test_fields_cut_and_skip(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_opts(f, c, "[\"global\"]", "\"fields\":[\"a\",\"c\"]");
    ingest_fields(f, "d", "{\"a\":1,\"b\":2}");
    ingest_fields(f, "d", "{\"b\":3}"); /* none of the fields: not sent */
    ingest(f, TB_MSG_STATUS, "d", NULL);
    expect_fields(f, c, "{\"a\":1}");
    expect_type(f, c, "device_status");
    assert_null(tb_hub_conn_peek(c));
}

static void test_max_hz_first_at_once_then_newest_merged(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_opts(f, c, "[\"global\"]", "\"max_hz\":1");
    ingest_fields(f, "d", "{\"a\":1}");
    ingest_fields(f, "d", "{\"b\":2}");
    ingest(f, TB_MSG_STATUS, "d", NULL); /* never held */
    ingest_fields(f, "d", "{\"a\":3}");
    expect_fields(f, c, "{\"a\":1}");
    expect_type(f, c, "device_status");
    assert_null(tb_hub_conn_peek(c));
    assert_int_equal(tb_hub_counters(f->hub)->conflated, 2);
    int64_t now = tb_mono_ms();
    assert_true(tb_hub_send_held(f->hub, now) > now); /* held until a second after the first */
    assert_null(tb_hub_conn_peek(c));
    assert_int_equal(tb_hub_send_held(f->hub, now + 1001), -1);
    /* The newest state, fields merged, with the newest message's seq (4: status was 3). */
    assert_int_equal(expect_fields(f, c, "{\"a\":3,\"b\":2}"), 4);
    assert_null(tb_hub_conn_peek(c));
}

static void test_max_hz_uncapped_room_wins(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_opts(f, c, "[\"device:d\"]", "\"max_hz\":0.5,\"fields\":[\"a\"]");
    subscribe_opts(f, c, "[\"global\"]", "");
    tb_conn_t *plain = open_subscribed(f, 1, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    for (int i = 0; i < 3; i++)
        ingest_fields(f, "d", "{\"a\":1,\"b\":2}");
    ingest_fields(f, "e", "{\"b\":5}");
    for (int i = 0; i < 3; i++) {
        expect_fields(f, c, "{\"a\":1,\"b\":2}");
        expect_fields(f, plain, "{\"a\":1,\"b\":2}");
    }
    expect_fields(f, c, "{\"b\":5}");
    assert_null(tb_hub_conn_peek(c));
    assert_int_equal(tb_hub_send_held(f->hub, tb_mono_ms() + 5000), -1); /* nothing was held */
}

static void test_conflation_state_is_bounded(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.send_queue_messages = 8192;
    f->cfg.history.devices = 10; /* the bound is then 1024 devices per connection */
    restart_hub(f, "00000000000000e1");
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_opts(f, c, "[\"global\"]", "\"max_hz\":1");
    char id[16];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1500; i++) {
            snprintf(id, sizeof(id), "dev-%d", i);
            ingest_fields(f, id, "{\"a\":1}");
        }
    /* 1024 devices had their second message held; the other 476 sent both at once. */
    assert_int_equal(tb_hub_counters(f->hub)->conflated, 1024);
    assert_int_equal(tb_hub_conn_queued(c), 1500 + 476);
    assert_int_equal(tb_hub_send_held(f->hub, tb_mono_ms() + 1001), -1);
    assert_int_equal(tb_hub_conn_queued(c), 1500 + 476 + 1024);
    tb_hub_conn_close(f->hub, c); /* frees every entry (ASan checks) */
    f->conn[0] = NULL;
}

static void test_slow_consumer_conflate_keeps_newest(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.slow_consumer = TB_SLOW_CONFLATE;
    tb_conn_t *c = open_subscribed(f, 0, "{\"rooms\":[\"*\"]}", "[\"global\"]");
    char id[8], fields[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "d%d", i % 3);
        snprintf(fields, sizeof(fields), "{\"i\":%d}", i);
        ingest_fields(f, id, fields);
        if (i == 150)
            ingest(f, TB_MSG_STATUS, "d0", NULL);
    }
    assert_int_equal(tb_hub_conn_close_code(c), 0);
    assert_true(tb_hub_conn_queued(c) <= 16);
    assert_true(tb_hub_counters(f->hub)->conflated > 0);
    assert_int_equal(tb_hub_counters(f->hub)->slow_consumer_disconnects, 0);
    /* The reader catches up: the status came, and then each device's newest state. */
    int last[3] = {-1, -1, -1}, status = 0;
    int64_t now = tb_mono_ms();
    for (int round = 0; round < 4; round++, now += 1001) {
        json_t *j;
        while ((j = next_json(f, c))) {
            if (strcmp(type_of(j), "device_status") == 0)
                status++;
            else
                last[atoi(
                    json_string_value(json_object_get(json_object_get(j, "payload"), "device_id")) +
                    1)] = (int)json_integer_value(field_of(j, "i"));
            json_decref(j);
        }
        tb_hub_send_held(f->hub, now);
    }
    assert_int_equal(status, 1);
    assert_int_equal(last[0], 297);
    assert_int_equal(last[1], 298);
    assert_int_equal(last[2], 299);
}

static void test_held_state_goes_with_the_room(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_connected(f, 0, "{\"rooms\":[\"*\"]}");
    subscribe_opts(f, c, "[\"global\"]", "\"max_hz\":1");
    for (int i = 0; i < 3; i++)
        ingest_fields(f, "d", "{\"a\":1}");
    expect_fields(f, c, "{\"a\":1}");
    send_text(f, c, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"global\"]}}");
    expect_type(f, c, "unsubscribed");
    assert_int_equal(tb_hub_send_held(f->hub, tb_mono_ms() + 1001), -1);
    assert_null(tb_hub_conn_peek(c)); /* the held state was for a room no longer held */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_connected_first),
        FIXTURES_TEST(test_at_most_once_across_rooms),
        FIXTURES_TEST(test_group_from_topic_and_config),
        FIXTURES_TEST(test_forbidden_and_partial_subscribe),
        FIXTURES_TEST(test_since_reports_not_recovered),
        FIXTURES_TEST(test_since_time),
        FIXTURES_TEST(test_history_file_restart),
        FIXTURES_TEST(test_too_many_rooms),
        FIXTURES_TEST(test_unsubscribe_and_ping),
        FIXTURES_TEST(test_bad_client_messages_keep_connection),
        FIXTURES_TEST(test_slow_consumer_disconnect),
        FIXTURES_TEST(test_drop_oldest_keeps_latest),
        FIXTURES_TEST(test_rate_limit),
        FIXTURES_TEST(test_expiry_closes_4001),
        FIXTURES_TEST(test_token_expiring_once_per_grant),
        FIXTURES_TEST(test_no_warning_when_zero),
        FIXTURES_TEST(test_close_leaves_rooms),
        FIXTURES_TEST(test_snapshot_then_live),
        FIXTURES_TEST(test_since_replays_owed_messages),
        FIXTURES_TEST(test_large_replay_is_paced),
        FIXTURES_TEST(test_large_snapshot_then_arrivals),
        FIXTURES_TEST(test_subscribe_while_catching_up),
        FIXTURES_TEST(test_since_skips_what_another_room_brought),
        FIXTURES_TEST(test_since_replays_only_what_other_rooms_missed),
        FIXTURES_TEST(test_snapshot_waits_for_older_replay),
        FIXTURES_TEST(test_unsubscribe_drops_pending_snapshot),
        FIXTURES_TEST(test_narrowing_refresh_drops_pending_snapshot),
        FIXTURES_TEST(test_unsubscribe_keeps_snapshot_global_holds),
        FIXTURES_TEST(test_unsubscribe_hands_snapshot_to_a_room_of_the_subscribe),
        FIXTURES_TEST(test_handed_snapshot_keeps_its_place),
        FIXTURES_TEST(test_unsubscribe_drops_queued_frames_of_rooms_left),
        FIXTURES_TEST(test_queued_messages_older_than_the_room_held_go),
        FIXTURES_TEST(test_narrowing_refresh_drops_queued_frames),
        FIXTURES_TEST(test_resubscribe_cycles_do_not_grow_snapshot),
        FIXTURES_TEST(test_group_cycles_under_global_do_not_grow_snapshot),
        FIXTURES_TEST(test_no_history_catch_up_keeps_the_subscriber),
        FIXTURES_TEST(test_catch_up_past_history_closes),
        FIXTURES_TEST(test_alert_hysteresis),
        FIXTURES_TEST(test_heartbeat_ping_then_drop),
        FIXTURES_TEST(test_alert_rules_reload),
        FIXTURES_TEST(test_publish_routes_to_room),
        FIXTURES_TEST(test_fields_cut_and_skip),
        FIXTURES_TEST(test_max_hz_first_at_once_then_newest_merged),
        FIXTURES_TEST(test_max_hz_uncapped_room_wins),
        FIXTURES_TEST(test_conflation_state_is_bounded),
        FIXTURES_TEST(test_slow_consumer_conflate_keeps_newest),
        FIXTURES_TEST(test_held_state_goes_with_the_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
