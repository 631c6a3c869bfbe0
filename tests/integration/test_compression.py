"""permessage-deflate (docs/protocol.md → Compression): negotiated without context takeover,
each frame compressed once for every compressing client, client messages inflated within
limits.max_message_bytes, nothing written after a Close frame."""

import base64
import json
import os
import socket
import struct
import threading
import time
import zlib

import pytest

import tb

# The answer to every accepted offer (RFC 7692 §7.1.1: a server may add both).
NO_TAKEOVER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def ext_header(head):
    """The Sec-WebSocket-Extensions value of a handshake answer, or None."""
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "sec-websocket-extensions":
            return v.strip()
    return None


def noise(n):
    """n characters that deflate barely shrinks (base64 of random bytes)."""
    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]


def deflate_message(data):
    """A client's compressed message: raw DEFLATE, sync flush, tail stripped (§7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def client_frame(payload, rsv1=False, opcode=0x1):
    """A masked client frame (FIN set), RSV1 when compressed."""
    frame = bytearray(tb.ws_frame(payload, opcode))
    if rsv1:
        frame[0] |= 0x40
    return bytes(frame)


def read_frames(sock, seconds, first=b"", until="eof"):
    """first + what arrives within `seconds` → [(opcode, payload, rsv1)]. until: "eof" stops
    when the server closes the socket, "close" at its Close frame, None reads all the time."""
    sock.settimeout(0.2)
    data, deadline = first, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until == "close" and any(op == 0x8 for op, _ in tb.parse_frames(data)[0]):
            break
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk and until == "eof":
            break
        data += chunk
    rsv = []
    frames, _ = tb.parse_frames(data, rsv)
    return [(op, body, r) for (op, body), r in zip(frames, rsv)]


def close_code(frames):
    codes = [struct.unpack("!H", body[:2])[0] for op, body, _ in frames if op == 0x8]
    return codes[0] if codes else None


# ---- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize("offer, answer", [
    ("permessage-deflate; client_max_window_bits", NO_TAKEOVER),
    ("permessage-deflate", NO_TAKEOVER),
    ("permessage-deflate; server_no_context_takeover", NO_TAKEOVER),
    ("permessage-deflate; client_max_window_bits; server_max_window_bits=10",
     NO_TAKEOVER + "; server_max_window_bits=10"),
    ("permessage-deflate; x-unknown", None),  # declined: the connection works uncompressed
    ("permessage-deflate; server_max_window_bits=16", None),
])
def test_answer_carries_no_context_takeover(bridge, offer, answer):
    sock, status, head, rest = tb.raw_handshake(
        bridge.port, f"/ws?token={bridge.mint()}", headers={"Sec-WebSocket-Extensions": offer})
    try:
        assert status == 101, head
        assert ext_header(head) == answer, head
        sock.sendall(client_frame(json.dumps({"type": "ping", "request_id": "n"})))
        frames = read_frames(sock, 1.0, rest, until=None)
        msgs = [json.loads(body) for op, body, _ in frames if op == 0x1]
        assert [m["type"] for m in msgs] == ["connected", "pong"], msgs
    finally:
        sock.close()


def test_compression_off_declines_every_offer(make_bridge, connect):
    bridge = make_bridge({"compression": {"enabled": False}})
    sock, status, head, _ = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                             deflate=True)
    sock.close()
    assert status == 101 and ext_header(head) is None, head
    ws = connect(bridge, compression="deflate")
    assert ws.conn.extensions == []


def test_window_bits_client_gets_long_frames_plain(bridge, broker):
    """server_max_window_bits=9: frames longer than 512 bytes, whose one compressed copy may
    reach further back, go to that client uncompressed; short ones compressed."""
    sock, status, head, _ = tb.raw_handshake(
        bridge.port, f"/ws?token={bridge.mint()}",
        headers={"Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=9"})
    try:
        assert status == 101 and ext_header(head).endswith("server_max_window_bits=9"), head
        sock.sendall(client_frame(json.dumps({"type": "subscribe",
                                              "payload": {"rooms": ["global"]}})))
        time.sleep(0.3)
        broker.publish("devices/dev-w/telemetry", json.dumps({"fields": {"v": "a" * 200}}))
        broker.publish("devices/dev-w/telemetry", json.dumps({"fields": {"v": "b" * 3000}}))
        frames = read_frames(sock, 1.5, until=None)
        msgs = [(json.loads(body), r) for op, body, r in frames if op == 0x1]
        device = [(m, r) for m, r in msgs if m["type"] == "telemetry" and not m.get("snapshot")]
        assert [(m["payload"]["fields"]["v"][0], r) for m, r in device] == [("a", True),
                                                                            ("b", False)]
    finally:
        sock.close()


# ---- integrity and isolation -----------------------------------------------------------------

LARGE_FRAMES = 150
LARGE_BYTES = 40_000


def test_two_rooms_large_frames_intact_and_apart(make_bridge, broker, connect):
    """Two compressing clients in different rooms get ~40 KB poorly compressible frames at the
    same time: every frame parses, is what was published, and only its own room's."""
    bridge = make_bridge({"limits": {"max_mqtt_payload_bytes": 1 << 20}})
    readers = {d: connect(bridge, compression="deflate", rooms=[f"device:{d}"])
               for d in ("big-a", "big-b")}
    sent = {d: [noise(LARGE_BYTES) for _ in range(LARGE_FRAMES)] for d in readers}
    pubs = [threading.Thread(target=tb.mqtt_publish_lines, args=(
        broker.port, f"devices/{d}/telemetry",
        [json.dumps({"fields": {"i": i, "blob": b}}) for i, b in enumerate(sent[d])]))
        for d in readers]
    for t in pubs:
        t.start()
    got = {}
    for d, ws in readers.items():
        got[d] = ws.recv_n(LARGE_FRAMES, timeout=60)  # recv() parses every frame as JSON
    for t in pubs:
        t.join(60)
    for d, msgs in got.items():
        assert {m["room"] for m in msgs} == {f"device:{d}"}
        assert [m["payload"]["fields"]["i"] for m in msgs] == list(range(LARGE_FRAMES))
        assert [m["payload"]["fields"]["blob"] for m in msgs] == sent[d]
        readers[d].expect_silence(0.2)


