/*
 * ticket — one-time WebSocket tickets (POST /api/v1/ws/ticket, then `?ticket=` at the handshake).
 *
 * A browser cannot set an Authorization header on a WebSocket handshake, and a JWT in the URL
 * lands in proxy and browser logs. A ticket is what goes in the URL instead: 256 bits from the
 * OS CSPRNG (getrandom), written as 64 lowercase hex characters, valid once and for a short
 * time, carrying a copy of the grant of the token that asked for it (identity, rooms, scopes
 * and the token's exp).
 *
 * Storage: only the SHA-256 of each ticket is kept, so the store never holds a usable
 * credential; a presented ticket is hashed and compared with CRYPTO_memcmp. A redeemed ticket's
 * grant is handed over at once and its hash stays, marked used, until the ticket would have
 * expired (so a replay is told apart from a guess in the counters).
 *
 * Bounds (docs/security.md → Ticket bounds): at most `max` tickets (used ones included) are held,
 * and at most `per_sub` of them per token `sub` (tokens without one share the sub ""). A user's
 * tickets are told apart by a SHA-256 prefix of its sub, so the store keeps no sub either.
 * Issuing to a user who holds per_sub tickets replaces that user's oldest one (it can then no
 * longer be redeemed). Issuing into a full store first forgets every expired ticket; if it is
 * still full, a user who holds tickets replaces its oldest, and one who holds none is refused
 * with TB_TICKET_E_FULL (the HTTP layer answers 503). Nothing another user holds is ever
 * evicted, so one token holder asking in a loop can take at most per_sub places; filling the
 * store takes max / per_sub distinct subs, and it drains by itself within the TTL.
 *
 * Ownership: the caller owns the store. The store owns a copy of each issued ticket's grant
 * until it is redeemed (then the redeemer owns it) or the store is destroyed. It keeps no
 * pointer to anything passed in.
 *
 * Single-threaded: the service thread only. Times are wall-clock Unix milliseconds.
 */
#ifndef TELEBRIDGE_TICKET_H
#define TELEBRIDGE_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include "telebridge/grant.h"

/* Random bytes in a ticket, and the length of its text form (hex, without the NUL). */
#define TB_TICKET_BYTES 32
#define TB_TICKET_LEN (2 * TB_TICKET_BYTES)
/* Tickets held at most by the bridge, and per sub (see "Bounds" above). */
#define TB_TICKET_MAX 4096
#define TB_TICKET_PER_SUB 8

/*
 * Why a ticket was not redeemed: X(NAME, reason). tb_ticket_err_t gets TB_TICKET_E_NAME (-1, -2,
 * -3 in this order); the reason names the handshake refusal in stats.h (/stats, /metrics).
 */
#define TB_TICKET_REDEEM_ERRORS(X)                                                                 \
    X(UNKNOWN, "ticket_unknown") /* never issued, malformed, or forgotten after expiry */          \
    X(USED, "ticket_used")       /* already redeemed */                                            \
    X(EXPIRED, "ticket_expired")

/* The position of each error in TB_TICKET_REDEEM_ERRORS, from 1. */
enum {
    TB_TICKET_R_NONE = 0,
#define TB_TICKET_R_ENUM(name, reason) TB_TICKET_R_##name,
    TB_TICKET_REDEEM_ERRORS(TB_TICKET_R_ENUM)
#undef TB_TICKET_R_ENUM
        TB_TICKET_R_END
};

typedef enum {
    TB_TICKET_OK = 0,
#define TB_TICKET_E_ENUM(name, reason) TB_TICKET_E_##name = -TB_TICKET_R_##name,
    TB_TICKET_REDEEM_ERRORS(TB_TICKET_E_ENUM)
#undef TB_TICKET_E_ENUM
    /* Only from tb_ticket_issue(): */
    TB_TICKET_E_FULL = -TB_TICKET_R_END,       /* the store holds max live tickets */
    TB_TICKET_E_RANDOM = -TB_TICKET_R_END - 1, /* the OS CSPRNG failed */
    TB_TICKET_E_NOMEM = -TB_TICKET_R_END - 2,
} tb_ticket_err_t;

typedef struct tb_ticket_store tb_ticket_store_t;

/* An empty store for at most max tickets, per_sub of them per sub (each >= 1; 0 counts as 1).
 * NULL when out of memory. */
tb_ticket_store_t *tb_ticket_create(size_t max, size_t per_sub);
/* Frees the store and the grants of tickets never redeemed. NULL is a no-op. */
void tb_ticket_destroy(tb_ticket_store_t *t);

/*
 * Issues a ticket carrying a copy of grant (the caller keeps grant), valid until
 * min(now_ms + ttl_ms, the grant's exp). Writes the ticket's text to out (TB_TICKET_LEN chars
 * and a NUL) and its expiry to *expires_ms. Returns TB_TICKET_OK or a tb_ticket_err_t
 * (nothing issued, out untouched). May first evict one of the same sub's tickets (see
 * "Bounds").
 */
int tb_ticket_issue(tb_ticket_store_t *t, const tb_grant_t *grant, int64_t now_ms, int64_t ttl_ms,
                    char out[TB_TICKET_LEN + 1], int64_t *expires_ms);

/*
 * Redeems ticket[0..len): on TB_TICKET_OK the ticket's grant moves to *grant (caller frees it)
 * and the ticket can never be redeemed again. Otherwise TB_TICKET_E_UNKNOWN, _USED or _EXPIRED
 * and *grant untouched. Any bytes are accepted as input.
 */
int tb_ticket_redeem(tb_ticket_store_t *t, const char *ticket, size_t len, int64_t now_ms,
                     tb_grant_t **grant);

/* Tickets currently held, used and expired ones not yet forgotten included (for /stats). */
size_t tb_ticket_held(const tb_ticket_store_t *t);

#endif
