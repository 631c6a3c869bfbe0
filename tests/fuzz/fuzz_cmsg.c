/*
 * libFuzzer target: the client-message parser (tb_protocol_cmsg_parse).
 * Checks: success gives a known type and, for (un)subscribe, an array of strings (and subscribe
 * options within their limits); failure sets an error code and message; either way
 * tb_protocol_cmsg_clear() releases everything.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/protocol.h"

static void check_ok(const tb_protocol_cmsg_t *m)
{
    FUZZ_CHECK(m->type >= TB_PROTOCOL_CMSG_SUBSCRIBE && m->type <= TB_PROTOCOL_CMSG_REFRESH);
    if (m->type == TB_PROTOCOL_CMSG_SUBSCRIBE || m->type == TB_PROTOCOL_CMSG_UNSUBSCRIBE) {
        FUZZ_CHECK(json_is_array(m->rooms));
        for (size_t i = 0; i < json_array_size(m->rooms); i++)
            FUZZ_CHECK(json_is_string(json_array_get(m->rooms, i)));
    }
    if (m->type == TB_PROTOCOL_CMSG_SUBSCRIBE) {
        FUZZ_CHECK(m->max_hz == 0 ||
                   (m->max_hz >= TB_PROTOCOL_MAX_HZ_MIN && m->max_hz <= TB_PROTOCOL_MAX_HZ_MAX));
        FUZZ_CHECK(!m->fields || (json_array_size(m->fields) >= 1 &&
                                  json_array_size(m->fields) <= TB_PROTOCOL_FIELDS_MAX));
    }
    if (m->type == TB_PROTOCOL_CMSG_REFRESH)
        FUZZ_CHECK(m->token != NULL);
    if (m->request_id)
        FUZZ_CHECK(json_is_string(m->request_id) || json_is_integer(m->request_id));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tb_protocol_cmsg_t m;
    const char *code = NULL, *msg = NULL;
    memset(&m, 0, sizeof(m));
    if (tb_protocol_cmsg_parse((const char *)data, size, &m, &code, &msg) == 0) {
        check_ok(&m);
    } else {
        FUZZ_CHECK(code && msg);
    }
    tb_protocol_cmsg_clear(&m);
    return 0;
}
