"""Catch-up after a subscribe: snapshot, `since` replay and live messages on one connection,
each message at most once (docs/protocol.md: Recovery, At most once, unsubscribe, refresh)."""

import json

import tb


def subscribe_since(ws, rooms, epoch, seq):
    return ws.request({"type": "subscribe",
                       "payload": {"rooms": rooms, "since": {"epoch": epoch, "seq": seq}}})


def test_since_never_repeats_what_another_room_brought(bridge, broker, connect):
    """In `global`, 20 messages of a device came live; subscribing to its device room with
    `since` at the first of them replays none of them again."""
    ws = connect(bridge, rooms=["global"])
    epoch = ws.connected["payload"]["epoch"]
    tb.mqtt_publish_lines(broker.port, "devices/dup-x/telemetry",
                          [json.dumps({"i": i}) for i in range(20)])
    got = ws.recv_n(20)
    assert [m["payload"]["fields"]["i"] for m in got] == list(range(20))
    assert all(m["room"] == "device:dup-x" for m in got)

    ans = subscribe_since(ws, ["device:dup-x"], epoch, got[0]["seq"])
    assert ans["type"] == "subscribed" and ans["payload"]["recovered"] is True, ans
    ws.expect_silence(0.5)
    broker.publish("devices/dup-x/telemetry", json.dumps({"i": 20}))
    live = ws.recv()
    assert live["payload"]["fields"]["i"] == 20 and live["seq"] > got[-1]["seq"]
    ws.expect_silence(0.3)
