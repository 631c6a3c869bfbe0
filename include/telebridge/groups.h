/*
 * groups — which configured groups a device belongs to.
 *
 * Built from the config's `groups` map: name → patterns, each an exact device id, an id
 * prefix ending in '*' ("sensor-hum-*"), or "*". A device may belong to several groups.
 * Immutable once built: a reload builds a new map and swaps it in.
 */
#ifndef TELEBRIDGE_GROUPS_H
#define TELEBRIDGE_GROUPS_H

#include <stddef.h>

#include "telebridge/config.h"

/* Most groups one device can be reported in; further matches are ignored. */
#define TB_GROUPS_PER_DEVICE_MAX 32

typedef struct tb_groups tb_groups_t;

/* Copies the map. NULL when out of memory. n == 0 gives an empty map. */
tb_groups_t *tb_groups_create(const tb_config_group_t *groups, size_t n);
void tb_groups_destroy(tb_groups_t *g);

/*
 * Stores in names[0..max) the groups containing device (pointers owned by g, valid while g
 * lives), in configuration order, and returns how many.
 */
size_t tb_groups_of(const tb_groups_t *g, const char *device, const char **names, size_t max);

#endif
