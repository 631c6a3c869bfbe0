/* hub_conflate.c — subscribe options a connection's rooms follow (max_hz, fields) and the
 * conflation of capped telemetry; see src/hub_internal.h. */
#include "hub_internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- option sets --------------------------------------------------------------------------- */

/* max_hz as whole milliseconds between two sends, rounded up: never more than R a second. */
static uint32_t interval_of(double max_hz)
{
    return max_hz > 0 ? (uint32_t)ceil(1000.0 / max_hz) : 0;
}

/* c's extension, allocated on first use; NULL when out of memory. */
static conn_x_t *conn_x(tb_conn_t *c)
{
    if (!c->x)
        c->x = calloc(1, sizeof(*c->x));
    return c->x;
}

int hub_opts_find(tb_conn_t *c, const tb_protocol_cmsg_t *m, uint32_t *opt)
{
    uint32_t interval = interval_of(m->max_hz), free_slot = UINT32_MAX;
    *opt = 0;
    if (!interval && !m->fields)
        return 0;
    conn_x_t *x = conn_x(c);
    if (!x)
        return -1;
    tb_project_t *fields = m->fields ? tb_project_new(m->fields) : NULL;
    if (m->fields && !fields)
        return -1;
    for (uint32_t i = 0; i < x->n_opts; i++) {
        hub_opts_t *o = &x->opts[i];
        if (o->refs && o->interval_ms == interval && tb_project_equal(o->fields, fields)) {
            tb_project_unref(fields);
            *opt = i + 1;
            return 0;
        }
        if (!o->refs && free_slot == UINT32_MAX)
            free_slot = i;
    }
    if (free_slot == UINT32_MAX) {
        if (x->n_opts >= HUB_OPTS_MAX ||
            hub_grow_for_one((void **)&x->opts, &x->cap_opts, x->n_opts, 1, sizeof(*x->opts))) {
            tb_project_unref(fields);
            return -1;
        }
        free_slot = x->n_opts++;
    }
    tb_project_unref(x->opts[free_slot].fields);
    x->opts[free_slot] = (hub_opts_t){.interval_ms = interval, .fields = fields};
    *opt = free_slot + 1;
    return 0;
}

void hub_opts_set(tb_conn_t *c, joined_t *j, uint32_t opt)
{
    if (j->opt)
        c->x->opts[j->opt - 1].refs--;
    j->opt = opt & 0x3f;
    if (opt)
        c->x->opts[opt - 1].refs++;
}

const hub_opts_t *hub_opts_of(const tb_conn_t *c, const joined_t *j)
{
    return j->opt ? &c->x->opts[j->opt - 1] : NULL;
}

void hub_opts_free(tb_conn_t *c)
{
    if (!c->x)
        return;
    for (uint32_t i = 0; i < c->x->n_opts; i++)
        tb_project_unref(c->x->opts[i].fields);
    free(c->x->opts);
    free(c->x);
    c->x = NULL;
}
