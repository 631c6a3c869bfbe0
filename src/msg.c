/* msg — the queued record; see include/telebridge/msg.h. */
#include "telebridge/msg.h"

#include <stdlib.h>

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
