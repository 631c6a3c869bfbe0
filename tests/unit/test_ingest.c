/*
 * Tests for the MQTT ingest: message handling without a broker, then a real mosquitto broker
 * on loopback: delivery, loss, reconnection and the persistent session. A missing broker (or
 * mosquitto_passwd) fails those tests: tools/test.sh installs mosquitto.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "telebridge/mqtt_ingest.h"
#include "telebridge/msg.h"
#include "telebridge/util.h"

#include "fixtures.h"

extern char **environ;

#define ERR_LEN 256
/* Every wait on the network is bounded by this (the first reconnect comes after <= 1 s). */
#define WAIT_LIMIT_MS 10000
#define POLL_MS 10
#define REPUBLISH_MS 250
#define SHORT_BACKPRESSURE_MS 50
#define BROKER_USER "bridge"
#define BROKER_PASSWORD "s3cret-value"
/* How long a refused bridge is watched to make sure it never counts as connected. */
#define REFUSED_WATCH_MS 1500

/* Everything a test owns, released by teardown even when an assertion failed. */
typedef struct {
    tb_config_t cfg;
    tb_stats_t stats;
    tb_queue_t *queue;
    tb_ingest_t *ingest;
    atomic_uint wakes;
    pid_t broker;
    int port;
    char dir[64];
    bool broker_auth; /* broker requires bridge/BROKER_PASSWORD instead of anonymous access */
} fixture_t;

/* All MQTT messages queued, and all refused (the sums of their per-kind, per-reason counters). */
#define MESSAGES_IN(f) tb_stats_sum((f)->stats.messages_in, TB_MSG_KIND_N)
#define INVALID(f) tb_stats_sum((f)->stats.mqtt_invalid, TB_INVALID_END)

