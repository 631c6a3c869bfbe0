/*
 * util — small shared helpers: time, RFC 3339 formatting, identifier checks.
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

/* Longest RFC 3339 string tb_format_rfc3339_ms writes, with its NUL: "2026-11-23T13:26:03.123Z". */
#define TB_RFC3339_LEN 25
/* Formats `ms` (Unix epoch milliseconds) as UTC with milliseconds into out[TB_RFC3339_LEN]. */
void tb_format_rfc3339_ms(int64_t ms, char out[TB_RFC3339_LEN]);

/* Longest device id or group name accepted, in bytes. */
#define TB_ID_MAX 128
/*
 * A device id or group name: 1..TB_ID_MAX bytes of [A-Za-z0-9._-] (and ':' for device ids is
 * NOT allowed, so "device:<id>" stays unambiguous). Returns true when valid.
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

/*
 * Reads the whole file at path into a new NUL-terminated buffer (*out, caller frees; *len its
 * length). Refuses files over max bytes. Returns 0, or a negative errno: the open or read
 * error, -EFBIG when the file is larger than max, -ENOMEM. On failure *out is untouched and
 * whatever was read has been wiped, so secrets never linger in freed memory.
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

/* Checks that buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool tb_utf8_valid(const char *buf, size_t len);

#endif
