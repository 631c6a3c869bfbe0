/* mqtt_ingest — libmosquitto client thread feeding the hub queue; see mqtt_ingest.h. */
#include "telebridge/mqtt_ingest.h"

#include <errno.h>
#include <mosquitto.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telebridge/log.h"
#include "telebridge/mqtt_nodes.h"
#include "telebridge/msg.h"
#include "telebridge/topic.h"
#include "telebridge/util.h"

/* Reconnect backoff (equal jitter, see the header): first base delay and cap. */
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 30000u
/* One loop_once() pass; also how quickly the thread notices stop. */
#define LOOP_TIMEOUT_MS 100
/* Loop passes allowed at stop for the DISCONNECT to leave and the broker to close. */
#define DISCONNECT_FLUSH_PASSES 5
/* Longest password file read, in bytes. */
#define PASSWORD_MAX 1024
/* Topic bytes shown in a log line, and room for the "..." of a truncated one. */
#define LOG_TOPIC_MAX 96
#define LOG_TOPIC_BUF (LOG_TOPIC_MAX + 4)
#define ERROR_TEXT_LEN 128
#define NS_PER_MS 1000000L
#define NS_PER_S 1000000000L

struct tb_ingest {
    const tb_config_t *cfg;
    tb_queue_t *queue;
    tb_stats_t *stats;
    void (*wake)(void *);
    void *wake_arg;
    unsigned backpressure_ms;
    size_t max_payload;
    tb_topic_tpl_t *telemetry;
    tb_topic_tpl_t *status;
    struct mosquitto *mosq;
    tb_mqtt_nodes_t nodes; /* the broker nodes; the ingest thread moves through them */
    char client_id[TB_CONFIG_CLIENT_ID_MAX + 1]; /* mqtt.client_id, placeholders expanded */
    /* Thread control: `running` belongs to the caller of start/stop; `stopping` is set under
     * `lock` so the backoff wait (a timed wait on `cond`) cannot miss it. */
    pthread_t thread;
    bool running;
    bool sync_ready;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool stopping;
    /* Ingest thread only. */
    bool session_up;   /* this attempt's subscriptions were granted (SUBACK) */
    int sub_mid;       /* the message id of this attempt's SUBSCRIBE */
    unsigned failures; /* consecutive attempts that ended without a session, or a lost one */
    char last_error[ERROR_TEXT_LEN];
    unsigned seed;
    tb_log_ratelimit_t invalid_rl;
    tb_log_ratelimit_t drop_rl;
};

/* ---- message handling (the ingest thread, or a test acting as it) ---- */

