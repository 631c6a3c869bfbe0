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
 * Both functions return 0 and store a new object in *out (caller owns it), or return the
 * negated tb_invalid_reason_t (*out untouched). They check, in order: size (> max_len →
 * TOO_LARGE), UTF-8, JSON, object-ness, content.
 */
#ifndef TELEBRIDGE_NORMALIZE_H
#define TELEBRIDGE_NORMALIZE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/stats.h"

int tb_normalize_telemetry(const char *device_id, const char *payload, size_t len, size_t max_len,
                           int64_t now_ms, json_t **out);
int tb_normalize_status(const char *device_id, const char *payload, size_t len, size_t max_len,
                        int64_t now_ms, json_t **out);

#endif
