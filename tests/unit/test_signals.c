/*
 * Tests for signals: the stop and reload signals are taken on the signal thread, not by a
 * handler; one sent before the thread starts waits for it; none is taken after stop.
 * Signals are sent to the whole process with kill(): the kernel hands them to the one thread
 * waiting for them, as with a signal from systemd.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "telebridge/signals.h"
#include "telebridge/util.h"

#define WAIT_LIMIT_MS 5000
#define QUIET_MS 300
#define POLL_MS 5

typedef struct {
    atomic_int calls;
    atomic_int last;
    atomic_bool on_main; /* a call ran on the thread that started the module */
    pthread_t main;
} record_t;

static void on_sig(void *arg, int sig)
{
    record_t *r = arg;
    if (pthread_equal(pthread_self(), r->main))
        atomic_store(&r->on_main, true);
    atomic_store(&r->last, sig);
    atomic_fetch_add(&r->calls, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits until r has seen calls calls; the last signal, or 0 on time-out. */
static int wait_calls(record_t *r, int calls)
{
    for (int64_t t0 = tb_mono_ms(); tb_mono_ms() - t0 < WAIT_LIMIT_MS; sleep_ms(POLL_MS))
        if (atomic_load(&r->calls) >= calls)
            return atomic_load(&r->last);
    return 0;
}

static void record_init(record_t *r)
{
    atomic_init(&r->calls, 0);
    atomic_init(&r->last, 0);
    atomic_init(&r->on_main, false);
    r->main = pthread_self();
}

static void test_each_signal_reaches_the_thread(void **state)
{
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGHUP};
    record_t r;
    (void)state;
    record_init(&r);
    tb_signals_t *s = tb_signals_start(on_sig, &r);
    assert_non_null(s);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(kill(getpid(), sigs[i]), 0);
        assert_int_equal(wait_calls(&r, i + 1), sigs[i]);
    }
    assert_false(atomic_load(&r.on_main));
    tb_signals_stop(s);
    assert_int_equal(atomic_load(&r.calls), 4);
}

static void test_signal_before_start_waits(void **state)
{
    record_t r;
    (void)state;
    record_init(&r);
    /* Blocked: pending, not fatal, until the thread takes it. */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    sleep_ms(QUIET_MS);
    tb_signals_t *s = tb_signals_start(on_sig, &r);
    assert_non_null(s);
    assert_int_equal(wait_calls(&r, 1), SIGTERM);
    tb_signals_stop(s);
}

static void test_nothing_after_stop(void **state)
{
    record_t r;
    sigset_t pending;
    (void)state;
    record_init(&r);
    tb_signals_t *s = tb_signals_start(on_sig, &r);
    assert_non_null(s);
    tb_signals_stop(s);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    sleep_ms(QUIET_MS);
    assert_int_equal(atomic_load(&r.calls), 0);
    /* Still held for the process; taken by the next thread (none is leaked by stop). */
    assert_int_equal(sigpending(&pending), 0);
    assert_int_equal(sigismember(&pending, SIGHUP), 1);
    s = tb_signals_start(on_sig, &r);
    assert_non_null(s);
    assert_int_equal(wait_calls(&r, 1), SIGHUP);
    tb_signals_stop(s);
    tb_signals_stop(NULL);
}

static void test_block_sets_the_mask_and_ignores_sigpipe(void **state)
{
    sigset_t mask;
    struct sigaction sa;
    (void)state;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_int_equal(sigismember(&mask, SIGTERM), 1);
    assert_int_equal(sigismember(&mask, SIGINT), 1);
    assert_int_equal(sigismember(&mask, SIGHUP), 1);
    assert_int_equal(sigismember(&mask, SIGPIPE), 0);
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    assert_int_equal(raise(SIGPIPE), 0); /* survives */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_sets_the_mask_and_ignores_sigpipe),
        cmocka_unit_test(test_each_signal_reaches_the_thread),
        cmocka_unit_test(test_signal_before_start_waits),
        cmocka_unit_test(test_nothing_after_stop),
    };
    /* As main() does: before any thread (cmocka starts none). */
    if (tb_signals_block())
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
