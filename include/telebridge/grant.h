/*
 * grant — what a verified token allows: its subject, its expiry, its room patterns and scopes.
 *
 * tb_auth_verify() makes grants from tokens; the hub keeps one per connection, a ticket keeps a
 * copy until it is redeemed. A grant is one allocation and never changes once made. Whoever
 * holds the pointer owns it and frees it with tb_grant_free(); the accessors' strings live
 * inside it and are valid until then. Being immutable, a grant may be read from any thread at
 * once; the bridge only uses grants on the service thread.
 */
#ifndef TELEBRIDGE_GRANT_H
#define TELEBRIDGE_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tb_grant tb_grant_t;

/* A string by pointer and length: it need not be NUL-terminated and must hold no NUL. */
typedef struct {
    const char *str;
    size_t len;
} tb_grant_str_t;

/*
 * A new grant for sub[0..sub_len) with expiry exp (Unix seconds), the room patterns strs[0..
 * n_rooms) and the scopes strs[n_rooms..n_rooms + n_scopes), all copied: the caller keeps the
 * strings. Patterns are not checked here (tb_auth_verify() has, with tb_room_pattern_valid()).
 * Returns NULL when out of memory.
 */
tb_grant_t *tb_grant_new(const char *sub, size_t sub_len, int64_t exp, const tb_grant_str_t *strs,
                         size_t n_rooms, size_t n_scopes);

const char *tb_grant_sub(const tb_grant_t *g); /* "" when the token had no sub */
int64_t tb_grant_exp(const tb_grant_t *g);
/* The room patterns (*n_rooms of them), then the scopes (*n_scopes), as one array inside g (for
 * copying a grant into a ticket). */
const char *const *tb_grant_strs(const tb_grant_t *g, size_t *n_rooms, size_t *n_scopes);
/* True when scope (NUL-terminated) equals one of the grant's scopes, whole. */
bool tb_grant_has_scope(const tb_grant_t *g, const char *scope);
/*
 * True when one of the grant's room patterns matches room (tb_room_pattern_match), with the rule
 * of personal rooms: "user:<sub>" of the grant's own sub is always allowed, and any other
 * user: room only by a pattern that starts with "user:" ("user:*", "user:alice") — "*" does not
 * reach other people's rooms.
 */
bool tb_grant_allows_room(const tb_grant_t *g, const char *room);
/* An independent copy of g (the caller owns and frees it), or NULL when out of memory. */
tb_grant_t *tb_grant_dup(const tb_grant_t *g);
/* Frees g. NULL is a no-op. */
void tb_grant_free(tb_grant_t *g);

#endif
