/* msg — the queued record; see include/telebridge/msg.h. */
#include "telebridge/msg.h"

#include <stdlib.h>

static const char *const kind_names[TB_MSG_KIND_N] = {"telemetry", "status"};

const char *tb_msg_kind_name(tb_msg_kind_t kind)
{
    return (kind >= 0 && kind < TB_MSG_KIND_N) ? kind_names[kind] : "unknown";
}

tb_msg_t *tb_msg_new(void)
{
    return calloc(1, sizeof(tb_msg_t));
}

void tb_msg_free(tb_msg_t *m)
{
    if (!m)
        return;
    json_decref(m->payload);
    free(m);
}
