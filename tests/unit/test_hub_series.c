/* Tests for the hub's part of issue 16 that is not the subscribe options' parsing: `series`
 * messages on subscribe (order, pacing under the queue bound, eviction while pending,
 * unsubscribe while pending), the personal room, the queues-over-half count and the arrival
 * stamp a routed frame carries for the latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/auth.h"
#include "telebridge/hub.h"
#include "telebridge/util.h"

#include "fixtures.h"

#define SECRET "unit-test-secret-unit-test-secret"
#define BOUND 8
#define POINTS 5
#define DEVICES_MAX 30

typedef struct {
    tb_config_t cfg;
    tb_auth_t *auth;
    tb_hub_t *hub;
    int io[2];
} fixture_t;

static void want_write(void *transport, void *io)
{
    (void)transport;
    (void)io;
}

static void do_close(void *transport, void *io, int code)
{
    (void)transport;
    *(int *)io = code;
}

static void nothing(void *transport, void *io)
{
    (void)transport;
    (void)io;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tb_config_defaults(&f->cfg), 0);
    f->cfg.limits.send_queue_messages = BOUND;
    f->cfg.history.series_points = POINTS;
    f->cfg.history.devices = DEVICES_MAX;
    f->auth = fixtures_auth(&f->cfg.auth, SECRET);
    f->hub =
        fixtures_hub(&f->cfg, f->auth, (tb_hub_ops_t){want_write, do_close, nothing, nothing, NULL},
                     "00000000000000e2");
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

static tb_conn_t *open_conn(fixture_t *f, int i, const char *sub, const char *rooms_json)
{
    char *tok = fixtures_mint(SECRET, sub, tb_now_ms() / 1000 + 3600, rooms_json);
    tb_grant_t *g = NULL;
    assert_int_equal(tb_auth_verify(f->auth, tok, strlen(tok), tb_now_ms() / 1000, &g), 0);
    free(tok);
    tb_conn_t *c = tb_hub_conn_open(f->hub, &f->io[i], g);
    assert_non_null(c);
    return c;
}

/* Takes c's next frame as JSON (the caller decrefs), NULL when none. */
static json_t *take(fixture_t *f, tb_conn_t *c)
{
    tb_frame_t *fr = tb_hub_conn_peek(c);
    if (!fr)
        return NULL;
    assert_true(tb_hub_conn_queued(c) <= BOUND);
    json_t *j = json_loadb(tb_frame_payload(fr), fr->len, 0, NULL);
    assert_non_null(j);
    tb_hub_conn_sent(f->hub, c);
    return j;
}

static const char *type_of(const json_t *j)
{
    return json_string_value(json_object_get(j, "type"));
}

static void expect_type(fixture_t *f, tb_conn_t *c, const char *type)
{
    json_t *j = take(f, c);
    assert_non_null(j);
    assert_string_equal(type_of(j), type);
    json_decref(j);
}

static void send_text(fixture_t *f, tb_conn_t *c, const char *text)
{
    tb_hub_conn_receive(f->hub, c, text, strlen(text));
}

/* value at time i (ms) for device d */
static void ingest(fixture_t *f, const char *device, int i, int64_t ingest_us)
{
    tb_msg_t *m = tb_msg_new();
    char ts[TB_RFC3339_LEN];
    m->kind = TB_MSG_TELEMETRY;
    m->ingest_us = ingest_us;
    snprintf(m->device_id, sizeof(m->device_id), "%s", device);
    tb_format_rfc3339_ms(1000 * (int64_t)i, ts);
    assert_int_equal(
        tb_msg_set_payload(m,
                           json_pack("{s:s, s:s, s:{s:i, s:s}, s:{}}", "device_id", device,
                                     "timestamp", ts, "fields", "v", i, "mode", "eco", "tags"),
                           TB_MSG_JSON_MAX(65536)),
        0);
    tb_hub_ingest(f->hub, m);
}

static void device_name(char *out, size_t cap, int d)
{
    snprintf(out, cap, "dev-%02d", d);
}

/* Every series comes first, paced under the bound, then the snapshot; each series holds the
 * device's last POINTS values, oldest first. */
static void test_series_paced_then_snapshot(void **state)
{
    fixture_t *f = *state;
    char name[16];
    for (int d = 0; d < 20; d++) {
        device_name(name, sizeof(name), d);
        for (int i = 0; i < POINTS + 2; i++)
            ingest(f, name, i, 0);
    }
    tb_conn_t *c = open_conn(f, 0, "alice", "{\"rooms\":[\"*\"]}");
    expect_type(f, c, "connected");
    send_text(f, c, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"series\":5}}");
    assert_true(tb_hub_conn_queued(c) <= BOUND);
    expect_type(f, c, "subscribed");
    for (int d = 0; d < 20; d++) {
        json_t *j = take(f, c);
        assert_string_equal(type_of(j), "series");
        json_t *v = json_object_get(json_object_get(json_object_get(j, "payload"), "fields"), "v");
        assert_int_equal(json_array_size(v), POINTS);
        for (int k = 0; k < POINTS; k++) {
            json_t *pt = json_array_get(v, (size_t)k);
            assert_int_equal(json_integer_value(json_array_get(pt, 0)), 1000 * (k + 2));
            assert_int_equal(json_integer_value(json_array_get(pt, 1)), k + 2);
        }
        assert_null(
            json_object_get(json_object_get(json_object_get(j, "payload"), "fields"), "mode"));
        json_decref(j);
    }
    for (int d = 0; d < 20; d++) {
        json_t *j = take(f, c);
        assert_true(json_is_true(json_object_get(j, "snapshot")));
        json_decref(j);
    }
    assert_null(take(f, c));
    assert_int_equal(tb_hub_counters(f->hub)->series_messages, 20);
    assert_int_equal(f->io[0], 0); /* never a slow consumer */
}

