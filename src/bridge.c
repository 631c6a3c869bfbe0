/* bridge — the application behind the transport; see include/telebridge/bridge.h. */
#include "telebridge/bridge.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "telebridge/log.h"
#include "telebridge/msg.h"
#include "telebridge/util.h"

/* Most queue messages routed per wake-up before the loop services sockets again. */
#define DRAIN_BATCH_MAX 4096

struct tb_bridge {
    const tb_config_t *cfg;
    tb_stats_t *stats;
    tb_auth_t *auth; /* the verifier in use; the hub and http borrow it */
    tb_bridge_reload_fn reload;
    void *reload_arg;
    tb_queue_t *queue;
    tb_ticket_store_t *tickets;
    tb_ratelimit_t *handshakes; /* per-IP handshake limiter; NULL when off */
    tb_hub_t *hub;              /* NULL until attached */
    tb_http_ctx_t http;
    tb_bridge_transport_t t;
    atomic_int reload_requested;
};

/* The per-IP handshake limiter, when limits.handshakes_per_ip_per_s is not 0. 0, or -1. */
static int create_limiter(tb_bridge_t *b)
{
    const tb_config_limits_t *l = &b->cfg->limits;
    if (l->handshakes_per_ip_per_s == 0)
        return 0;
    b->handshakes =
        tb_ratelimit_create(l->handshakes_per_ip_per_s, l->handshake_burst, TB_RATELIMIT_KEYS_MAX);
    return b->handshakes ? 0 : -1;
}

tb_bridge_t *tb_bridge_create(const tb_bridge_opts_t *opts, char *err, size_t errlen)
{
    tb_bridge_t *b = calloc(1, sizeof(*b));
    if (!b) {
        tb_auth_destroy(opts->auth);
        tb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = opts->cfg;
    b->stats = opts->stats;
    b->auth = opts->auth;
    b->reload = opts->reload;
    b->reload_arg = opts->reload_arg;
    if (!(b->queue = tb_queue_create(TB_BRIDGE_QUEUE_CAP)) ||
        !(b->tickets = tb_ticket_create(TB_TICKET_MAX, TB_TICKET_PER_SUB)) || create_limiter(b)) {
        tb_set_err(err, errlen, "out of memory");
        tb_bridge_destroy(b);
        return NULL;
    }
    return b;
}

int tb_bridge_attach(tb_bridge_t *b, const tb_bridge_transport_t *t, char *err, size_t errlen)
{
    tb_hub_opts_t ho = {.cfg = b->cfg, .auth = b->auth, .ops = t->ops, .transport = t->transport};
    if (!(b->hub = tb_hub_create(&ho))) {
        tb_set_err(err, errlen, "out of memory");
        return -1;
    }
    b->t = *t;
    b->http = (tb_http_ctx_t){.cfg = b->cfg,
                              .hub = b->hub,
                              .stats = b->stats,
                              .queue = b->queue,
                              .auth = b->auth,
                              .tickets = b->tickets,
                              .handshakes = b->handshakes,
                              .started_mono_ms = tb_mono_ms()};
    return 0;
}

void tb_bridge_destroy(tb_bridge_t *b)
{
    if (!b)
        return;
    tb_hub_destroy(b->hub);
    tb_ticket_destroy(b->tickets);
    tb_ratelimit_destroy(b->handshakes);
    tb_auth_destroy(b->auth);
    if (b->queue) {
        tb_msg_t *m;
        while ((m = tb_queue_pop(b->queue)))
            tb_msg_free(m);
        tb_queue_destroy(b->queue);
    }
    free(b);
}

tb_hub_t *tb_bridge_hub(const tb_bridge_t *b)
{
    return b->hub;
}

tb_queue_t *tb_bridge_queue(const tb_bridge_t *b)
{
    return b->queue;
}

const tb_auth_t *tb_bridge_auth(const tb_bridge_t *b)
{
    return b->auth;
}

tb_ticket_store_t *tb_bridge_tickets(const tb_bridge_t *b)
{
    return b->tickets;
}

tb_ratelimit_t *tb_bridge_limiter(const tb_bridge_t *b)
{
    return b->handshakes;
}

tb_http_ctx_t *tb_bridge_http(tb_bridge_t *b)
{
    return b->hub ? &b->http : NULL;
}

void tb_bridge_wake(void *arg)
{
    tb_bridge_t *b = arg;
    if (b->t.wake)
        b->t.wake(b->t.transport);
}

void tb_bridge_request_reload(tb_bridge_t *b)
{
    atomic_store(&b->reload_requested, 1);
    if (b->t.wake)
        b->t.wake(b->t.transport);
}

/*
 * Runs the reload hook and applies its result all at once; on any failure (the file, the keys,
 * alert rules the hub cannot take) the running configuration stays as it was. The new verifier
 * replaces the old one everywhere it is borrowed (the hub, http) before the old one is freed.
 */
static void reload(tb_bridge_t *b)
{
    char err[TB_CONFIG_ERR_LEN];
    tb_bridge_reload_t r = {0};
    if (!b->reload || b->reload(b->reload_arg, &r, err, sizeof(err)) ||
        tb_hub_set_alerts(b->hub, r.alerts, r.n_alerts, err, sizeof(err))) {
        tb_log(TB_LOG_WARN, "reload refused, keeping the running configuration", "error=\"%s\"",
               b->reload ? err : "no reload hook");
        tb_groups_destroy(r.groups);
        tb_auth_destroy(r.auth);
        return;
    }
    tb_hub_set_groups(b->hub, r.groups);
    tb_hub_set_auth(b->hub, r.auth);
    b->http.auth = r.auth;
    tb_ticket_rotate(b->tickets, tb_auth_ticket_key(b->auth),
                     tb_now_ms() + (int64_t)b->cfg->auth.ticket_ttl_s * 1000);
    tb_auth_destroy(b->auth);
    b->auth = r.auth;
    tb_log(TB_LOG_INFO, "reloaded groups, auth keys and alert rules", "alerts=%zu", r.n_alerts);
}

/* Routes one batch of at most max queued MQTT messages; false when the queue ran empty. */
static bool route_batch(tb_bridge_t *b, int max)
{
    tb_msg_t *m = NULL;
    b->t.batch_start(b->t.transport);
    for (int n = 0; n < max; n++) {
        if (!(m = tb_queue_pop(b->queue)))
            break;
        tb_hub_ingest(b->hub, m);
    }
    tb_hub_flush(b->hub); /* into history.file before the batch's frames reach a socket */
    b->t.batch_end(b->t.transport);
    return m != NULL;
}

/* Routes what the MQTT thread queued, a bounded batch per wake-up. */
static void drain_queue(tb_bridge_t *b)
{
    /* Half the send-queue bound per batch: one batch alone can never make a reader that keeps
     * up look like a slow consumer. */
    int batch = b->cfg->limits.send_queue_messages / 2;
    if (batch < 1)
        batch = 1;
    if (batch > DRAIN_BATCH_MAX)
        batch = DRAIN_BATCH_MAX;
    for (;;) {
        if (route_batch(b, batch)) {
            /* More is waiting: let sockets be serviced, then come back. */
            b->t.wake(b->t.transport);
            return;
        }
        if (tb_queue_consumer_idle(b->queue))
            return;
    }
}

void tb_bridge_service(tb_bridge_t *b)
{
    if (!b->hub)
        return;
    if (atomic_exchange(&b->reload_requested, 0))
        reload(b);
    drain_queue(b);
}
