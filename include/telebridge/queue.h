/*
 * queue — bounded lock-free single-producer/single-consumer ring of pointers (C11 atomics).
 *
 * Exactly one thread may call the producer functions (push, push_wait) and exactly one other
 * thread the consumer function (pop) over the queue's life; depth() may be called from any
 * thread and is approximate while both run. Items are opaque pointers that must not be NULL;
 * the queue never frees them, so whoever destroys it drains it first.
 */
#ifndef TELEBRIDGE_QUEUE_H
#define TELEBRIDGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tb_queue tb_queue_t;

/* capacity is rounded up to a power of two (minimum 2). NULL when out of memory or 0. */
tb_queue_t *tb_queue_create(size_t capacity);
/* Frees the ring only. NULL is a no-op. */
void tb_queue_destroy(tb_queue_t *q);

/* Producer: appends item. Returns false (and keeps nothing) when the queue is full. */
bool tb_queue_push(tb_queue_t *q, void *item);
/*
 * Producer: appends item, waiting while the queue is full for at most timeout_ms (sleeping in
 * short steps, calling wake(wake_arg) when non-NULL before each wait so the consumer runs).
 * Returns 0, or -1 when still full after the timeout (item not queued: the caller counts it
 * as dropped and frees it).
 */
int tb_queue_push_wait(tb_queue_t *q, void *item, unsigned timeout_ms, void (*wake)(void *),
                       void *wake_arg);
/* Consumer: removes and returns the oldest item, or NULL when empty. */
void *tb_queue_pop(tb_queue_t *q);

/*
 * Wake-up handshake, so the producer wakes the consumer once per batch rather than per item
 * (an event count with sequentially consistent atomics; no wake-up can be lost):
 * - the consumer, after pop() returned NULL, calls consumer_idle(): it announces that it is
 *   about to sleep and returns true, or returns false when an item arrived meanwhile (pop on);
 * - the producer, after each successful push, calls wake_needed(): true exactly when the
 *   consumer announced idleness since the last true, and the producer must then wake it.
 * A new queue starts as if the consumer were idle.
 */
bool tb_queue_consumer_idle(tb_queue_t *q);
bool tb_queue_wake_needed(tb_queue_t *q);

size_t tb_queue_depth(const tb_queue_t *q);
size_t tb_queue_capacity(const tb_queue_t *q);

#endif