BURST = 20_000


def test_compressing_global_reader_takes_a_long_burst(bridge, broker, connect):
    """A compressing reader of `global` gets a 20,000-message burst with the default limits:
    every message, in order, no close."""
    ws = connect(bridge, compression="deflate", rooms=["global"])
    tb.mqtt_publish_lines(broker.port, "devices/dev-burst/telemetry",
                          [json.dumps({"fields": {"i": i, "temperature": 21.5}})
                           for i in range(BURST)], timeout=120)
    msgs = ws.recv_n(BURST, timeout=120)
    assert [m["payload"]["fields"]["i"] for m in msgs] == list(range(BURST))
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + BURST))
    assert not ws.closed
    assert bridge.stats()["slow_consumer_disconnects"] == 0


# ---- client messages and their bound ---------------------------------------------------------


@pytest.mark.parametrize("content", ["compressible", "noise"])
def test_9kb_message_closes_1009(bridge, broker, connect, wire, content):
    """limits.max_message_bytes (8192 by default) holds on every kind of connection: a 9 KB
    message closes with 1009 whether its compressed size or its inflated size is over."""
    ws = connect(bridge, rooms=["global"])
    filler = "z" * 9000 if content == "compressible" else noise(9000)
    ws.send(json.dumps({"type": "ping", "request_id": filler}))
    code, _ = ws.wait_closed()
    assert code == 1009
    assert bridge.stats()["refused"]["client_message_too_big"] == 1
    tb.assert_next_client_served(bridge, broker, connect)


def test_decompression_bomb_closes_1009(bridge, broker, connect):
    """A few KB that would inflate to 4 MiB: closed with 1009 at the 8 KiB bound; the next
    client is served."""
    bomb = deflate_message(b"{" + b" " * (4 << 20) + b"}")
    assert len(bomb) < 8192
    sock, status, head, rest = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                                deflate=True)
    try:
        assert status == 101 and ext_header(head) == NO_TAKEOVER
        sock.sendall(client_frame(bomb, rsv1=True))
        frames = read_frames(sock, 5, rest, until="close")
    finally:
        sock.close()
    assert close_code(frames) == 1009, frames
    assert bridge.stats()["refused"]["client_message_too_big"] == 1
    tb.assert_next_client_served(bridge, broker, connect, compression="deflate")


