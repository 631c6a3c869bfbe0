"""Limits and bad input: oversized client messages, max_connections, bad MQTT payloads
(CONTRACT §2, §3)."""

import json

import tb


def test_oversized_client_message_closes_1009(make_bridge, broker, connect):
    bridge = make_bridge({"limits": {"max_message_bytes": 1024}})
    ws = connect(bridge, rooms=["global"])
    # Just under the bound is fine: a 1024-byte message with an unknown type.
    filler = "x" * (1024 - len('{"type":"ping","request_id":""}'))
    ok = ws.request('{"type":"ping","request_id":"' + filler + '"}')
    assert ok["type"] == "error" and ok["payload"]["code"] == "bad_request"  # id > 128 bytes
    ws.send(json.dumps({"type": "ping", "request_id": "y" * 2000}))
    code, _ = ws.wait_closed()
    assert code == 1009
    assert bridge.stats()["refused"]["client_message_too_big"] == 1
    # The bridge carries on: a new connection works.
    ws2 = connect(bridge, rooms=["global"])
    broker.publish("devices/dev-1/telemetry", json.dumps({"v": 1}))
    tb.assert_device_envelope(ws2.recv(), "telemetry", "dev-1")
    tb.wait_until(lambda: bridge.stats()["connections"] == 1, 5, "one connection left")


def test_oversized_fragmented_client_message_closes_1009(make_bridge, connect):
    bridge = make_bridge({"limits": {"max_message_bytes": 1024}})
    ws = connect(bridge)
    # websockets fragments an iterable into one message of several frames.
    ws.send_fragments(["{\"type\":\"ping\",\"request_id\":\"", "z" * 700, "z" * 700, "\"}"])
    code, _ = ws.wait_closed()
    assert code == 1009


def test_max_connections_503(make_bridge, connect):
    bridge = make_bridge({"limits": {"max_connections": 2}})
    a = connect(bridge)
    connect(bridge)
    status, body = tb.handshake_status(bridge.port, f"/ws?token={bridge.mint()}")
    assert status == 503, (status, body)
    assert bridge.stats()["refused"]["handshake_over_capacity"] == 1
    # HTTP endpoints still answer while WebSocket capacity is full.
    assert bridge.get("/healthz") == (200, {"status": "ok"})
    a.close()
    tb.wait_until(lambda: bridge.stats()["connections"] == 1, 5, "a connection slot to free")
    connect(bridge)


def invalid(bridge):
    s = bridge.stats()
    return s["invalid_mqtt"], s["invalid_mqtt_by_reason"]


def test_bad_mqtt_input_is_dropped_and_counted(make_bridge, broker, connect):
    bridge = make_bridge({"limits": {"max_mqtt_payload_bytes": 512}})
    ws = connect(bridge, rooms=["global"])
    total0, by0 = invalid(bridge)
    cases = [
        ("devices/dev-1/telemetry", "this is not json", "not_json"),
        ("devices/dev-1/telemetry", "[1, 2, 3]", "not_object"),
        ("devices/dev-1/telemetry", "42", "not_object"),
        ("devices/dev-1/telemetry", b"\x00\x01\x02\x03binary\x9c\x80", "bad_utf8"),
        ("devices/dev-1/telemetry", b'{"t": "\xff\xfe"}', "bad_utf8"),
        ("devices/dev-1/telemetry", json.dumps({"pad": "x" * 600}), "too_large"),
        ("devices/a/b/telemetry", json.dumps({"v": 1}), None),
        ("devices/bad$id/telemetry", json.dumps({"v": 1}), "bad_topic"),
    ]
    for topic, payload, _ in cases:
        broker.publish(topic, payload)
    # devices/a/b/telemetry matches no subscription filter (devices/+/telemetry), so the broker
    # never delivers it; every other case reaches the bridge and is refused.
    refused = [c for c in cases if c[2] is not None]
    expected = total0 + len(refused)
    tb.wait_until(lambda: invalid(bridge)[0] >= expected, 5, f"invalid_mqtt == {expected}")
    broker.publish("devices/dev-good/telemetry", json.dumps({"v": 7}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-good")
    assert m["payload"]["fields"] == {"v": 7}
    total, by = invalid(bridge)
    assert total == expected
    for reason in {c[2] for c in refused}:
        n = sum(1 for c in refused if c[2] == reason)
        assert by[reason] - by0.get(reason, 0) == n, (reason, by)
    assert sum(by.values()) - sum(by0.values()) == len(refused)
    ws.expect_silence(0.3)  # nothing of the bad input was delivered


def test_bad_status_input(make_bridge, broker, connect):
    bridge = make_bridge()
    ws = connect(bridge, rooms=["global"])
    total0, _ = invalid(bridge)
    broker.publish("devices/dev-1/status", b"\xff\xfe")
    broker.publish("devices/dev-1/status", "[]")
    tb.wait_until(lambda: invalid(bridge)[0] == total0 + 2, 5, "2 invalid status messages")
    broker.publish("devices/dev-1/status", "online")
    m = ws.recv()
    tb.assert_device_envelope(m, "device_status", "dev-1")