/* A topic made safe for a log value: printable ASCII, no quotes, truncated with "...". */
static void log_topic(const char *topic, char out[LOG_TOPIC_BUF])
{
    size_t i = 0;
    for (; topic[i] && i < LOG_TOPIC_MAX; i++) {
        unsigned char c = (unsigned char)topic[i];
        out[i] = (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') ? '?' : (char)c;
    }
    strcpy(out + i, topic[i] ? "..." : "");
}

/* Counts and logs (at most once a second) a refused message; returns rc. */
static int refuse(tb_ingest_t *in, int rc, const char *topic)
{
    tb_invalid_reason_t reason = TB_NORMALIZE_REASON(rc);
    unsigned suppressed;
    char shown[LOG_TOPIC_BUF];
    if (reason == TB_INVALID_END) {
        if (tb_log_ratelimit(&in->drop_rl, &suppressed))
            tb_log(TB_LOG_ERROR, "mqtt message dropped", "reason=out_of_memory suppressed=%u",
                   suppressed);
        return TB_INGEST_DROPPED;
    }
    tb_stats_invalid(in->stats, reason);
    if (tb_log_ratelimit(&in->invalid_rl, &suppressed)) {
        log_topic(topic, shown);
        tb_log(TB_LOG_WARN, "invalid mqtt message", "reason=%s topic=\"%s\" suppressed=%u",
               tb_invalid_reason_name(reason), shown, suppressed);
    }
    return rc;
}

/* Finds the message kind and ids from the topic; 0 or TB_NORMALIZE_ERR(BAD_TOPIC). */
static int match_topic(const tb_ingest_t *in, const char *topic, tb_msg_t *m)
{
    if (tb_topic_tpl_match(in->telemetry, topic, m->device_id, sizeof(m->device_id), m->group,
                           sizeof(m->group)) == 0) {
        m->kind = TB_MSG_TELEMETRY;
        return 0;
    }
    if (tb_topic_tpl_match(in->status, topic, m->device_id, sizeof(m->device_id), m->group,
                           sizeof(m->group)) == 0) {
        m->kind = TB_MSG_STATUS;
        return 0;
    }
    return TB_NORMALIZE_ERR(TB_INVALID_BAD_TOPIC);
}

/* Queues m (taking it) with bounded back-pressure, then wakes the consumer if it sleeps. */
static int enqueue(tb_ingest_t *in, tb_msg_t *m)
{
    unsigned suppressed;
    tb_msg_kind_t kind = m->kind; /* m belongs to the consumer once pushed */
    if (tb_queue_push_wait(in->queue, m, in->backpressure_ms, in->wake, in->wake_arg) != 0) {
        atomic_fetch_add_explicit(&in->stats->dropped_queue_full, 1, memory_order_relaxed);
        if (tb_log_ratelimit(&in->drop_rl, &suppressed))
            tb_log(TB_LOG_WARN, "mqtt message dropped",
                   "reason=queue_full device=%s waited_ms=%u suppressed=%u", m->device_id,
                   in->backpressure_ms, suppressed);
        tb_msg_free(m);
        return TB_INGEST_DROPPED;
    }
    atomic_fetch_add_explicit(&in->stats->messages_in[kind], 1, memory_order_relaxed);
    unsigned long long depth = tb_queue_depth(in->queue);
    if (depth > atomic_load_explicit(&in->stats->queue_depth_max, memory_order_relaxed))
        atomic_store_explicit(&in->stats->queue_depth_max, depth, memory_order_relaxed);
    if (tb_queue_wake_needed(in->queue) && in->wake)
        in->wake(in->wake_arg);
    return 0;
}

/*
 * Normalises the payload into m and encodes it once, here, so that the service thread splices
 * the encoding instead of encoding the envelope. 0 or a TB_NORMALIZE_ERR().
 */
static int normalize_into(const tb_ingest_t *in, const void *payload, size_t len, tb_msg_t *m)
{
    json_t *obj = NULL;
    int rc =
        m->kind == TB_MSG_TELEMETRY
            ? tb_normalize_telemetry(m->device_id, payload, len, in->max_payload, m->ingest_ms,
                                     &obj)
            : tb_normalize_status(m->device_id, payload, len, in->max_payload, m->ingest_ms, &obj);
    if (rc != 0)
        return rc;
    rc = tb_msg_set_payload(m, obj, TB_MSG_JSON_MAX(in->max_payload));
    if (rc == -E2BIG)
        return TB_NORMALIZE_ERR(TB_INVALID_TOO_LARGE);
    return rc ? TB_INGEST_DROPPED : 0;
}

int tb_ingest_handle(tb_ingest_t *in, const char *topic, const void *payload, size_t len,
                     bool retained)
{
    tb_msg_t *m = tb_msg_new();
    if (!m)
        return refuse(in, TB_INGEST_DROPPED, topic);
    int rc = match_topic(in, topic, m);
    if (rc == 0) {
        m->retained = retained;
        m->ingest_us = tb_now_us();
        m->ingest_ms = m->ingest_us / 1000;
        rc = normalize_into(in, payload, len, m);
    }
    if (rc != 0) {
        tb_msg_free(m);
        return refuse(in, rc, topic);
    }
    return enqueue(in, m);
}

/* ---- the MQTT session (ingest thread) ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    tb_ingest_t *in = obj;
    const tb_config_mqtt_t *m = &in->cfg->mqtt;
    if (rc != 0) {
        snprintf(in->last_error, sizeof(in->last_error), "%s", mosquitto_connack_string(rc));
        return;
    }
    /* libmosquitto does not write through the filters (its prototype is not const). */
    char *filters[] = {(char *)tb_topic_tpl_filter(in->telemetry),
                       (char *)tb_topic_tpl_filter(in->status)};
    int src = mosquitto_subscribe_multiple(mosq, &in->sub_mid, 2, filters, m->qos, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS) {
        /* Without its subscriptions the session is useless: drop it and retry. */
        snprintf(in->last_error, sizeof(in->last_error), "subscribe: %s", mosquitto_strerror(src));
        mosquitto_disconnect(mosq);
    }
}

