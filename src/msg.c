/* msg — the queued record; see include/telebridge/msg.h. */
#include "telebridge/msg.h"

#include <stdlib.h>

#include "telebridge/frame.h"

static const char *const kind_names[TB_MSG_KIND_N] = {"telemetry", "status"};

const char *tb_msg_kind_name(tb_msg_kind_t kind)
{
    return (kind >= 0 && kind < TB_MSG_KIND_N) ? kind_names[kind] : "unknown";
}

tb_msg_t *tb_msg_new(void)
{
    return calloc(1, sizeof(tb_msg_t));
}

int tb_msg_set_payload(tb_msg_t *m, json_t *payload, size_t max_json)
{
    int rc = tb_frame_json_encode(payload, max_json, &m->payload_json, &m->payload_json_len);
    if (rc) {
        json_decref(payload);
        return rc;
    }
    m->payload = payload;
    return 0;
}

void tb_msg_free(tb_msg_t *m)
{
    if (!m)
        return;
    json_decref(m->payload);
    free(m->payload_json);
    free(m);
}
