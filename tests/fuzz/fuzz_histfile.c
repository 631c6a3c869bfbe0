/*
 * libFuzzer target: the history file parser (tb_histfile_parse), which reads a file the bridge
 * finds on disk at start-up. Input: one segment's bytes. Checks: the messages handed out have
 * rising seqs, a known kind, their room names valid and NUL-terminated, a payload that is a
 * braced object, all inside the input; the valid prefix is within the input and parses to the
 * same messages on its own.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/histfile.h"
#include "telebridge/room.h"

typedef struct {
    const uint8_t *data;
    size_t size;
    uint64_t last;
    size_t n;
} seen_t;

static void check_message(void *arg, const tb_histfile_msg_t *m)
{
    seen_t *s = arg;
    const char *lo = (const char *)s->data, *hi = lo + s->size;
    FUZZ_CHECK(m->seq > s->last);
    FUZZ_CHECK(m->kind < TB_FRAME_KIND_N && m->n_rooms >= 1);
    const char *p = m->rooms;
    for (size_t i = 0; i < m->n_rooms; i++) {
        FUZZ_CHECK(p >= lo && p < hi);
        size_t len = strnlen(p, (size_t)(hi - p));
        FUZZ_CHECK(p + len < hi && len >= 1 && len <= TB_ROOM_MAX);
        FUZZ_CHECK(tb_room_parse(p, len, NULL, NULL) != TB_ROOM_INVALID);
        p += len + 1;
    }
    FUZZ_CHECK(p == m->payload && m->payload + m->len <= hi && m->len >= 2);
    FUZZ_CHECK(m->payload[0] == '{' && m->payload[m->len - 1] == '}');
    s->last = m->seq;
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen_t s = {data, size, 0, 0};
    tb_histfile_segment_t seg, again;
    if (tb_histfile_parse(data, size, 0, check_message, &s, &seg) != 0) {
        FUZZ_CHECK(s.n == 0);
        return 0;
    }
    FUZZ_CHECK(seg.messages == s.n && seg.valid_bytes <= size);
    FUZZ_CHECK(s.n == 0 || seg.last_seq == s.last);
    FUZZ_CHECK(strlen(seg.epoch) == TB_HISTFILE_EPOCH_LEN);
    FUZZ_CHECK(tb_histfile_parse(data, seg.valid_bytes, 0, NULL, NULL, &again) == 0);
    FUZZ_CHECK(again.messages == seg.messages && again.closed == seg.closed);
    return 0;
}
