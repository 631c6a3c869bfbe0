"""The subscribe option `series`: the last N values of each numeric field per device, before the
snapshot (docs/protocol.md → Subscribe options → series; docs/configuration.md →
history.series_points)."""

import datetime
import json
import time

import paho.mqtt.client as mqtt

import tb

POINTS = 10
BASE_MS = 1795440000000  # 2026-11-23T12:00:00.000Z


def iso(ms):
    s, milli = divmod(ms, 1000)
    return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S") + f".{milli:03d}Z"


def publish_samples(bridge, broker, device, n, start=0):
    """n telemetry messages of device, one a second from BASE_MS: temperature 20+i, humidity
    40+i and a string field; returns the (t_ms, temperature, humidity) of each."""
    lines, points = [], []
    for i in range(start, start + n):
        t = BASE_MS + 1000 * i
        lines.append(json.dumps({"fields": {"temperature": 20 + i + 0.5, "humidity": 40 + i,
                                            "mode": "eco"}, "timestamp": iso(t)}))
        points.append((t, 20 + i + 0.5, 40 + i))
    before = bridge.stats()["details"]["device_messages"]
    tb.mqtt_publish_lines(broker.port, f"devices/{device}/telemetry", lines)
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= before + n, 10,
                  f"{n} messages of {device} routed")
    return points


def subscribe(ws, rooms, **options):
    return ws.request({"type": "subscribe", "request_id": "s",
                       "payload": {"rooms": rooms, **options}})


def assert_series(msg, device, fields):
    assert set(msg) == {"type", "room", "payload", "timestamp"}, msg
    assert msg["type"] == "series" and msg["room"] == f"device:{device}", msg
    assert tb.RFC3339_MS.match(msg["timestamp"]), msg
    assert msg["payload"] == {"device_id": device, "fields": fields}, msg


def test_series_before_snapshot_oldest_first(make_bridge, broker, connect, wire):
    bridge = make_bridge({"history": {"series_points": POINTS}})
    s1 = publish_samples(bridge, broker, "s-1", 12)
    s2 = publish_samples(bridge, broker, "s-2", 3)
    broker.publish("devices/s-1/status", "online")
    broker.publish("devices/s-3/status", "online")  # no telemetry: no series
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= 17, 10, "statuses")

    ws = connect(bridge)
    ws.keep_snapshots = True
    ans = subscribe(ws, ["device:s-1", "device:s-2", "device:s-3"], series=5)
    assert ans["type"] == "subscribed", ans
    got = ws.recv_n(2 + 4)
    # The last 5 of 12, oldest first; numbers only ("mode" is a string).
    assert_series(got[0], "s-1", {"temperature": [[t, v] for t, v, _ in s1[-5:]],
                                  "humidity": [[t, h] for t, _, h in s1[-5:]]})
    assert_series(got[1], "s-2", {"temperature": [[t, v] for t, v, _ in s2],
                                  "humidity": [[t, h] for t, _, h in s2]})
    # Then the snapshot, then live messages.
    assert [(m["type"], m["room"], m.get("snapshot")) for m in got[2:]] == [
        ("device_status", "device:s-1", True), ("telemetry", "device:s-1", True),
        ("telemetry", "device:s-2", True), ("device_status", "device:s-3", True)], got
    broker.publish("devices/s-2/telemetry", json.dumps({"temperature": 1}))
    live = ws.recv()
    tb.assert_device_envelope(live, "telemetry", "s-2")
    ws.expect_silence(0.3)

    # The whole store (POINTS) when asked for it all; a later subscribe asks again.
    ans = subscribe(ws, ["device:s-2"], series=POINTS)  # already joined: nothing fresh
    assert ans["type"] == "subscribed"
    ws.expect_silence(0.3)
    other = connect(bridge, rooms=None)
    ans = subscribe(other, ["device:s-1"], series=POINTS)
    assert ans["type"] == "subscribed"
    assert_series(other.recv(), "s-1", {"temperature": [[t, v] for t, v, _ in s1[-POINTS:]],
                                        "humidity": [[t, h] for t, _, h in s1[-POINTS:]]})