def test_compressed_client_messages_are_inflated(bridge):
    """A compressed message in one frame, and one fragmented over three frames (RSV1 on the
    first only), are answered like plain ones."""
    sock, status, head, rest = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                                deflate=True)
    try:
        assert status == 101
        one = deflate_message(json.dumps({"type": "ping", "request_id": "one"}).encode())
        sock.sendall(client_frame(one, rsv1=True))
        two = deflate_message(json.dumps({"type": "ping", "request_id": "t" * 100}).encode())
        parts = [two[:5], two[5:10], two[10:]]
        first = bytearray(client_frame(parts[0], rsv1=True))
        first[0] &= 0x7F  # not FIN
        middle = bytearray(client_frame(parts[1], opcode=0x0))
        middle[0] &= 0x7F
        sock.sendall(bytes(first) + bytes(middle) + client_frame(parts[2], opcode=0x0))
        frames = read_frames(sock, 1.0, rest, until=None)
    finally:
        sock.close()
    msgs = [json.loads(body) for op, body, _ in frames if op == 0x1]
    assert [(m["type"], m.get("request_id")) for m in msgs[1:]] == [("pong", "one"),
                                                                    ("pong", "t" * 100)], msgs


def test_corrupt_deflate_data_fails_the_connection(bridge, connect):
    sock, status, _, _ = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                          deflate=True)
    try:
        assert status == 101
        sock.sendall(client_frame(b"\xff\xff\xff\xff\x07\x42", rsv1=True))
        frames = read_frames(sock, 5, until="close")
    finally:
        sock.close()
    assert close_code(frames) == 1002, frames
    ws = connect(bridge, compression="deflate")
    assert ws.request({"type": "ping", "request_id": "ok"})["type"] == "pong"


# ---- nothing after Close -----------------------------------------------------------------------


def test_nothing_follows_a_close_frame(bridge, broker, wire):
    """Closed with 1009 while telemetry keeps flowing: the Close frame is the last frame on the
    wire (the client never answers it, so the bridge waits for its close handshake)."""
    sock, status, _, first = tb.raw_handshake(bridge.port, f"/ws?token={bridge.mint()}",
                                              deflate=wire == "deflate")
    pub = None
    try:
        assert status == 101
        sock.sendall(client_frame(json.dumps({"type": "subscribe",
                                              "payload": {"rooms": ["global"]}})))
        tb.wait_until(lambda: {"room": "global", "subscribers": 1} in bridge.get("/rooms")[1], 5,
                      "the subscription")
        pub = tb.NumberedPublisher(broker.port, "devices/dev-flow/telemetry", rate=200)
        time.sleep(0.5)
        sock.sendall(client_frame(json.dumps({"type": "ping", "request_id": "x" * 9000})))
        frames = read_frames(sock, 2.0, first, until=None)
    finally:
        if pub:
            pub.stop()
            pub.close()
        sock.close()
    ops = [op for op, _, _ in frames]
    assert 0x8 in ops, ops
    assert close_code(frames) == 1009
    after = ops[ops.index(0x8) + 1:]
    assert after == [], f"{len(after)} frames after the Close frame"
    data = [op for op in ops if op == 0x1]
    assert len(data) > 10, "telemetry was not flowing when the connection closed"


# ---- both kinds of client ------------------------------------------------------------------------


def test_messages_arrive_with_and_without_deflate(bridge, broker, connect, wire):
    ws = connect(bridge, rooms=["global"])
    names = [type(e).__name__ for e in ws.conn.extensions]
    assert names == (["PerMessageDeflate"] if wire == "deflate" else [])
    fields = {f"f{i}": "telemetry " * 40 for i in range(20)}  # ~8 KB, compresses well
    for i in range(5):
        broker.publish("devices/dev-z/telemetry", json.dumps({"fields": dict(fields, i=i)}))
    msgs = ws.recv_n(5)
    for i, m in enumerate(msgs):
        tb.assert_device_envelope(m, "telemetry", "dev-z")
        assert m["payload"]["fields"] == dict(fields, i=i)
    pong = ws.request({"type": "ping", "request_id": "z"})
    assert pong["type"] == "pong" and pong["request_id"] == "z"


def test_frames_larger_than_the_write_buffer(make_bridge, broker, connect, wire):
    """Frames over the 64 KiB gathering buffer take the direct path; they arrive intact, in
    order, beside small ones, compressed or not."""
    bridge = make_bridge({"limits": {"max_mqtt_payload_bytes": 1 << 20}})
    ws = connect(bridge, rooms=["global"])
    big = {f"k{i}": f"{i:06d}" * 100 for i in range(300)}  # ~200 KB of JSON
    for fields in ({"n": 1}, big, {"n": 3}):  # bytes go to mosquitto_pub through a file
        broker.publish("devices/dev-big/telemetry", json.dumps({"fields": fields}).encode())
    msgs = ws.recv_n(3)
    assert [m["payload"]["fields"] for m in msgs] == [{"n": 1}, big, {"n": 3}]
    assert [m["seq"] for m in msgs] == [msgs[0]["seq"] + i for i in range(3)]
