/* queue — bounded lock-free SPSC ring with a wake-up handshake; see include/telebridge/queue.h. */
#include "telebridge/queue.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Keeps the consumer's and the producer's hot fields apart (no false sharing). */
#define CACHE_LINE 64
#define MIN_CAPACITY 2
/* push_wait sleeps in steps growing from the first to the second (nanoseconds). */
#define WAIT_STEP_MIN_NS 50000L
#define WAIT_STEP_MAX_NS 200000L
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/*
 * head and tail are free-running counters (slot = counter & mask, depth = tail - head). Each
 * side keeps a plain cached copy of the other side's counter on its own cache line and only
 * reloads it when the ring looks full (producer) or empty (consumer).
 *
 * Publication: the producer writes the slot, then stores tail (release or stronger); the
 * consumer loads tail with acquire before reading the slot. Recycling: the consumer reads the
 * slot, then stores head with release; the producer loads head with acquire before reusing it.
 */
struct tb_queue {
    _Alignas(CACHE_LINE) atomic_size_t head; /* written by the consumer only */
    size_t tail_cache;                       /* consumer's copy of tail */
    _Alignas(CACHE_LINE) atomic_size_t tail; /* written by the producer only */
    size_t head_cache;                       /* producer's copy of head */
    /* 1 while the consumer's announcement "I am going to sleep" is unclaimed; see below. */
    _Alignas(CACHE_LINE) atomic_int idle;
    _Alignas(CACHE_LINE) size_t mask; /* capacity - 1; read-only after create */
    void **slots;
};

tb_queue_t *tb_queue_create(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    size_t cap = MIN_CAPACITY;
    while (cap < capacity) {
        if (cap > SIZE_MAX / 2 / sizeof(void *))
            return NULL;
        cap <<= 1;
    }
    /* sizeof a struct is a multiple of its alignment, as aligned_alloc requires. */
    tb_queue_t *q = aligned_alloc(CACHE_LINE, sizeof(*q));
    if (!q)
        return NULL;
    q->slots = calloc(cap, sizeof(void *));
    if (!q->slots) {
        free(q);
        return NULL;
    }
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->idle, 1); /* a new queue starts as if the consumer were idle */
    q->tail_cache = 0;
    q->head_cache = 0;
    q->mask = cap - 1;
    return q;
}

void tb_queue_destroy(tb_queue_t *q)
{
    if (!q)
        return;
    free(q->slots);
    free(q);
}

bool tb_queue_push(tb_queue_t *q, void *item)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - q->head_cache > q->mask) {
        q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
        if (t - q->head_cache > q->mask)
            return false;
    }
    q->slots[t & q->mask] = item;
    /* seq_cst rather than release: this store is one half of the handshake's Dekker pair. */
    atomic_store_explicit(&q->tail, t + 1, memory_order_seq_cst);
    return true;
}

void *tb_queue_pop(tb_queue_t *q)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h == q->tail_cache) {
        q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (h == q->tail_cache)
            return NULL;
    }
    void *item = q->slots[h & q->mask];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return item;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_ns(long ns)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int tb_queue_push_wait(tb_queue_t *q, void *item, unsigned timeout_ms, void (*wake)(void *),
                       void *wake_arg)
{
    if (tb_queue_push(q, item))
        return 0;
    int64_t deadline = mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
    long step = WAIT_STEP_MIN_NS;
    for (;;) {
        int64_t left = deadline - mono_ns();
        if (left <= 0)
            return -1;
        if (wake)
            wake(wake_arg);
        sleep_ns(left < step ? (long)left : step);
        if (tb_queue_push(q, item))
            return 0;
        step = step * 2 > WAIT_STEP_MAX_NS ? WAIT_STEP_MAX_NS : step * 2;
    }
}

/*
 * The handshake is a one-waiter event count: `idle` is 1 from the consumer's announcement
 * until either the consumer withdraws it or the producer claims it (exchange to 0), so each
 * announcement is claimed at most once and every claim is answered by exactly one wake.
 *
 * Why no wake-up is lost. Every operation below and the producer's tail store are seq_cst,
 * so they fall in one total order S consistent with each thread's program order. The
 * consumer does  A: idle = 1;  B: read tail.  The producer does  C: tail = t + 1 (push);
 * D: read idle (wake_needed). Suppose B did not see the item C published, so the consumer
 * sleeps. Then B precedes C in S, hence A < B < C < D, and D reads the 1 stored by A unless
 * a later write replaced it; the only later writes are claims by the producer itself (an
 * earlier wake_needed that claimed A, and so already woke the consumer). Either way a wake
 * follows A. Conversely, if B saw the item the consumer does not sleep: it withdraws its
 * announcement, or finds it already claimed, in which case the producer's wake is on its way
 * and the consumer must still take it, so it reports "sleep" to keep wakes and sleeps paired.
 * Release/acquire alone would allow B to miss C while D misses A (store buffering).
 */
bool tb_queue_consumer_idle(tb_queue_t *q)
{
    atomic_store(&q->idle, 1);
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (atomic_load(&q->tail) == h)
        return true;
    /* An item arrived meanwhile: withdraw, unless the producer already claimed the flag. */
    return atomic_exchange(&q->idle, 0) == 0;
}

bool tb_queue_wake_needed(tb_queue_t *q)
{
    /* The plain load keeps the common case (consumer busy) free of a locked instruction. */
    if (atomic_load(&q->idle) == 0)
        return false;
    return atomic_exchange(&q->idle, 0) == 1;
}

size_t tb_queue_depth(const tb_queue_t *q)
{
    /* head first: tail never falls behind a head read earlier, so this cannot underflow. */
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t d = t - h;
    return d > q->mask + 1 ? q->mask + 1 : d;
}

size_t tb_queue_capacity(const tb_queue_t *q)
{
    return q->mask + 1;
}
