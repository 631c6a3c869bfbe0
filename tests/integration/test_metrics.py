"""GET /metrics: the Prometheus text exposition (format 0.0.4), checked by a strict parser and
against the bridge's behaviour (docs/operations.md lists the families)."""

import json
import math
import re
import urllib.request

import tb

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"')
TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}
PREFIX = "telebridge_"


def parse_labels(text, where):
    """'a="x",b="y"' -> {"a": "x", "b": "y"}; anything else fails."""
    labels, i = {}, 0
    while i < len(text):
        m = LABEL.match(text, i)
        assert m, f"{where}: bad label at {text[i:]!r}"
        assert m.group(1) not in labels, f"{where}: label {m.group(1)} twice"
        labels[m.group(1)] = m.group(2)
        i = m.end()
        if i < len(text):
            assert text[i] == ",", f"{where}: expected ',' at {text[i:]!r}"
            i += 1
    return labels


def parse_sample(line, where):
    m = NAME.match(line)
    assert m, f"{where}: no metric name"
    name, rest, labels = m.group(0), line[m.end():], {}
    if rest.startswith("{"):
        close = rest.find("}")
        assert close > 0, f"{where}: unterminated labels"
        labels, rest = parse_labels(rest[1:close], where), rest[close + 1:]
    assert rest.startswith(" ") and not rest.startswith("  "), f"{where}: bad separator"
    fields = rest[1:].split(" ")
    assert 1 <= len(fields) <= 2, f"{where}: value [timestamp] expected"
    value = float(fields[0])  # ValueError fails the test
    assert not math.isnan(value), where
    return name, labels, value