/* The SUBACK of on_connect's subscriptions: the session is up once both are granted. */
static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
    tb_ingest_t *in = obj;
    const tb_config_mqtt_t *m = &in->cfg->mqtt;
    if (mid != in->sub_mid)
        return;
    for (int i = 0; i < n; i++) {
        if (granted[i] < 0 || granted[i] > 2) { /* 0x80: refused */
            snprintf(in->last_error, sizeof(in->last_error), "subscribe refused by the broker");
            mosquitto_disconnect(mosq);
            return;
        }
    }
    in->session_up = true;
    in->failures = 0;
    atomic_store(&in->stats->mqtt_connected, 1);
    atomic_fetch_add(&in->stats->mqtt_connects, 1);
    const tb_mqtt_node_t *node = tb_mqtt_nodes_current(&in->nodes);
    tb_log(TB_LOG_INFO, "mqtt connected", "host=%s port=%d node=%zu/%zu client_id=%s qos=%d",
           node->host, node->port, in->nodes.cur + 1, in->nodes.n, in->client_id, m->qos);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    (void)rc;
    tb_ingest_t *in = obj;
    atomic_store(&in->stats->mqtt_connected, 0);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    (void)mosq;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    tb_ingest_handle(obj, msg->topic, msg->payload, len, msg->retain);
}

/* Describes a libmosquitto failure; err_no is errno as it was right after the call. */
static void note_error(tb_ingest_t *in, int rc, int err_no)
{
    if (in->last_error[0])
        return; /* a more specific reason (CONNACK, subscribe) is already there */
    snprintf(in->last_error, sizeof(in->last_error), "%s",
             rc == MOSQ_ERR_ERRNO ? strerror(err_no) : mosquitto_strerror(rc));
}

/*
 * One pass of the client's network loop, as mosquitto_loop(mosq, timeout_ms, 1) but waiting
 * with poll(): mosquitto_loop() waits with select() and refuses (MOSQ_ERR_INVAL) a socket
 * numbered FD_SETSIZE (1024) or more — the number a reconnect gets once the service thread
 * holds a thousand WebSockets, which would keep the bridge off its broker for good.
 */
