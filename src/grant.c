/*
 * grant — one allocation per grant; see include/telebridge/grant.h.
 *
 * Layout: the struct, then n_rooms + n_scopes string pointers, then the strings' characters
 * (each NUL-terminated) and the sub's. One allocation makes a grant cheap to copy for a ticket
 * and leaves nothing to free but itself.
 */
#include "telebridge/grant.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/room.h"

struct tb_grant {
    size_t size; /* bytes of the whole allocation, for tb_grant_dup() */
    int64_t exp;
    const char *sub;
    size_t n_rooms;
    size_t n_scopes;
    const char *strs[]; /* room patterns first, then scopes */
};

/* Copies s[0..len) to *chars with a NUL, advances *chars past it, and returns the copy. */
static const char *place(char **chars, const char *s, size_t len)
{
    char *dst = *chars;
    memcpy(dst, s, len);
    dst[len] = '\0';
    *chars += len + 1;
    return dst;
}

tb_grant_t *tb_grant_new(const char *sub, size_t sub_len, int64_t exp, const tb_grant_str_t *strs,
                         size_t n_rooms, size_t n_scopes)
{
    size_t n = n_rooms + n_scopes, total = sizeof(tb_grant_t) + n * sizeof(char *) + sub_len + 1;
    tb_grant_t *g;
    char *chars;
    for (size_t i = 0; i < n; i++)
        total += strs[i].len + 1;
    g = malloc(total);
    if (!g)
        return NULL;
    g->size = total;
    g->exp = exp;
    g->n_rooms = n_rooms;
    g->n_scopes = n_scopes;
    chars = (char *)(g->strs + n);
    g->sub = place(&chars, sub, sub_len);
    for (size_t i = 0; i < n; i++)
        g->strs[i] = place(&chars, strs[i].str, strs[i].len);
    return g;
}

const char *tb_grant_sub(const tb_grant_t *g)
{
    return g->sub;
}

int64_t tb_grant_exp(const tb_grant_t *g)
{
    return g->exp;
}

const char *const *tb_grant_strs(const tb_grant_t *g, size_t *n_rooms, size_t *n_scopes)
{
    *n_rooms = g->n_rooms;
    *n_scopes = g->n_scopes;
    return g->strs;
}

bool tb_grant_has_scope(const tb_grant_t *g, const char *scope)
{
    for (size_t i = 0; i < g->n_scopes; i++)
        if (strcmp(g->strs[g->n_rooms + i], scope) == 0)
            return true;
    return false;
}

static bool is_user_room(const char *s)
{
    return strncmp(s, TB_ROOM_USER_PREFIX, TB_ROOM_USER_PREFIX_LEN) == 0;
}

bool tb_grant_allows_room(const tb_grant_t *g, const char *room)
{
    bool user = is_user_room(room);
    if (user && strcmp(room + TB_ROOM_USER_PREFIX_LEN, g->sub) == 0)
        return true;
    for (size_t i = 0; i < g->n_rooms; i++)
        if ((!user || is_user_room(g->strs[i])) && tb_room_pattern_match(g->strs[i], room))
            return true;
    return false;
}

tb_grant_t *tb_grant_dup(const tb_grant_t *g)
{
    tb_grant_t *d = malloc(g->size);
    if (!d)
        return NULL;
    memcpy(d, g, g->size);
    /* The strings live inside the allocation: rebase every pointer onto the copy. */
    d->sub = (const char *)d + (g->sub - (const char *)g);
    for (size_t i = 0; i < g->n_rooms + g->n_scopes; i++)
        d->strs[i] = (const char *)d + (g->strs[i] - (const char *)g);
    return d;
}

void tb_grant_free(tb_grant_t *g)
{
    free(g);
}
