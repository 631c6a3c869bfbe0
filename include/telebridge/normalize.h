/*
 * normalize — turns one MQTT payload into the bridge's normalised payload object.
 *
 * Telemetry, either {"fields":{…},"tags":{…},"timestamp":…} or a flat object whose scalar
 * members (number, string, boolean) are the fields, becomes
 *   {"device_id": D, "timestamp": T, "fields": {…}, "tags": {…}}
 * Status, {"status":"online"|…, "timestamp":…} or the bare word, becomes
 *   {"device_id": D, "status": S, "timestamp": T}
 * The device id given (from the topic) always wins over one in the payload. A missing timestamp
 * becomes now_ms as RFC 3339 UTC with milliseconds; a numeric timestamp is read as Unix seconds
 * (or milliseconds when above 1e11) and formatted the same way; a string timestamp is kept.
 *
 * Both functions return 0 and store a new object in *out (caller owns it), or return
 * TB_NORMALIZE_ERR(reason) (*out untouched), TB_NORMALIZE_ERR(TB_INVALID_END) when out of
 * memory. They check, in order: size (> max_len → TOO_LARGE), UTF-8, JSON, object-ness,
 * content. A NUL byte (raw or as \u0000) is well-formed UTF-8 but never accepted: NOT_JSON.
 *
 * Telemetry details: with a "fields" member (which must then be an object) the fields are its
 * scalar members and other top-level members but "tags"/"timestamp" are ignored; without it
 * every scalar member except "timestamp", "device_id", "tags" and "fields" is a field. Null,
 * object and array members are skipped; zero fields is BAD_VALUE. "tags", when present, must
 * be an object; its string members are kept, others dropped; the output always has "tags".
 * Non-JSON → NOT_JSON, JSON other than an object → NOT_OBJECT.
 *
 * Status details: a JSON object whose "status" is a string, a JSON string, or — when the
 * payload is not JSON — a bare word [A-Za-z0-9_.-]{1,64} with surrounding whitespace trimmed
 * ("online"). The status text is 1..64 bytes without control characters, else BAD_VALUE.
 * Not JSON and not a bare word → NOT_JSON; other JSON (number, true, null, array) →
 * NOT_OBJECT.
 *
 * Timestamps: a string is kept if 1..64 bytes; a number must give an instant in
 * 1970-01-01 .. 9999-12-31 (fractional seconds are rounded to the millisecond); null is the
 * same as absent; anything else is BAD_VALUE.
 */

#ifndef TELEBRIDGE_NORMALIZE_H
#define TELEBRIDGE_NORMALIZE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/stats.h"

/* The error return for a reason: -reason (reasons start at 1). */
#define TB_NORMALIZE_ERR(reason) (-(int)(reason))
/* The reason of an error return rc < 0 (TB_INVALID_END: out of memory). */
#define TB_NORMALIZE_REASON(rc) ((tb_invalid_reason_t)(-(rc)))

int tb_normalize_telemetry(const char *device_id, const char *payload, size_t len, size_t max_len,
                           int64_t now_ms, json_t **out);
int tb_normalize_status(const char *device_id, const char *payload, size_t len, size_t max_len,
                        int64_t now_ms, json_t **out);

#endif