static int loop_once(struct mosquitto *mosq, int timeout_ms)
{
    struct pollfd pfd = {.fd = mosquitto_socket(mosq), .events = POLLIN};
    if (pfd.fd < 0)
        return MOSQ_ERR_NO_CONN;
    if (mosquitto_want_write(mosq))
        pfd.events |= POLLOUT;
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
    int rc = MOSQ_ERR_SUCCESS;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        rc = mosquitto_loop_read(mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && (pfd.revents & POLLOUT) && mosquitto_socket(mosq) >= 0)
        rc = mosquitto_loop_write(mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_misc(mosq);
    return rc;
}

/* Sends DISCONNECT and lets the loop flush it until the broker closes (bounded). */
static void disconnect_cleanly(tb_ingest_t *in)
{
    if (mosquitto_disconnect(in->mosq) != MOSQ_ERR_SUCCESS)
        return;
    for (int i = 0; i < DISCONNECT_FLUSH_PASSES; i++)
        if (loop_once(in->mosq, LOOP_TIMEOUT_MS) != MOSQ_ERR_SUCCESS)
            break;
    if (in->session_up)
        tb_log(TB_LOG_INFO, "mqtt disconnected", "host=%s port=%d",
               tb_mqtt_nodes_current(&in->nodes)->host, tb_mqtt_nodes_current(&in->nodes)->port);
}

/* One connection attempt and, when it succeeds, the whole session; returns on loss or stop. */
static void run_session(tb_ingest_t *in)
{
    const tb_mqtt_node_t *node = tb_mqtt_nodes_current(&in->nodes);
    in->session_up = false;
    in->last_error[0] = '\0';
    atomic_store(&in->stats->mqtt_node, in->nodes.cur);
    int rc = mosquitto_connect_async(in->mosq, node->host, node->port, in->cfg->mqtt.keepalive_s);
    while (rc == MOSQ_ERR_SUCCESS && !atomic_load(&in->stopping))
        rc = loop_once(in->mosq, LOOP_TIMEOUT_MS);
    int err_no = errno;
    if (rc == MOSQ_ERR_SUCCESS)
        disconnect_cleanly(in); /* stopping */
    else
        note_error(in, rc, err_no);
    atomic_store(&in->stats->mqtt_connected, 0);
}

/* Equal jitter: uniform in [base/2, base], base doubling from BACKOFF_FIRST_MS to the cap. */
static unsigned backoff_ms(unsigned failures, unsigned *seed)
{
    unsigned base = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && base < BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    return base / 2 + (unsigned)rand_r(seed) % (base / 2 + 1);
}

/* Sleeps ms unless stop comes first. */
static void wait_or_stop(tb_ingest_t *in, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * NS_PER_MS;
    if (until.tv_nsec >= NS_PER_S) {
        until.tv_sec++;
        until.tv_nsec -= NS_PER_S;
    }
    pthread_mutex_lock(&in->lock);
    while (!atomic_load(&in->stopping))
        if (pthread_cond_timedwait(&in->cond, &in->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&in->lock);
}

/* m: the node that was lost or refused; the current one is where the retry goes. */
static void log_retry(const tb_ingest_t *in, const tb_mqtt_node_t *m, bool was_up, unsigned delay)
{
    const tb_mqtt_node_t *next = tb_mqtt_nodes_current(&in->nodes);
    if (was_up)
        tb_log(TB_LOG_WARN, "mqtt connection lost",
               "host=%s port=%d error=\"%s\" retry_in_ms=%u next_host=%s next_port=%d", m->host,
               m->port, in->last_error, delay, next->host, next->port);
    else
        tb_log(TB_LOG_WARN, "mqtt connect failed",
               "host=%s port=%d attempt=%u retry_in_ms=%u error=\"%s\" next_host=%s next_port=%d",
               m->host, m->port, in->failures, delay, in->last_error, next->host, next->port);
}

static void *ingest_main(void *arg)
{
    tb_ingest_t *in = arg;
    while (!atomic_load(&in->stopping)) {
        run_session(in);
        if (atomic_load(&in->stopping))
            break;
        in->failures++;
        if (!in->session_up)
            atomic_fetch_add(&in->stats->mqtt_connect_failures, 1);
        unsigned delay = backoff_ms(in->failures, &in->seed);
        const tb_mqtt_node_t *was = tb_mqtt_nodes_current(&in->nodes);
        tb_mqtt_nodes_next(&in->nodes); /* a cluster's next node; the same one without */
        log_retry(in, was, in->session_up, delay);
        wait_or_stop(in, delay);
    }
    return NULL;
}

/* ---- life cycle (the owner's thread) ---- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
    mosquitto_lib_init();
}

/* Overwrites a secret so it does not linger in freed or stack memory. */
/* Reads the password file into a new buffer of PASSWORD_MAX + 1 bytes (*pw: wipe and free
 * it), trailing CR/LF removed. */
static int read_password(const char *path, char **pw, char *err, size_t errlen)
{
    size_t n;
    int rc = tb_read_file(path, PASSWORD_MAX, pw, &n);
    if (rc && rc != -EFBIG && rc != -ENOMEM) {
        tb_set_err(err, errlen, "mqtt.password_file: cannot open %s: %s", path, strerror(-rc));
        return -1;
    }
    if (rc) {
        tb_set_err(err, errlen, "mqtt.password_file: %s is unreadable or longer than %d bytes",
                   path, PASSWORD_MAX);
        return -1;
    }
    while (n > 0 && ((*pw)[n - 1] == '\n' || (*pw)[n - 1] == '\r'))
        n--;
    (*pw)[n] = '\0';
    return 0;
}

static int set_credentials(tb_ingest_t *in, char *err, size_t errlen)
{
    const tb_config_mqtt_t *m = &in->cfg->mqtt;
    char *pw = NULL;
    if (!m->username && !m->password_file)
        return 0;
    if (!m->username) {
        tb_set_err(err, errlen, "mqtt.password_file: set mqtt.username too (MQTT 3.1.1)");
        return -1;
    }
    int rc = -1;
    if (m->password_file && read_password(m->password_file, &pw, err, errlen) != 0)
        goto done;
    if (mosquitto_username_pw_set(in->mosq, m->username, pw) != MOSQ_ERR_SUCCESS) {
        tb_set_err(err, errlen, "mqtt.username: refused by libmosquitto");
        goto done;
    }
    rc = 0;
done:
    if (pw) {
        tb_wipe(pw, PASSWORD_MAX + 1); /* tb_read_file's buffer is max + 1 bytes */
        free(pw);
    }
    return rc;
}

static tb_topic_tpl_t *parse_template(const char *tpl, const char *key, char *err, size_t errlen)
{
    char why[ERROR_TEXT_LEN];
    tb_topic_tpl_t *t = tpl ? tb_topic_tpl_parse(tpl, why, sizeof(why)) : NULL;
    if (!t)
        tb_set_err(err, errlen, "%s: %s", key, tpl ? why : "missing");
    return t;
}

static int init_sync(tb_ingest_t *in)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0 && (rc = pthread_mutex_init(&in->lock, NULL)) == 0) {
        rc = pthread_cond_init(&in->cond, &ca);
        if (rc != 0)
            pthread_mutex_destroy(&in->lock);
    }
    pthread_condattr_destroy(&ca);
    in->sync_ready = rc == 0;
    return rc == 0 ? 0 : -1;
}

