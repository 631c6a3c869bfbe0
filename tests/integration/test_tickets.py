"""POST plumbing and one-time tickets (docs/protocol.md → Tickets; docs/security.md
→ Browsers): POST /api/v1/ws/ticket with a Bearer
token, then ?ticket= at the handshake."""

import http.client
import json
import re
import socket
import time

import pytest

import tb

TICKET_PATH = "/api/v1/ws/ticket"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def raw_post(port, head_lines, body=b""):
    """Sends a hand-written POST; returns (status, body text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode() + body)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
                break
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest.decode()


def assert_still_serves(bridge, connect):
    ws = connect(bridge, token=bridge.mint(sub="after"))
    assert ws.request({"type": "ping", "request_id": "p"})["type"] == "pong"


def test_ticket_carries_identity_and_grants(bridge, connect):
    token = bridge.mint(sub="tina", rooms=["device:pump-*"])
    status, body, hdrs = tb.http_post(bridge.port, TICKET_PATH, headers=bearer(token))
    assert status == 200, body
    assert set(body) == {"ticket", "expires_in"} and body["expires_in"] == 30
    # docs/security.md → Tickets across a fleet: base64url, short enough for any URL.
    assert re.fullmatch(r"[A-Za-z0-9_-]{100,300}", body["ticket"]), body["ticket"]
    assert hdrs["Content-Type"] == "application/json"
    assert hdrs["Cache-Control"] == "no-store"
    tb.ISSUED_TICKETS.add(body["ticket"])
    ws = connect(bridge, headers={}, token=None, path=f"/ws?ticket={body['ticket']}")
    assert ws.connected["payload"]["user"] == "tina"
    ans = ws.subscribe(["device:pump-1", "global"])
    assert ans["payload"]["rooms"] == ["device:pump-1"]
    assert ws.recv()["payload"]["rooms"] == ["global"]  # forbidden: not in the token's grant


def test_ticket_is_single_use_and_random(bridge, connect):
    token = bridge.mint(sub="once")
    tickets = [tb.get_ticket(bridge.port, token) for _ in range(3)]
    assert len(set(tickets)) == 3
    assert tb.handshake_status(bridge.port, f"/ws?ticket={tickets[0]}")[0] == 101
    assert tb.handshake_status(bridge.port, f"/ws?ticket={tickets[0]}") == (
        401, {"error": "invalid_ticket"})
    refused = bridge.stats()["refused"]
    assert refused["handshake_by_reason"]["ticket_used"] == 1
    assert refused["handshake_unauthorized"] == 1
    assert_still_serves(bridge, connect)


def test_expired_ticket_is_refused(make_bridge, connect):
    bridge = make_bridge({"auth": {"ticket_ttl_s": 1}})
    token = bridge.mint(sub="late")
    status, body, _ = tb.http_post(bridge.port, TICKET_PATH, headers=bearer(token))
    assert status == 200 and body["expires_in"] == 1
    tb.ISSUED_TICKETS.add(body["ticket"])
    time.sleep(1.2)
    assert tb.handshake_status(bridge.port, f"/ws?ticket={body['ticket']}") == (
        401, {"error": "invalid_ticket"})
    assert bridge.stats()["refused"]["handshake_by_reason"]["ticket_expired"] == 1
    assert_still_serves(bridge, connect)


def test_ticket_never_outlives_its_token(bridge):
    status, body, _ = tb.http_post(bridge.port, TICKET_PATH,
                                   headers=bearer(bridge.mint(sub="short", ttl=5)))
    assert status == 200 and 3 <= body["expires_in"] <= 5, body
    tb.ISSUED_TICKETS.add(body["ticket"])


@pytest.mark.parametrize("headers,code", [
    ({}, "missing_token"),
    ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_token"),
])
def test_ticket_needs_a_valid_bearer(bridge, connect, headers, code):
    status, body, hdrs = tb.http_post(bridge.port, TICKET_PATH, headers=headers)
    assert (status, body) == (401, {"error": code})
    assert hdrs["WWW-Authenticate"] == "Bearer"
    assert_still_serves(bridge, connect)


def test_ticket_refuses_an_expired_bearer(bridge):
    status, body, _ = tb.http_post(bridge.port, TICKET_PATH,
                                   headers=bearer(bridge.mint(ttl=-3600)))
    assert (status, body) == (401, {"error": "token_expired"})


def test_unknown_and_malformed_tickets(bridge, connect):
    good = tb.get_ticket(bridge.port, bridge.mint(sub="good"))
    forged = good[:-2] + ("AA" if good[-2:] != "AA" else "BA")  # the MAC no longer matches
    for t in ["0" * 64, "ZZ" * 32, "abc", "0" * 65, forged, good[:-1], "A" * 2049]:
        assert tb.handshake_status(bridge.port, f"/ws?ticket={t}") == (
            401, {"error": "invalid_ticket"}), t
    assert bridge.stats()["refused"]["handshake_by_reason"]["ticket_unknown"] == 7
    assert tb.handshake_status(bridge.port, f"/ws?ticket={good}")[0] == 101
    assert_still_serves(bridge, connect)


def test_post_plumbing_errors(bridge, connect):
    token = bridge.mint()
    big = b"x" * 65537
    status, body, _ = tb.http_post(bridge.port, TICKET_PATH, big, headers=bearer(token))
    assert (status, body) == (413, {"error": "body_too_large"})
    status, body, _ = tb.http_post(bridge.port, "/api/v1/nothing", {"a": 1})
    assert (status, body) == (404, {"error": "not_found"})
    assert bridge.get(TICKET_PATH) == (405, {"error": "method_not_allowed"})
    host = f"Host: 127.0.0.1:{bridge.port}"
    assert raw_post(bridge.port, [f"POST {TICKET_PATH} HTTP/1.1", host]) == (
        411, '{"error":"length_required"}')
    assert raw_post(bridge.port, [f"POST {TICKET_PATH} HTTP/1.1", host,
                                  "Content-Length: 1x"], b"x") == (400, '{"error":"bad_request"}')
    # 2**64 + 1 would wrap to 1 in a careless parser.
    assert raw_post(bridge.port, [f"POST {TICKET_PATH} HTTP/1.1", host,
                                  "Content-Length: 18446744073709551617"], b"x") == (
        413, '{"error":"body_too_large"}')
    # A body that arrives in several segments is gathered before the endpoint sees it.
    status, text = raw_post(bridge.port, [f"POST {TICKET_PATH} HTTP/1.1", host,
                                          f"Authorization: Bearer {token}",
                                          "Content-Length: 5000"], b"y" * 5000)
    assert status == 200 and json.loads(text)["expires_in"] == 30
    tb.ISSUED_TICKETS.add(json.loads(text)["ticket"])
    assert_still_serves(bridge, connect)


# docs/security.md → Ticket bounds: 4096 held at most, 8 per sub.
TICKETS_MAX = 4096
TICKETS_PER_SUB = 8


def test_one_user_asking_in_a_loop_takes_only_its_own_places(bridge, connect):
    """Before the per-sub bound one token holder could take all 4096 places, and every other
    user got 503 too_many_tickets for the ticket lifetime."""
    hog = bridge.mint(sub="hog")
    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=5)
    issued = []
    try:
        for _ in range(TICKETS_MAX + TICKETS_PER_SUB):
            conn.request("POST", TICKET_PATH, headers={**bearer(hog), "Content-Length": "0"})
            r = conn.getresponse()
            body = json.loads(r.read())
            assert r.status == 200, (len(issued), r.status, body)
            issued.append(body["ticket"])
    finally:
        conn.close()
    tb.ISSUED_TICKETS.update(issued)
    # Another user still gets a ticket, and it works.
    ws = connect(bridge, headers={}, token=None,
                 path=f"/ws?ticket={tb.get_ticket(bridge.port, bridge.mint(sub='bob'))}")
    assert ws.connected["payload"]["user"] == "bob"
    # hog's oldest were replaced by its newest; the newest still work.
    assert tb.handshake_status(bridge.port, f"/ws?ticket={issued[0]}") == (
        401, {"error": "invalid_ticket"})
    assert tb.handshake_status(bridge.port, f"/ws?ticket={issued[-TICKETS_PER_SUB - 1]}") == (
        401, {"error": "invalid_ticket"})
    ws = connect(bridge, headers={}, token=None, path=f"/ws?ticket={issued[-TICKETS_PER_SUB]}")
    assert ws.connected["payload"]["user"] == "hog"
    assert bridge.stats()["refused"]["handshake_by_reason"]["ticket_unknown"] == 2
    assert_still_serves(bridge, connect)


def test_grant_too_large_for_a_ticket(bridge, connect):
    """docs/security.md → Tickets across a fleet: a grant whose ticket would pass 2,048
    characters gets none (the token still works as ?token= or a Bearer header)."""
    rooms = [f"device:a-rather-long-device-name-{i:03d}-*" for i in range(60)]
    status, body, _ = tb.http_post(bridge.port, TICKET_PATH,
                                   headers=bearer(bridge.mint(sub="big", rooms=rooms)))
    assert (status, body) == (400, {"error": "grant_too_large"})
    assert_still_serves(bridge, connect)


def test_a_ticket_is_good_once_on_every_bridge_with_the_same_secret(make_bridge, connect):
    """docs/security.md → Tickets across a fleet: bridges with the same HS* secret accept each
    other's tickets, each at most once; a bridge with another secret knows none of them."""
    a = make_bridge()
    b = make_bridge(secret=a.secret)
    other = make_bridge()
    token = a.mint(sub="fleet", rooms=["device:pump-*"])
    ticket = tb.get_ticket(a.port, token)
    assert tb.handshake_status(other.port, f"/ws?ticket={ticket}") == (
        401, {"error": "invalid_ticket"})
    assert other.stats()["refused"]["handshake_by_reason"]["ticket_unknown"] == 1
    ws = connect(b, headers={}, token=None, path=f"/ws?ticket={ticket}")
    assert ws.connected["payload"]["user"] == "fleet"
    ans = ws.subscribe(["device:pump-1", "global"])
    assert ans["payload"]["rooms"] == ["device:pump-1"]  # the grant travelled with the ticket
    assert tb.handshake_status(b.port, f"/ws?ticket={ticket}") == (
        401, {"error": "invalid_ticket"})
    assert b.stats()["refused"]["handshake_by_reason"]["ticket_used"] == 1
    # The replay window the docs state: once more on each other bridge of the fleet.
    assert tb.handshake_status(a.port, f"/ws?ticket={ticket}")[0] == 101
    assert tb.handshake_status(a.port, f"/ws?ticket={ticket}") == (
        401, {"error": "invalid_ticket"})
    assert_still_serves(b, connect)


