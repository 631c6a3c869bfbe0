"""The operator endpoints (docs/security.md → Operator endpoints): on the public listener /stats,
/api/v1/ws/stats, /rooms and /metrics answer only a Bearer token whose scope has `admin` (401
without a valid token, 403 without the scope), /healthz and /readyz answer anyone; the admin
listener (admin.port, off by default) serves the operator endpoints and health without a
credential and nothing else. Before this rule, /rooms listed every watched device to anyone."""

import json
import subprocess

import tb

OPERATOR = ("/stats", "/api/v1/ws/stats", "/rooms", "/metrics")
NO_ADMIN = {"admin": {"port": 0}}


def public(bridge, path, token=None):
    return tb.http_get(bridge.port, path, token=token)


def test_operator_endpoints_need_an_admin_token(make_bridge):
    bridge = make_bridge(NO_ADMIN)
    admin = bridge.mint(sub="ops", rooms=(), scope="read admin")
    listed = bridge.mint(sub="ops", rooms=(), scope=["publish", "admin"])
    user = bridge.mint(sub="alice", rooms=("*",))
    near = bridge.mint(sub="alice", scope="administrator Admin publish")
    expired = bridge.mint(sub="ops", ttl=-3600, scope="admin")
    for path in OPERATOR:
        status, body = public(bridge, path)
        assert (status, body) == (401, {"error": "missing_token"}), (path, status, body)
        # Each refusal is followed by a request that is served.
        assert public(bridge, path, admin)[0] == 200, path
        assert public(bridge, path, "a.b.c") == (401, {"error": "invalid_token"}), path
        assert public(bridge, path, listed)[0] == 200, path
        assert public(bridge, path, expired) == (401, {"error": "token_expired"}), path
        assert public(bridge, path, user) == (403, {"error": "forbidden"}), path
        assert public(bridge, path, admin)[0] == 200, path
        assert public(bridge, path, near) == (403, {"error": "forbidden"}), path
        # Longer than any token accepted, but inside the header bound: a bad token, not none.
        assert public(bridge, path, "x" * 9000) == (401, {"error": "invalid_token"}), path
        assert public(bridge, path, listed)[0] == 200, path
    status, headers, _ = tb.http_raw(bridge.port, b"GET /rooms HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    # What an admin token reads is the real document.
    status, text = public(bridge, "/metrics", admin)
    assert status == 200 and 'telebridge_connections{compression="none"} 0\n' in text
    assert public(bridge, "/stats", admin)[1]["connections"] == 0
    # Health stays open; the default bridge has no admin listener.
    assert public(bridge, "/healthz") == (200, {"status": "ok"})
    assert public(bridge, "/readyz")[0] == 200
    assert not tb.port_open(bridge.admin_port)


def test_an_admin_token_grants_no_room(make_bridge, connect):
    bridge = make_bridge(NO_ADMIN)
    ws = connect(bridge, token=bridge.mint(sub="ops", rooms=(), scope="admin"))
    ans = ws.subscribe(["global"])
    assert ans["type"] == "subscribed" and ans["payload"]["rooms"] == [], ans
    err = ws.recv()
    assert err["type"] == "error" and err["payload"]["code"] == "forbidden", err
    assert connect(bridge, rooms=["global"]).connected["type"] == "connected"


def test_the_admin_listener_serves_operators_only(bridge, connect):
    """Every test bridge has an admin listener (tb.Bridge); this one checks what it serves."""
    port = bridge.admin_port
    for path in OPERATOR + ("/healthz", "/readyz"):
        assert tb.http_get(port, path)[0] == 200, path
    rooms = tb.http_get(port, "/rooms")[1]
    assert isinstance(rooms, list)
    # Nothing else: no files, no tickets, no WebSocket.
    for path in ("/", "/index.html", "/ws", "/api/v1/ws/ticket", "/stats/", "/no/such"):
        assert tb.http_get(port, path) == (404, {"error": "not_found"}), path
    status, body, _ = tb.http_post(port, "/api/v1/ws/ticket", b"",
                                   headers={"Authorization": f"Bearer {bridge.mint()}"})
    assert (status, body) == (405, {"error": "method_not_allowed"})
    assert tb.handshake_status(port, f"/ws?token={bridge.mint()}") == \
        (404, {"error": "not_found"})
    assert tb.http_get(port, "/stats")[1]["connections"] == 0
    # The public listener keeps its rule while the admin listener is on, and serves clients.
    assert public(bridge, "/stats") == (401, {"error": "missing_token"})
    connect(bridge, rooms=["device:sensor-temp-001"])
    assert {"room": "device:sensor-temp-001", "subscribers": 1} in tb.http_get(port, "/rooms")[1]
    assert tb.http_get(port, "/stats")[1]["connections"] == 1
    assert public(bridge, "/rooms") == (401, {"error": "missing_token"})
    # lws picks a vhost by the Host header only among those on the same port: naming the admin
    # vhost on the public port reaches nothing more.
    for host in ("telebridge-admin", f"127.0.0.1:{port}"):
        status, _, body = tb.http_raw(bridge.port, f"GET /stats HTTP/1.1\r\nHost: {host}\r\n"
                                      "Connection: close\r\n\r\n".encode())
        assert (status, json.loads(body)) == (401, {"error": "missing_token"}), host


def test_admin_port_must_differ_from_listen_port(tmp_path):
    cfg = tmp_path / "same.json"
    cfg.write_text(json.dumps({"listen": {"port": 18080}, "admin": {"port": 18080}}))
    r = subprocess.run([str(tb.BRIDGE_BIN), "--config", str(cfg), "--check-config"],
                       env={"TELEBRIDGE_JWT_SECRET": "s" * 32}, capture_output=True, text=True,
                       timeout=tb.PROCESS_TIMEOUT)
    assert r.returncode != 0
    assert "admin.port: must differ from listen.port (18080)" in r.stderr
