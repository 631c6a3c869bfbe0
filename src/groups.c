/* groups — device → group membership; see include/telebridge/groups.h. */
#include "telebridge/groups.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

struct tb_groups {
    tb_config_group_t *groups; /* deep copies */
    size_t n;
};

static void group_clear(tb_config_group_t *g)
{
    for (size_t i = 0; i < g->n_patterns; i++)
        free(g->patterns[i]);
    free(g->patterns);
    free(g->name);
}

static int group_copy(tb_config_group_t *dst, const tb_config_group_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->name = strdup(src->name);
    dst->patterns = calloc(src->n_patterns ? src->n_patterns : 1, sizeof(char *));
    if (!dst->name || !dst->patterns)
        return -1;
    for (size_t i = 0; i < src->n_patterns; i++) {
        dst->patterns[i] = strdup(src->patterns[i]);
        if (!dst->patterns[i])
            return -1;
        dst->n_patterns = i + 1;
    }
    return 0;
}

tb_groups_t *tb_groups_create(const tb_config_group_t *groups, size_t n)
{
    tb_groups_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->groups = calloc(n ? n : 1, sizeof(*g->groups));
    if (!g->groups)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        g->n = i + 1;
        if (group_copy(&g->groups[i], &groups[i]))
            goto fail;
    }
    return g;
fail:
    tb_groups_destroy(g);
    return NULL;
}

void tb_groups_destroy(tb_groups_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        group_clear(&g->groups[i]);
    free(g->groups);
    free(g);
}

size_t tb_groups_of(const tb_groups_t *g, const char *device, const char **names, size_t max)
{
    size_t found = 0;
    for (size_t i = 0; i < g->n && found < max; i++) {
        const tb_config_group_t *grp = &g->groups[i];
        for (size_t k = 0; k < grp->n_patterns; k++) {
            if (tb_prefix_pattern_match(grp->patterns[k], device)) {
                names[found++] = grp->name;
                break;
            }
        }
    }
    return found;
}
