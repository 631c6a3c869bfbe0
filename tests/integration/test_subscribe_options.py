"""Subscribe options max_hz, fields and series (docs/protocol.md → Subscribe options): their bad
values and unknown options are refused with a bad_request naming the option and join nothing,
and the connection is served on."""

import json

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
