/*
 * mqtt_nodes — the broker nodes the MQTT thread connects to, and which one it is on.
 *
 * The list is mqtt.hosts in its order, or the one mqtt.host:mqtt.port when mqtt.hosts is empty.
 * The ingest connects to the current node; after a lost session or a failed attempt it calls
 * tb_mqtt_nodes_next() and, after its backoff, tries the next one, round-robin (the only node
 * again with a list of one). The first node is the current one at start.
 *
 * A tb_mqtt_nodes_t owns its host strings; one thread uses it (no locking).
 */
#ifndef TELEBRIDGE_MQTT_NODES_H
#define TELEBRIDGE_MQTT_NODES_H

#include <stddef.h>

#include "telebridge/config.h"

typedef struct {
    char *host; /* without brackets for an IPv6 address */
    int port;
} tb_mqtt_node_t;

typedef struct {
    tb_mqtt_node_t *v; /* n >= 1 entries */
    size_t n;
    size_t cur; /* index of the current node, < n */
} tb_mqtt_nodes_t;

/* Fills *nodes from m (validated by config). 0, or -1 with err (out of memory, or an entry
 * that does not parse: config lets none through); *nodes is then freeable. */
int tb_mqtt_nodes_init(tb_mqtt_nodes_t *nodes, const tb_config_mqtt_t *m, char *err, size_t errlen);

static inline const tb_mqtt_node_t *tb_mqtt_nodes_current(const tb_mqtt_nodes_t *nodes)
{
    return &nodes->v[nodes->cur];
}

/* Moves to the next node, after the last back to the first. */
void tb_mqtt_nodes_next(tb_mqtt_nodes_t *nodes);

/* Frees what *nodes owns and zeroes it. Safe on a zeroed one. */
void tb_mqtt_nodes_free(tb_mqtt_nodes_t *nodes);

#endif