/* A persistent session (clean_session false) under the expanded client id: the broker keeps
 * the subscriptions and the QoS 1/2 messages for it while the bridge is away. */
static int create_client(tb_ingest_t *in, char *err, size_t errlen)
{
    if (tb_config_client_id(in->cfg, in->client_id, sizeof(in->client_id), err, errlen) != 0)
        return -1;
    tb_log(TB_LOG_INFO, "mqtt session", "client_id=%s clean_session=false", in->client_id);
    in->mosq = mosquitto_new(in->client_id, false, in);
    if (!in->mosq) {
        tb_set_err(err, errlen, "mqtt.client_id: cannot create the MQTT client: %s",
                   strerror(errno));
        return -1;
    }
    if (set_credentials(in, err, errlen) != 0)
        return -1;
    mosquitto_connect_callback_set(in->mosq, on_connect);
    mosquitto_disconnect_callback_set(in->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(in->mosq, on_subscribe);
    mosquitto_message_callback_set(in->mosq, on_message);
    return 0;
}

tb_ingest_t *tb_ingest_create(const tb_ingest_opts_t *opts, char *err, size_t errlen)
{
    const tb_config_t *cfg = opts->cfg;
    pthread_once(&lib_once, lib_init);
    tb_ingest_t *in = calloc(1, sizeof(*in));
    if (!in || init_sync(in) != 0) {
        tb_set_err(err, errlen, "out of memory");
        goto fail;
    }
    in->cfg = cfg;
    in->queue = opts->queue;
    in->stats = opts->stats;
    in->wake = opts->wake;
    in->wake_arg = opts->wake_arg;
    in->backpressure_ms = opts->backpressure_ms ? opts->backpressure_ms : TB_INGEST_BACKPRESSURE_MS;
    in->max_payload =
        cfg->limits.max_mqtt_payload_bytes > 0 ? (size_t)cfg->limits.max_mqtt_payload_bytes : 0;
    in->seed = (unsigned)tb_now_ms() ^ (unsigned)(uintptr_t)in;
    atomic_init(&in->stopping, false);
    in->telemetry = parse_template(cfg->mqtt.telemetry_topic, "mqtt.telemetry_topic", err, errlen);
    if (!in->telemetry)
        goto fail;
    in->status = parse_template(cfg->mqtt.status_topic, "mqtt.status_topic", err, errlen);
    if (!in->status || tb_mqtt_nodes_init(&in->nodes, &cfg->mqtt, err, errlen) != 0 ||
        create_client(in, err, errlen) != 0)
        goto fail;
    return in;
fail:
    tb_ingest_destroy(in);
    return NULL;
}

int tb_ingest_start(tb_ingest_t *in)
{
    if (in->running)
        return -1;
    atomic_store(&in->stopping, false);
    if (pthread_create(&in->thread, NULL, ingest_main, in) != 0)
        return -1;
    in->running = true;
    return 0;
}

void tb_ingest_stop(tb_ingest_t *in)
{
    if (!in || !in->running)
        return;
    pthread_mutex_lock(&in->lock);
    atomic_store(&in->stopping, true);
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
    pthread_join(in->thread, NULL);
    in->running = false;
}

void tb_ingest_destroy(tb_ingest_t *in)
{
    if (!in)
        return;
    tb_ingest_stop(in);
    if (in->mosq)
        mosquitto_destroy(in->mosq);
    tb_topic_tpl_free(in->telemetry);
    tb_topic_tpl_free(in->status);
    tb_mqtt_nodes_free(&in->nodes);
    if (in->sync_ready) {
        pthread_cond_destroy(&in->cond);
        pthread_mutex_destroy(&in->lock);
    }
    free(in);
}