def test_series_obeys_fields_and_group_rooms(make_bridge, broker, connect, wire):
    bridge = make_bridge({"history": {"series_points": POINTS},
                          "groups": {"lab": ["g-*"]}})
    g1 = publish_samples(bridge, broker, "g-1", 4)
    publish_samples(bridge, broker, "g-2", 2)
    broker.publish("devices/g-3/telemetry", json.dumps({"pressure": 1013}))
    publish_samples(bridge, broker, "other", 2)  # not in the group
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= 9, 10, "g-3")

    ws = connect(bridge)
    ws.keep_snapshots = True
    ans = subscribe(ws, ["group:lab"], series=2, fields=["temperature"])
    assert ans["type"] == "subscribed", ans
    # Least recently updated first, like the snapshot; g-3 has no temperature: no series.
    a, b = ws.recv(), ws.recv()
    assert_series(a, "g-1", {"temperature": [[t, v] for t, v, _ in g1[-2:]]})
    assert b["type"] == "series" and b["room"] == "device:g-2"
    assert set(b["payload"]["fields"]) == {"temperature"}
    nxt = ws.recv()
    assert nxt.get("snapshot") is True, nxt  # then the snapshot


def test_global_series_paced_by_the_queue(make_bridge, broker, connect):
    """A series for every device of global waits in the pending snapshot and is read as the
    queue drains: far more devices than limits.send_queue_messages arrive, none dropped."""
    devices = 1500
    bridge = make_bridge({"limits": {"send_queue_messages": 32},
                          "history": {"series_points": 3}})
    before = bridge.stats()["details"]["device_messages"]
    client = mqtt.Client(client_id=f"tb-series-{time.monotonic_ns()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for i in range(devices):
            info = client.publish(f"devices/p-{i}/telemetry", json.dumps({"v": i}), qos=1)
        info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= before + devices, 30,
                  "every device routed")
    ws = connect(bridge)
    ws.keep_snapshots = True
    ans = subscribe(ws, ["global"], series=3)
    assert ans["type"] == "subscribed"
    got = ws.recv_n(2 * devices, timeout=60)
    kinds = [m["type"] for m in got]
    assert kinds[:devices] == ["series"] * devices  # every series first
    assert all(m.get("snapshot") for m in got[devices:])
    assert {m["room"] for m in got[:devices]} == {f"device:p-{i}" for i in range(devices)}
    stats = bridge.stats()
    assert stats["slow_consumer_disconnects"] == 0
    assert stats["details"]["series_messages"] == devices
    tb.assert_next_client_served(bridge, broker, connect)


def test_series_bounded_by_series_points(make_bridge, broker, connect):
    bridge = make_bridge({"history": {"series_points": POINTS}})
    ws = connect(bridge)
    ans = subscribe(ws, ["global"], series=POINTS + 1)
    assert ans["type"] == "error" and ans["payload"]["code"] == "bad_request", ans
    assert ans["payload"]["message"].startswith("payload.series"), ans
    assert bridge.get("/rooms")[1] == []
    tb.assert_next_client_served(bridge, broker, connect)


def test_no_series_store(make_bridge, broker, connect):
    bridge = make_bridge({"history": {"series_points": 0}})
    publish_samples(bridge, broker, "n-1", 2)
    ws = connect(bridge)
    ans = subscribe(ws, ["device:n-1"], series=1)
    assert ans["type"] == "error" and ans["payload"]["code"] == "bad_request", ans
    ans = ws.subscribe(["device:n-1"])  # without the option: the snapshot as ever
    assert ans["type"] == "subscribed"
    ws.keep_snapshots = True
    snap = ws.recv()
    assert snap["type"] == "telemetry" and snap["snapshot"] is True


def test_series_with_since_then_replay(make_bridge, broker, connect, wire):
    """With a `since` that is honoured the series still comes, then the replay instead of the
    snapshot."""
    bridge = make_bridge({"history": {"series_points": POINTS}})
    first = connect(bridge, rooms=["device:r-1"])
    epoch = first.connected["payload"]["epoch"]
    publish_samples(bridge, broker, "r-1", 2)
    seen = first.recv_n(2)
    missed = publish_samples(bridge, broker, "r-1", 2, start=2)
    ws = connect(bridge)
    ans = subscribe(ws, ["device:r-1"], series=3,
                    since={"epoch": epoch, "seq": seen[-1]["seq"]})
    assert ans["type"] == "subscribed" and ans["payload"]["recovered"] is True, ans
    ser = ws.recv()
    assert ser["type"] == "series" and len(ser["payload"]["fields"]["temperature"]) == 3, ser
    replayed = ws.recv_n(2)
    assert [m["payload"]["fields"]["temperature"] for m in replayed] == [v for _, v, _ in missed]
    assert all("snapshot" not in m for m in replayed)
