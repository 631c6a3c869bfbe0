/* Unit and two-thread stress tests for the SPSC queue and its wake-up handshake. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "telebridge/queue.h"
#include "telebridge/util.h"

/* Items pushed by the stress test unless TB_STRESS_ITEMS overrides it. */
#define STRESS_DEFAULT_ITEMS 5000000ULL
#define STRESS_CAPACITY 1024
/* A consumer asleep this long was not woken: a lost wake-up, reported instead of hanging. */
#define WAKE_LIMIT_MS 5000
/* The producer's bound on a full queue; the consumer never stalls this long when correct. */
#define PUSH_LIMIT_MS 5000
#define BATCH_COUNT 3000
#define BATCH_MAX 32
#define BATCH_CAPACITY 64
#define BATCH_PAUSE_MAX_US 100

static void *as_item(uintptr_t v)
{
    return (void *)v;
}

static void count_wake(void *arg)
{
    atomic_fetch_add((atomic_uint *)arg, 1);
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* sem_wait bounded by ms; 0 when posted, -1 on timeout. */
static int sem_wait_ms(sem_t *s, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(s, &ts) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

static void test_create_rounds_capacity(void **state)
{
    (void)state;
    assert_null(tb_queue_create(0));
    assert_null(tb_queue_create(SIZE_MAX));
    const size_t asked[] = {1, 2, 3, 4, 5, 1000, 1024, 1025};
    const size_t got[] = {2, 2, 4, 4, 8, 1024, 1024, 2048};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        tb_queue_t *q = tb_queue_create(asked[i]);
        assert_non_null(q);
        assert_int_equal(tb_queue_capacity(q), got[i]);
        assert_int_equal(tb_queue_depth(q), 0);
        tb_queue_destroy(q);
    }
    tb_queue_destroy(NULL);
}

static void test_empty_and_full(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(4);
    assert_non_null(q);
    assert_null(tb_queue_pop(q));
    for (uintptr_t i = 1; i <= 4; i++) {
        assert_true(tb_queue_push(q, as_item(i)));
        assert_int_equal(tb_queue_depth(q), i);
    }
    assert_false(tb_queue_push(q, as_item(99)));
    assert_int_equal(tb_queue_depth(q), 4);
    for (uintptr_t i = 1; i <= 4; i++)
        assert_ptr_equal(tb_queue_pop(q), as_item(i));
    assert_null(tb_queue_pop(q));
    assert_int_equal(tb_queue_depth(q), 0);
    /* Destroying a non-empty queue frees the ring only (items here are not heap pointers). */
    assert_true(tb_queue_push(q, as_item(7)));
    tb_queue_destroy(q);
}

static void test_wraparound_keeps_order(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(4);
    assert_non_null(q);
    uintptr_t next_in = 1, next_out = 1;
    /* Uneven push/pop counts move the indices across the ring's end many times. */
    for (int round = 0; round < 1000; round++) {
        int pushes = 1 + round % 4;
        for (int k = 0; k < pushes; k++) {
            if (!tb_queue_push(q, as_item(next_in)))
                break;
            next_in++;
        }
        int pops = 1 + (round * 7) % 4;
        for (int k = 0; k < pops; k++) {
            void *p = tb_queue_pop(q);
            if (!p)
                break;
            assert_ptr_equal(p, as_item(next_out));
            next_out++;
        }
        assert_int_equal(tb_queue_depth(q), next_in - next_out);
    }
    assert_true(next_in > 1000);
    tb_queue_destroy(q);
}

static void test_push_wait_times_out(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(2);
    atomic_uint wakes = 0;
    assert_true(tb_queue_push(q, as_item(1)));
    assert_true(tb_queue_push(q, as_item(2)));
    int64_t t0 = tb_mono_ms();
    assert_int_equal(tb_queue_push_wait(q, as_item(3), 100, count_wake, &wakes), -1);
    int64_t took = tb_mono_ms() - t0;
    assert_in_range(took, 100, 1000);
    assert_true(atomic_load(&wakes) >= 1);
    /* The refused item was not queued. */
    assert_ptr_equal(tb_queue_pop(q), as_item(1));
    assert_ptr_equal(tb_queue_pop(q), as_item(2));
    assert_null(tb_queue_pop(q));
    tb_queue_destroy(q);
}

static void test_push_wait_zero_timeout(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(2);
    atomic_uint wakes = 0;
    assert_int_equal(tb_queue_push_wait(q, as_item(1), 0, count_wake, &wakes), 0);
    assert_int_equal(tb_queue_push_wait(q, as_item(2), 0, count_wake, &wakes), 0);
    assert_int_equal(tb_queue_push_wait(q, as_item(3), 0, count_wake, &wakes), -1);
    assert_int_equal(tb_queue_push_wait(q, as_item(3), 0, NULL, NULL), -1);
    assert_int_equal(atomic_load(&wakes), 0);
    assert_int_equal(tb_queue_depth(q), 2);
    tb_queue_destroy(q);
}

static void *pop_later(void *arg)
{
    sleep_us(30000);
    return tb_queue_pop(arg);
}

static void test_push_wait_succeeds_when_space_frees(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(2);
    atomic_uint wakes = 0;
    assert_true(tb_queue_push(q, as_item(1)));
    assert_true(tb_queue_push(q, as_item(2)));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pop_later, q), 0);
    int64_t t0 = tb_mono_ms();
    int rc = tb_queue_push_wait(q, as_item(3), 2000, count_wake, &wakes);
    int64_t took = tb_mono_ms() - t0;
    void *popped;
    pthread_join(th, &popped);
    assert_int_equal(rc, 0);
    assert_true(took < 2000);
    assert_ptr_equal(popped, as_item(1));
    assert_true(atomic_load(&wakes) >= 1);
    assert_ptr_equal(tb_queue_pop(q), as_item(2));
    assert_ptr_equal(tb_queue_pop(q), as_item(3));
    tb_queue_destroy(q);
}

