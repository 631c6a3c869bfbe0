"""Failover across bridges without a gap: `since` with `time` (docs/protocol.md → subscribe,
Recovery; docs/operations.md → Several bridges). Two bridges on one broker, each with its own
MQTT client id, so each gets every message."""

import json
import signal
import time

import pytest

import tb

DEVICE = "fh-1"
ROOM = f"device:{DEVICE}"
TOPIC = f"devices/{DEVICE}/telemetry"
OVERLAP_S = 2.0  # docs/protocol.md: a replay by time starts 2 s before `time`


def device_ts(i):
    """A distinct device timestamp for message i (the client's repeat key uses it)."""
    return f"2026-01-01T00:{i // 60000:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z"


def publish_numbered(broker, first, n, stamped=True):
    lines = [json.dumps({"i": i, **({"timestamp": device_ts(i)} if stamped else {})})
             for i in range(first, first + n)]
    tb.mqtt_publish_lines(broker.port, TOPIC, lines)


def wait_routed(bridge, count):
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= count, 30,
                  f"{bridge.name}: {count} device messages routed")


def routed(bridge):
    return bridge.stats()["details"]["device_messages"]


def key(env):
    """The repeat key of docs/protocol.md: type, device and the payload's timestamp."""
    return (env["type"], env["payload"]["device_id"], env["payload"]["timestamp"])


def drop_repeats(before, replay):
    """The client's repeat rule (docs/protocol.md → Recovery): a replayed message whose key
    matches one received before the failover is dropped, each received one matching once (a
    multiset: distinct messages may share a key). Returns the replayed messages kept."""
    had = {}
    for m in before:
        had[key(m)] = had.get(key(m), 0) + 1
    kept = []
    for m in replay:
        if had.get(key(m), 0):
            had[key(m)] -= 1
        else:
            kept.append(m)
    return kept


def subscribe_since(ws, since, rooms=(ROOM,)):
    return ws.request({"type": "subscribe", "request_id": "s1",
                       "payload": {"rooms": list(rooms), "since": since}})


def test_failover_by_time_replays_what_was_missed_once(make_bridge, broker, connect, wire):
    b1, b2 = make_bridge(), make_bridge()
    base2 = routed(b2)
    ws = connect(b1, rooms=[ROOM])
    epoch1 = ws.connected["payload"]["epoch"]
    publish_numbered(broker, 0, 10)  # A: older than the overlap by the time the client fails over
    time.sleep(OVERLAP_S + 1.0)
    publish_numbered(broker, 10, 10)  # B: within the overlap of the client's last message
    got = ws.recv_n(20)
    assert [m["payload"]["fields"]["i"] for m in got] == list(range(20))
    last = got[-1]
    wait_routed(b2, base2 + 20)

    ws.close()
    b1.stop()
    publish_numbered(broker, 20, 10)  # C: published while the client has no bridge
    wait_routed(b2, base2 + 30)

    ws2 = connect(b2)
    assert ws2.connected["payload"]["epoch"] != epoch1
    ans = subscribe_since(ws2, {"epoch": epoch1, "seq": last["seq"], "time": last["timestamp"]})
    assert ans["type"] == "subscribed", ans
    assert ans["payload"]["recovered"] is True and ans["payload"]["mode"] == "time", ans
    replay = ws2.recv_n(20)
    ws2.expect_silence(0.5)
    # B again (the overlap), then C; not A, which b2 ingested more than 2 s before `time`.
    assert [m["payload"]["fields"]["i"] for m in replay] == list(range(10, 30))
    assert all("snapshot" not in m for m in replay)
    seqs = [m["seq"] for m in replay]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # The client's repeat rule leaves every message exactly once, in order.
    union = [m["payload"]["fields"]["i"] for m in got + drop_repeats(got, replay)]
    assert union == list(range(30))
    # Live after the replay, from b2.
    publish_numbered(broker, 30, 1)
    assert ws2.recv()["payload"]["fields"]["i"] == 30


def test_time_before_the_bridge_history_is_not_recovered(make_bridge, broker, connect):
    b1 = make_bridge()
    ws = connect(b1, rooms=[ROOM])
    publish_numbered(broker, 0, 3)
    last = ws.recv_n(3)[-1]
    time.sleep(0.05)
    b2 = make_bridge()  # started after `time`: it cannot know what came before
    publish_numbered(broker, 3, 1)
    wait_routed(b2, 2)  # its probe and message 3
    ws2 = connect(b2)
    ws2.keep_snapshots = True
    ans = subscribe_since(ws2, {"epoch": ws.connected["payload"]["epoch"], "seq": last["seq"],
                                "time": last["timestamp"]})
    assert ans["payload"]["recovered"] is False and "mode" not in ans["payload"], ans
    snap = ws2.recv()
    assert snap["snapshot"] is True and snap["payload"]["fields"]["i"] == 3


