/*
 * wsguard — runs each WebSocket connection's incoming bytes through a wsframe validator as lws
 * reads them, and fails the connection on a violation lws itself lets through (see wsframe.h).
 *
 * How: lws 4.1.6 reads every plain socket with recv() (lws_ssl_capable_read_no_ssl) and has no
 * API that shows a frame's header (the mask bit in particular) or its raw bytes. This module
 * defines recv() in the executable; the dynamic linker binds libwebsockets' recv to it (the
 * executable comes first in symbol lookup), and it calls the C library's recvfrom(), which is
 * recv with no address. Nothing else in the process uses recv() (libmosquitto and OpenSSL read
 * with read()), and the guard acts only on the service thread and only on descriptors attached
 * with tb_wsguard_attach(): any other call costs one thread comparison.
 *
 * On the service thread it also keeps, per descriptor, the last four bytes read before the
 * attach (the HTTP phase), so that tb_wsguard_attach() can tell whether the stream lws read
 * ended exactly with the upgrade request. A client must wait for the 101 answer before it sends
 * frames (RFC 6455 §4.1); when it did not, lws has already read frames the guard never saw, and
 * the attach fails so that the connection is refused rather than left unchecked.
 *
 * Plain sockets only (the bridge has no TLS listener): with lws's TLS, OpenSSL reads the socket
 * with read(), the guard sees nothing and every attach would fail.
 *
 * A violation: recv() calls the fail hook (which sets lws's close reason) and returns 0, so lws
 * takes the connection as ended and closes it with that close frame (as after a close reason
 * set in a callback), discarding the bytes of that read. The whole state is the service
 * thread's: attach, detach, start and stop are called there, and recv() on any other thread
 * never touches it.
 */
#ifndef TELEBRIDGE_WSGUARD_H
#define TELEBRIDGE_WSGUARD_H

#include <stddef.h>

/* Called on the service thread, inside recv(), with the attach's arg, the close code and its
 * reason (at most 123 bytes, static). */
typedef void (*tb_wsguard_fail_fn)(void *arg, int code, const char *reason);

/*
 * Makes the calling thread the service thread and sizes the descriptor table by
 * RLIMIT_NOFILE (40 bytes a descriptor, touched only for descriptors in use). 0, or -1 (out
 * of memory, or a guard is already running: one per process).
 */
int tb_wsguard_start(tb_wsguard_fail_fn fail);
/* Detaches everything and releases the table; recv() passes everything through after it. */
void tb_wsguard_stop(void);

/* Results of tb_wsguard_attach(). */
#define TB_WSGUARD_E_EARLY (-1) /* bytes followed the upgrade request in what lws read */

/* Starts checking fd's frames from the next byte read; arg goes to the fail hook. 0, or
 * TB_WSGUARD_E_EARLY (then fd stays unchecked). Without a running guard: 0, nothing checked. */
int tb_wsguard_attach(int fd, void *arg);
/* Stops checking fd, when it is attached with arg (a later connection on a reused descriptor
 * keeps its own attach). Call before lws closes fd. */
void tb_wsguard_detach(int fd, void *arg);

#endif