static void test_wake_protocol_single_thread(void **state)
{
    (void)state;
    tb_queue_t *q = tb_queue_create(8);
    /* A new queue behaves as if the consumer had announced idleness. */
    assert_true(tb_queue_push(q, as_item(1)));
    assert_true(tb_queue_wake_needed(q));
    assert_true(tb_queue_push(q, as_item(2)));
    assert_false(tb_queue_wake_needed(q));
    /* Items waiting: the consumer must not sleep, and its withdrawn announcement needs no wake. */
    assert_false(tb_queue_consumer_idle(q));
    assert_false(tb_queue_wake_needed(q));
    assert_ptr_equal(tb_queue_pop(q), as_item(1));
    assert_ptr_equal(tb_queue_pop(q), as_item(2));
    assert_null(tb_queue_pop(q));
    /* Empty: the consumer may sleep; the next push needs exactly one wake. */
    assert_true(tb_queue_consumer_idle(q));
    assert_true(tb_queue_push(q, as_item(3)));
    assert_true(tb_queue_wake_needed(q));
    assert_true(tb_queue_push(q, as_item(4)));
    assert_false(tb_queue_wake_needed(q));
    assert_false(tb_queue_wake_needed(q));
    tb_queue_destroy(q);
}

/* Shared state of a producer/consumer run. */
typedef struct {
    tb_queue_t *q;
    uint64_t items;
    bool batches;           /* producer pauses between batches so the consumer goes to sleep */
    sem_t sem;              /* the consumer's sleep */
    atomic_ullong wakes;    /* wake_needed() said yes and the producer posted */
    atomic_ullong sleeps;   /* consumer_idle() said yes and the consumer waited */
    atomic_ullong pressure; /* wakes from push_wait while the queue was full */
    atomic_int failure;     /* first failure code, 0 when none */
} run_t;

enum { FAIL_ORDER = 1, FAIL_LOST_WAKE, FAIL_PUSH_TIMEOUT };

static void run_fail(run_t *r, int code)
{
    int none = 0;
    atomic_compare_exchange_strong(&r->failure, &none, code);
}

static void pressure_wake(void *arg)
{
    run_t *r = arg;
    atomic_fetch_add(&r->pressure, 1);
    sem_post(&r->sem);
}

