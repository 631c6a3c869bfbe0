"""Fault injection (issue 7 §2): a broker unreachable at start-up, clients that reset their TCP
connection mid-frame, clients that send half a handshake and stall."""

import json
import re
import socket
import struct
import time

import tb

RETRY = re.compile(r'msg="mqtt connect failed" .*attempt=(\d+) retry_in_ms=(\d+)')


def reset(sock):
    """Closes with an RST (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_to_eof(sock):
    """Everything the peer sends until it closes (a reset counts as a close); the socket's
    timeout bounds the wait."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_broker_unreachable_at_start(make_bridge, broker, connect):
    """Serves health at once, is not ready, logs each attempt once with its equal-jitter delay
    (uniform in [base/2, base], base 1 s doubling), then connects when the broker appears."""
    broker.stop()
    bridge = make_bridge(start=False)
    bridge.start(wait_ready=False)
    assert bridge.get("/healthz")[0] == 200
    assert bridge.get("/readyz")[0] == 503
    ws = connect(bridge, rooms=["global"])
    # Attempts 1-3 come after delays of at most 1 + 2 s.
    lines = tb.wait_until(lambda: (lambda m: m if len(m) >= 3 else None)(
        RETRY.findall(bridge.log_text())), 8, "three failed attempts in the log")
    attempts = [int(a) for a, _ in lines]
    assert attempts == list(range(1, len(attempts) + 1)), "one line per attempt, in order"
    for attempt, delay in ((int(a), int(d)) for a, d in lines):
        base = min(1000 * 2 ** (attempt - 1), 30000)
        assert base // 2 <= delay <= base, (attempt, delay)
    assert bridge.get("/readyz")[0] == 503
    assert bridge.get("/metrics")[1].count("telebridge_mqtt_connected 0\n") == 1

    broker.start()
    bridge.wait_ready(timeout=20)  # the next attempt comes within 4 s (attempt 3's delay)
    bridge.sync_ingest()
    tb.assert_device_envelope(ws.recv(), "device_status", "tb-probe")
    assert 'msg="mqtt connected"' in bridge.log_text()


def test_client_resets_mid_frame(bridge, broker, connect):
    """Connections reset in every state (mid-handshake, mid-frame header, mid-payload, with
    frames waiting to be written) leave the bridge serving and its connection count exact."""
    good = connect(bridge, rooms=["device:r-1"])
    token = bridge.mint()
    rounds = 30
    for i in range(rounds):
        sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=5)
        sock.sendall(f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgr".encode())
        reset(sock)
        sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={token}")
        assert status == 101
        frame = tb.ws_frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}}))
        sock.sendall(frame[: 1 + i % (len(frame) - 1)])  # a cut at every offset in turn
        reset(sock)
    # One that subscribed and has frames queued when it resets.
    sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={token}", rcvbuf=4096)
    sock.sendall(tb.ws_frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}})))
    for n in range(20):
        broker.publish("devices/r-1/telemetry", json.dumps({"n": n, "pad": "x" * 2000}))
    reset(sock)

    for n in range(20):
        assert good.recv()["payload"]["fields"]["n"] == n
    tb.wait_until(lambda: bridge.stats()["connections"] == 1, 5, "reset connections to go")
    stats = bridge.stats()
    assert stats["details"]["connections_total"] == rounds + 2  # completed upgrades only
    broker.publish("devices/r-1/telemetry", json.dumps({"n": "after"}))
    assert good.recv()["payload"]["fields"]["n"] == "after"


def test_half_handshake_is_cut_after_the_timeout(make_bridge, connect):
    timeout_s = 2
    bridge = make_bridge({"limits": {"handshake_timeout_s": timeout_s}})
    stalled = []
    for partial in (b"GET /ws HTTP/1.1\r\nHost: x\r\n", b"GET /healthz HT", b""):
        s = socket.create_connection(("127.0.0.1", bridge.port), timeout=timeout_s + 5)
        s.sendall(partial)
        stalled.append(s)
    t0 = time.monotonic()
    ws = connect(bridge)  # others are served meanwhile
    for s in stalled:
        assert read_to_eof(s) == b"", "cut without an answer"
        cut_s = time.monotonic() - t0
        assert timeout_s - 0.5 <= cut_s <= timeout_s + 2, cut_s
        s.close()
    assert ws.request({"type": "ping", "request_id": 1})["type"] == "pong"
    assert bridge.get("/healthz")[0] == 200


def test_broker_returns_while_a_thousand_clients_are_connected(bridge, broker):
    """With over FD_SETSIZE (1024) descriptors open, the reconnect's socket is numbered above
    1024: the MQTT loop must still take it (libmosquitto's select()-based mosquitto_loop()
    refused it, and the bridge never reached its broker again)."""
    token = bridge.mint()
    socks = []
    try:
        for _ in range(1100):
            sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={token}")
            assert status == 101
            socks.append(sock)
        broker.stop()
        tb.wait_until(lambda: bridge.get("/readyz")[0] == 503, 5, "/readyz 503")
        for _ in range(5):  # they take the lowest free numbers, the old MQTT socket's included
            socks.append(tb.raw_handshake(bridge.port, f"/ws?token={token}")[0])
        broker.start()
        bridge.wait_ready(timeout=20)
        bridge.sync_ingest()
        assert bridge.stats()["details"]["mqtt_connects"] == 2
    finally:
        for sock in socks:
            sock.close()
