"""Connection life: token expiry and refresh, heartbeat, Origin check, client rate limit
(docs/protocol.md → refresh, Limits and closing; docs/security.md → Browsers, Abuse and denial
of service)."""

import socket
import time

import tb

# Expiry needs exact timing: no leeway on the bridge side, and no token_expiring warning
# (tested on its own below) arriving between the answers these tests read.
NO_LEEWAY = {"auth": {"leeway_s": 0, "expiry_warning_s": 0}}


def test_expired_token_closes_4001(make_bridge, connect):
    bridge = make_bridge(NO_LEEWAY)
    ws = connect(bridge, token=bridge.mint(ttl=2), rooms=["global"])
    t0 = time.monotonic()
    code, _ = ws.wait_closed(timeout=6)
    assert code == 4001
    assert 0.5 < time.monotonic() - t0 < 4.5
    assert bridge.stats()["details"]["expired_closes"] == 1


def test_refresh_extends_the_connection(make_bridge, connect):
    bridge = make_bridge(NO_LEEWAY)
    ws = connect(bridge, token=bridge.mint(sub="carol", ttl=2, rooms=["global", "device:*"]),
                 rooms=["global", "device:d1"])
    fresh = bridge.mint(sub="carol", ttl=3600, rooms=["device:*"])
    ans = ws.request({"type": "refresh", "request_id": "r", "payload": {"token": fresh}})
    # The new grant no longer allows `global`: the bridge leaves it and says so first.
    assert ans["type"] == "unsubscribed" and ans["payload"]["rooms"] == ["global"], ans
    ans = ws.recv()
    assert ans["type"] == "refreshed" and ans["request_id"] == "r"
    assert abs(ans["payload"]["exp"] - (time.time() + 3600)) < 60
    time.sleep(3)
    pong = ws.request({"type": "ping", "request_id": "alive"})
    assert pong["type"] == "pong"
    assert bridge.stats()["details"]["expired_closes"] == 0


def test_token_expiring_then_refresh_outlives_the_first_token(make_bridge, connect):
    bridge = make_bridge({"auth": {"leeway_s": 0, "expiry_warning_s": 2}})
    ws = connect(bridge, token=bridge.mint(sub="dana", ttl=2, rooms=["device:*"]))
    first_exp = int(time.time()) + 2
    warn = ws.recv(timeout=2)
    assert warn["type"] == "token_expiring", warn
    assert set(warn["payload"]) == {"exp", "expires_in"}
    assert 0 < warn["payload"]["expires_in"] <= 2
    assert abs(warn["payload"]["exp"] - first_exp) <= 1
    fresh = bridge.mint(sub="dana", ttl=3600, rooms=["device:*"])
    ans = ws.request({"type": "refresh", "request_id": 7, "payload": {"token": fresh}})
    assert ans["type"] == "refreshed" and ans["request_id"] == 7, ans
    # Past the first token's exp the connection is still served, and warned no more.
    time.sleep(max(0.0, first_exp + 1.2 - time.time()))
    assert ws.request({"type": "ping", "request_id": "alive"})["type"] == "pong"
    assert bridge.stats()["details"]["expired_closes"] == 0


def test_refresh_refused(make_bridge, connect):
    bridge = make_bridge()
    ws = connect(bridge, token=bridge.mint(sub="carol"))
    other = bridge.mint(sub="mallory")
    err = ws.request({"type": "refresh", "request_id": 1, "payload": {"token": other}})
    assert err["type"] == "error" and err["payload"]["code"] == "forbidden", err
    err = ws.request({"type": "refresh", "request_id": 2,
                      "payload": {"token": tb.remember_token("x.y.z")}})
    assert err["type"] == "error" and err["request_id"] == 2
    assert err["payload"]["code"] not in ("forbidden", "bad_request"), err
    err = ws.request({"type": "refresh", "request_id": 3, "payload": {}})
    assert err["payload"]["code"] == "bad_request"
    assert ws.request({"type": "ping"})["type"] == "pong"


def test_heartbeat_closes_a_silent_client(make_bridge, connect):
    bridge = make_bridge({"heartbeat": {"ping_interval_s": 1, "pong_timeout_s": 2}})
    alive = connect(bridge)  # websockets answers pings by itself
    sock, status, _, data = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}")
    assert status == 101
    sock.settimeout(0.5)
    deadline = time.monotonic() + 8
    closed = False
    while time.monotonic() < deadline and not closed:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
        closed = not chunk
        data += chunk
    sock.close()
    assert closed, "a client that never answers pings was not closed"
    # The server pinged before giving up (opcode 0x9 in the frames read).
    ops = [op for op, _ in tb.parse_frames(data)[0]]
    assert 0x9 in ops, ops
    assert not alive.closed
    assert alive.request({"type": "ping", "request_id": "hb"})["type"] == "pong"


def test_origin_allow_list(make_bridge, connect):
    bridge = make_bridge({"listen": {"allowed_origins": ["http://dash.example"]}})
    token = bridge.mint()
    status, _ = tb.handshake_status(bridge.port, f"/ws?token={token}",
                                    {"Origin": "http://evil.example"})
    assert status == 403
    status, _ = tb.handshake_status(bridge.port, f"/ws?token={token}")
    assert status == 403
    status, _ = tb.handshake_status(bridge.port, "/ws", {"Origin": "http://dash.example"})
    assert status == 401
    ws = connect(bridge, token=token, headers={"Origin": "http://dash.example"})
    assert ws.connected["payload"]["user"] == "alice"


def test_client_rate_limit(make_bridge, connect):
    limit = 5
    bridge = make_bridge({"limits": {"client_messages_per_s": limit}})
    ws = connect(bridge)
    burst = 4 * limit
    for i in range(burst):
        ws.send({"type": "ping", "request_id": i})
    got = []
    try:
        while True:
            got.append(ws.recv(timeout=1.0))
    except AssertionError:
        pass
    pongs = [m for m in got if m["type"] == "pong"]
    errors = [m for m in got if m["type"] == "error"]
    assert len(pongs) + len(errors) == len(got)
    assert limit <= len(pongs) < burst
    assert errors and all(e["payload"]["code"] == "rate_limited" for e in errors)
    # One answer per second at most: far fewer errors than refused messages.
    assert len(errors) <= 2
    assert bridge.stats()["details"]["rate_limited"] == burst - len(pongs)
    time.sleep(1.1)
    assert ws.request({"type": "ping", "request_id": "later"})["type"] == "pong"
