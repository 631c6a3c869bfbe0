"""Subscribe options max_hz, fields and series (docs/protocol.md → Subscribe options): their bad
values and unknown options are refused with a bad_request naming the option and join nothing,
and the connection is served on."""

import json
import threading
import time

import pytest

import tb

BAD_OPTIONS = [
    ({"max_hz": 0}, "payload.max_hz"),
    ({"max_hz": 0.09}, "payload.max_hz"),
    ({"max_hz": 101}, "payload.max_hz"),
    ({"max_hz": "2"}, "payload.max_hz"),
    ({"fields": []}, "payload.fields"),
    ({"fields": ["t", "t"]}, "payload.fields"),
    ({"fields": "t"}, "payload.fields"),
    ({"fields": ["x" * 129]}, "payload.fields"),
    ({"fields": [f"f{i}" for i in range(65)]}, "payload.fields"),
    ({"series": 0}, "payload.series"),
    ({"series": 61}, "payload.series"),  # over history.series_points (60)
    ({"series": 2.5}, "payload.series"),
    ({"rate": 1}, "payload.rate"),
    ({"max_hz": 1, "colour": "red"}, "payload.colour"),
]


@pytest.mark.parametrize("options,names", BAD_OPTIONS, ids=[n for _, n in BAD_OPTIONS])
def test_bad_option_joins_nothing(bridge, broker, connect, options, names):
    ws = connect(bridge)
    ans = ws.request({"type": "subscribe", "request_id": "bad",
                      "payload": {"rooms": ["global"], **options}})
    assert ans["type"] == "error", ans
    assert ans["request_id"] == "bad"
    assert ans["payload"]["code"] == "bad_request"
    assert ans["payload"]["message"].startswith(names), ans
    status, rooms = bridge.get("/rooms")
    assert status == 200 and rooms == [], rooms  # nothing was joined
    broker.publish("devices/dev-a/telemetry", json.dumps({"v": 1}))
    ws.expect_silence(0.3)
    # The next good message on the same connection is served.
    ans = ws.subscribe(["global"], request_id="good")
    assert ans["type"] == "subscribed" and ans["payload"]["rooms"] == ["global"], ans
    broker.publish("devices/dev-b/telemetry", json.dumps({"v": 2}))
    tb.assert_device_envelope(ws.recv(), "telemetry", "dev-b")


def test_good_options_are_accepted(bridge, broker, connect):
    ws = connect(bridge)
    ans = ws.request({"type": "subscribe", "request_id": "ok",
                      "payload": {"rooms": ["global"], "max_hz": 100, "fields": ["v"],
                                  "series": 60}})
    assert ans["type"] == "subscribed" and ans["payload"]["rooms"] == ["global"], ans
    tb.assert_next_client_served(bridge, broker, connect)


def subscribe_opts(ws, rooms, **options):
    ans = ws.request({"type": "subscribe", "payload": {"rooms": list(rooms), **options}})
    assert ans["type"] == "subscribed" and sorted(ans["payload"]["rooms"]) == sorted(rooms), ans
    return ans


