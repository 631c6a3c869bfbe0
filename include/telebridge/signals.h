/*
 * signals — SIGTERM, SIGINT and SIGHUP handled on a thread of their own, not in a handler.
 *
 * tb_signals_block() blocks the three in the calling thread; called first in main(), before any
 * thread exists, every thread created later (the MQTT thread, an event library's) inherits the
 * mask, so the kernel keeps them pending for the process instead of interrupting some thread.
 * A signal that arrives during start-up waits until tb_signals_start(). tb_signals_start()
 * starts a thread that takes them with sigwait() and calls fn(arg, sig) there. fn therefore
 * runs in ordinary thread context: it may call anything that is safe from another thread
 * (tb_server_request_stop() and tb_bridge_request_reload() are), nothing has to be
 * async-signal-safe, and nothing is shared with a handler. SIGPIPE is ignored.
 *
 * The three are blocked for the rest of the process's life (the bridge starts no programs, so
 * no child inherits the mask). Single owner: main's thread calls all three functions.
 */
#ifndef TELEBRIDGE_SIGNALS_H
#define TELEBRIDGE_SIGNALS_H

typedef struct tb_signals tb_signals_t;

/* Called on the signal thread with SIGTERM, SIGINT or SIGHUP. */
typedef void (*tb_signals_fn)(void *arg, int sig);

/* Blocks the three signals in the calling thread and ignores SIGPIPE. 0, or -1 (errno). */
int tb_signals_block(void);

/* Starts the thread calling fn(arg, sig) for each signal; fn and arg must outlive
 * tb_signals_stop(). NULL when the thread cannot be started. */
tb_signals_t *tb_signals_start(tb_signals_fn fn, void *arg);

/* Stops and joins the thread and frees s; fn is not called once this returns. NULL: no-op. */
void tb_signals_stop(tb_signals_t *s);

#endif