static void count_wake(void *arg)
{
    atomic_fetch_add((atomic_uint *)arg, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A hand-made config: the defaults that matter here (config.c is not needed). */
static void fill_config(tb_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mqtt.host = "127.0.0.1";
    cfg->mqtt.port = 1883;
    cfg->mqtt.client_id = "telebridge-test";
    cfg->mqtt.keepalive_s = 30;
    cfg->mqtt.qos = 1;
    cfg->mqtt.telemetry_topic = "devices/{device}/telemetry";
    cfg->mqtt.status_topic = "devices/{device}/status";
    cfg->limits.max_mqtt_payload_bytes = 65536;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    fill_config(&f->cfg);
    f->queue = tb_queue_create(64);
    *state = f;
    return f->queue ? 0 : -1;
}

static void kill_broker(fixture_t *f)
{
    if (f->broker <= 0)
        return;
    kill(f->broker, SIGKILL);
    waitpid(f->broker, NULL, 0);
    f->broker = 0;
}

static void drain(tb_queue_t *q)
{
    tb_msg_t *m;
    while ((m = tb_queue_pop(q)))
        tb_msg_free(m);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tb_ingest_destroy(f->ingest);
    kill_broker(f);
    if (f->dir[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/mosquitto.conf", f->dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/password", f->dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/passwd", f->dir);
        unlink(path);
        rmdir(f->dir);
    }
    drain(f->queue);
    tb_queue_destroy(f->queue);
    free(f);
    return 0;
}

static tb_ingest_t *make_ingest(fixture_t *f, unsigned backpressure_ms)
{
    char err[ERR_LEN] = "";
    tb_ingest_opts_t o = {.cfg = &f->cfg,
                          .queue = f->queue,
                          .stats = &f->stats,
                          .wake = count_wake,
                          .wake_arg = &f->wakes,
                          .backpressure_ms = backpressure_ms};
    tb_ingest_t *in = tb_ingest_create(&o, err, sizeof(err));
    if (!in)
        fail_msg("tb_ingest_create: %s", err);
    return in;
}

/* Asserts that create fails and that its message starts with want. */
static void expect_create_error(fixture_t *f, const char *want)
{
    char err[ERR_LEN] = "";
    tb_ingest_opts_t o = {.cfg = &f->cfg, .queue = f->queue, .stats = &f->stats};
    tb_ingest_t *in = tb_ingest_create(&o, err, sizeof(err));
    if (in) {
        tb_ingest_destroy(in);
        fail_msg("create accepted a config that should fail with %s", want);
    }
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, want);
}

static char *payload_text(const tb_msg_t *m)
{
    char *s = json_dumps(m->payload, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static void test_create_refuses_bad_config(void **state)
{
    fixture_t *f = *state;
    f->cfg.mqtt.telemetry_topic = "devices/+/telemetry";
    expect_create_error(f, "mqtt.telemetry_topic: ");
    fill_config(&f->cfg);
    f->cfg.mqtt.status_topic = "devices/x{device}/status";
    expect_create_error(f, "mqtt.status_topic: ");
    fill_config(&f->cfg);
    f->cfg.mqtt.password_file = "/nonexistent/password";
    expect_create_error(f, "mqtt.password_file: ");
    f->cfg.mqtt.username = "bridge";
    expect_create_error(f, "mqtt.password_file: cannot open /nonexistent/password");
}

static void test_password_file(void **state)
{
    fixture_t *f = *state;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tb-ingest-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/password", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("s3cret-value\r\n", fp);
    fclose(fp);
    f->cfg.mqtt.username = "bridge";
    f->cfg.mqtt.password_file = path;
    f->ingest = make_ingest(f, 0);
    /* A file over the limit is refused, and the message never quotes its content. */
    fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("s3cret", fp);
    fclose(fp);
    char err[ERR_LEN] = "";
    tb_ingest_opts_t o = {.cfg = &f->cfg, .queue = f->queue, .stats = &f->stats};
    assert_null(tb_ingest_create(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "mqtt.password_file: "));
    assert_null(strstr(err, "s3cret"));
}

static void test_handle_telemetry(void **state)
{
    fixture_t *f = *state;
    f->ingest = make_ingest(f, 0);
    const char *p = "{\"t\":21.5,\"device_id\":\"evil\",\"tags\":{\"site\":\"a\"}}";
    int64_t before = tb_now_ms();
    assert_int_equal(tb_ingest_handle(f->ingest, "devices/d1/telemetry", p, strlen(p), false), 0);
    int64_t after = tb_now_ms();
    tb_msg_t *m = tb_queue_pop(f->queue);
    assert_non_null(m);
    assert_int_equal(m->kind, TB_MSG_TELEMETRY);
    assert_false(m->retained);
    assert_in_range(m->ingest_ms, before, after);
    assert_string_equal(m->device_id, "d1");
    assert_string_equal(m->group, "");
    char ts[TB_RFC3339_LEN], want[256];
    tb_format_rfc3339_ms(m->ingest_ms, ts);
    snprintf(want, sizeof(want),
             "{\"device_id\":\"d1\",\"timestamp\":\"%s\",\"fields\":{\"t\":21.5},"
             "\"tags\":{\"site\":\"a\"}}",
             ts);
    char *got = payload_text(m);
    assert_string_equal(got, want);
    free(got);
    /* Encoded once here, for the service thread to splice into the envelope. */
    assert_string_equal(m->payload_json, want);
    assert_int_equal(m->payload_json_len, strlen(want));
    tb_msg_free(m);
    assert_int_equal(MESSAGES_IN(f), 1);
    assert_int_equal(atomic_load(&f->stats.queue_depth_max), 1);
    assert_int_equal(INVALID(f), 0);
}

static void test_handle_status(void **state)
{
    fixture_t *f = *state;
    f->ingest = make_ingest(f, 0);
    assert_int_equal(tb_ingest_handle(f->ingest, "devices/gw-7/status", "offline", 7, true), 0);
    const char *p = "{\"status\":\"online\",\"timestamp\":1700000000}";
    assert_int_equal(tb_ingest_handle(f->ingest, "devices/gw-7/status", p, strlen(p), false), 0);
    tb_msg_t *m = tb_queue_pop(f->queue);
    assert_non_null(m);
    assert_int_equal(m->kind, TB_MSG_STATUS);
    assert_true(m->retained);
    assert_string_equal(m->device_id, "gw-7");
    assert_string_equal(json_string_value(json_object_get(m->payload, "status")), "offline");
    tb_msg_free(m);
    m = tb_queue_pop(f->queue);
    assert_non_null(m);
    assert_false(m->retained);
    char *got = payload_text(m);
    assert_string_equal(got, "{\"device_id\":\"gw-7\",\"status\":\"online\","
                             "\"timestamp\":\"2023-11-14T22:13:20.000Z\"}");
    free(got);
    tb_msg_free(m);
    assert_int_equal(MESSAGES_IN(f), 2);
    assert_int_equal(atomic_load(&f->stats.queue_depth_max), 2);
}

static void test_group_template(void **state)
{
    fixture_t *f = *state;
    f->cfg.mqtt.telemetry_topic = "sites/{group}/{device}/telemetry";
    f->cfg.mqtt.status_topic = "sites/{group}/{device}/status";
    f->ingest = make_ingest(f, 0);
    assert_int_equal(
        tb_ingest_handle(f->ingest, "sites/building-a/t-1/telemetry", "{\"v\":1}", 7, false), 0);
    assert_int_equal(tb_ingest_handle(f->ingest, "sites/b/t-2/status", "online", 6, false), 0);
    tb_msg_t *m = tb_queue_pop(f->queue);
    assert_non_null(m);
    assert_int_equal(m->kind, TB_MSG_TELEMETRY);
    assert_string_equal(m->group, "building-a");
    assert_string_equal(m->device_id, "t-1");
    tb_msg_free(m);
    m = tb_queue_pop(f->queue);
    assert_non_null(m);
    assert_int_equal(m->kind, TB_MSG_STATUS);
    assert_string_equal(m->group, "b");
    assert_string_equal(m->device_id, "t-2");
    tb_msg_free(m);
    /* The default topics no longer match. */
    assert_int_equal(tb_ingest_handle(f->ingest, "devices/d1/telemetry", "{\"v\":1}", 7, false),
                     TB_NORMALIZE_ERR(TB_INVALID_BAD_TOPIC));
}

static void test_refused_messages_are_counted(void **state)
{
    fixture_t *f = *state;
    f->cfg.limits.max_mqtt_payload_bytes = 16;
    f->ingest = make_ingest(f, 0);
    static const struct {
        const char *topic;
        const char *payload;
        tb_invalid_reason_t reason;
    } cases[] = {
        {"other/d1/telemetry", "{\"v\":1}", TB_INVALID_BAD_TOPIC},
        {"devices/a b/telemetry", "{\"v\":1}", TB_INVALID_BAD_TOPIC},
        {"devices/x:y/status", "online", TB_INVALID_BAD_TOPIC},
        {"devices/d1/telemetry/extra", "{\"v\":1}", TB_INVALID_BAD_TOPIC},
        {"devices/d1/telemetry", "not json", TB_INVALID_NOT_JSON},
        {"devices/d1/telemetry", "[1]", TB_INVALID_NOT_OBJECT},
        {"devices/d1/telemetry", "{\"v\":\"0123456789\"}", TB_INVALID_TOO_LARGE},
        {"devices/d1/telemetry", "{\"v\":\"\xc0\xaf\"}", TB_INVALID_BAD_UTF8},
        {"devices/d1/telemetry", "{\"v\":null}", TB_INVALID_BAD_VALUE},
        {"devices/d1/status", "on line", TB_INVALID_NOT_JSON},
        {"devices/d1/status", "{\"status\":5}", TB_INVALID_BAD_VALUE},
    };
    unsigned long long per_reason[TB_INVALID_END] = {0};
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        int rc = tb_ingest_handle(f->ingest, cases[i].topic, cases[i].payload,
                                  strlen(cases[i].payload), false);
        if (rc != TB_NORMALIZE_ERR(cases[i].reason))
            fail_msg("%s '%s': rc %d, want %s", cases[i].topic, cases[i].payload, rc,
                     tb_invalid_reason_name(cases[i].reason));
        per_reason[cases[i].reason]++;
    }
    assert_int_equal(INVALID(f), n);
    for (int r = 1; r < TB_INVALID_END; r++)
        assert_int_equal(atomic_load(&f->stats.mqtt_invalid[r]), per_reason[r]);
    assert_int_equal(MESSAGES_IN(f), 0);
    assert_null(tb_queue_pop(f->queue));
    assert_int_equal(atomic_load(&f->wakes), 0);
}

static void test_queue_full_drops_after_backpressure(void **state)
{
    fixture_t *f = *state;
    tb_queue_destroy(f->queue);
    f->queue = tb_queue_create(2);
    assert_non_null(f->queue);
    f->ingest = make_ingest(f, SHORT_BACKPRESSURE_MS);
    const char *topic = "devices/d1/telemetry";
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":1}", 7, false), 0);
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":2}", 7, false), 0);
    unsigned wakes_before = atomic_load(&f->wakes);
    int64_t t0 = tb_mono_ms();
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":3}", 7, false), TB_INGEST_DROPPED);
    assert_in_range(tb_mono_ms() - t0, SHORT_BACKPRESSURE_MS, 10 * SHORT_BACKPRESSURE_MS);
    /* The producer kept poking the consumer while it waited. */
    assert_true(atomic_load(&f->wakes) > wakes_before);
    assert_int_equal(atomic_load(&f->stats.dropped_queue_full), 1);
    assert_int_equal(MESSAGES_IN(f), 2);
    assert_int_equal(atomic_load(&f->stats.queue_depth_max), 2);
    assert_int_equal(INVALID(f), 0);
    /* The dropped one is not in the queue; the first two are, in order. */
    for (int v = 1; v <= 2; v++) {
        tb_msg_t *m = tb_queue_pop(f->queue);
        assert_non_null(m);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(m->payload, "fields"), "v")), v);
        tb_msg_free(m);
    }
    assert_null(tb_queue_pop(f->queue));
}

