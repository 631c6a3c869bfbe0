/*
 * libFuzzer target: the MQTT payload normaliser (telemetry and status).
 * Input: one selector byte (even: telemetry, odd: status), then the payload.
 * Checks: an accepted payload gives an object with the given device_id and a string timestamp
 * that encodes; a refusal names a known reason.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/normalize.h"

#define DEVICE "fuzz-dev"
#define MAX_LEN 4096
#define NOW_MS INT64_C(1700000000000)

static void check_ok(const json_t *out)
{
    FUZZ_CHECK(json_is_object(out));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(out, "device_id")), DEVICE) == 0);
    FUZZ_CHECK(json_is_string(json_object_get(out, "timestamp")));
    char *text = json_dumps(out, JSON_COMPACT);
    FUZZ_CHECK(text);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *payload = (const char *)data + 1;
    size_t len = size - 1;
    json_t *out = NULL;
    int rc = (data[0] & 1) ? tb_normalize_status(DEVICE, payload, len, MAX_LEN, NOW_MS, &out)
                           : tb_normalize_telemetry(DEVICE, payload, len, MAX_LEN, NOW_MS, &out);
    if (rc == 0) {
        check_ok(out);
        json_decref(out);
    } else {
        FUZZ_CHECK(out == NULL);
        FUZZ_CHECK(TB_NORMALIZE_REASON(rc) > TB_INVALID_NONE &&
                   TB_NORMALIZE_REASON(rc) <= TB_INVALID_END);
    }
    return 0;
}
