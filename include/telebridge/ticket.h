/*
 * ticket — one-time WebSocket tickets (POST /api/v1/ws/ticket, then `?ticket=` at the handshake),
 * valid on every bridge of a fleet.
 *
 * A browser cannot set an Authorization header on a WebSocket handshake, and a JWT in the URL
 * lands in proxy and browser logs. A ticket is what goes in the URL instead: short-lived, single
 * use, carrying a copy of the grant of the token that asked for it (identity, rooms, scopes and
 * the token's exp). It is self-contained and signed (HMAC-SHA256, format in src/ticket_internal.h
 * and docs/security.md → Tickets across a fleet), so any bridge holding the same key can redeem
 * it without asking the one that issued it. The key is the fleet key (tb_auth_ticket_key():
 * derived from auth.ticket_secret_file or the HS* secret) or, where there is none, the store's
 * own random key: such tickets are valid on the issuing bridge only. The grant is signed, not
 * encrypted.
 *
 * Single use is kept per store (per bridge process). A store remembers, until each would have
 * expired:
 * - "issued": the tickets it issued (hashed identity, sub, expiry, used or not). One of its own
 *   tickets that is not in this list (replaced, or forgotten) is unknown, one marked used is used;
 * - "redeemed": the tickets of other issuers it has redeemed. They are never forgotten before
 *   their expiry (that would let one be redeemed twice here), so a full list refuses another
 *   issuer's ticket with TB_TICKET_E_BUSY until one of them expires.
 * A ticket issued before the store was created is unknown: a restarted bridge cannot know what
 * its predecessor redeemed. Hence a ticket is redeemed at most once on each bridge process of the
 * fleet within its lifetime, and never on a bridge with another key.
 *
 * Bounds (docs/security.md → Ticket bounds): at most `max` issued tickets (used ones included)
 * are held, and at most `per_sub` of them per token `sub` (tokens without one share the sub ""); at
 * most 4 * max redeemed ones. A user's tickets are told apart by a SHA-256 prefix of its sub, so
 * the store keeps no sub. Issuing to a user who holds per_sub tickets replaces that user's oldest
 * one (it can then no longer be redeemed here; on another bridge it can, until it expires).
 * Issuing into a full store first forgets every expired ticket; if it is still full, a user who
 * holds tickets replaces its oldest, and one who holds none is refused with TB_TICKET_E_FULL (the
 * HTTP layer answers 503). Nothing another user holds is ever evicted, so one token holder asking
 * in a loop can take at most per_sub places; filling the store takes max / per_sub distinct subs,
 * and it drains by itself within the TTL.
 *
 * Ownership: the caller owns the store. The store keeps no grant and no pointer to anything passed
 * in; a redeemed ticket's grant is a new one the redeemer owns.
 *
 * Single-threaded: the service thread only. Times are wall-clock Unix milliseconds.
 */
#ifndef TELEBRIDGE_TICKET_H
#define TELEBRIDGE_TICKET_H

#include <stddef.h>
#include <stdint.h>

#include "telebridge/grant.h"

/* Bytes of a ticket signing key (tb_auth_ticket_key(), and a store's own). */
#define TB_TICKET_KEY_LEN 32
/* Longest ticket text (base64url, without the NUL): short enough for any URL. A grant too large
 * to fit gets no ticket (TB_TICKET_E_TOOBIG); anything longer is never decoded. */
#define TB_TICKET_TEXT_MAX 2048
/* Issued tickets held at most by the bridge, and per sub (see "Bounds" above). */
#define TB_TICKET_MAX 4096
#define TB_TICKET_PER_SUB 8
/* Other bridges' redeemed tickets held at most, per issued one allowed. */
#define TB_TICKET_REDEEMED_PER_MAX 4

/*
 * Why a ticket was not redeemed: X(NAME, reason). tb_ticket_err_t gets TB_TICKET_E_NAME (-1, -2,
 * -3, -4 in this order); the reason names the handshake refusal in stats.h (/stats, /metrics).
 */
#define TB_TICKET_REDEEM_ERRORS(X)                                                                 \
    X(UNKNOWN, "ticket_unknown") /* malformed, another key, replaced, issued before this start */  \
    X(USED, "ticket_used")       /* already redeemed here */                                       \
    X(EXPIRED, "ticket_expired")                                                                   \
    X(BUSY, "ticket_busy") /* another bridge's, and this one holds too many redeemed ones */

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
    TB_TICKET_E_TOOBIG = -TB_TICKET_R_END - 1, /* the grant does not fit in TB_TICKET_TEXT_MAX */
    TB_TICKET_E_RANDOM = -TB_TICKET_R_END - 2, /* the OS CSPRNG failed */
    /* From both: */
    TB_TICKET_E_NOMEM = -TB_TICKET_R_END - 3,
} tb_ticket_err_t;

typedef struct tb_ticket_store tb_ticket_store_t;

/* An empty store for at most max issued tickets, per_sub of them per sub (each >= 1; 0 counts as
 * 1), with its own random key and issuer id, created now (wall clock). NULL when out of memory or
 * the OS CSPRNG fails. */
tb_ticket_store_t *tb_ticket_create(size_t max, size_t per_sub);
/* Frees the store, wiping its key. NULL is a no-op. */
void tb_ticket_destroy(tb_ticket_store_t *t);

/*
 * Issues a ticket carrying a copy of grant (the caller keeps grant), valid until
 * min(now_ms + ttl_ms, the grant's exp), signed with fleet_key (TB_TICKET_KEY_LEN bytes) or, when
 * NULL, the store's own key. Writes the ticket's text to out (NUL-terminated, at most
 * TB_TICKET_TEXT_MAX characters) and its expiry to *expires_ms. Returns TB_TICKET_OK or a
 * tb_ticket_err_t (nothing issued, out untouched). May first evict one of the same sub's tickets
 * (see "Bounds").
 */
int tb_ticket_issue(tb_ticket_store_t *t, const unsigned char *fleet_key, const tb_grant_t *grant,
                    int64_t now_ms, int64_t ttl_ms, char out[TB_TICKET_TEXT_MAX + 1],
                    int64_t *expires_ms);

/*
 * Redeems ticket[0..len), checked with fleet_key or, when NULL, the store's own key (as issued):
 * on TB_TICKET_OK *grant is a new grant (caller frees it) and the ticket can never be redeemed
 * here again. Otherwise one of TB_TICKET_REDEEM_ERRORS or TB_TICKET_E_NOMEM, and *grant untouched.
 * Any bytes are accepted as input; more than TB_TICKET_TEXT_MAX are not looked at.
 */
int tb_ticket_redeem(tb_ticket_store_t *t, const unsigned char *fleet_key, const char *ticket,
                     size_t len, int64_t now_ms, tb_grant_t **grant);

/*
 * After a reload that may have changed the fleet key: tickets signed with old_key (the fleet key
 * until now; TB_TICKET_KEY_LEN bytes, copied) are still redeemed until until_ms (now plus the
 * ticket TTL, so those issued before the reload live out their time), then never again. NULL
 * forgets any previous key. Replaces the previous call's key.
 */
void tb_ticket_rotate(tb_ticket_store_t *t, const unsigned char *old_key, int64_t until_ms);

/* Tickets currently held, issued and redeemed, used and expired ones not yet forgotten included
 * (for /stats). */
size_t tb_ticket_held(const tb_ticket_store_t *t);

#endif