def test_bad_since_time_is_refused_and_joins_nothing(bridge, broker, connect, wire):
    ws = connect(bridge)
    for bad in ["yesterday", 1764650000000, "2026-02-30T00:00:00.000Z", None,
                "2026-12-02T05:28:31.123"]:
        ans = subscribe_since(ws, {"epoch": "x", "seq": 0, "time": bad})
        assert ans["type"] == "error", ans
        assert ans["payload"]["code"] == "bad_request", ans
        assert "payload.since.time" in ans["payload"]["message"], ans
        assert ans["request_id"] == "s1"
    publish_numbered(broker, 0, 1)
    ws.expect_silence(0.5)  # nothing was joined
    rooms = {r["room"]: r["subscribers"] for r in bridge.get("/rooms")[1]}
    assert rooms.get(ROOM, 0) == 0
    tb.assert_next_client_served(bridge, broker, connect)


def test_unstamped_devices_repeat_only_in_the_overlap(make_bridge, broker, connect):
    """Devices that send no timestamp: each bridge stamps its own ingest time, so a repeat of
    the overlap may carry another payload.timestamp than the copy the client had: the client
    may show such a message twice, never a message outside the overlap, and misses none."""
    b1, b2 = make_bridge(), make_bridge()
    base2 = routed(b2)
    ws = connect(b1, rooms=[ROOM])
    publish_numbered(broker, 0, 5, stamped=False)
    got = ws.recv_n(5)
    ws.close()
    b1.stop()
    publish_numbered(broker, 5, 5, stamped=False)
    wait_routed(b2, base2 + 10)
    ws2 = connect(b2)
    last = got[-1]
    ans = subscribe_since(ws2, {"epoch": ws.connected["payload"]["epoch"], "seq": last["seq"],
                                "time": last["timestamp"]})
    assert ans["payload"]["mode"] == "time", ans
    replay = ws2.recv_n(10)
    ws2.expect_silence(0.5)
    assert [m["payload"]["fields"]["i"] for m in replay] == list(range(10))
    shown = [m["payload"]["fields"]["i"] for m in got + drop_repeats(got, replay)]
    # Every message shown, the overlap's (0..4) once or twice, the rest once.
    assert sorted(set(shown)) == list(range(10))
    assert all(shown.count(i) == 1 for i in range(5, 10))
    assert all(shown.count(i) <= 2 for i in range(5))


# ---- restarts with history.file (docs/operations.md → Restarts without a gap) ---------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_with_history_file_loses_nothing(make_bridge, broker, connect, wire, tmp_path,
                                                 sig):
    """Subscribed, numbered messages, the bridge stops (cleanly, or killed), more are published
    while it is down (the broker keeps them for its persistent session), it restarts with the
    same history.file: the same epoch, and a `since` gets every missed message once, in order."""
    b = make_bridge({"history": {"file": "state-history"}})  # relative to the config's folder
    ws = connect(b, rooms=[ROOM])
    epoch = ws.connected["payload"]["epoch"]
    publish_numbered(broker, 0, 10)
    got = ws.recv_n(10)
    assert [m["payload"]["fields"]["i"] for m in got] == list(range(10))
    rc = b.stop(sig)
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
        b.exit_codes.pop()  # the one exit that is not 0 on purpose
    ws.close()
    assert (tmp_path / "state-history").exists()
    publish_numbered(broker, 10, 10)  # held by the broker while the bridge is down
    before = len(b.log_text())
    b.start()
    restored = b.log_text()[before:]
    assert 'msg="history restored"' in restored, restored
    assert f"epoch={epoch}" in restored
    assert ("clean=true" if sig == signal.SIGTERM else "clean=false") in restored
    tb.wait_until(lambda: routed(b) >= 11, 30, "the held messages and the probe routed")
    d = b.stats()["details"]
    assert d["history_file_writing"] == 1 and d["history_file_bytes"] > 21 * 200, d
    fresh = connect(b)  # a new dashboard: its snapshot holds the device's last values
    fresh.keep_snapshots = True
    assert fresh.subscribe([ROOM])["type"] == "subscribed"
    snap = fresh.recv()
    assert snap["snapshot"] is True and snap["payload"]["fields"]["i"] == 19, snap

    ws2 = connect(b)
    assert ws2.connected["payload"]["epoch"] == epoch
    ans = subscribe_since(ws2, {"epoch": epoch, "seq": got[-1]["seq"]})
    assert ans["payload"]["recovered"] is True and ans["payload"]["mode"] == "seq", ans
    replay = ws2.recv_n(10)
    ws2.expect_silence(0.5)
    assert [m["payload"]["fields"]["i"] for m in got + replay] == list(range(20))
    seqs = [m["seq"] for m in got + replay]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert replay[0]["seq"] > got[-1]["seq"]  # seq went on from the stored last seq
    # A reconnect of a client that had everything before the stop gets the same replay from
    # the restored history; one that had some of it gets the rest.
    ws3 = connect(b)
    ans = subscribe_since(ws3, {"epoch": epoch, "seq": got[4]["seq"]})
    assert ans["payload"]["recovered"] is True
    assert [m["payload"]["fields"]["i"] for m in ws3.recv_n(15)] == list(range(5, 20))
    publish_numbered(broker, 20, 1)
    assert ws2.recv()["payload"]["fields"]["i"] == 20
    assert ws3.recv()["payload"]["fields"]["i"] == 20


