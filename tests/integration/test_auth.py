"""Handshake authentication and room authorisation (docs/protocol.md → Connecting,
subscribe; docs/security.md → Tokens, Grants)."""

import json
import subprocess
import time

import jwt
import pytest

import tb


def test_no_token_is_401(bridge):
    status, body = tb.handshake_status(bridge.port, "/ws")
    assert status == 401
    assert isinstance(body, dict) and "error" in body, body
    assert bridge.stats()["refused"]["handshake_unauthorized"] == 1


@pytest.mark.parametrize("kind", ["bad_signature", "expired", "no_exp", "alg_none", "garbage",
                                  "other_alg"])
def test_bad_token_is_401(bridge, kind):
    if kind == "bad_signature":
        token = tb.mint("alice", ["*"], 3600, "not-the-secret")
    elif kind == "expired":
        token = bridge.mint(ttl=-3600)  # beyond the default 30 s leeway
    elif kind == "no_exp":
        token = bridge.mint(ttl=None)
    elif kind == "alg_none":
        token = tb.unsigned_token("alice", ["*"], 3600)
    elif kind == "other_alg":
        token = tb.mint("alice", ["*"], 3600, bridge.secret, alg="HS512")
    else:
        token = tb.remember_token("not.a.jwt")
    status, _ = tb.handshake_status(bridge.port, f"/ws?token={token}")
    assert status == 401
    status, _ = tb.handshake_status(bridge.port, "/ws", {"Authorization": f"Bearer {token}"})
    assert status == 401
    assert bridge.stats()["refused"]["handshake_unauthorized"] == 2


def test_query_token_and_alias_path(bridge, connect):
    ws = connect(bridge, token=bridge.mint(sub="qt"), path="/api/v1/ws")
    assert ws.connected["payload"]["user"] == "qt"


def test_bearer_header(bridge, connect):
    token = bridge.mint(sub="bearer-user", rooms=["global"])
    ws = connect(bridge, headers={"Authorization": f"Bearer {token}"})
    assert ws.connected["payload"]["user"] == "bearer-user"
    ans = ws.subscribe(["global"], request_id="r1")
    assert ans["type"] == "subscribed" and ans["payload"]["rooms"] == ["global"]


def test_forbidden_room_and_granted_room_in_one_request(bridge, broker, connect):
    token = bridge.mint(sub="limited", rooms=["device:sensor-*"])
    ws = connect(bridge, token=token)
    ws.send({"type": "subscribe", "request_id": "s1",
             "payload": {"rooms": ["device:sensor-1", "global", "group:building-a"]}})
    ans = ws.recv()
    assert ans["type"] == "subscribed"
    assert ans["request_id"] == "s1"
    assert ans["payload"]["rooms"] == ["device:sensor-1"]
    err = ws.recv()
    assert err["type"] == "error"
    assert err["request_id"] == "s1"
    assert err["payload"]["code"] == "forbidden"
    assert sorted(err["payload"]["rooms"]) == ["global", "group:building-a"]
    assert isinstance(err["payload"]["message"], str)
    broker.publish("devices/sensor-1/telemetry", json.dumps({"v": 1}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "sensor-1")
    # Not joined: a message of another device only reaches `global`, which was refused.
    broker.publish("devices/other-9/telemetry", json.dumps({"v": 2}))
    ws.expect_silence(0.5)


def test_no_rooms_claim_gets_default_rooms(make_bridge, connect):
    bridge = make_bridge({"auth": {"default_rooms": ["global"]}})
    ws = connect(bridge, token=bridge.mint(sub="dflt", rooms=None))
    ans = ws.subscribe(["global", "device:x"])
    assert ans["payload"]["rooms"] == ["global"]
    err = ws.recv()
    assert err["payload"]["code"] == "forbidden" and err["payload"]["rooms"] == ["device:x"]


def test_token_tool_output_is_accepted(bridge, connect):
    assert tb.TOKEN_BIN.exists(), f"{tb.TOKEN_BIN} not built"
    out = subprocess.run(
        [str(tb.TOKEN_BIN), "--sub", "alice", "--rooms", "device:*,global", "--ttl", "1h",
         "--secret-file", str(bridge.secret_file)],
        capture_output=True, text=True, timeout=10, check=True)
    token = tb.remember_token(out.stdout.strip())
    assert out.stdout.endswith("\n") and "\n" not in token
    claims = jwt.decode(token, bridge.secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["rooms"] == ["device:*", "global"]
    assert abs(claims["exp"] - (time.time() + 3600)) < 60
    ws = connect(bridge, token=token)
    assert ws.connected["payload"]["user"] == "alice"
    ans = ws.subscribe(["device:abc", "global", "group:building-a"])
    assert ans["payload"]["rooms"] == ["device:abc", "global"]
    err = ws.recv()
    assert err["payload"]["code"] == "forbidden"
    assert err["payload"]["rooms"] == ["group:building-a"]
