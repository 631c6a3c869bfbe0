"""A client that never reads is disconnected; it neither slows the others nor grows the bridge's
memory without bound (docs/protocol.md → Limits and closing; docs/architecture.md → The hub;
limits.send_queue_messages)."""

import json
import os
import secrets
import socket
import time

import tb

QUEUE_BOUND = 64
MESSAGES = 3000
# Random hex (blob()): even compressed, the burst (~3.5 MB; 6 MB plain) is more than the
# kernel buffers of a reader that never reads hold.
FIELD_BYTES = 2000
# Memory the bridge may gain over the burst, in KiB. The queues are bounded (64 frames per
# connection, 16384 messages between the threads), so the real growth is a few MB; the bound
# leaves room for allocator slack and ASan's quarantine, which ASAN_ENV keeps small (by
# default it holds up to 256 MB of freed memory, which the burst's ~6 MB of frames and JSON
# would fill by more than the bound).
RSS_GROWTH_MAX_KB = 64 * 1024
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=16"]))}


def blob():
    """FIELD_BYTES of random hex, which deflate takes to about half: compressed frames fill
    the sockets too."""
    return secrets.token_hex(FIELD_BYTES // 2)


def texts_and_close(data):
    """Server frames → (text payloads, close code or None, leftover bytes)."""
    frames, rest = tb.parse_frames(data)
    texts = [body.decode() for op, body in frames if op == 0x1]
    closes = [int.from_bytes(body[:2], "big") for op, body in frames if op == 0x8 and body]
    return texts, (closes[0] if closes else None), rest


def drain_until_closed(sock, timeout):
    """Reads everything until the server closes the connection (EOF or reset)."""
    sock.settimeout(0.5)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk
    raise AssertionError(f"the slow consumer's socket was not closed within {timeout} s")


def test_slow_consumer_disconnected_others_unaffected(make_bridge, broker, connect, wire):
    bridge = make_bridge({"limits": {"send_queue_messages": QUEUE_BOUND}}, env=ASAN_ENV)
    reader = connect(bridge, rooms=["global"])

    # The slow consumer: a tiny receive window, subscribed to global, never reading.
    sock, status, _, first = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                              rcvbuf=4096, deflate=wire == "deflate")
    assert status == 101
    sock.sendall(tb.ws_frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}})))
    tb.wait_until(lambda: {"room": "global", "subscribers": 2} in bridge.get("/rooms")[1], 5,
                  "both clients in global")
    rss_before = bridge.rss_kb()

    tb.mqtt_publish_lines(broker.port, "devices/dev-burst/telemetry",
                          [json.dumps({"fields": {"i": i, "blob": blob()}})
                           for i in range(MESSAGES)])

    msgs = reader.recv_n(MESSAGES, timeout=60)
    assert [m["payload"]["fields"]["i"] for m in msgs] == list(range(MESSAGES))
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + MESSAGES))
    reader.expect_silence(0.2)

    stats = tb.wait_until(
        lambda: (s := bridge.stats())["slow_consumer_disconnects"] >= 1 and s, 10,
        "slow_consumer_disconnects >= 1")
    assert stats["slow_consumer_disconnects"] == 1
    assert stats["dropped"] >= 1

    data, how = drain_until_closed(sock, 15)
    sock.close()
    texts, close_code, _ = texts_and_close(first + data)
    got = [json.loads(t) for t in texts]
    assert got and got[0]["type"] in ("connected", "subscribed")
    device_seqs = [m["seq"] for m in got if "seq" in m and not m.get("snapshot")]
    # What it did get came in order without gaps, and far from everything.
    assert device_seqs == list(range(seqs[0], seqs[0] + len(device_seqs)))
    assert len(device_seqs) < MESSAGES
    if close_code is not None:
        assert close_code == 1008, close_code

    tb.wait_until(lambda: bridge.stats()["connections"] == 1, 5, "the slow consumer to be gone")
    growth = bridge.rss_kb() - rss_before
    assert growth < RSS_GROWTH_MAX_KB, f"RSS grew by {growth} KiB ({how})"

    # The reader is still served.
    broker.publish("devices/dev-after/telemetry", json.dumps({"v": 1}))
    tb.assert_device_envelope(reader.recv(), "telemetry", "dev-after", seq=seqs[-1] + 1)


def read_device_messages(sock, done, timeout, what):
    """Reads server frames until done(device messages read so far) holds; returns those
    messages. Fails if the server closes or `what` does not happen within timeout."""
    sock.settimeout(0.5)
    buf, got = b"", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        assert chunk, "the server closed the connection"
        texts, close_code, buf = texts_and_close(buf + chunk)
        assert close_code is None, f"closed with {close_code}"
        got += [m for m in map(json.loads, texts) if "seq" in m]
        if done(got):
            return got
    raise AssertionError(f"{what} not received within {timeout} s")