static void test_wake_only_when_needed(void **state)
{
    fixture_t *f = *state;
    f->ingest = make_ingest(f, 0);
    const char *topic = "devices/d1/telemetry";
    /* A new queue counts as idle: the first message wakes, the second does not. */
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":1}", 7, false), 0);
    assert_int_equal(atomic_load(&f->wakes), 1);
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":2}", 7, false), 0);
    assert_int_equal(atomic_load(&f->wakes), 1);
    /* The consumer drains and announces sleep: the next message wakes it once. */
    drain(f->queue);
    assert_true(tb_queue_consumer_idle(f->queue));
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":3}", 7, false), 0);
    assert_int_equal(atomic_load(&f->wakes), 2);
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":4}", 7, false), 0);
    assert_int_equal(atomic_load(&f->wakes), 2);
    /* A consumer that finds items does not sleep, so nobody wakes it. */
    assert_false(tb_queue_consumer_idle(f->queue));
    assert_int_equal(tb_ingest_handle(f->ingest, topic, "{\"v\":5}", 7, false), 0);
    assert_int_equal(atomic_load(&f->wakes), 2);
    /* Refused messages never wake. */
    drain(f->queue);
    assert_true(tb_queue_consumer_idle(f->queue));
    assert_true(tb_ingest_handle(f->ingest, topic, "nope", 4, false) < 0);
    assert_int_equal(atomic_load(&f->wakes), 2);
}

