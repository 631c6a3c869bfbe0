/*
 * ws_listen — the public listener shared with other processes (listen.reuse_port); see
 * src/ws_internal.h.
 *
 * lws 4.1.6 has LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE, but it sets SO_REUSEPORT only when the
 * context has more than one service thread (lib/roles/http/server/server.c); with the bridge's
 * one thread its listener gets SO_REUSEADDR alone and a second process cannot bind. So with
 * reuse_port the bridge opens the socket itself (SO_REUSEADDR and SO_REUSEPORT before bind, so
 * the kernel spreads new connections over every process listening on the port), accepts on its
 * own libev watcher and hands each connection to lws (lws_adopt_socket_vhost()), which then
 * serves it exactly as one from its own listener.
 */
#define _GNU_SOURCE /* accept4(), SO_REUSEPORT */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "telebridge/log.h"
#include "ws_internal.h"

/* Connections accepted per wake-up of the listener, so one burst cannot starve the others. */
#define ACCEPT_BATCH 64
/* Out of descriptors (or kernel memory) the listener rests this long instead of spinning. */
#define ACCEPT_PAUSE_S 0.1

/* A bound, listening socket with both reuse options on addr; the fd, or -1 with errno. */
static int open_socket(const struct addrinfo *ai)
{
    int one = 1, e;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
        bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
        return fd;
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* The port fd is bound to, or -1. */
static int bound_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    tb_server_t *s = w->data;
    (void)revents;
    ev_io_start(loop, &s->accept_io);
}

/* Accepted connections go to lws, which closes any it cannot take (fd table full). */
static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    tb_server_t *s = w->data;
    int one = 1;
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO))
            continue;
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            tb_log(TB_LOG_WARN, "accept paused", "error=\"%s\" pause_ms=%d", strerror(errno),
                   (int)(ACCEPT_PAUSE_S * 1000));
            ev_io_stop(loop, w);
            ev_timer_start(loop, &s->accept_pause);
            return;
        }
        if (fd < 0)
            return; /* EAGAIN: the queue is empty */
        /* What lws does for the connections of its own listener. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)lws_adopt_socket_vhost(s->vhost, fd);
    }
}

/* Binds a socket like open_socket() but without SO_REUSEPORT or listen(), to learn why lws
 * could not: errno's text, or NULL when the bind works now. */
static const char *bind_error(const struct addrinfo *res, char *buf, size_t len)
{
    int one = 1, e = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        e = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        close(fd);
        if (e == 0)
            return NULL;
    }
    snprintf(buf, len, "%s", strerror(e));
    return buf;
}

void tb_ws_listen_explain(const tb_server_t *s, char *err, size_t errlen)
{
    const tb_config_listen_t *l = &s->cfg->listen;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8], why[128];
    const char *reason = NULL;
    snprintf(port, sizeof(port), "%d", l->port);
    if (getaddrinfo(l->host, port, &hints, &res) == 0) {
        reason = bind_error(res, why, sizeof(why));
        freeaddrinfo(res);
    }
    if (reason)
        snprintf(err, errlen,
                 "cannot listen on %s:%d: %s (bridges sharing a port need "
                 "listen.reuse_port in each)",
                 l->host, l->port, reason);
    else
        snprintf(err, errlen, "cannot listen on %s:%d", l->host, l->port);
}

int tb_ws_listen_open(tb_server_t *s, char *err, size_t errlen)
{
    const tb_config_listen_t *l = &s->cfg->listen;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    int rc, e = 0;
    snprintf(port, sizeof(port), "%d", l->port);
    if ((rc = getaddrinfo(l->host, port, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", l->host, l->port, gai_strerror(rc));
        return -1;
    }
    for (const struct addrinfo *ai = res; ai && s->listen_fd < 0; ai = ai->ai_next)
        if ((s->listen_fd = open_socket(ai)) < 0)
            e = errno;
    freeaddrinfo(res);
    if (s->listen_fd < 0) {
        snprintf(err, errlen,
                 "cannot listen on %s:%d: %s (listen.reuse_port shares a port only "
                 "with processes that set it too)",
                 l->host, l->port, strerror(e));
        return -1;
    }
    s->listen_port = bound_port(s->listen_fd);
    ev_io_init(&s->accept_io, on_accept, s->listen_fd, EV_READ);
    s->accept_io.data = s;
    ev_timer_init(&s->accept_pause, on_pause_end, ACCEPT_PAUSE_S, 0.0);
    s->accept_pause.data = s;
    ev_io_start(s->loop, &s->accept_io);
    return 0;
}

void tb_ws_listen_close(tb_server_t *s)
{
    if (s->listen_fd < 0)
        return;
    ev_io_stop(s->loop, &s->accept_io);
    ev_timer_stop(s->loop, &s->accept_pause);
    close(s->listen_fd);
    s->listen_fd = -1;
}
