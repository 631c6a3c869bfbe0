"""GET /metrics: the Prometheus text exposition (format 0.0.4), checked by a strict parser and
against the bridge's behaviour (docs/operations.md lists the families)."""

import json
import math
import re
import time
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
        fam = families.get(current)
        assert fam and fam["type"], f"{where}: sample before TYPE"
        if fam["type"] == "histogram":
            # name_bucket{le=…}, name_sum, name_count: kept under the family, the suffix as
            # the label "__sample__".
            suffix = name[len(current):] if name.startswith(current) else None
            assert suffix in ("_bucket", "_sum", "_count"), f"{where}: not of {current}"
            assert ("le" in labels) == (suffix == "_bucket"), f"{where}: le"
            labels["__sample__"] = suffix
        else:
            assert name == current, f"{where}: sample outside its family ({current})"
        key = frozenset(labels.items())
        assert key not in fam["samples"], f"{where}: duplicate sample"
        fam["samples"][key] = value
    for name, fam in families.items():
        assert fam["samples"], f"{name}: family without samples"
        assert (fam["type"] == "counter") == name.endswith("_total"), name
        if fam["type"] == "counter":
            assert all(v >= 0 and v == int(v) for v in fam["samples"].values()), name
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def le_bound(le):
    return math.inf if le == "+Inf" else float(le)


def check_histogram(name, samples):
    """Cumulative buckets in increasing le ending with +Inf, equal to _count; a _sum >= 0."""
    buckets = sorted(((le_bound(dict(k)["le"]), v) for k, v in samples.items()
                      if dict(k)["__sample__"] == "_bucket"))
    assert buckets and buckets[-1][0] == math.inf, f"{name}: no +Inf bucket"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name}: buckets not cumulative"
    assert all(v == int(v) for v in counts), name
    assert samples[frozenset({("__sample__", "_count")})] == counts[-1], f"{name}: _count"
    assert samples[frozenset({("__sample__", "_sum")})] >= 0, f"{name}: _sum"


def latency(families):
    """(count, sum in seconds, {le bound: cumulative count}) of the delivery latency."""
    return latency_of(families, "telebridge_delivery_latency_seconds")


def latency_of(families, name):
    samples = families[name]["samples"]
    buckets = {le_bound(dict(k)["le"]): v for k, v in samples.items()
               if dict(k)["__sample__"] == "_bucket"}
    return (samples[frozenset({("__sample__", "_count")})],
            samples[frozenset({("__sample__", "_sum")})], buckets)


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
    hist = ("# HELP telebridge_h X.\n# TYPE telebridge_h histogram\n"
            'telebridge_h_bucket{le="0.1"} 2\ntelebridge_h_bucket{le="+Inf"} 3\n'
            "telebridge_h_sum 0.5\ntelebridge_h_count 3\n")
    assert latency_of(parse_exposition(hist), "telebridge_h")[0] == 3
    bad += [
        hist.replace("_count 3", "_count 4"),  # count is not the +Inf bucket
        hist.replace('"0.1"} 2', '"0.1"} 4'),  # not cumulative
        hist.replace('{le="+Inf"} 3\n', ""),  # no +Inf bucket
        hist.replace("telebridge_h_sum", "telebridge_hx_sum"),  # another family's sample
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


def test_delivery_latency_and_queues_over_half(make_bridge, broker, connect):
    """telebridge_delivery_latency_seconds counts each frame written, from the arrival of its
    message; telebridge_send_queue_over_half counts the connections whose queue is past half
    its bound, as a reader stalls and as it drains (docs/operations.md)."""
    bridge = make_bridge({"limits": {"send_queue_messages": 32, "slow_consumer": "drop_oldest"}})
    before = scrape(bridge)
    count0, sum0, _ = latency(before)
    assert value(before, "telebridge_send_queue_over_half") == 0
    ws = connect(bridge, rooms=["device:lat-1"])
    other = connect(bridge, rooms=["device:lat-1"])
    for i in range(5):
        broker.publish("devices/lat-1/telemetry", json.dumps({"i": i}))
    assert len(ws.recv_n(5)) == 5 and len(other.recv_n(5)) == 5
    after = scrape(bridge)
    count1, sum1, buckets1 = latency(after)
    # Ten deliveries, each counted once, written within a second of its arrival.
    assert count1 - count0 == 10
    assert sum1 > sum0 and (sum1 - sum0) / (count1 - count0) < 1.0
    assert buckets1[1.0] - latency(before)[2][1.0] >= 10

    # A reader that stops reading: its queue passes half the bound and stays there.
    sock, status, _, data = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                             rcvbuf=4096)
    assert status == 101
    sock.sendall(tb.ws_frame(json.dumps({"type": "subscribe",
                                         "payload": {"rooms": ["device:lat-2"]}})))
    tb.wait_until(lambda: bridge.stats()["rooms"] == 2, 5, "the stalled reader's subscription")
    # ~6 MB: more than the kernel buffers of a reader that does not read hold.
    blob = "x" * 2000
    tb.mqtt_publish_lines(broker.port, "devices/lat-2/telemetry",
                          [json.dumps({"fields": {"i": i, "blob": blob}}) for i in range(3000)])
    tb.wait_until(lambda: value(scrape(bridge), "telebridge_send_queue_over_half") == 1, 10,
                  "the stalled reader to count as over half its queue")
    stalled = latency(scrape(bridge))
    time.sleep(1.2)
    # It reads again: the queue drains, the gauge falls, and what waited shows as latency
    # above half a second.
    sock.settimeout(0.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                break
        except TimeoutError:
            if value(scrape(bridge), "telebridge_send_queue_over_half") == 0:
                break
    sock.close()
    drained = scrape(bridge)
    assert value(drained, "telebridge_send_queue_over_half") == 0
    count2, _, buckets2 = latency(drained)
    assert count2 > stalled[0]
    slow = (count2 - buckets2[0.5]) - (stalled[0] - stalled[2][0.5])
    assert slow >= 1, (stalled, latency(drained))
    # The others were served all along.
    broker.publish("devices/lat-1/telemetry", json.dumps({"i": 99}))
    assert ws.recv()["payload"]["fields"] == {"i": 99}