/* A loopback port nobody listens on (right now). */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void test_stop_is_prompt_while_broker_down(void **state)
{
    fixture_t *f = *state;
    f->cfg.mqtt.port = free_port();
    f->ingest = make_ingest(f, 0);
    assert_int_equal(tb_ingest_start(f->ingest), 0);
    assert_int_equal(tb_ingest_start(f->ingest), -1);
    sleep_ms(300);
    assert_int_equal(atomic_load(&f->stats.mqtt_connected), 0);
    assert_int_equal(atomic_load(&f->stats.mqtt_connects), 0);
    int64_t t0 = tb_mono_ms();
    tb_ingest_stop(f->ingest);
    /* The backoff wait (>= 500 ms) is interrupted, not waited out. */
    assert_true(tb_mono_ms() - t0 < 400);
    tb_ingest_stop(f->ingest);
}

/* ---- against a real broker ---- */

static const char *mosquitto_path(void)
{
    static const char *const candidates[] = {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
                                             "/usr/bin/mosquitto", "/usr/local/bin/mosquitto"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}

static bool port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

/* Starts mosquitto on 127.0.0.1:f->port with f->dir/mosquitto.conf; waits until it listens. */
static void start_broker(fixture_t *f)
{
    char conf[128];
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", f->dir);
    FILE *fp = fopen(conf, "w");
    assert_non_null(fp);
    fprintf(fp, "listener %d 127.0.0.1\npersistence false\n", f->port);
    if (f->broker_auth)
        fprintf(fp, "allow_anonymous false\npassword_file %s/passwd\n", f->dir);
    else
        fprintf(fp, "allow_anonymous true\n");
    fclose(fp);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {(char *)mosquitto_path(), "-c", conf, NULL};
    int rc = posix_spawn(&f->broker, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    for (int64_t t0 = tb_mono_ms(); !port_open(f->port); sleep_ms(POLL_MS))
        if (tb_mono_ms() - t0 > WAIT_LIMIT_MS)
            fail_msg("mosquitto did not listen on port %d", f->port);
}

static void published(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)mid;
    *(bool *)obj = true;
}

/* Publishes one message at QoS 1 from a separate client and waits for the broker's PUBACK. */
static void publish(int port, const char *topic, const char *payload, bool retain)
{
    bool done = false;
    struct mosquitto *p = mosquitto_new(NULL, true, &done);
    assert_non_null(p);
    mosquitto_publish_callback_set(p, published);
    assert_int_equal(mosquitto_connect(p, "127.0.0.1", port, 10), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_publish(p, NULL, topic, (int)strlen(payload), payload, 1, retain),
                     MOSQ_ERR_SUCCESS);
    for (int64_t t0 = tb_mono_ms(); !done && tb_mono_ms() - t0 < WAIT_LIMIT_MS;)
        mosquitto_loop(p, POLL_MS, 1);
    mosquitto_disconnect(p);
    mosquitto_destroy(p);
    assert_true(done);
}

static bool wait_int(atomic_int *v, int want)
{
    for (int64_t t0 = tb_mono_ms(); tb_mono_ms() - t0 < WAIT_LIMIT_MS; sleep_ms(POLL_MS))
        if (atomic_load(v) == want)
            return true;
    return false;
}

/* Pops messages until one of `kind` from `device` arrives, republishing topic/body now and
 * then when topic is set (the first messages may race the subscription). NULL after
 * WAIT_LIMIT_MS. */
static tb_msg_t *wait_msg(fixture_t *f, tb_msg_kind_t kind, const char *device, const char *topic,
                          const char *body)
{
    int64_t t0 = tb_mono_ms(), last = 0;
    while (tb_mono_ms() - t0 < WAIT_LIMIT_MS) {
        if (topic && tb_mono_ms() - last >= REPUBLISH_MS) {
            publish(f->port, topic, body, false);
            last = tb_mono_ms();
        }
        tb_msg_t *m = tb_queue_pop(f->queue);
        if (m && m->kind == kind && strcmp(m->device_id, device) == 0)
            return m;
        tb_msg_free(m);
        if (!m)
            sleep_ms(POLL_MS);
    }
    return NULL;
}

static void expect_telemetry(fixture_t *f, const char *device, int value)
{
    char topic[64], body[32];
    snprintf(topic, sizeof(topic), "devices/%s/telemetry", device);
    snprintf(body, sizeof(body), "{\"v\":%d}", value);
    tb_msg_t *m = wait_msg(f, TB_MSG_TELEMETRY, device, topic, body);
    if (!m)
        fail_msg("telemetry %s from the broker did not arrive", body);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(m->payload, "fields"), "v")), value);
    tb_msg_free(m);
}

