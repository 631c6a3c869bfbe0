/* signals — a sigwait() thread for the stop and reload signals; see include/telebridge/signals.h.
 */
#include "telebridge/signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct tb_signals {
    pthread_t thread;
    tb_signals_fn fn;
    void *arg;
    atomic_bool quit; /* set before the thread is sent the signal that ends its wait */
};

static void handled_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

int tb_signals_block(void)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigset_t set;
    handled_set(&set);
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        return -1;
    return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

static void *signal_main(void *arg)
{
    tb_signals_t *s = arg;
    sigset_t set;
    handled_set(&set);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue; /* sigwait fails only for a bad set */
        if (atomic_load(&s->quit))
            return NULL;
        s->fn(s->arg, sig);
    }
}

tb_signals_t *tb_signals_start(tb_signals_fn fn, void *arg)
{
    tb_signals_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fn = fn;
    s->arg = arg;
    atomic_init(&s->quit, false);
    if (pthread_create(&s->thread, NULL, signal_main, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void tb_signals_stop(tb_signals_t *s)
{
    if (!s)
        return;
    atomic_store(&s->quit, true);
    /* Directed at the thread, which has it blocked: sigwait() takes it there. */
    pthread_kill(s->thread, SIGTERM);
    pthread_join(s->thread, NULL);
    free(s);
}
