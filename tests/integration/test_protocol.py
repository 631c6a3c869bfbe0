"""The client protocol: answers, request_id echo, errors that keep the connection 
(docs/protocol.md → Client → server, Error codes)."""

import json

import pytest

import tb


def still_works(ws, broker, device="dev-ok"):
    """After an error the connection still answers and still gets device messages."""
    pong = ws.request({"type": "ping", "request_id": "after"})
    assert pong["type"] == "pong" and pong["request_id"] == "after", pong
    broker.publish(f"devices/{device}/telemetry", json.dumps({"v": 1}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", device)


@pytest.mark.parametrize("request_id", ["abc-1", 42])
def test_subscribe_unsubscribe_echo_request_id(bridge, broker, connect, request_id):
    ws = connect(bridge)
    ans = ws.subscribe(["device:dev-ok", "global"], request_id=request_id)
    assert set(ans) == {"type", "payload", "timestamp", "request_id"}, ans
    assert ans["type"] == "subscribed"
    assert ans["request_id"] == request_id
    assert ans["payload"]["rooms"] == ["device:dev-ok", "global"]
    assert tb.RFC3339_MS.match(ans["timestamp"])

    ans = ws.request({"type": "unsubscribe", "request_id": request_id,
                      "payload": {"rooms": ["global", "device:never-joined"]}})
    assert ans["type"] == "unsubscribed"
    assert ans["request_id"] == request_id
    assert ans["payload"]["rooms"] == ["global"]
    still_works(ws, broker)  # still in device:dev-ok

    ans = ws.request({"type": "unsubscribe", "payload": {"rooms": ["device:dev-ok"]}})
    assert ans["type"] == "unsubscribed" and "request_id" not in ans
    broker.publish("devices/dev-ok/telemetry", json.dumps({"v": 1}))
    ws.expect_silence(0.5)


def test_subscribe_twice_is_idempotent(bridge, broker, connect):
    ws = connect(bridge, rooms=["global"])
    ans = ws.subscribe(["global"])
    assert ans["payload"]["rooms"] == ["global"]
    broker.publish("devices/dev-ok/telemetry", json.dumps({"v": 1}))
    ws.recv()
    ws.expect_silence(0.5)
    status, rooms = bridge.get("/rooms")
    assert status == 200
    assert {"room": "global", "subscribers": 1} in rooms


def test_ping_pong(bridge, connect):
    ws = connect(bridge)
    pong = ws.request({"type": "ping", "request_id": "p-1"})
    assert pong["type"] == "pong"
    assert pong["request_id"] == "p-1"
    assert set(pong) == {"type", "payload", "timestamp", "request_id"}


@pytest.mark.parametrize("raw,code", [
    ('{"type":"dance","request_id":"u1"}', "unknown_type"),
    ("{not json", "bad_request"),
    ("[1,2,3]", "bad_request"),
    ('{"request_id":"u1"}', "bad_request"),
    ('{"type":"subscribe","request_id":"u1","payload":{"rooms":"global"}}', "bad_request"),
    ('{"type":"subscribe","request_id":"u1","payload":{"rooms":[1]}}', "bad_request"),
])
def test_bad_client_messages_get_error_and_connection_stays(bridge, broker, connect, raw, code):
    ws = connect(bridge, rooms=["device:dev-ok"])
    ws.send(raw)
    err = ws.recv()
    assert err["type"] == "error", err
    assert err["payload"]["code"] == code
    assert isinstance(err["payload"]["message"], str) and err["payload"]["message"]
    if '"request_id":"u1"' in raw:
        assert err["request_id"] == "u1"
    still_works(ws, broker)


@pytest.mark.parametrize("room", ["bogus", "device:", "device:a b", "group:", "global:x",
                                  "device:" + "x" * 200])
def test_invalid_room_name_is_bad_request(bridge, broker, connect, room):
    ws = connect(bridge)
    ws.send({"type": "subscribe", "request_id": 7,
             "payload": {"rooms": [room, "device:dev-ok"]}})
    ans = ws.recv()
    assert ans["type"] == "subscribed" and ans["payload"]["rooms"] == ["device:dev-ok"]
    err = ws.recv()
    assert err["type"] == "error" and err["request_id"] == 7
    assert err["payload"]["code"] == "bad_request"
    assert err["payload"]["rooms"] == [room]
    still_works(ws, broker)


def test_too_many_rooms(make_bridge, broker, connect):
    bridge = make_bridge({"limits": {"max_rooms_per_connection": 2}})
    ws = connect(bridge)
    ans = ws.subscribe(["device:dev-ok", "global", "device:c"], request_id="m")
    assert ans["payload"]["rooms"] == ["device:dev-ok", "global"]
    err = ws.recv()
    assert err["type"] == "error" and err["request_id"] == "m"
    assert err["payload"]["code"] == "too_many_rooms"
    assert err["payload"]["rooms"] == ["device:c"]
    # Re-joining a room already held is not "more" rooms.
    ans = ws.subscribe(["global"])
    assert ans["payload"]["rooms"] == ["global"]
    ws.expect_silence(0.3)
    # Leaving one makes space again.
    ws.request({"type": "unsubscribe", "payload": {"rooms": ["global"]}})
    ans = ws.subscribe(["device:c"])
    assert ans["payload"]["rooms"] == ["device:c"]
    still_works(ws, broker)