def publish_in_background(broker, batches):
    """Publishes each (device, lines) batch in turn from a thread, so the test reads (and times)
    what arrives meanwhile."""
    def run():
        for dev, lines in batches:
            tb.mqtt_publish_lines(broker.port, f"devices/{dev}/telemetry", lines)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def recv_for(ws, seconds):
    """Every message that arrives within `seconds`, each with its arrival time (monotonic)."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            m = ws.recv(timeout=left)
        except AssertionError:
            break
        got.append((time.monotonic(), m))
    return got


def test_fields_projection(bridge, broker, connect, wire):
    broker.publish("devices/dev-s/telemetry",
                   json.dumps({"fields": {"t": 20, "h": 40, "p": 1000}, "tags": {"site": "lab"}}))
    tb.wait_until(lambda: bridge.stats()["messages_in_by_type"]["telemetry"] == 1, 5,
                  "the device stored")
    ws = connect(bridge)
    ws.keep_snapshots = True
    subscribe_opts(ws, ["device:dev-s"], fields=["t", "p"])
    snap = ws.recv()
    assert snap["snapshot"] is True and snap["payload"]["fields"] == {"t": 20, "p": 1000}, snap
    assert snap["payload"]["tags"] == {"site": "lab"}
    ws.keep_snapshots = False
    subscribe_opts(ws, ["global"], fields=["t", "p"])
    broker.publish("devices/dev-s/telemetry", json.dumps({"fields": {"h": 41}}))  # none of them
    broker.publish("devices/dev-s/status", json.dumps({"status": "online"}))
    st = ws.recv()
    assert st["type"] == "device_status", st  # status is not cut, and h-only was not sent
    broker.publish("devices/dev-s/telemetry",
                   json.dumps({"fields": {"t": 21, "h": 42}, "tags": {"site": "lab"}}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-s")
    assert m["payload"]["fields"] == {"t": 21} and m["payload"]["tags"] == {"site": "lab"}, m
    ws.expect_silence(0.3)


def test_fields_shared_between_connections_and_plain_ones(bridge, broker, connect, wire):
    cut = [connect(bridge) for _ in range(3)]
    for ws in cut:
        subscribe_opts(ws, ["global"], fields=["t"])
    whole = connect(bridge, rooms=["global"])
    broker.publish("devices/dev-x/telemetry", json.dumps({"t": 1, "h": 2}))
    for ws in cut:
        assert ws.recv()["payload"]["fields"] == {"t": 1}
    assert whole.recv()["payload"]["fields"] == {"t": 1, "h": 2}


def test_max_hz_conflates_to_the_newest_state(bridge, broker, connect, wire):
    ws = connect(bridge)
    subscribe_opts(ws, ["device:dev-c"], max_hz=2)
    n = 40
    lines = [json.dumps({"fields": {"i": i, ("odd" if i % 2 else "even"): i}}) for i in range(n)]
    t0 = time.monotonic()
    pub = publish_in_background(broker, [("dev-c", lines)])
    got = recv_for(ws, 2.5)
    pub.join(10)
    msgs = [m for _, m in got]
    assert all(m["type"] == "telemetry" for m in msgs), msgs
    # The first goes at once; then at most 2 a second: 500 ms apart at the bridge, less the
    # jitter of when this thread reads them (0.2 s of slack for a loaded machine).
    times = [t for t, _ in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.3 for g in gaps), gaps
    assert len(msgs) <= 2 + 2 * (times[-1] - t0 + 0.1), len(msgs)
    assert msgs[0]["payload"]["fields"]["i"] == 0
    last = msgs[-1]
    # What arrives last is the newest state, fields merged: i and both odd and even.
    assert last["payload"]["fields"] == {"i": n - 1, "odd": n - 1, "even": n - 2}, last
    seqs = [m["seq"] for m in msgs]
    assert seqs == sorted(set(seqs)), seqs  # each once, newer each time
    stats = bridge.stats()
    assert stats["details"]["conflated"] >= n - len(msgs)
    # After a quiet period the first message goes at once again.
    time.sleep(0.6)
    sent = time.monotonic()
    broker.publish("devices/dev-c/telemetry", json.dumps({"i": 100}))
    m = ws.recv()
    assert m["payload"]["fields"] == {"i": 100} and time.monotonic() - sent < 1.5


def test_capped_and_uncapped_rooms_on_one_connection(bridge, broker, connect, wire):
    ws = connect(bridge)
    subscribe_opts(ws, ["device:slow"], max_hz=1)
    subscribe_opts(ws, ["device:fast"])
    n = 30
    t0 = time.monotonic()
    pub = publish_in_background(broker, [(dev, [json.dumps({"i": i}) for i in range(n)])
                                         for dev in ("slow", "fast")])
    got = recv_for(ws, 2.5)
    pub.join(10)
    by = {"slow": [], "fast": []}
    for t, m in got:
        by[m["payload"]["device_id"]].append((t, m))
    fast = [m["payload"]["fields"]["i"] for _, m in by["fast"]]
    assert fast == list(range(n)), fast  # in full, once each
    slow_t = [t for t, _ in by["slow"]]
    slow_i = [m["payload"]["fields"]["i"] for _, m in by["slow"]]
    assert slow_i[0] == 0 and slow_i[-1] == n - 1, slow_i  # newest state last
    assert slow_i == sorted(set(slow_i))
    assert len(slow_i) <= 2 + (slow_t[-1] - t0), slow_i  # at most 1 a second after the first
    assert all(b - a >= 0.8 for a, b in zip(slow_t, slow_t[1:])), slow_t


def test_least_restrictive_room_wins_once(bridge, broker, connect, wire):
    ws = connect(bridge)
    subscribe_opts(ws, ["device:dev-l"], max_hz=1, fields=["a"])
    subscribe_opts(ws, ["global"])  # uncapped, every field
    n = 10
    tb.mqtt_publish_lines(broker.port, "devices/dev-l/telemetry",
                          [json.dumps({"a": i, "b": -i}) for i in range(n)])
    msgs = ws.recv_n(n)
    assert [m["payload"]["fields"] for m in msgs] == [{"a": i, "b": -i} for i in range(n)]
    assert len({m["seq"] for m in msgs}) == n
    ws.expect_silence(1.2)  # nothing held came twice


def test_two_field_sets_merge(bridge, broker, connect, wire):
    ws = connect(bridge)
    subscribe_opts(ws, ["device:dev-u"], fields=["a"])
    subscribe_opts(ws, ["global"], fields=["b"])
    broker.publish("devices/dev-u/telemetry", json.dumps({"a": 1, "b": 2, "c": 3}))
    assert ws.recv()["payload"]["fields"] == {"a": 1, "b": 2}
    broker.publish("devices/dev-v/telemetry", json.dumps({"a": 1, "b": 2, "c": 3}))
    assert ws.recv()["payload"]["fields"] == {"b": 2}
    ws.expect_silence(0.3)


def test_resubscribe_changes_the_options(bridge, broker, connect):
    ws = connect(bridge)
    subscribe_opts(ws, ["global"], fields=["a"])
    broker.publish("devices/dev-r/telemetry", json.dumps({"a": 1, "b": 2}))
    assert ws.recv()["payload"]["fields"] == {"a": 1}
    subscribe_opts(ws, ["global"])  # the same room, now without options
    broker.publish("devices/dev-r/telemetry", json.dumps({"a": 3, "b": 4}))
    assert ws.recv()["payload"]["fields"] == {"a": 3, "b": 4}


def test_fields_cut_the_replay(bridge, broker, connect, wire):
    ws = connect(bridge, rooms=["global"])
    broker.publish("devices/dev-p/telemetry", json.dumps({"a": 1, "b": 1}))
    first = ws.recv()
    epoch = ws.connected["payload"]["epoch"]
    ws.close()
    for i in range(3):
        broker.publish("devices/dev-p/telemetry", json.dumps({"a": 10 + i, "b": 20 + i}))
    broker.publish("devices/dev-p/telemetry", json.dumps({"b": 99}))  # none of the fields
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= first["seq"] + 4, 5,
                  "the messages routed")
    ws2 = connect(bridge)
    ans = ws2.request({"type": "subscribe", "payload": {
        "rooms": ["global"], "fields": ["a"], "since": {"epoch": epoch, "seq": first["seq"]}}})
    assert ans["type"] == "subscribed" and ans["payload"]["recovered"] is True, ans
    msgs = ws2.recv_n(3)
    assert [m["payload"]["fields"] for m in msgs] == [{"a": 10}, {"a": 11}, {"a": 12}]
    ws2.expect_silence(0.3)


def test_since_brings_back_state_held_at_a_disconnect(bridge, broker, connect, wire):
    """A capped connection drops while a device's state is held (its newest message older than
    the client's last one): a since subscribe with max_hz sends it again (docs/protocol.md →
    Subscribe options, seq and since with max_hz)."""
    ws = connect(bridge)
    subscribe_opts(ws, ["global"], max_hz=1)
    epoch = ws.connected["payload"]["epoch"]
    tb.mqtt_publish_lines(broker.port, "devices/dev-h/telemetry",
                          [json.dumps({"i": 1}), json.dumps({"i": 2})])
    broker.publish("devices/dev-q/telemetry", json.dumps({"i": 7}))
    got = []
    while not any(m["payload"]["device_id"] == "dev-q" for m in got):
        got.append(ws.recv())
    ws.close()  # well within 1 s of dev-h's first send: its i=2 was still held
    last_h = [m["payload"]["fields"]["i"] for m in got if m["payload"]["device_id"] == "dev-h"]
    position = got[-1]["seq"]
    ws2 = connect(bridge)
    ans = ws2.request({"type": "subscribe", "payload": {
        "rooms": ["global"], "max_hz": 1, "since": {"epoch": epoch, "seq": position}}})
    assert ans["type"] == "subscribed" and ans["payload"]["recovered"] is True, ans
    again = recv_for(ws2, 1.8)
    states = last_h + [m["payload"]["fields"]["i"] for _, m in again
                       if m["payload"]["device_id"] == "dev-h"]
    assert states and states[-1] == 2, (last_h, again)  # the newest state arrived


ALERT_RULE = {"name": "hot", "field": "temperature", "op": ">", "threshold": 30,
              "clear_below": 29, "severity": "warning", "devices": ["*"]}


def test_max_hz_never_holds_status_or_alerts(make_bridge, broker, connect, wire):
    """docs/protocol.md → Subscribe options (max_hz): status messages and alerts are never held
    back or dropped by the cap. At one telemetry message per 5 s, a burst of three threshold
    crossings and three status changes arrives whole and at once; of the telemetry only the first
    goes out within the burst."""
    bridge = make_bridge({"alerts": [ALERT_RULE]})
    ws = connect(bridge)
    subscribe_opts(ws, ["device:dev-al"], max_hz=0.2)
    topic = "devices/dev-al"
    t0 = time.monotonic()
    for i, temp in enumerate((31, 28, 32, 27, 33, 26)):
        broker.publish(f"{topic}/telemetry", json.dumps({"temperature": temp}))
        if i % 2:
            status = "offline" if i == 3 else "online"
            broker.publish(f"{topic}/status", json.dumps({"status": status}))
    got = recv_for(ws, 2.0)
    kinds = [m["type"] for _, m in got]
    alerts = [m["payload"]["state"] for _, m in got if m["type"] == "alert"]
    assert alerts == ["firing", "resolved"] * 3, kinds
    statuses = [m["payload"]["status"] for _, m in got if m["type"] == "device_status"]
    assert statuses == ["online", "offline", "online"], kinds
    telemetry = [m for _, m in got if m["type"] == "telemetry"]
    assert [m["payload"]["fields"]["temperature"] for m in telemetry] == [31], kinds
    assert all(t - t0 < 1.5 for t, m in got if m["type"] != "telemetry"), got
    tb.assert_next_client_served(bridge, broker, connect)