static void start_ingest_on_broker(fixture_t *f)
{
    f->ingest = make_ingest(f, 0);
    assert_int_equal(tb_ingest_start(f->ingest), 0);
    if (!wait_int(&f->stats.mqtt_connected, 1))
        fail_msg("no MQTT session within %d ms", WAIT_LIMIT_MS);
}

/* A private folder, a free port and a unique client id for a broker test; fails the test
 * when mosquitto is not installed. */
static void broker_fixture_dir(fixture_t *f)
{
    if (!mosquitto_path())
        fail_msg("the mosquitto broker is not installed (package mosquitto)");
    snprintf(f->dir, sizeof(f->dir), "/tmp/tb-ingest-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* mosquitto may drop root privileges before reading files: let it read its folder. */
    chmod(f->dir, 0755);
    f->port = free_port();
    f->cfg.mqtt.port = f->port;
    static char client_id[64];
    snprintf(client_id, sizeof(client_id), "telebridge-test-%d", (int)getpid());
    f->cfg.mqtt.client_id = client_id;
}

static void broker_fixture(fixture_t *f)
{
    broker_fixture_dir(f);
    start_broker(f);
}

static void test_broker_session_loss_and_reconnect(void **state)
{
    fixture_t *f = *state;
    broker_fixture(f);
    start_ingest_on_broker(f);
    assert_int_equal(atomic_load(&f->stats.mqtt_connects), 1);
    expect_telemetry(f, "d1", 1);
    publish(f->port, "devices/d1/status", "online", true);
    tb_msg_t *m = wait_msg(f, TB_MSG_STATUS, "d1", NULL, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m->payload, "status")), "online");
    tb_msg_free(m);

    kill_broker(f);
    if (!wait_int(&f->stats.mqtt_connected, 0))
        fail_msg("broker loss not noticed within %d ms", WAIT_LIMIT_MS);
    start_broker(f);
    if (!wait_int(&f->stats.mqtt_connected, 1))
        fail_msg("no reconnection within %d ms", WAIT_LIMIT_MS);
    assert_int_equal(atomic_load(&f->stats.mqtt_connects), 2);
    /* The new broker knows nothing of us: the subscriptions were made again. */
    expect_telemetry(f, "d2", 2);
    assert_true(MESSAGES_IN(f) >= 3);
}

