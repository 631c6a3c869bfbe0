/*
 * Tests for wsguard: the interposed recv() on a socket pair. Unattached descriptors and other
 * threads pass through untouched; an attach needs the stream to end with the upgrade request;
 * an attached descriptor's violation calls the fail hook once and reads as end of stream.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "telebridge/wsframe.h"
#include "telebridge/wsguard.h"

#include "fixtures.h"

#define BUF 4096

static const char k_request[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
/* A masked text frame "hi" (zero key) and the same frame unmasked. */
static const uint8_t k_good[] = {0x81, 0x82, 0, 0, 0, 0, 'h', 'i'};
static const uint8_t k_unmasked[] = {0x81, 0x02, 'h', 'i'};

static struct {
    int calls, code;
    void *arg;
    const char *reason;
} g_fail;

static void on_fail(void *arg, int code, const char *reason)
{
    g_fail.calls++;
    g_fail.code = code;
    g_fail.arg = arg;
    g_fail.reason = reason;
}

typedef struct {
    int sv[2]; /* sv[0]: the bridge's end, read with recv(); sv[1]: the client's */
} pair_t;

static int setup(void **state)
{
    static pair_t p;
    memset(&g_fail, 0, sizeof(g_fail));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p.sv) || tb_wsguard_start(on_fail))
        return -1;
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    pair_t *p = *state;
    tb_wsguard_stop();
    close(p->sv[0]);
    close(p->sv[1]);
    return 0;
}

static void put(pair_t *p, const void *data, size_t len)
{
    assert_int_equal(write(p->sv[1], data, len), (ssize_t)len);
}

/* Writes data and reads it back with recv(); what recv() returned. */
static ssize_t roundtrip(pair_t *p, const void *data, size_t len)
{
    uint8_t buf[BUF];
    put(p, data, len);
    ssize_t n = recv(p->sv[0], buf, sizeof(buf), 0);
    if (n > 0) {
        assert_int_equal(n, (ssize_t)len);
        assert_memory_equal(buf, data, len);
    }
    return n;
}

/* The request read in three pieces, then attached. */
static void upgrade(pair_t *p, void *arg)
{
    size_t n = sizeof(k_request) - 1;
    assert_int_equal(roundtrip(p, k_request, 10), 10);
    assert_int_equal(roundtrip(p, k_request + 10, n - 12), (ssize_t)(n - 12));
    assert_int_equal(roundtrip(p, k_request + n - 2, 2), 2);
    assert_int_equal(tb_wsguard_attach(p->sv[0], arg), 0);
}

static void test_unattached_passes_anything(void **state)
{
    pair_t *p = *state;
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 0);
}

static void test_violation_fails_once_and_reads_as_eof(void **state)
{
    pair_t *p = *state;
    int arg;
    upgrade(p, &arg);
    assert_int_equal(roundtrip(p, k_good, sizeof(k_good)), (ssize_t)sizeof(k_good));
    assert_int_equal(g_fail.calls, 0);
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), 0);
    assert_int_equal(g_fail.calls, 1);
    assert_int_equal(g_fail.code, TB_WSFRAME_PROTOCOL_ERROR);
    assert_ptr_equal(g_fail.arg, &arg);
    assert_string_equal(g_fail.reason, "unmasked frame");
    /* Detached by the violation: what follows (lws's close handshake) passes. */
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 1);
}

static void test_frames_with_the_request_refuse_the_attach(void **state)
{
    pair_t *p = *state;
    uint8_t both[sizeof(k_request) - 1 + sizeof(k_good)];
    memcpy(both, k_request, sizeof(k_request) - 1);
    memcpy(both + sizeof(k_request) - 1, k_good, sizeof(k_good));
    assert_int_equal(roundtrip(p, both, sizeof(both)), (ssize_t)sizeof(both));
    assert_int_equal(tb_wsguard_attach(p->sv[0], NULL), TB_WSGUARD_E_EARLY);
    /* Nothing read yet on a new descriptor: no request end either. */
    int other[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    assert_int_equal(tb_wsguard_attach(other[0], NULL), TB_WSGUARD_E_EARLY);
    close(other[0]);
    close(other[1]);
}

static void test_peek_does_not_feed(void **state)
{
    pair_t *p = *state;
    uint8_t buf[BUF];
    upgrade(p, NULL);
    put(p, k_unmasked, sizeof(k_unmasked));
    assert_int_equal(recv(p->sv[0], buf, sizeof(buf), MSG_PEEK), (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 0);
    assert_int_equal(recv(p->sv[0], buf, sizeof(buf), 0), 0);
    assert_int_equal(g_fail.calls, 1);
}

static void *read_unmasked(void *arg)
{
    pair_t *p = arg;
    static uint8_t buf[BUF];
    static ssize_t n;
    n = recv(p->sv[0], buf, sizeof(buf), 0);
    return &n;
}

static void test_other_threads_pass_through(void **state)
{
    pair_t *p = *state;
    pthread_t t;
    void *res;
    upgrade(p, NULL);
    put(p, k_unmasked, sizeof(k_unmasked));
    assert_int_equal(pthread_create(&t, NULL, read_unmasked, p), 0);
    assert_int_equal(pthread_join(t, &res), 0);
    assert_int_equal(*(ssize_t *)res, (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 0);
}

static void test_detach_takes_the_owner(void **state)
{
    pair_t *p = *state;
    int mine, other;
    upgrade(p, &mine);
    tb_wsguard_detach(p->sv[0], &other); /* not its attach: stays */
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), 0);
    assert_int_equal(g_fail.calls, 1);
    upgrade(p, &mine);
    tb_wsguard_detach(p->sv[0], &mine);
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 1);
}

static void test_one_guard_and_stop(void **state)
{
    pair_t *p = *state;
    assert_int_equal(tb_wsguard_start(on_fail), -1);
    upgrade(p, NULL);
    tb_wsguard_stop();
    assert_int_equal(roundtrip(p, k_unmasked, sizeof(k_unmasked)), (ssize_t)sizeof(k_unmasked));
    assert_int_equal(g_fail.calls, 0);
    /* Without a guard an attach checks nothing and succeeds. */
    assert_int_equal(tb_wsguard_attach(p->sv[0], NULL), 0);
    assert_int_equal(tb_wsguard_start(on_fail), 0); /* for teardown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURES_TEST(test_unattached_passes_anything),
        FIXTURES_TEST(test_violation_fails_once_and_reads_as_eof),
        FIXTURES_TEST(test_frames_with_the_request_refuse_the_attach),
        FIXTURES_TEST(test_peek_does_not_feed),
        FIXTURES_TEST(test_other_threads_pass_through),
        FIXTURES_TEST(test_detach_takes_the_owner),
        FIXTURES_TEST(test_one_guard_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
