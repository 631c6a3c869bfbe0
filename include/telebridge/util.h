/*
 * util — small shared helpers: clocks, RFC 3339 formatting, identifier checks, the string hash,
 * reading a bounded file, wiping secrets, error messages, UTF-8 validation.
 *
 * Every function may be called from any thread: none keeps state or anything passed in, and
 * only tb_read_file() allocates (the caller owns what it returns).
 */
#ifndef TELEBRIDGE_UTIL_H
#define TELEBRIDGE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch. */
int64_t tb_now_ms(void);
/* Monotonic milliseconds, for durations and rate limits. */
int64_t tb_mono_ms(void);
/* Wall-clock microseconds since the Unix epoch (the clock of tb_now_ms()): one read gives an
 * arrival both its time and its latency stamp. */
int64_t tb_now_us(void);

/* Longest RFC 3339 string tb_format_rfc3339_ms writes, with its NUL: "2026-11-23T13:26:03.123Z". */
#define TB_RFC3339_LEN 25
/* Formats `ms` (Unix epoch milliseconds) as UTC with milliseconds into out[TB_RFC3339_LEN],
 * NUL-terminated. An instant outside the years 0000..9999, which RFC 3339 cannot write, comes
 * out as "9999-12-31T23:59:59.999Z". */
void tb_format_rfc3339_ms(int64_t ms, char out[TB_RFC3339_LEN]);

/*
 * Parses an RFC 3339 date-time, s[0..len) exactly: "YYYY-MM-DDTHH:MM:SS[.fraction]" then "Z" or
 * "+HH:MM"/"-HH:MM" ('T' and 'Z' in either case, 1 to 9 fraction digits, second 60 allowed),
 * into Unix epoch milliseconds in *ms (fraction truncated to ms). Returns 0, or -1 (*ms
 * untouched) when s is not such a time or names a day that does not exist.
 */
int tb_parse_rfc3339_ms(const char *s, size_t len, int64_t *ms);

/* Longest device id or group name accepted, in bytes. */
#define TB_ID_MAX 128
/*
 * A device id or group name: 1..TB_ID_MAX bytes of [A-Za-z0-9._-] (no ':', so "device:<id>"
 * stays unambiguous). Returns true when valid.
 */
bool tb_id_valid(const char *s, size_t len);

/*
 * The one wildcard rule of room grants, group members and alert devices: pattern equals s, or
 * pattern ends in '*' and what precedes it is a prefix of s ("sensor-*", "*"). Both
 * NUL-terminated.
 */
bool tb_prefix_pattern_match(const char *pattern, const char *s);

/*
 * FNV-1a (32 bits) of s[0..len): the hash of the bridge's string-keyed tables (rooms, devices,
 * addresses). Fast, not keyed: no use where an attacker must not predict collisions.
 */
uint32_t tb_hash_fnv1a(const char *s, size_t len);
/* FNV-1a (64 bits) of s[0..len): for fingerprints where 32 bits would collide too often. */
uint64_t tb_hash_fnv1a64(const char *s, size_t len);

/*
 * Reads the whole file at path into a new NUL-terminated buffer: *out (the caller frees it with
 * free()), *len its length without the NUL. The buffer is always max + 1 bytes, whatever the
 * file's size: reading one byte more than max is how a file too large is told. Only the first
 * *len + 1 bytes are ever written, so wiping *len bytes before free() clears all the file put
 * there. Returns 0, or a negative errno: the open or read error, -EFBIG when the file is larger
 * than max, -ENOMEM. On failure *out and *len are untouched and whatever was read has been
 * wiped, so secrets never linger in freed memory.
 */
int tb_read_file(const char *path, size_t max, char **out, size_t *len);

/* Overwrites n bytes at p with zeros in a way the compiler may not drop (for secrets). */
void tb_wipe(void *p, size_t n);

/*
 * printf-style message into err (errlen bytes, always NUL-terminated, truncated when longer).
 * err may be NULL or errlen 0, then nothing is written.
 */
void tb_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks that buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * NUL bytes are well-formed; callers that need C strings refuse them themselves. */
bool tb_utf8_valid(const char *buf, size_t len);

#endif