def read_until_field(sock, last_i, timeout):
    """Reads server frames until a telemetry frame with fields.i == last_i; returns the
    device messages read."""
    return read_device_messages(
        sock, lambda got: got and got[-1]["payload"]["fields"].get("i") == last_i, timeout,
        f"message {last_i}")


def test_drop_oldest_keeps_the_connection(make_bridge, broker, wire):
    bridge = make_bridge({"limits": {"send_queue_messages": QUEUE_BOUND,
                                     "slow_consumer": "drop_oldest"}})
    sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                          rcvbuf=4096, deflate=wire == "deflate")
    assert status == 101
    sock.sendall(tb.ws_frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}})))
    tb.wait_until(lambda: bridge.stats()["rooms"] == 1, 5, "the subscription")
    tb.mqtt_publish_lines(broker.port, "devices/dev-burst/telemetry",
                          [json.dumps({"fields": {"i": i, "blob": blob()}})
                           for i in range(MESSAGES)])
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= MESSAGES + 1, 10,
                  "the burst to be routed")
    stats = bridge.stats()
    assert stats["dropped"] >= 1
    assert stats["slow_consumer_disconnects"] == 0
    assert stats["connections"] == 1
    # Reading now: the oldest telemetry went, the newest is still delivered, in order.
    got = read_until_field(sock, MESSAGES - 1, 15)
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs))
    assert len(got) < MESSAGES
    sock.close()


def read_device_states(sock, want, timeout, statuses=()):
    """Reads server frames until each device of `want` (device → fields.i) reached its i and a
    device_status of each device of `statuses` came; returns the device messages read. (A held
    state may go out before a status routed after it: the two orders are both right.)"""
    last = {}

    def reached(got):
        for m in got:
            if m["type"] == "telemetry":
                last[m["payload"]["device_id"]] = m["payload"]["fields"]["i"]
        seen = {m["payload"]["device_id"] for m in got if m["type"] == "device_status"}
        return all(last.get(d) == i for d, i in want.items()) and seen >= set(statuses)

    try:
        return read_device_messages(sock, reached, timeout,
                                    f"newest states {want} and the status of {list(statuses)}")
    except AssertionError as e:
        raise AssertionError(f"{e}: {last}") from None


def test_conflate_keeps_the_connection_and_the_newest_state(make_bridge, broker, wire):
    """slow_consumer "conflate" (docs/configuration.md, docs/protocol.md → Limits and closing):
    a reader that stops is not closed; its telemetry falls back to each device's newest state,
    status messages all come, and memory stays bounded."""
    bridge = make_bridge({"limits": {"send_queue_messages": QUEUE_BOUND,
                                     "slow_consumer": "conflate"}}, env=ASAN_ENV)
    sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                          rcvbuf=4096, deflate=wire == "deflate")
    assert status == 101
    sock.sendall(tb.ws_frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}})))
    tb.wait_until(lambda: bridge.stats()["rooms"] == 1, 5, "the subscription")
    rss_before = bridge.rss_kb()
    devices = ["dev-c0", "dev-c1", "dev-c2"]
    per_device = MESSAGES // 3
    for d in devices:
        tb.mqtt_publish_lines(broker.port, f"devices/{d}/telemetry",
                              [json.dumps({"fields": {"i": i, "blob": blob()}})
                               for i in range(per_device)])
    broker.publish("devices/dev-c0/status", json.dumps({"status": "online"}))
    tb.wait_until(lambda: bridge.stats()["details"]["device_messages"] >= MESSAGES + 1, 15,
                  "the burst to be routed")
    stats = bridge.stats()
    assert stats["slow_consumer_disconnects"] == 0
    assert stats["connections"] == 1
    assert stats["details"]["conflated"] >= 1
    growth = bridge.rss_kb() - rss_before
    assert growth < RSS_GROWTH_MAX_KB, f"RSS grew by {growth} KiB"
    # Reading now: every device's newest state arrives, and the status message.
    got = read_device_states(sock, {d: per_device - 1 for d in devices}, 20, ["dev-c0"])
    assert len(got) < MESSAGES
    assert [(m["type"], m["payload"]["device_id"]) for m in got].count(
        ("device_status", "dev-c0")) == 1
    for d in devices:
        seqs = [m["seq"] for m in got
                if m["type"] == "telemetry" and m["payload"]["device_id"] == d]
        assert seqs == sorted(set(seqs)), d  # one device's telemetry in order, each once
    sock.close()
