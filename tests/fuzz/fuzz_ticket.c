/*
 * libFuzzer target: ticket redemption (the `?ticket=` value of any handshake) and the ticket
 * format's parser behind the MAC.
 * Input: one selector byte, then
 *   0: a ticket's text, redeemed as it is (with and without the fleet key);
 *   1: the bytes before the MAC, sealed here with the fleet key (so the fuzzer reaches the
 *      parser), then decoded and redeemed; whatever decodes must encode back to the same text.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/b64url.h"
#include "telebridge/ticket.h"
#include "ticket_internal.h"

static const unsigned char k_key[TB_TICKET_KEY_LEN] = "fuzz-fleet-key-0123456789abcdef";
#define NOW_MS INT64_C(1700000000000)

static tb_ticket_store_t *store;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    store = tb_ticket_create(16, 4);
    FUZZ_CHECK(store);
    return 0;
}

/* Redeems text[0..len): an accepted grant is read. */
static void redeem(const char *text, size_t len, const unsigned char *key)
{
    tb_grant_t *g = NULL;
    int rc = tb_ticket_redeem(store, key, text, len, NOW_MS, &g);
    FUZZ_CHECK((rc == TB_TICKET_OK) == (g != NULL));
    if (!g)
        return;
    FUZZ_CHECK(tb_grant_sub(g));
    (void)tb_grant_allows_room(g, "device:sensor-1");
    (void)tb_grant_has_scope(g, "publish");
    tb_grant_free(g);
}

static void sealed(const unsigned char *body, size_t len)
{
    char text[TB_TICKET_TEXT_MAX + 1], again[TB_TICKET_TEXT_MAX + 1];
    tb_ticket_head_t h;
    tb_grant_t *g = NULL;
    int n = tb_ticket_codec_seal(body, len, k_key, text, sizeof(text));
    if (n < 0) {
        FUZZ_CHECK(TB_B64URL_LEN(len + TB_TICKET_MAC_LEN) > TB_TICKET_TEXT_MAX);
        return;
    }
    if (tb_ticket_codec_decode(text, (size_t)n, k_key, &h, &g) == 0) {
        /* One encoding per ticket: what parses is exactly what the encoder writes. */
        int m = tb_ticket_codec_encode(&h, g, k_key, again, sizeof(again));
        FUZZ_CHECK(m == n && memcmp(text, again, (size_t)n) == 0);
        tb_grant_free(g);
    }
    redeem(text, (size_t)n, k_key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (data[0] == 0) {
        redeem((const char *)p, n, k_key);
        redeem((const char *)p, n, NULL);
    } else if (data[0] == 1) {
        sealed(p, n);
    }
    return 0;
}
