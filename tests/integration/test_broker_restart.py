"""Broker down and back: readiness follows the session, clients stay connected 
(docs/operations.md → Failure modes, Health and monitoring)."""

import json
import time

import tb


def readyz(bridge):
    return bridge.get("/readyz")[0]


def test_broker_restart_keeps_clients(bridge, broker, connect):
    ws = connect(bridge, rooms=["global"])
    assert bridge.get("/readyz") == (200, {"status": "ready", "mqtt_connected": True})

    broker.stop()
    tb.wait_until(lambda: readyz(bridge) == 503, 5, "/readyz 503 after the broker stopped")
    assert bridge.stats()["mqtt_connected"] is False
    assert bridge.get("/healthz")[0] == 200

    broker.start()
    t0 = time.monotonic()
    # Backoff starts at 1 s; the broker was away for about a second.
    tb.wait_until(lambda: readyz(bridge) == 200, 10, "/readyz 200 after the broker came back")
    reconnect_s = time.monotonic() - t0
    stats = bridge.stats()
    assert stats["mqtt_connected"] is True
    assert stats["details"]["mqtt_connects"] == 2

    # The broker lost every session (no persistence): the bridge must have subscribed again.
    bridge.sync_ingest()
    probe = ws.recv()
    tb.assert_device_envelope(probe, "device_status", "tb-probe")
    broker.publish("devices/dev-1/telemetry", json.dumps({"v": 1}))
    m = ws.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-1", seq=probe["seq"] + 1)
    assert not ws.closed
    assert bridge.stats()["details"]["connections_total"] == 1, "the client was not reconnected"
    assert reconnect_s < 10


def test_start_without_broker_then_broker_appears(make_bridge, broker, connect):
    broker.stop()
    bridge = make_bridge(start=False)
    bridge.start(wait_ready=False)
    assert readyz(bridge) == 503
    ws = connect(bridge, rooms=["global"])  # clients are served while the broker is away
    time.sleep(1.5)
    assert readyz(bridge) == 503
    broker.start()
    bridge.wait_ready(timeout=10)
    bridge.sync_ingest()
    tb.assert_device_envelope(ws.recv(), "device_status", "tb-probe")