def parse_exposition(text):
    """Strict reader of the text format: every family has one HELP and one TYPE line before
    its samples, samples of a family are contiguous, no sample repeats, counters end in _total
    and are >= 0, names carry the telebridge_ prefix. Returns {family: {"type", "help",
    "samples": {frozenset(labels.items()): value}}}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families, current = {}, None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        assert line and line == line.strip(), f"{where}: empty or padded line"
        if line.startswith("#"):
            kind, name, rest = (line.split(" ", 3) + ["", ""])[1:4]
            assert kind in ("HELP", "TYPE"), where
            assert NAME.fullmatch(name) and name.startswith(PREFIX), where
            fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            assert not fam["samples"], f"{where}: comment after the family's samples"
            key = kind.lower()
            assert fam[key] is None, f"{where}: second {kind}"
            assert rest, f"{where}: empty {kind}"
            if kind == "TYPE":
                assert rest in TYPES, where
                assert fam["help"] is not None, f"{where}: TYPE before HELP"
            fam[key] = rest
            current = name
            continue
        name, labels, value = parse_sample(line, where)
        assert name == current, f"{where}: sample outside its family ({current})"
        fam = families[name]
        assert fam["type"], f"{where}: sample before TYPE"
        key = frozenset(labels.items())
        assert key not in fam["samples"], f"{where}: duplicate sample"
        fam["samples"][key] = value
    for name, fam in families.items():
        assert fam["samples"], f"{name}: family without samples"
        assert (fam["type"] == "counter") == name.endswith("_total"), name
        if fam["type"] == "counter":
            assert all(v >= 0 and v == int(v) for v in fam["samples"].values()), name
    return families


def scrape(bridge):
    """/metrics from the admin listener (an operator endpoint: docs/security.md)."""
    url = f"http://127.0.0.1:{bridge.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        body = r.read()
    assert int(r.headers["Content-Length"]) == len(body)
    return parse_exposition(body.decode("utf-8"))


def value(families, name, **labels):
    return families[name]["samples"][frozenset(labels.items())]


def test_parser_rejects_malformed_expositions():
    good = "# HELP telebridge_x_total X.\n# TYPE telebridge_x_total counter\ntelebridge_x_total 1\n"
    assert value(parse_exposition(good), "telebridge_x_total") == 1
    bad = [
        good[:-1],  # no final newline
        good.replace("# HELP telebridge_x_total X.\n", ""),  # no HELP
        good.replace("counter", "gauge"),  # a gauge named _total
        good + "telebridge_x_total 2\n",  # duplicate sample
        good.replace(" 1\n", " one\n"),  # not a number
        good.replace("_total 1", '_total{a="1} 1'),  # unterminated label
        good.replace("telebridge_", "other_"),  # no prefix
        good + "# HELP telebridge_x_total again\n",  # comment after samples
    ]
    for text in bad:
        try:
            parse_exposition(text)
        except (AssertionError, ValueError):
            continue
        raise AssertionError(f"accepted: {text!r}")


def test_metrics_follow_traffic(bridge, broker, connect):
    before = scrape(bridge)
    for fam in ("telebridge_connections", "telebridge_messages_in_total",
                "telebridge_messages_out_total", "telebridge_dropped_total",
                "telebridge_slow_consumer_disconnects_total",
                "telebridge_handshake_failures_total", "telebridge_mqtt_invalid_total",
                "telebridge_queue_depth", "telebridge_mqtt_connected",
                "telebridge_mqtt_reconnects_total", "telebridge_rate_limited_total"):
        assert fam in before, fam
    assert value(before, "telebridge_mqtt_connected") == 1
    assert value(before, "telebridge_connections", compression="deflate") == 0
    assert value(before, "telebridge_connections", compression="none") == 0
    assert {dict(k)["reason"] for k in before["telebridge_mqtt_invalid_total"]["samples"]} == {
        "not_json", "not_object", "too_large", "bad_utf8", "bad_topic", "bad_value"}

    ws = connect(bridge, rooms=["device:m-1"])
    zipped = connect(bridge, compression="deflate")
    status, _ = tb.handshake_status(bridge.port, "/ws?token=not-a-token")
    assert status == 401
    broker.publish("devices/m-1/telemetry", json.dumps({"t": 1}))
    broker.publish("devices/m-1/telemetry", json.dumps({"t": 2}))
    broker.publish("devices/m-1/status", "online")
    broker.publish("devices/m-1/telemetry", "{not json")
    got = ws.recv_n(3)
    assert [m["type"] for m in got] == ["telemetry", "telemetry", "device_status"], got

    def delta(after, name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    after = tb.wait_until(
        lambda: (lambda m: m if delta(m, "telebridge_mqtt_invalid_total", reason="not_json")
                 else None)(scrape(bridge)), 5, "the invalid message to be counted")
    assert value(after, "telebridge_connections", compression="none") == 1
    assert value(after, "telebridge_connections", compression="deflate") == 1
    assert delta(after, "telebridge_connections_total") == 2
    assert delta(after, "telebridge_messages_in_total", type="telemetry") == 2
    assert delta(after, "telebridge_messages_in_total", type="status") == 1
    assert delta(after, "telebridge_messages_out_total", type="telemetry") == 2
    assert delta(after, "telebridge_messages_out_total", type="status") == 1
    # connected twice + subscribed
    assert delta(after, "telebridge_messages_out_total", type="control") == 3
    assert delta(after, "telebridge_handshake_failures_total", reason="unauthorized") == 1
    assert delta(after, "telebridge_handshake_failures_total", reason="over_capacity") == 0
    assert delta(after, "telebridge_handshake_failures_total", reason="rate_limited") == 0
    # The same refusal by its exact reason: "not-a-token" is not a JWT.
    assert delta(after, "telebridge_handshake_refusals_total", reason="malformed") == 1
    assert delta(after, "telebridge_handshake_refusals_total", reason="signature") == 0
    assert delta(after, "telebridge_mqtt_invalid_total", reason="bad_utf8") == 0
    assert value(after, "telebridge_dropped_total", reason="send_queue_full") == 0
    assert value(after, "telebridge_queue_depth") == 0
    assert value(after, "telebridge_queue_capacity") > 0
    # /stats and /metrics read the same counters.
    stats = bridge.stats()
    assert stats["messages_in"] == sum(after["telebridge_messages_in_total"]["samples"].values())
    assert stats["invalid_mqtt"] == sum(after["telebridge_mqtt_invalid_total"]["samples"].values())
    # The bridge still serves after the refused handshake and the invalid message.
    broker.publish("devices/m-1/telemetry", json.dumps({"t": 3}))
    assert ws.recv()["payload"]["fields"] == {"t": 3}
    # The compressing connection leaves its gauge.
    zipped.close()
    tb.wait_until(lambda: value(scrape(bridge), "telebridge_connections",
                                compression="deflate") == 0, 5, "the deflate gauge to fall")
    assert value(scrape(bridge), "telebridge_connections", compression="none") == 1


def test_mqtt_state_and_reconnects(bridge, broker):
    before = scrape(bridge)
    broker.stop()
    tb.wait_until(lambda: bridge.get("/readyz")[0] == 503, 10, "/readyz 503")
    down = scrape(bridge)
    assert value(down, "telebridge_mqtt_connected") == 0
    broker.start()
    bridge.wait_ready(timeout=40)
    up = scrape(bridge)
    assert value(up, "telebridge_mqtt_connected") == 1
    assert value(up, "telebridge_mqtt_reconnects_total") == \
        value(before, "telebridge_mqtt_reconnects_total") + 1
    assert value(up, "telebridge_mqtt_connects_total") == \
        value(before, "telebridge_mqtt_connects_total") + 1
    assert value(up, "telebridge_mqtt_connect_failures_total") >= \
        value(before, "telebridge_mqtt_connect_failures_total")
