/*
 * ratelimit — token buckets keyed by a short string (the peer address of a handshake).
 *
 * Each key has a bucket of `burst` tokens refilled at `rate` tokens per second; an event takes
 * one token and is refused when none is left. An unknown key starts with a full bucket.
 * Arithmetic is in integer milli-tokens, so there is no rounding drift.
 *
 * Bound: at most max_keys buckets are held (fixed, allocated at creation). A new key in a full
 * table evicts, in order of preference, a bucket that has refilled completely (forgetting it
 * changes nothing: it would start full anyway), else the bucket idle the longest. An attacker
 * with more addresses than max_keys can therefore reset the buckets of his own oldest
 * addresses, never make anyone else's bucket emptier.
 *
 * Ownership: the caller owns the limiter; keys are copied into it (cut to TB_RATELIMIT_KEY_MAX
 * bytes), never kept by pointer. Nothing allocates after creation, so allow() cannot fail.
 *
 * Single-threaded: the service thread only. Times are monotonic milliseconds; a clock that goes
 * backwards refills nothing.
 */
#ifndef TELEBRIDGE_RATELIMIT_H
#define TELEBRIDGE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Buckets held at most by the handshake limiter. */
#define TB_RATELIMIT_KEYS_MAX 4096
/* Longest key kept, in bytes (an IPv6 address in text is at most 45); longer keys are cut. */
#define TB_RATELIMIT_KEY_MAX 63

typedef struct tb_ratelimit tb_ratelimit_t;

/*
 * A limiter of rate tokens per second (>= 1) with bursts of burst tokens (0: burst = rate),
 * holding at most max_keys (>= 1) buckets. NULL when out of memory or an argument is out of
 * range (rate < 1, burst < 0, max_keys 0).
 */
tb_ratelimit_t *tb_ratelimit_create(int rate, int burst, size_t max_keys);
/* Frees the limiter. NULL is a no-op. */
void tb_ratelimit_destroy(tb_ratelimit_t *rl);

/* Takes one token from key's bucket at time now_ms: true when there was one. */
bool tb_ratelimit_allow(tb_ratelimit_t *rl, const char *key, int64_t now_ms);

/* Buckets currently held. */
size_t tb_ratelimit_keys(const tb_ratelimit_t *rl);

#endif
