"""Fan-out and envelopes: docs/protocol.md → MQTT input (telemetry, status, retained) and
→ Messages, Rooms (rooms, seq, at most once, the `connected` message)."""

import json
import time

import tb

DEVICE = "sensor-hum-7"  # in group building-a through the pattern "sensor-hum-*"


def telemetry(broker, device, **fields):
    broker.publish(f"devices/{device}/telemetry", json.dumps(fields))


def test_connected_is_first_message(bridge, connect):
    a = connect(bridge, token=bridge.mint(sub="alice"))
    b = connect(bridge, token=bridge.mint(sub="bob"))
    for ws, user in ((a, "alice"), (b, "bob")):
        c = ws.connected
        assert set(c) == {"type", "payload", "timestamp"}, c
        assert set(c["payload"]) == {"connection_id", "server_time", "epoch", "user"}
        assert c["payload"]["user"] == user
        assert tb.RFC3339_MS.match(c["payload"]["server_time"])
        assert tb.RFC3339_MS.match(c["timestamp"])
        assert isinstance(c["payload"]["epoch"], str) and c["payload"]["epoch"]
    assert a.connected["payload"]["connection_id"] != b.connected["payload"]["connection_id"]
    assert a.connected["payload"]["epoch"] == b.connected["payload"]["epoch"]


def test_fanout_device_group_global_exactly_once(bridge, broker, connect, wire):
    everything = connect(bridge, rooms=[f"device:{DEVICE}", "group:building-a", "global"])
    device_only = connect(bridge, rooms=[f"device:{DEVICE}"])
    group_only = connect(bridge, rooms=["group:building-a"])
    global_only = connect(bridge, rooms=["global"])
    elsewhere = connect(bridge, rooms=["device:other-1", "group:building-b"])

    for i in range(3):
        telemetry(broker, DEVICE, temperature=20 + i)

    per_client = {}
    for name, ws in (("everything", everything), ("device", device_only),
                     ("group", group_only), ("global", global_only)):
        msgs = ws.recv_n(3)
        for i, m in enumerate(msgs):
            tb.assert_device_envelope(m, "telemetry", DEVICE)
            assert m["payload"]["fields"] == {"temperature": 20 + i}, (name, m)
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(seqs[0], seqs[0] + 3)), (name, seqs)
        per_client[name] = seqs
    # One bridge-wide counter: every subscriber sees the same seq for the same message.
    assert len({tuple(s) for s in per_client.values()}) == 1, per_client
    # At most once, however many of its rooms a connection joined.
    everything.expect_silence(0.5)
    elsewhere.expect_silence(0.1)


def test_seq_counts_every_device_message(bridge, broker, connect, wire):
    ws = connect(bridge, rooms=["global"])
    telemetry(broker, "dev-a", x=1)
    broker.publish("devices/dev-b/status", "online")
    telemetry(broker, "dev-c", x=2)
    msgs = ws.recv_n(3)
    assert [m["type"] for m in msgs] == ["telemetry", "device_status", "telemetry"]
    assert [m["payload"]["device_id"] for m in msgs] == ["dev-a", "dev-b", "dev-c"]
    assert [m["seq"] for m in msgs] == [msgs[0]["seq"], msgs[0]["seq"] + 1, msgs[0]["seq"] + 2]


def test_rooms_of_other_devices_get_nothing(bridge, broker, connect, wire):
    mine = connect(bridge, rooms=["device:dev-1"])
    other = connect(bridge, rooms=["device:dev-2", "group:building-a"])
    telemetry(broker, "dev-1", v=1)
    m = mine.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-1")
    other.expect_silence(0.5)


def test_status_envelope(bridge, broker, connect, wire):
    ws = connect(bridge, rooms=["device:dev-s"])
    broker.publish("devices/dev-s/status", "online")
    m = ws.recv()
    tb.assert_device_envelope(m, "device_status", "dev-s")
    assert m["payload"]["status"] == "online"
    assert tb.RFC3339_MS.match(m["payload"]["timestamp"])

    broker.publish("devices/dev-s/status",
                   json.dumps({"status": "offline", "timestamp": "2024-05-06T07:08:09.010Z"}))
    m2 = ws.recv()
    tb.assert_device_envelope(m2, "device_status", "dev-s", seq=m["seq"] + 1)
    assert m2["payload"] == {"device_id": "dev-s", "status": "offline",
                             "timestamp": "2024-05-06T07:08:09.010Z"}


def test_retained_status_is_ingested(make_bridge, broker, connect):
    broker.publish("devices/dev-r/status", "online", retain=True)
    bridge = make_bridge(start=False, probe=False)
    bridge.start()
    # The broker hands the retained message over at subscription time.
    tb.wait_until(lambda: bridge.stats()["messages_in"] == 1, 5, "messages_in == 1")
    ws = connect(bridge, rooms=["device:dev-r"])
    broker.publish("devices/dev-r/status", "offline", retain=True)
    m = ws.recv()
    tb.assert_device_envelope(m, "device_status", "dev-r")
    assert m["payload"]["status"] == "offline"
    time.sleep(0.2)
    assert bridge.stats()["messages_in"] == 2


def test_topic_group_placeholder(make_bridge, broker, connect):
    bridge = make_bridge({"mqtt": {"telemetry_topic": "site/{group}/{device}/telemetry"}})
    ws = connect(bridge, rooms=["group:floor-3"])
    broker.publish("site/floor-3/dev-g/telemetry", json.dumps({"t": 1}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-g")
    assert m["payload"]["fields"] == {"t": 1}


def test_persistent_session_keeps_messages_across_bridge_restart(make_bridge, broker):
    bridge = make_bridge()
    base = bridge.stats()["messages_in"]
    assert base == 1  # the probe
    assert bridge.stop() == 0
    # QoS 1 to a persistent session: the broker keeps it while the bridge is away.
    telemetry(broker, "dev-p", t=5)
    bridge.start(wait_ready=True)
    tb.wait_until(lambda: bridge.stats()["messages_in"] >= 2, 5,
                  "the message queued while the bridge was down")
    time.sleep(0.3)
    assert bridge.stats()["messages_in"] == 2  # that message and the new probe, nothing twice
