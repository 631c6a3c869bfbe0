/* mqtt_nodes — the broker nodes and the one in use; see include/telebridge/mqtt_nodes.h. */
#include "telebridge/mqtt_nodes.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

int tb_mqtt_nodes_init(tb_mqtt_nodes_t *nodes, const tb_config_mqtt_t *m, char *err, size_t errlen)
{
    size_t n = m->n_hosts ? m->n_hosts : 1;
    memset(nodes, 0, sizeof(*nodes));
    if (!(nodes->v = calloc(n, sizeof(*nodes->v))))
        goto fail_oom;
    nodes->n = n;
    if (!m->n_hosts) {
        nodes->v[0].port = m->port;
        if (!(nodes->v[0].host = strdup(m->host)))
            goto fail_oom;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char host[TB_CONFIG_HOST_MAX + 1];
        if (tb_config_hostport(m->hosts[i], host, sizeof(host), &nodes->v[i].port) != 0) {
            tb_set_err(err, errlen, "mqtt.hosts[%zu]: \"%s\" is not a valid host:port", i,
                       m->hosts[i]);
            return -1;
        }
        if (!(nodes->v[i].host = strdup(host)))
            goto fail_oom;
    }
    return 0;
fail_oom:
    tb_set_err(err, errlen, "out of memory");
    return -1;
}

void tb_mqtt_nodes_next(tb_mqtt_nodes_t *nodes)
{
    nodes->cur = (nodes->cur + 1) % nodes->n;
}

void tb_mqtt_nodes_free(tb_mqtt_nodes_t *nodes)
{
    for (size_t i = 0; nodes->v && i < nodes->n; i++)
        free(nodes->v[i].host);
    free(nodes->v);
    memset(nodes, 0, sizeof(*nodes));
}