def test_bridges_sharing_a_port_take_each_others_tickets(make_bridge, connect):
    """docs/operations.md → Several bridges on one host: the ticket POST and the WebSocket are
    two connections the kernel may hand to different processes on the port; with one secret
    each process redeems the other's tickets."""
    a = make_bridge({"listen": {"reuse_port": True}})
    token = a.mint(sub="shared")
    issuer_a = tb.ticket_issuer(tb.get_ticket(a.port, token))
    epoch_a = connect(a, token=token).connected["payload"]["epoch"]
    b = make_bridge({"listen": {"port": a.port, "reuse_port": True}}, start=False,
                    secret=a.secret)
    b.port = a.port
    b.start()
    assert b.port == a.port
    issued_by_a = redeemed_by_a = crossed = 0
    for _ in range(20):
        ticket = tb.get_ticket(a.port, token)
        ws = connect(a, headers={}, token=None, path=f"/ws?ticket={ticket}")
        by_a = tb.ticket_issuer(ticket) == issuer_a
        on_a = ws.connected["payload"]["epoch"] == epoch_a
        issued_by_a += by_a
        redeemed_by_a += on_a
        crossed += by_a != on_a
        ws.close()
    # 20 requests of each kind all on one process: 2 * 2^-20 if the kernel spreads them.
    assert 0 < issued_by_a < 20 and 0 < redeemed_by_a < 20, (issued_by_a, redeemed_by_a)
    assert crossed > 0, "no ticket was redeemed by the other process"
