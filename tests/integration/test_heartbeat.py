"""Heartbeats (docs/protocol.md, "Limits and closing"; docs/configuration.md, heartbeat.*): the
bridge pings a connection that has been quiet for heartbeat.ping_interval_s and drops one that
has shown no sign of life (a pong, or any message) for heartbeat.pong_timeout_s — within one
more second, the period of the tick that checks them."""

import json
import select
import socket
import time

import tb

PING_S, PONG_S = 1, 3
TICK_S = 1.0
# The bridge, the clients and other jobs share two cores: a check that is due may run this much
# after its second.
SCHEDULING_S = 1.0
HEARTBEAT = {"heartbeat": {"ping_interval_s": PING_S, "pong_timeout_s": PONG_S}}


def raw_client(bridge):
    """A handshaken raw socket, the time its 101 arrived, and the bytes read after it."""
    sock, status, _, rest = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}")
    assert status == 101
    return sock, time.monotonic(), rest


def pong_for(payload):
    return tb.ws_frame(payload, opcode=0xA)


def test_a_client_that_never_answers_is_dropped_within_the_bound(make_bridge, connect):
    bridge = make_bridge(HEARTBEAT)
    sock, t0, buf = raw_client(bridge)
    sock.settimeout(0.2)
    pings, closed_at = [], None
    deadline = t0 + PONG_S + TICK_S + SCHEDULING_S + 2
    while time.monotonic() < deadline and closed_at is None:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed_at = time.monotonic() - t0
            break
        frames, buf = tb.parse_frames(buf + chunk)
        pings += [time.monotonic() - t0 for op, _ in frames if op == 0x9]
    sock.close()
    assert closed_at is not None, "a client that never answers pings was not dropped"
    assert PONG_S - 0.25 <= closed_at <= PONG_S + TICK_S + SCHEDULING_S, closed_at
    # Pinged once, after ping_interval_s of quiet (and not again while it stayed silent).
    assert len(pings) == 1, pings
    assert PING_S - 0.25 <= pings[0] <= PING_S + TICK_S + SCHEDULING_S, pings
    # The next client is served.
    ws = connect(bridge)
    assert ws.request({"type": "ping", "request_id": 1})["type"] == "pong"


def test_clients_showing_signs_of_life_stay(make_bridge):
    """One raw client answers every ping with a pong and sends nothing else; another never
    answers pings but sends an application message every half second. Both outlive
    pong_timeout_s twice over, and the first was pinged again after each quiet interval."""
    bridge = make_bridge(HEARTBEAT)
    ponger, t0, pbuf = raw_client(bridge)
    talker, _, tbuf = raw_client(bridge)
    pings = 0
    next_talk = time.monotonic()
    end = t0 + 2 * PONG_S + 2
    while time.monotonic() < end:
        if time.monotonic() >= next_talk:
            talker.sendall(tb.ws_frame(json.dumps({"type": "ping"})))
            next_talk += 0.5
        ready, _, _ = select.select([ponger, talker], [], [], 0.1)
        for sock in ready:
            chunk = sock.recv(65536)
            assert chunk, "a client showing signs of life was dropped"
            if sock is ponger:
                frames, pbuf = tb.parse_frames(pbuf + chunk)
                for op, payload in frames:
                    if op == 0x9:
                        pings += 1
                        ponger.sendall(pong_for(payload))
            else:
                tbuf += chunk
    # Each pong made the connection quiet again, so it was pinged once per quiet interval.
    assert pings >= 3, pings
    for sock in (ponger, talker):
        sock.settimeout(tb.RECV_TIMEOUT)
        sock.sendall(tb.ws_frame(json.dumps({"type": "ping", "request_id": "still"})))
    for sock, buf in ((ponger, pbuf), (talker, tbuf)):
        deadline = time.monotonic() + tb.RECV_TIMEOUT
        answered = False
        while not answered and time.monotonic() < deadline:
            frames, buf = tb.parse_frames(buf)
            answered = any(op == 0x1 and json.loads(p).get("request_id") == "still"
                           for op, p in frames)
            if not answered:
                chunk = sock.recv(65536)
                assert chunk, "closed"
                buf += chunk
        assert answered
        sock.close()
