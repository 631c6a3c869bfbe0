"""WebSocket framing violations fail the connection with the close code docs/protocol.md
("Close codes", "Framing") gives, and well-formed neighbours of each case are served.

Every case uses a raw socket, so the frames are exactly the ones written here (client
libraries refuse to send most of them). After each failing case a good client still connects
and is served.
"""

import json
import os
import socket
import struct
import time
import zlib

import pytest

import tb

FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PROTOCOL_ERROR, INVALID_PAYLOAD = 1002, 1007
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
# lws's wait for the client's close answer (PENDING_TIMEOUT_CLOSE_ACK, 5 s), plus a margin.
CLOSE_ACK_WAIT = 5.0 + tb.RECV_TIMEOUT


def frame(payload, opcode=TEXT, fin=True, rsv=0, masked=True, length=None):
    """One client frame with exactly these header bits; length overrides the length field's
    form (126: 16-bit, 127: 64-bit) for payloads that would fit a shorter one."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    form = length if length is not None else (n if n < 126 else 126 if n < 65536 else 127)
    head = bytes([(FIN if fin else 0) | rsv | opcode, (0x80 if masked else 0) | form])
    if form == 126:
        head += struct.pack("!H", n)
    elif form == 127:
        head += struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflate(text):
    """text compressed as one permessage-deflate message (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(wbits=-15)
    data = c.compress(text if isinstance(text, bytes) else text.encode()) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


class Raw:
    """A WebSocket connection made and read by hand: frames as (opcode, payload)."""

    def __init__(self, bridge, deflate_offer=False):
        headers = {"Sec-WebSocket-Extensions": DEFLATE_OFFER} if deflate_offer else None
        self.sock, status, head, self.data = tb.raw_handshake(
            bridge.port, f"/ws?token={bridge.mint()}", headers)
        assert status == 101, head
        self.deflate = "permessage-deflate" in head.lower()
        assert self.deflate == deflate_offer, head
        self.eof = False
        op, first = self.next_frame()
        assert op == TEXT and json.loads(first)["type"] == "connected"

    def send(self, *frames):
        self.sock.sendall(b"".join(frames))

    def _read(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.data += chunk

    def next_frame(self, timeout=tb.RECV_TIMEOUT):
        """The next server frame, a compressed one inflated; None when the connection ended
        first."""
        deadline = time.monotonic() + timeout
        while True:
            frames, _ = tb.parse_frames(self.data)
            if frames:
                compressed = self.data[0] & RSV1
                self.data = self.data[self._frame_size():]
                op, payload = frames[0]
                if compressed:  # tb.parse_frames has inflated it
                    assert self.deflate and op == TEXT
                return op, payload
            if self.eof:
                return None
            assert time.monotonic() < deadline, f"no frame within {timeout} s"
            self._read(deadline)

    def _frame_size(self):
        n, j = self.data[1] & 0x7F, 2
        if n >= 126:
            width = 2 if n == 126 else 8
            n, j = int.from_bytes(self.data[2:2 + width], "big"), 2 + width
        return j + n

    def next_text(self, timeout=tb.RECV_TIMEOUT):
        """The next text message as JSON (skipping pongs and snapshots)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.next_frame(max(0.05, deadline - time.monotonic()))
            assert got is not None, "connection closed"
            op, payload = got
            if op == TEXT:
                msg = json.loads(payload)
                if msg.get("snapshot") is not True:
                    return msg

    def close_code(self, timeout=tb.RECV_TIMEOUT):
        """Reads until the server's close frame; its code (None: it sent none). Answers it
        with a close, as RFC 6455 §5.5.1 asks, and checks that the server then ends the
        connection. lws may not parse that answer (its parser stops inside the frame it
        refused), and then ends the connection when its 5 s wait for the answer runs out:
        CLOSE_ACK_WAIT allows for that."""
        deadline = time.monotonic() + timeout
        code = None
        while True:
            got = self.next_frame(max(0.05, deadline - time.monotonic()))
            if got is None:
                break
            op, payload = got
            if op == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
                try:
                    self.send(frame(payload[:2], CLOSE))
                except OSError:
                    pass  # the server may have closed already
                break
        self.wait_eof(time.monotonic() + CLOSE_ACK_WAIT)
        return code

    def wait_eof(self, deadline):
        while not self.eof:
            assert time.monotonic() < deadline, "the connection stayed open after the close"
            self._read(deadline)

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(bridge):
    conns = []

    def open_(deflate_offer=False):
        r = Raw(bridge, deflate_offer)
        conns.append(r)
        return r

    yield open_
    for r in conns:
        r.close()


def served(bridge, broker, connect):
    """A good client connects, subscribes and receives a device message."""
    tb.assert_next_client_served(bridge, broker, connect, "dev-ok", ["device:dev-ok"]).close()


def ping_msg(request_id):
    return json.dumps({"type": "ping", "request_id": request_id}, ensure_ascii=False).encode()


# ---- text must be UTF-8: 1007 (RFC 6455 §8.1) --------------------------------------------

BAD_UTF8 = {
    "bad bytes": [frame(b'{"type":"ping","request_id":"\xff\xfe"}')],
    "overlong": [frame(b"\xc0\xaf")],
    "surrogate": [frame(b'{"type":"ping","request_id":"\xed\xa0\x80"}')],
    "cut at the end": [frame(b'{"type":"ping","request_id":"\xe2\x82')],
    "bad across fragments": [frame(b'{"type":"ping","request_id":"\xe2\x82', fin=False),
                             frame(b'("}', CONT)],
    "cut across fragments": [frame(b'{"type":"ping","request_id":"', fin=False),
                             frame(b"\xe2\x82", CONT)],
}


@pytest.mark.parametrize("case", sorted(BAD_UTF8))
def test_text_not_utf8_fails_with_1007(bridge, broker, connect, raw, case):
    r = raw()
    r.send(*BAD_UTF8[case])
    assert r.close_code() == INVALID_PAYLOAD
    served(bridge, broker, connect)


@pytest.mark.parametrize("case", ["bad bytes", "overlong", "surrogate"])
def test_subscribed_connection_not_utf8_fails_with_1007(bridge, broker, connect, raw, case):
    """test_protocol's old bad_request test, for today's behaviour: on a connection that holds
    a room, a text message that is not UTF-8 closes with 1007, never reaches the hub (no client
    message and no error answer counted), and the room loses its subscriber."""
    r = raw()
    r.send(frame(json.dumps({"type": "subscribe", "payload": {"rooms": ["device:dev-ok"]}})))
    assert r.next_text()["type"] == "subscribed"
    assert {"room": "device:dev-ok", "subscribers": 1} in bridge.get("/rooms")[1]
    before = bridge.stats()["details"]
    r.send(*BAD_UTF8[case])
    assert r.close_code() == INVALID_PAYLOAD
    tb.wait_until(lambda: not any(x["room"] == "device:dev-ok" and x["subscribers"]
                                  for x in bridge.get("/rooms")[1]), 5,
                  "the room to lose its subscriber")
    after = bridge.stats()["details"]
    assert after["client_errors"] == before["client_errors"]
    assert after["client_messages"] == before["client_messages"]
    served(bridge, broker, connect)


def test_inflated_text_not_utf8_fails_with_1007(bridge, broker, connect, raw):
    """The check applies to the text after permessage-deflate, whole or cut at the end."""
    for text in (b'{"type":"ping","request_id":"\xff"}', b'{"type":"ping","request_id":"\xe2\x82'):
        r = raw(deflate_offer=True)
        r.send(frame(deflate(text), rsv=RSV1))
        assert r.close_code() == INVALID_PAYLOAD
    served(bridge, broker, connect)


def test_utf8_split_across_fragments_is_served(bridge, raw):
    """A character may be split between fragments, and pings may come between them."""
    r = raw()
    text = ping_msg("é€")
    cut = text.index("€".encode()) + 1
    r.send(frame(text[:cut], fin=False), frame(b"between", PING), frame(text[cut:], CONT))
    assert r.next_frame() == (PONG, b"between")
    assert r.next_text()["request_id"] == "é€"


def test_inflated_utf8_is_served(bridge, raw):
    r = raw(deflate_offer=True)
    r.send(frame(deflate(ping_msg("€ü")), rsv=RSV1))
    assert r.next_text()["request_id"] == "€ü"


# ---- framing errors: 1002 (RFC 6455 §5.2, §5.4, §5.5) -------------------------------------

BAD_FRAMING = {
    **{f"reserved opcode {op:#x}": [frame(b"x", op)] for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD,
                                                                0xE, 0xF)},
    "rsv1 without an extension": [frame(ping_msg(1), rsv=RSV1)],
    "rsv2 without an extension": [frame(ping_msg(1), rsv=RSV2)],
    "rsv3 without an extension": [frame(ping_msg(1), rsv=RSV3)],
    "fragmented ping": [frame(b"a", PING, fin=False), frame(b"b", CONT)],
    "fragmented close": [frame(b"\x03\xe8", CLOSE, fin=False)],
    "continuation first": [frame(b"x", CONT)],
    "text inside a fragmented text": [frame(b'{"type":', fin=False), frame(ping_msg(1))],
    "close code 999": [frame(b"\x03\xe7", CLOSE)],
    "close code 1005": [frame(b"\x03\xed", CLOSE)],
    "close code 2999": [frame(b"\x0b\xb7", CLOSE)],
    # Checked by the bridge's frame guard (docs/architecture.md), not by lws:
    "unmasked text": [frame(ping_msg(1), masked=False)],
    "unmasked ping": [frame(b"p", PING, masked=False)],
    "unmasked after a good frame": [frame(ping_msg(1)), frame(ping_msg(2), masked=False)],
    "ping of 126 bytes": [frame(b"x" * 126, PING)],
    "close of 126 bytes": [frame(b"\x03\xe8" + b"x" * 124, CLOSE)],
    "pong of 5 bytes in the 16-bit length form": [frame(b"x" * 5, PONG, length=126)],
    "ping in the 64-bit length form": [frame(b"x", PING, length=127)],
    "close of 1 byte": [frame(b"\x03", CLOSE)],
    "64-bit length with its top bit set": [bytes([FIN | TEXT, 0x80 | 127, 0x80]) + bytes(11)],
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMING))
def test_framing_error_fails_with_1002(bridge, broker, connect, raw, case):
    r = raw()
    r.send(*BAD_FRAMING[case])
    assert r.close_code() == PROTOCOL_ERROR
    served(bridge, broker, connect)


DEFLATE_FRAMING = {
    "rsv2": [frame(deflate(ping_msg(1)), rsv=RSV1 | RSV2)],
    # RFC 7692 §6.1: the "compressed" bit is for a message's first frame only.
    "rsv1 on a ping": [frame(b"p", PING, rsv=RSV1)],
    "rsv1 on a continuation": [frame(deflate(ping_msg(1))[:3], rsv=RSV1, fin=False),
                               frame(deflate(ping_msg(1))[3:], CONT, rsv=RSV1)],
}


@pytest.mark.parametrize("case", sorted(DEFLATE_FRAMING))
def test_framing_error_with_deflate_fails_with_1002(bridge, broker, connect, raw, case):
    r = raw(deflate_offer=True)
    r.send(*DEFLATE_FRAMING[case])
    assert r.close_code() == PROTOCOL_ERROR
    served(bridge, broker, connect)


def test_close_reason_not_utf8_fails_with_1007(bridge, broker, connect, raw):
    r = raw()
    r.send(frame(b"\x03\xe8bad \xff", CLOSE))
    assert r.close_code() == INVALID_PAYLOAD
    served(bridge, broker, connect)


def test_frames_sent_with_the_upgrade_request_fail_with_1002(bridge, broker, connect):
    """RFC 6455 §4.1: a client waits for the 101 before it sends frames (docs/protocol.md)."""
    sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=tb.RECV_TIMEOUT)
    try:
        request = (f"GET /ws?token={bridge.mint()} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {tb.ws_key()}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.sendall(request.encode() + frame(ping_msg(1)))
        data, frames, deadline = b"", [], time.monotonic() + tb.RECV_TIMEOUT
        while not any(op == CLOSE for op, _ in frames):
            assert time.monotonic() < deadline, f"no close frame: {data!r}"
            chunk = sock.recv(65536)
            assert chunk, f"ended without a close frame: {data!r}"
            data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            frames, _ = tb.parse_frames(rest)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert [op for op, _ in frames] == [CLOSE], frames
        assert struct.unpack("!H", frames[0][1][:2])[0] == PROTOCOL_ERROR
        sock.sendall(frame(frames[0][1][:2], CLOSE))
        sock.settimeout(CLOSE_ACK_WAIT)
        while sock.recv(65536):
            pass
    finally:
        sock.close()
    served(bridge, broker, connect)


# ---- control frames that are fine --------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125])
def test_ping_payload_is_echoed(bridge, raw, size):
    r = raw()
    payload = os.urandom(size)
    r.send(frame(payload, PING))
    assert r.next_frame() == (PONG, payload)
    r.send(frame(ping_msg(2)))
    assert r.next_text()["type"] == "pong"


@pytest.mark.parametrize("payload", [b"", b"\x03\xe8", b"\x03\xe8bye", b"\x0f\xa0app"])
def test_close_is_echoed(bridge, raw, payload):
    """A client close (none, 1000, with a reason, an application code) is answered with the
    same code, and the bridge ends the connection."""
    r = raw()
    r.send(frame(payload, CLOSE))
    got = r.next_frame()
    assert got is not None and got[0] == CLOSE
    assert got[1][:2] == payload[:2]
    r.wait_eof(time.monotonic() + tb.RECV_TIMEOUT)


@pytest.mark.parametrize("length", [126, 127])
def test_longer_length_forms_are_served(bridge, raw, length):
    r = raw()
    long_ping = json.dumps({"type": "ping", "request_id": "long", "pad": "x" * 300})
    r.send(frame(long_ping, length=length), frame(ping_msg("short"), length=length))
    assert r.next_text()["request_id"] == "long"
    assert r.next_text()["request_id"] == "short"


def test_frames_cut_anywhere_are_served(bridge, raw):
    """The frames arrive one byte per TCP segment: headers and payloads cut at every byte."""
    r = raw()
    r.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = frame(b"pp", PING) + frame(ping_msg("a"), fin=False) + frame(b"", PONG) + \
        frame(ping_msg("b")[:0], CONT, fin=False) + frame(b"", CONT) + frame(ping_msg("c"))
    for i in range(len(data)):
        r.send(data[i:i + 1])
        time.sleep(0.001)
    assert r.next_frame() == (PONG, b"pp")
    assert r.next_text()["request_id"] == "a"
    assert r.next_text()["request_id"] == "c"


def test_fragmented_text_is_served(bridge, raw):
    r = raw()
    text = ping_msg("frag")
    r.send(frame(text[:3], fin=False), frame(text[3:9], CONT, fin=False), frame(text[9:], CONT))
    msg = r.next_text()
    assert msg["type"] == "pong" and msg["request_id"] == "frag"
