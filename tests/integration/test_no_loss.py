"""No loss across restarts (issue 7 §1): numbered QoS 1 messages published through a bridge
restart and a broker restart all reach a subscriber; a broker SIGKILL mid-stream loses at most
what the broker itself had not saved. The broker here keeps sessions on disk (persistence)."""

import json
import time

import pytest

import tb

TOPIC = "devices/counter/telemetry"
ROOM = "device:counter"
RATE = 50  # messages per second


@pytest.fixture
def broker(tmp_path):
    """Overrides conftest's broker: this one saves sessions and queued messages."""
    d = tmp_path / "broker"
    d.mkdir()
    b = tb.Broker(d, persistence=True)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def publisher(broker):
    pubs = []

    def make():
        pubs.append(tb.NumberedPublisher(broker.port, TOPIC, RATE))
        return pubs[-1]

    yield make
    for p in pubs:
        p.stop()
        p.client.loop_stop()


def pump(ws, seen, seconds):
    """Receives telemetry for `seconds`, adding each message's number to seen (a list, so
    duplicates show)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            m = ws.recv(timeout=min(left, 0.2))
        except AssertionError:
            continue
        if m["type"] == "telemetry":
            seen.append(m["payload"]["fields"]["i"])


def pump_until_complete(ws, seen, want, timeout):
    deadline = time.monotonic() + timeout
    while not want <= set(seen) and time.monotonic() < deadline:
        pump(ws, seen, 0.2)


def test_nothing_lost_across_bridge_and_broker_restarts(make_bridge, broker, connect, publisher):
    bridge = make_bridge()
    ws = connect(bridge, rooms=[ROOM])
    pub = publisher()
    seen = []
    pump(ws, seen, 1.0)
    assert seen, "nothing flowed before the faults"

    # 1. The bridge goes away: the broker queues for its persistent session.
    assert bridge.stop() == 0
    code, rest = ws.wait_closed()  # what the bridge wrote before its 1001 close
    assert code == 1001
    seen += [json.loads(t)["payload"]["fields"]["i"] for t in rest]
    time.sleep(1.0)
    # 2. The broker restarts while the bridge is down (it saves its queue at exit); meanwhile
    #    the publisher keeps its messages, and the bridge comes back before the broker does.
    broker.stop()
    time.sleep(0.5)
    bridge.start(wait_ready=False)
    assert bridge.get("/readyz")[0] == 503
    assert bridge.get("/healthz")[0] == 200
    ws = connect(bridge, rooms=[ROOM])
    broker.start()
    t0 = time.monotonic()
    bridge.wait_ready(timeout=40)
    ready_s = time.monotonic() - t0
    pump(ws, seen, 1.0)

    total = pub.stop()
    pub.close()
    pump_until_complete(ws, seen, set(range(total)), 15)
    missing = sorted(set(range(total)) - set(seen))
    print(f"published {total}, received {len(seen)} ({len(seen) - len(set(seen))} duplicates), "
          f"missing {len(missing)}, bridge ready {ready_s:.1f} s after the broker")
    assert not missing, f"lost {len(missing)} of {total}: {missing[:20]}"
    assert bridge.stats()["dropped"] == 0


def test_broker_sigkill_mid_stream(bridge, broker, connect, publisher):
    ws = connect(bridge, rooms=[ROOM])
    pub = publisher()
    seen = []
    # Long enough for the broker to have saved the bridge's session (it saves every second):
    # a session younger than the last save dies with the broker, and with it what is
    # published before the bridge subscribes again.
    pump(ws, seen, 2.5)
    killed_at = pub.count
    broker.kill()
    tb.wait_until(lambda: bridge.get("/readyz")[0] == 503, 5, "/readyz 503 after the kill")
    assert bridge.get("/healthz")[0] == 200
    pump(ws, seen, 1.0)
    assert not ws.closed, "clients stay connected while the broker is away"
    broker.start()
    bridge.wait_ready(timeout=40)
    pump(ws, seen, 1.0)

    total = pub.stop()
    pub.close()
    # Published after the kill: the dead broker never acknowledged them, so the publisher
    # sent them again and none may be missing.
    pump_until_complete(ws, seen, set(range(killed_at, total)), 15)
    missing_after = sorted(set(range(killed_at, total)) - set(seen))
    lost_before = sorted(set(range(killed_at)) - set(seen))
    print(f"published {total} (kill at {killed_at}), received {len(seen)}, lost in the kill "
          f"window {len(lost_before)}, missing after {len(missing_after)}")
    assert not missing_after, missing_after[:20]
    # The broker saves every second: at most about a second of messages may die with it.
    assert len(lost_before) <= RATE, lost_before
    stats = bridge.stats()
    assert stats["mqtt_connected"] is True and stats["details"]["mqtt_connects"] == 2