def test_corrupt_history_file_gives_a_fresh_start(make_bridge, broker, connect, tmp_path):
    """A history file that is not one (or damaged) never stops the bridge: it logs, starts
    with a new epoch, writes the file anew and serves."""
    path = tmp_path / "corrupt-history"
    path.write_bytes(b"\x00not a history file\xff" * 100)
    b = make_bridge({"history": {"file": str(path)}})
    assert 'msg="history file unusable, starting afresh (new epoch)"' in b.log_text()
    ws = tb.assert_next_client_served(b, broker, connect, device=DEVICE, rooms=[ROOM])
    epoch = ws.connected["payload"]["epoch"]
    assert path.read_bytes().startswith(b"TBHIST1\n")
    b.stop()
    b.start()
    ws2 = connect(b)
    assert ws2.connected["payload"]["epoch"] == epoch


def test_sigkill_while_messages_flow(make_bridge, broker, connect, tmp_path):
    """SIGKILL in the middle of a stream of 100 numbered messages a second: after the restart a
    `since` of the client's last message brings the rest, and the client ends with every
    message once, in order (what the bridge had acknowledged to the broker but not yet routed
    when it was killed is the one exposure: docs/operations.md)."""
    b = make_bridge({"history": {"file": "kill-history"}})
    ws = connect(b, rooms=[ROOM])
    epoch = ws.connected["payload"]["epoch"]
    pub = tb.NumberedPublisher(broker.port, TOPIC, rate=100)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 150 and time.monotonic() < deadline:
        got.append(ws.recv())
    b.stop(signal.SIGKILL)
    b.exit_codes.pop()
    ws.close()
    time.sleep(1.0)  # about 100 more while the bridge is down
    b.start()
    ws2 = connect(b)
    assert ws2.connected["payload"]["epoch"] == epoch
    ans = subscribe_since(ws2, {"epoch": epoch, "seq": got[-1]["seq"]})
    assert ans["payload"]["recovered"] is True, ans
    time.sleep(0.5)
    total = pub.stop()
    pub.close()
    deadline = time.monotonic() + 20
    while len(got) < total and time.monotonic() < deadline:
        got.append(ws2.recv())
    numbers = [m["payload"]["fields"]["i"] for m in got]
    assert numbers == list(range(total)), (total, len(numbers))
    size = (tmp_path / "kill-history").stat().st_size
    print(f"history file: {size} bytes for {total} messages ({size / total:.0f} per message)")


def test_history_file_with_port_gives_each_bridge_its_own(make_bridge, broker, connect, tmp_path):
    """docs/configuration.md (history.file): {port} in the path gives each bridge of one config
    (the template unit's instances) a file of its own: both write, and a restart of either
    keeps its epoch."""
    over = {"history": {"file": str(tmp_path / "history-{port}")}}
    b1, b2 = make_bridge(over), make_bridge(over)
    for b in (b1, b2):
        assert b.stats()["details"]["history_file_writing"] == 1, b.log_text()
        assert (tmp_path / f"history-{b.port}").exists()
    epochs = [connect(b).connected["payload"]["epoch"] for b in (b1, b2)]
    b2.stop()
    b2.start()
    assert connect(b2).connected["payload"]["epoch"] == epochs[1]
    assert connect(b1).connected["payload"]["epoch"] == epochs[0]
    tb.assert_next_client_served(b1, broker, connect, device=DEVICE, rooms=[ROOM])


def test_one_history_file_per_bridge(make_bridge, broker, connect, tmp_path):
    """A second bridge configured with the file another one writes does not touch it: it logs,
    keeps its history in memory and serves; the first one's restart still finds everything."""
    path = str(tmp_path / "shared-history")
    b1 = make_bridge({"history": {"file": path}})
    b2 = make_bridge({"history": {"file": path}})
    assert "held by another bridge" in b2.log_text()
    assert "history restored" not in b2.log_text()
    assert b2.stats()["details"]["history_file_writing"] == 0
    assert b1.stats()["details"]["history_file_writing"] == 1
    tb.assert_next_client_served(b2, broker, connect, device=DEVICE, rooms=[ROOM])
    ws = connect(b1, rooms=[ROOM])
    publish_numbered(broker, 100, 3)
    got = ws.recv_n(3)
    b1.stop()
    b1.start()
    ws2 = connect(b1)
    ans = subscribe_since(ws2, {"epoch": ws.connected["payload"]["epoch"], "seq": got[0]["seq"]})
    assert ans["payload"]["recovered"] is True, ans
    assert [m["payload"]["fields"]["i"] for m in ws2.recv_n(2)] == [101, 102]