/* Deterministic xorshift, so a failing interleaving parameter set is reproducible. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *consumer_main(void *arg)
{
    run_t *r = arg;
    uint64_t expected = 1;
    uint32_t rnd = 2463534242u;
    while (expected <= r->items && atomic_load(&r->failure) == 0) {
        void *p = tb_queue_pop(r->q);
        if (p) {
            if ((uintptr_t)p != expected) {
                run_fail(r, FAIL_ORDER);
                break;
            }
            expected++;
            continue;
        }
        /* Sometimes dawdle, so items arrive between the empty pop and the announcement. */
        if (r->batches && next_rand(&rnd) % 4 == 0)
            sleep_us(20);
        if (!tb_queue_consumer_idle(r->q))
            continue;
        atomic_fetch_add(&r->sleeps, 1);
        if (sem_wait_ms(&r->sem, WAKE_LIMIT_MS) != 0)
            run_fail(r, FAIL_LOST_WAKE);
    }
    return NULL;
}

static void produce_one(run_t *r, uint64_t v)
{
    void (*wake)(void *) = r->batches ? NULL : pressure_wake;
    if (tb_queue_push_wait(r->q, as_item((uintptr_t)v), PUSH_LIMIT_MS, wake, r) != 0) {
        run_fail(r, FAIL_PUSH_TIMEOUT);
        return;
    }
    if (tb_queue_wake_needed(r->q)) {
        atomic_fetch_add(&r->wakes, 1);
        sem_post(&r->sem);
    }
}

static void producer_run(run_t *r)
{
    uint32_t rnd = 88172645u;
    uint64_t v = 1;
    while (v <= r->items && atomic_load(&r->failure) == 0) {
        uint64_t batch = r->batches ? 1 + next_rand(&rnd) % BATCH_MAX : r->items;
        for (uint64_t k = 0; k < batch && v <= r->items && atomic_load(&r->failure) == 0; k++)
            produce_one(r, v++);
        if (r->batches && next_rand(&rnd) % 2 == 0)
            sleep_us(next_rand(&rnd) % BATCH_PAUSE_MAX_US);
    }
}

static void run_pair(run_t *r, size_t capacity)
{
    r->q = tb_queue_create(capacity);
    assert_non_null(r->q);
    assert_int_equal(sem_init(&r->sem, 0, 0), 0);
    pthread_t consumer;
    assert_int_equal(pthread_create(&consumer, NULL, consumer_main, r), 0);
    producer_run(r);
    /* A consumer stuck asleep after a failed producer is released by one last post. */
    if (atomic_load(&r->failure) != 0)
        sem_post(&r->sem);
    pthread_join(consumer, NULL);
    assert_null(tb_queue_pop(r->q));
    sem_destroy(&r->sem);
    tb_queue_destroy(r->q);
}

static uint64_t stress_items(void)
{
    const char *env = getenv("TB_STRESS_ITEMS");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0' && v > 0)
            return v;
    }
    return STRESS_DEFAULT_ITEMS;
}

static void test_stress_two_threads(void **state)
{
    (void)state;
    run_t r = {.items = stress_items(), .batches = false};
    int64_t t0 = tb_mono_ms();
    run_pair(&r, STRESS_CAPACITY);
    print_message("stress: %llu items in %lld ms, %llu wakes, %llu sleeps, %llu pressure\n",
                  (unsigned long long)r.items, (long long)(tb_mono_ms() - t0),
                  (unsigned long long)atomic_load(&r.wakes),
                  (unsigned long long)atomic_load(&r.sleeps),
                  (unsigned long long)atomic_load(&r.pressure));
    assert_int_equal(atomic_load(&r.failure), 0);
}

static void test_batches_lose_no_wakeup(void **state)
{
    (void)state;
    run_t r = {.items = (uint64_t)BATCH_COUNT * BATCH_MAX / 2, .batches = true};
    run_pair(&r, BATCH_CAPACITY);
    assert_int_equal(atomic_load(&r.failure), 0);
    unsigned long long wakes = atomic_load(&r.wakes), sleeps = atomic_load(&r.sleeps);
    /* The consumer really slept between batches, and every sleep had its own wake (plus at
     * most one for the initial "as if idle" state). */
    assert_true(sleeps > BATCH_COUNT / 10);
    assert_true(wakes == sleeps || wakes == sleeps + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rounds_capacity),
        cmocka_unit_test(test_empty_and_full),
        cmocka_unit_test(test_wraparound_keeps_order),
        cmocka_unit_test(test_push_wait_times_out),
        cmocka_unit_test(test_push_wait_zero_timeout),
        cmocka_unit_test(test_push_wait_succeeds_when_space_frees),
        cmocka_unit_test(test_wake_protocol_single_thread),
        cmocka_unit_test(test_stress_two_threads),
        cmocka_unit_test(test_batches_lose_no_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
