/* frame — shared encoded messages; see include/telebridge/frame.h. */
#include "telebridge/frame.h"

#include <stdlib.h>
#include <string.h>

/* Encodings up to this size take one pass through a stack buffer; larger ones take two. */
#define FRAME_STACK_ENCODE 4096

static tb_frame_t *frame_alloc(size_t len, tb_frame_kind_t kind, uint64_t seq)
{
    if (len > UINT32_MAX)
        return NULL;
    tb_frame_t *f = malloc(sizeof(*f) + TB_FRAME_HEADROOM + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
    f->seq = seq;
    f->kind = (uint8_t)kind;
    f->data[TB_FRAME_HEADROOM + len] = '\0';
    return f;
}

tb_frame_t *tb_frame_new(const char *payload, size_t len, tb_frame_kind_t kind, uint64_t seq)
{
    tb_frame_t *f = frame_alloc(len, kind, seq);
    if (f)
        memcpy(tb_frame_payload(f), payload, len);
    return f;
}

tb_frame_t *tb_frame_from_json(const json_t *obj, tb_frame_kind_t kind, uint64_t seq)
{
    char stackbuf[FRAME_STACK_ENCODE];
    size_t len = json_dumpb(obj, stackbuf, sizeof(stackbuf), JSON_COMPACT);
    if (len == 0)
        return NULL;
    if (len <= sizeof(stackbuf))
        return tb_frame_new(stackbuf, len, kind, seq);
    tb_frame_t *f = frame_alloc(len, kind, seq);
    if (f && json_dumpb(obj, tb_frame_payload(f), len, JSON_COMPACT) != len) {
        free(f);
        return NULL;
    }
    return f;
}

void tb_frame_unref(tb_frame_t *f)
{
    if (f && --f->refs == 0)
        free(f);
}
