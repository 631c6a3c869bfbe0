"""permessage-deflate: offered by the bridge, used when the client asks (CONTRACT §3)."""

import json

import pytest

import tb


@pytest.mark.parametrize("compression", ["deflate", None])
def test_messages_arrive_with_and_without_deflate(bridge, broker, connect, compression):
    ws = connect(bridge, compression=compression, rooms=["global"])
    names = [type(e).__name__ for e in ws.conn.extensions]
    if compression:
        assert names == ["PerMessageDeflate"], names
    else:
        assert names == []
    fields = {f"f{i}": "telemetry " * 40 for i in range(20)}  # ~8 KB, compresses well
    for i in range(5):
        broker.publish("devices/dev-z/telemetry", json.dumps({"fields": dict(fields, i=i)}))
    msgs = ws.recv_n(5)
    for i, m in enumerate(msgs):
        tb.assert_device_envelope(m, "telemetry", "dev-z")
        assert m["payload"]["fields"] == dict(fields, i=i)
    pong = ws.request({"type": "ping", "request_id": "z"})
    assert pong["type"] == "pong" and pong["request_id"] == "z"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_frames_larger_than_the_write_buffer(make_bridge, broker, connect, compression):
    """Frames over the 64 KiB gathering buffer take the direct path (plain) or a grown copy
    (deflate); both arrive intact, in order, beside small ones."""
    bridge = make_bridge({"limits": {"max_mqtt_payload_bytes": 1 << 20}})
    ws = connect(bridge, compression=compression, rooms=["global"])
    big = {f"k{i}": f"{i:06d}" * 100 for i in range(300)}  # ~200 KB of JSON
    for fields in ({"n": 1}, big, {"n": 3}):  # bytes go to mosquitto_pub through a file
        broker.publish("devices/dev-big/telemetry", json.dumps({"fields": fields}).encode())
    msgs = ws.recv_n(3)
    assert [m["payload"]["fields"] for m in msgs] == [{"n": 1}, big, {"n": 3}]
    assert [m["seq"] for m in msgs] == [msgs[0]["seq"] + i for i in range(3)]