/* A device evicted while its series waits is skipped; leaving the room drops what waits. */
static void test_pending_series_evicted_or_left(void **state)
{
    fixture_t *f = *state;
    char name[16];
    for (int d = 0; d < DEVICES_MAX; d++) {
        device_name(name, sizeof(name), d);
        ingest(f, name, 1, 0);
    }
    tb_conn_t *c = open_conn(f, 0, "alice", "{\"rooms\":[\"*\"]}");
    send_text(f, c, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"series\":1}}");
    /* The queue is full of the first series; ten new devices evict the ten oldest, whose
     * series (still pending) are then not sent. */
    for (int d = 0; d < 10; d++) {
        device_name(name, sizeof(name), 100 + d);
        ingest(f, name, 1, 0);
    }
    int series = 0;
    json_t *j;
    while ((j = take(f, c)) != NULL) {
        series += strcmp(type_of(j), "series") == 0;
        json_decref(j);
    }
    assert_true(series < DEVICES_MAX && series >= DEVICES_MAX - 10 - BOUND);

    tb_conn_t *c2 = open_conn(f, 1, "bob", "{\"rooms\":[\"*\"]}");
    send_text(f, c2, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"global\"],\"series\":1}}");
    send_text(f, c2, "{\"type\":\"unsubscribe\",\"payload\":{\"rooms\":[\"global\"]}}");
    series = 0;
    while ((j = take(f, c2)) != NULL) {
        series += strcmp(type_of(j), "series") == 0;
        json_decref(j);
    }
    assert_true(series <= BOUND); /* only what was already queued */
}

/* The personal room: joined with no grant for it, published to, nothing else there. */
static void test_personal_room(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *a = open_conn(f, 0, "alice", "{\"rooms\":[]}");
    tb_conn_t *b = open_conn(f, 1, "bob", "{\"rooms\":[\"*\"]}");
    expect_type(f, a, "connected");
    expect_type(f, b, "connected");
    send_text(f, a, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"user:alice\"]}}");
    send_text(f, b, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"user:alice\"]}}");
    expect_type(f, a, "subscribed");
    expect_type(f, b, "subscribed");
    expect_type(f, b, "error");
    json_t *payload = json_pack("{s:s}", "title", "hi");
    assert_true(tb_hub_publish(f->hub, "user:alice", "notice", payload) > 0);
    json_decref(payload);
    json_t *j = take(f, a);
    assert_string_equal(type_of(j), "notice");
    assert_string_equal(json_string_value(json_object_get(j, "room")), "user:alice");
    json_decref(j);
    assert_null(take(f, a));
    assert_null(take(f, b));
}

/* Connections past half their bound are counted; device frames carry their arrival stamp. */
static void test_queues_over_half_and_stamps(void **state)
{
    fixture_t *f = *state;
    tb_conn_t *c = open_conn(f, 0, "alice", "{\"rooms\":[\"*\"]}");
    tb_conn_t *idle = open_conn(f, 1, "bob", "{\"rooms\":[\"*\"]}");
    send_text(f, c, "{\"type\":\"subscribe\",\"payload\":{\"rooms\":[\"device:s\"]}}");
    (void)idle;
    assert_int_equal(tb_hub_queues_over_half(f->hub), 0);
    for (int i = 0; i < BOUND / 2; i++)
        ingest(f, "s", i, 1000 + i);
    /* connected, subscribed and BOUND / 2 messages: past half. */
    assert_int_equal(tb_hub_queues_over_half(f->hub), 1);
    tb_frame_t *fr;
    int64_t stamp = 1000;
    while ((fr = tb_hub_conn_peek(c)) != NULL) {
        if (fr->seq)
            assert_int_equal(fr->ingest_us, stamp++);
        else
            assert_int_equal(fr->ingest_us, 0);
        tb_hub_conn_sent(f->hub, c);
    }
    assert_int_equal(stamp, 1000 + BOUND / 2);
    assert_int_equal(tb_hub_queues_over_half(f->hub), 0);
    assert_non_null(tb_hub_latency(f->hub));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_series_paced_then_snapshot),
        FIXTURES_TEST(test_pending_series_evicted_or_left),
        FIXTURES_TEST(test_personal_room),
        FIXTURES_TEST(test_queues_over_half_and_stamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