static void test_broker_persistent_session(void **state)
{
    fixture_t *f = *state;
    broker_fixture(f);
    start_ingest_on_broker(f);
    expect_telemetry(f, "d1", 1);
    publish(f->port, "devices/d1/status", "online", true);
    tb_ingest_destroy(f->ingest);
    f->ingest = NULL;
    drain(f->queue);
    /* Published while the bridge is away: the broker keeps it for the persistent session. */
    publish(f->port, "devices/d3/telemetry", "{\"v\":3}", false);
    start_ingest_on_broker(f);
    bool got_queued = false, got_retained = false;
    for (int64_t t0 = tb_mono_ms();
         !(got_queued && got_retained) && tb_mono_ms() - t0 < WAIT_LIMIT_MS; sleep_ms(POLL_MS)) {
        tb_msg_t *m;
        while ((m = tb_queue_pop(f->queue))) {
            got_queued |= m->kind == TB_MSG_TELEMETRY && strcmp(m->device_id, "d3") == 0;
            got_retained |= m->kind == TB_MSG_STATUS && m->retained;
            tb_msg_free(m);
        }
    }
    assert_true(got_queued);
    assert_true(got_retained);
}

/* Runs argv to completion; its exit status, or -1. */
static int run_tool(char *const argv[])
{
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_broker_password_auth(void **state)
{
    fixture_t *f = *state;
    if (access("/usr/bin/mosquitto_passwd", X_OK) != 0)
        fail_msg("/usr/bin/mosquitto_passwd is not installed (package mosquitto)");
    f->broker_auth = true;
    broker_fixture_dir(f);
    char passwd[128], password[128];
    snprintf(passwd, sizeof(passwd), "%s/passwd", f->dir);
    char *argv[] = {
        "/usr/bin/mosquitto_passwd", "-c", "-b", passwd, BROKER_USER, BROKER_PASSWORD, NULL};
    assert_int_equal(run_tool(argv), 0);
    chmod(passwd, 0644);
    start_broker(f);
    /* The file's trailing newline is not part of the password. */
    snprintf(password, sizeof(password), "%s/password", f->dir);
    write_file(password, BROKER_PASSWORD "\n");
    f->cfg.mqtt.username = BROKER_USER;
    f->cfg.mqtt.password_file = password;
    start_ingest_on_broker(f);
    tb_ingest_destroy(f->ingest);
    f->ingest = NULL;
    /* A wrong password: CONNACK refused, so never connected however long we wait. */
    write_file(password, "wrong\n");
    f->ingest = make_ingest(f, 0);
    assert_int_equal(tb_ingest_start(f->ingest), 0);
    unsigned long long connects = atomic_load(&f->stats.mqtt_connects);
    for (int64_t t0 = tb_mono_ms(); tb_mono_ms() - t0 < REFUSED_WATCH_MS; sleep_ms(POLL_MS))
        assert_int_equal(atomic_load(&f->stats.mqtt_connected), 0);
    assert_int_equal(atomic_load(&f->stats.mqtt_connects), connects);
}

int main(void)
{
    tb_log_set_level(TB_LOG_WARN);
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_create_refuses_bad_config),
        FIXTURES_TEST(test_password_file),
        FIXTURES_TEST(test_handle_telemetry),
        FIXTURES_TEST(test_handle_status),
        FIXTURES_TEST(test_group_template),
        FIXTURES_TEST(test_refused_messages_are_counted),
        FIXTURES_TEST(test_queue_full_drops_after_backpressure),
        FIXTURES_TEST(test_wake_only_when_needed),
        FIXTURES_TEST(test_stop_is_prompt_while_broker_down),
        FIXTURES_TEST(test_broker_session_loss_and_reconnect),
        FIXTURES_TEST(test_broker_persistent_session),
        FIXTURES_TEST(test_broker_password_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
