/* wsguard — frame checks on what lws reads; see include/telebridge/wsguard.h. */
/* recv() is defined here: glibc's fortified inline recv() must not be declared. */
#undef _FORTIFY_SOURCE
#include "telebridge/wsguard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "telebridge/wsframe.h"

/* "\r\n\r\n" as the last four bytes, oldest in the top byte. */
#define HEADER_END 0x0d0a0d0aU

/* 16 bytes a descriptor, plus its validator's 24 in g.frames. */
typedef struct {
    void *arg;
    uint32_t tail; /* the last four bytes read while not attached */
    bool attached;
} slot_t;

/* running and service are set before the MQTT thread exists and cleared after it is joined;
 * they are atomic so that recv() on any thread reads them without a race. */
static struct {
    atomic_bool running;
    pthread_t service;
    slot_t *slots;
    tb_wsframe_t *frames; /* the validator of descriptor i is the i-th */
    size_t n_slots;
    tb_wsguard_fail_fn fail;
} g;

int tb_wsguard_start(tb_wsguard_fail_fn fail)
{
    struct rlimit rl;
    size_t n = 1024;
    if (atomic_load(&g.running))
        return -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > n)
        n = (size_t)rl.rlim_cur;
    /* calloc'd: the pages of descriptors never used are never touched. */
    g.slots = calloc(n, sizeof(*g.slots));
    g.frames = tb_wsframe_create_n(n);
    if (!g.slots || !g.frames) {
        free(g.slots);
        tb_wsframe_destroy(g.frames);
        return -1;
    }
    g.n_slots = n;
    g.fail = fail;
    g.service = pthread_self();
    atomic_store(&g.running, true);
    return 0;
}

void tb_wsguard_stop(void)
{
    if (!atomic_load(&g.running))
        return;
    atomic_store(&g.running, false);
    free(g.slots);
    tb_wsframe_destroy(g.frames);
    g.slots = NULL;
    g.frames = NULL;
    g.n_slots = 0;
}

/* The slot of fd when called on the service thread of a running guard, else NULL. */
static slot_t *slot_of(int fd)
{
    if (!atomic_load_explicit(&g.running, memory_order_acquire) ||
        !pthread_equal(pthread_self(), g.service) || fd < 0 || (size_t)fd >= g.n_slots)
        return NULL;
    return &g.slots[fd];
}

int tb_wsguard_attach(int fd, void *arg)
{
    slot_t *s = slot_of(fd);
    if (!s)
        return 0;
    if (s->tail != HEADER_END)
        return TB_WSGUARD_E_EARLY;
    tb_wsframe_reset(tb_wsframe_nth(g.frames, (size_t)fd));
    s->arg = arg;
    s->attached = true;
    return 0;
}

void tb_wsguard_detach(int fd, void *arg)
{
    slot_t *s = slot_of(fd);
    if (!s || !s->attached || s->arg != arg)
        return;
    *s = (slot_t){0};
}

static uint32_t shift_tail(uint32_t tail, const uint8_t *buf, size_t len)
{
    for (size_t i = len > 4 ? len - 4 : 0; i < len; i++)
        tail = tail << 8 | buf[i];
    return tail;
}

/* The interposed recv(): see the header. */
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
    slot_t *s;
    if (n <= 0 || (flags & MSG_PEEK) || !(s = slot_of(fd)))
        return n;
    if (!s->attached) {
        s->tail = shift_tail(s->tail, buf, (size_t)n);
        return n;
    }
    tb_wsframe_t *v = tb_wsframe_nth(g.frames, (size_t)fd);
    int code = tb_wsframe_feed(v, buf, (size_t)n);
    if (!code)
        return n;
    void *arg = s->arg;
    *s = (slot_t){0};
    g.fail(arg, code, tb_wsframe_reason(v));
    return 0;
}
