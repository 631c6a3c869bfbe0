"""Telemetry normalisation as seen by a client (docs/protocol.md → MQTT input)."""

import datetime
import json

import pytest

import tb


@pytest.fixture
def sub(bridge, connect):
    return connect(bridge, rooms=["global"])


def publish(broker, device, payload):
    broker.publish(f"devices/{device}/telemetry", json.dumps(payload))


def test_fields_form(bridge, broker, sub):
    publish(broker, "dev-1", {"fields": {"temperature": 21.5, "ok": True, "mode": "eco"},
                              "tags": {"site": "lab"}, "timestamp": "2024-01-02T03:04:05.678Z"})
    m = sub.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-1")
    assert m["payload"] == {"device_id": "dev-1", "timestamp": "2024-01-02T03:04:05.678Z",
                            "fields": {"temperature": 21.5, "ok": True, "mode": "eco"},
                            "tags": {"site": "lab"}}


def test_flat_form(bridge, broker, sub):
    publish(broker, "dev-2", {"temperature": 19.25, "humidity": 40,
                              "timestamp": "2024-01-02T03:04:05.000Z"})
    m = sub.recv()
    tb.assert_device_envelope(m, "telemetry", "dev-2")
    assert m["payload"] == {"device_id": "dev-2", "timestamp": "2024-01-02T03:04:05.000Z",
                            "fields": {"temperature": 19.25, "humidity": 40}, "tags": {}}


def test_topic_device_id_wins(bridge, broker, sub):
    publish(broker, "dev-topic", {"device_id": "dev-payload", "fields": {"v": 1}})
    publish(broker, "dev-topic", {"device_id": "dev-payload", "v": 2})
    for v in (1, 2):
        m = sub.recv()
        tb.assert_device_envelope(m, "telemetry", "dev-topic")
        assert m["payload"]["device_id"] == "dev-topic"
        assert m["payload"]["fields"] == {"v": v}, m


def test_missing_timestamp_is_ingest_time(bridge, broker, sub):
    before = datetime.datetime.now(datetime.timezone.utc)
    publish(broker, "dev-3", {"fields": {"v": 1}})
    m = sub.recv()
    after = datetime.datetime.now(datetime.timezone.utc)
    ts = m["payload"]["timestamp"]
    assert tb.RFC3339_MS.match(ts), ts
    when = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=1) <= when <= after + datetime.timedelta(seconds=1)


@pytest.mark.parametrize("value,expected", [
    (1700000000, "2023-11-14T22:13:20.000Z"),      # Unix seconds
    (1700000000123, "2023-11-14T22:13:20.123Z"),   # Unix milliseconds
])
def test_numeric_timestamp(bridge, broker, sub, value, expected):
    publish(broker, "dev-4", {"fields": {"v": 1}, "timestamp": value})
    assert sub.recv()["payload"]["timestamp"] == expected
