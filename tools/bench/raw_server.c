/*
 * telebridge-bench-raw — the ceiling for the benchmark: the least a fan-out server can do.
 *
 * Subscribes to "bench/#" on the broker and appends every message, as one pre-encoded unmasked
 * text frame, to a batch; every FLUSH_US a flusher thread writes the batch to every WebSocket
 * connection with one send() each: no rooms, no parsing, no auth, no per-connection queues (a
 * connection whose socket is full is dropped and counted). Upgrades with the RFC 6455 key. usage:
 * telebridge-bench-raw PORT MQTT_PORT. Runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <mosquitto.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SUBS 200000
#define FRAME_MAX 65536
#define BATCH_MAX (4 * FRAME_MAX)
#define FLUSH_US 200
#define REQ_MAX 4096
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
#define KEY_HDR "Sec-WebSocket-Key: "

static int subs[MAX_SUBS];
static int n_subs;
static unsigned long dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;
static unsigned char batch[2][BATCH_MAX];
static size_t batch_len; /* of batch[0], under lock */

/* Writes the batch to every subscriber, the lock held. */
static void flush_locked(void)
{
    static unsigned char *out = batch[1];
    size_t len = batch_len;
    memcpy(out, batch[0], len);
    batch_len = 0;
    for (int i = 0; i < n_subs && len; i++)
        if (send(subs[i], out, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
            close(subs[i]);
            subs[i--] = subs[--n_subs];
            dropped++;
        }
}

static void *flusher(void *arg)
{
    (void)arg;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = FLUSH_US * 1000L};
    while (!stop) {
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&lock);
        flush_locked();
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    (void)m, (void)arg;
    size_t len = (size_t)msg->payloadlen, hdr = len < 126 ? 2 : 4;
    if (len > FRAME_MAX)
        return;
    pthread_mutex_lock(&lock);
    if (batch_len + hdr + len > BATCH_MAX)
        flush_locked();
    unsigned char *frame = batch[0] + batch_len;
    frame[0] = 0x81;
    frame[1] = len < 126 ? (unsigned char)len : 126;
    frame[2] = (unsigned char)(len >> 8);
    frame[3] = (unsigned char)len;
    memcpy(frame + hdr, msg->payload, len);
    batch_len += hdr + len;
    pthread_mutex_unlock(&lock);
}

/* Reads the upgrade request (one segment) and answers 101; the socket joins subs. */
static void upgrade(int fd)
{
    char req[REQ_MAX + 1], cat[128], resp[256];
    unsigned char sha[SHA_DIGEST_LENGTH], acc[64];
    ssize_t n = recv(fd, req, REQ_MAX, 0);
    char *k = n > 0 ? (req[n] = '\0', strstr(req, KEY_HDR)) : NULL;
    if (!k || !strstr(req, "\r\n\r\n") || strcspn(k + strlen(KEY_HDR), "\r") > 64) {
        close(fd);
        return;
    }
    k += strlen(KEY_HDR);
    int kl = (int)strcspn(k, "\r");
    snprintf(cat, sizeof(cat), "%.*s%s", kl, k, WS_GUID);
    SHA1((unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock(acc, sha, SHA_DIGEST_LENGTH);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                      acc);
    pthread_mutex_lock(&lock);
    if (n_subs < MAX_SUBS && send(fd, resp, (size_t)rl, MSG_NOSIGNAL) == rl)
        subs[n_subs++] = fd;
    else
        close(fd);
    pthread_mutex_unlock(&lock);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: %s PORT MQTT_PORT\n", argv[0]), 2;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, SOMAXCONN) != 0)
        return perror("listen"), 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    mosquitto_message_callback_set(m, on_message);
    if (mosquitto_connect(m, "127.0.0.1", atoi(argv[2]), 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_subscribe(m, NULL, "bench/#", 0) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS)
        return fprintf(stderr, "raw: broker unreachable\n"), 1;
    pthread_t th;
    if (pthread_create(&th, NULL, flusher, NULL) != 0)
        return perror("pthread_create"), 1;
    while (!stop) {
        int fd = accept(ls, NULL, NULL);
        if (fd >= 0)
            upgrade(fd);
    }
    pthread_join(th, NULL);
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    fprintf(stderr, "raw: dropped %lu slow connections\n", dropped);
    return 0;
}
