"""Helpers for the telebridge integration tests: processes, tokens, HTTP, WebSocket, MQTT.

Every wait here is bounded; a helper that times out raises AssertionError naming what it
waited for. Nothing here talks to anything but 127.0.0.1.
"""

import asyncio
import base64
import copy
import json
import os
import pwd
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

import jwt
import paho.mqtt.client as paho
import websockets

ROOT = Path(__file__).resolve().parents[2]
BRIDGE_BIN = Path(os.environ.get("TELEBRIDGE_BIN", ROOT / "build" / "bin" / "telebridge"))
TOKEN_BIN = Path(os.environ.get("TELEBRIDGE_TOKEN_BIN", ROOT / "build" / "bin" / "telebridge-token"))
WEB_ROOT = ROOT / "web"

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Lines a sanitizer writes when it finds something (ASan, UBSan, LSan, TSan).
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "WARNING: ThreadSanitizer",
)

# Bounds, in seconds.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 8.0
RECV_TIMEOUT = 5.0
PROCESS_TIMEOUT = 10.0
# Starts of a process whose free port was taken by someone else in the meantime.
START_ATTEMPTS = 3

# Every token minted and every ticket obtained in this session: no bridge log may contain any
# of them.
MINTED_TOKENS = set()
ISSUED_TICKETS = set()


def wait_until(pred, timeout, what, interval=0.05):
    """Calls pred until it returns a true value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# Ports for the servers a test starts come from below the kernel's ephemeral range (32768 and up
# on Linux): a port the kernel hands out as free is also the next source port of some outgoing
# connection, of this test run or of another one on the machine, and a server that binds it a
# moment later fails with EADDRINUSE. Ports handed out once in this process are not reused.
PORT_RANGE = (20000, 32000)
_ports_used = set()
_port_rng = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port():
    """A loopback TCP port that nothing holds now, from PORT_RANGE, new to this process."""
    for _ in range(1000):
        port = _port_rng.randrange(*PORT_RANGE)
        if port in _ports_used:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_used.add(port)
        return port
    raise AssertionError(f"no free port in {PORT_RANGE} after 1000 tries")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---- tokens --------------------------------------------------------------------------------


def mint(sub, rooms, ttl, secret, alg="HS256", **claims):
    """An HS* JWT with sub, rooms (None: no claim) and exp = now + ttl (None: no exp)."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now}
    if rooms is not None:
        payload["rooms"] = list(rooms)
    if ttl is not None:
        payload["exp"] = now + int(ttl)
    payload.update(claims)
    token = jwt.encode(payload, secret, algorithm=alg)
    if isinstance(token, bytes):
        token = token.decode()
    remember_token(token)
    return token


def remember_token(token):
    MINTED_TOKENS.add(token)
    return token


def unsigned_token(sub, rooms, ttl):
    """A token with alg "none" (which the bridge must refuse)."""
    def b64(obj):
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = {"sub": sub, "rooms": list(rooms), "exp": int(time.time()) + ttl}
    return remember_token(b64({"alg": "none", "typ": "JWT"}) + "." + b64(body) + ".")


# ---- HTTP ----------------------------------------------------------------------------------


def http_raw(port, request, timeout=5.0):
    """Sends request (bytes, a whole HTTP/1.1 request) on a new connection and reads the answer
    until the server closes or Content-Length is reached → (status, {header: value}, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


# What only an operator may read (docs/security.md → Operator endpoints): an admin token on the
# public listener, or the admin listener.
OPERATOR_PATHS = ("/stats", "/api/v1/ws/stats", "/rooms", "/metrics")


def http_get(port, path, timeout=5.0, token=None):
    """GET (with "Authorization: Bearer token" when given) → (status, parsed JSON or text)."""
    url = f"http://127.0.0.1:{port}{path}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def http_post(port, path, body=b"", headers=None, timeout=5.0):
    """POST → (status, parsed JSON or text, response headers). body: bytes, str or a JSON
    value (sent as JSON)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, data, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, data, hdrs = e.code, e.read(), e.headers
    text = data.decode("utf-8", "replace")
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def get_ticket(port, token):
    """POST /api/v1/ws/ticket with token as Bearer; returns the ticket (asserting a 200)."""
    status, body, _ = http_post(port, "/api/v1/ws/ticket", headers={
        "Authorization": f"Bearer {token}"})
    assert status == 200, (status, body)
    ISSUED_TICKETS.add(body["ticket"])
    return body["ticket"]


def ticket_issuer(ticket):
    """The issuing bridge's random id in a ticket (docs/security.md → Tickets across a fleet:
    the 8 bytes after the version byte)."""
    raw = base64.urlsafe_b64decode(ticket + "=" * (-len(ticket) % 4))
    assert raw[0] == 1, "ticket format version 1"
    return raw[1:9]


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


# What Chromium offers (RFC 7692); the bridge's answer adds both no_context_takeover params.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


def raw_handshake(port, path="/ws", headers=None, rcvbuf=None, timeout=5.0, deflate=False):
    """Opens a TCP connection and sends a WebSocket upgrade by hand.

    Returns (sock, status, response_headers_text, rest) where rest holds the bytes read after
    the header block (a body or the first frames). rcvbuf is set before connect, so the kernel
    window stays that small. deflate: offer permessage-deflate as Chromium does (parse_frames
    inflates the compressed frames).
    """
    if deflate:
        headers = dict(headers or {}, **{"Sec-WebSocket-Extensions": DEFLATE_OFFER})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {ws_key()}",
        "Sec-WebSocket-Version: 13",
    ]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise AssertionError("no handshake answer")
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode()
    status = int(status_line.split()[1]) if status_line else 0
    return sock, status, head.decode("latin-1"), rest


def handshake_status(port, path="/ws", headers=None):
    """Status of a WebSocket upgrade attempt, and the body (JSON when it is JSON)."""
    sock, status, head, rest = raw_handshake(port, path, headers)
    try:
        if status != 101:
            length = re.search(r"(?im)^content-length:\s*(\d+)", head)
            want = int(length.group(1)) if length else 0
            deadline = time.monotonic() + 5
            while len(rest) < want and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
            try:
                return status, json.loads(rest.decode())
            except ValueError:
                return status, rest.decode("latin-1")
        return status, None
    finally:
        sock.close()


def ws_frame(payload, opcode=0x1):
    """A masked client frame (FIN set)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def inflate_message(payload):
    """A permessage-deflate message without context takeover (RFC 7692 §7.2.2)."""
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def parse_frames(data, rsv1=None):
    """Unmasked server frames in data → ([(opcode, payload bytes)], leftover bytes of an
    incomplete last frame). Compressed frames (RSV1) are inflated; rsv1, a list, gets each
    frame's RSV1 bit."""
    frames, i = [], 0
    while i + 2 <= len(data):
        op, n, j = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        compressed = bool(data[i] & 0x40)
        if n >= 126:
            width = 2 if n == 126 else 8
            if j + width > len(data):
                break
            n, j = int.from_bytes(data[j:j + width], "big"), j + width
        if j + n > len(data):
            break
        body = data[j:j + n]
        frames.append((op, inflate_message(body) if compressed else body))
        if rsv1 is not None:
            rsv1.append(compressed)
        i = j + n
    return frames, data[i:]


# ---- processes -----------------------------------------------------------------------------


class Broker:
    """A private mosquitto on 127.0.0.1:port; stop()/start()/kill() keep the port. With
    persistence, sessions and queued QoS 1 messages survive a stop (saved at exit) and, saved
    every second, most of a kill."""

    def __init__(self, workdir, persistence=False):
        self.port = free_port()
        self.persistence = persistence
        self.dir = Path(workdir)
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.proc = None
        self.started = False

    def _write_conf(self):
        # Large queues: a test that bursts thousands of QoS 1 messages must not lose any in
        # the broker (its defaults queue 1000 per client and drop the rest). `information`
        # logs the "running" line start() waits for.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            + (f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
               # Run as root, mosquitto would switch to its own user, which cannot write here.
               f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
               if self.persistence else "persistence false\n") +
            "max_queued_messages 200000\n"
            "max_inflight_messages 0\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )

    def start(self):
        """Starts mosquitto. On the first start a port another process took meanwhile (free
        ports are only free when looked at) is replaced by a new one; later starts keep it."""
        assert self.proc is None
        for _ in range(START_ATTEMPTS):
            self._write_conf()
            offset = self.log.stat().st_size if self.log.exists() else 0
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    ["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL)
            wait_until(lambda: self.proc.poll() is not None or
                       ("running" in self._log_since(offset) and port_open(self.port)),
                       START_TIMEOUT, f"mosquitto on port {self.port}")
            if self.proc.poll() is None:
                self.started = True
                return
            self.proc = None
            if self.started or "in use" not in self._log_since(offset):
                break
            self.port = free_port()
        raise AssertionError(f"mosquitto did not start: {self.log.read_text()}")

    def _log_since(self, offset):
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def kill(self):
        """SIGKILL: no clean shutdown, nothing saved since the last autosave."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        wait_until(lambda: not port_open(self.port), STOP_TIMEOUT, "mosquitto port to close")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None
        wait_until(lambda: not port_open(self.port), STOP_TIMEOUT, "mosquitto port to close")

    def publish(self, topic, payload, qos=1, retain=False):
        mqtt_publish(self.port, topic, payload, qos, retain)


def mqtt_publish_lines(port, topic, lines, qos=1, timeout=60.0):
    """Publishes each line as one message from a single mosquitto_pub (-l), in order, and
    returns once it has delivered them all. A separate process, so a burst never competes with
    the test's WebSocket readers for the interpreter."""
    data = "".join(line + "\n" for line in lines)
    assert all("\n" not in line for line in lines)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                    "-q", str(qos), "-l"], input=data.encode(), check=True, timeout=timeout,
                   capture_output=True)


def mqtt_publish(port, topic, payload, qos=1, retain=False):
    """Publishes with mosquitto_pub; payload str or bytes (bytes go through a file)."""
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos)]
    if retain:
        cmd.append("-r")
    with tempfile.NamedTemporaryFile() as f:
        if isinstance(payload, bytes):
            f.write(payload)
            f.flush()
            cmd += ["-f", f.name]
        else:
            cmd += ["-m", payload]
        subprocess.run(cmd, check=True, timeout=PROCESS_TIMEOUT, capture_output=True)


class NumberedPublisher:
    """Publishes {"i": 0}, {"i": 1}, … on topic at about rate per second, QoS 1, from a paho
    client with a persistent session on its own thread. What it cannot send while the broker
    is away, paho keeps and sends (again, for unacknowledged ones) once it reconnects — the
    behaviour of a device with an outgoing queue. stop() returns how many it published."""

    def __init__(self, port, topic, rate):
        self.topic, self.period = topic, 1.0 / rate
        self.count = 0
        self.infos = []
        self.done = threading.Event()
        self.client = paho.Client(client_id=f"tb-pub-{uuid.uuid4().hex[:12]}",
                                  clean_session=False)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(0)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.acked = set()  # mids the broker acknowledged (paho calls on_publish on PUBACK)
        self.client.on_publish = lambda client, userdata, mid: self.acked.add(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(self.period):
            info = self.client.publish(self.topic, json.dumps({"i": self.count}), qos=1)
            self.infos.append(info)
            self.count += 1

    def stop(self):
        self.done.set()
        self.thread.join(PROCESS_TIMEOUT)
        return self.count

    def close(self):
        """Disconnects after stop(), once every message was acknowledged (bounded)."""
        wait_until(lambda: all(i.mid in self.acked for i in self.infos), 20,
                   "the broker to acknowledge every message")
        self.client.disconnect()
        self.client.loop_stop()


class Bridge:
    """One telebridge process with its own config, secret and log."""

    count = 0

    def __init__(self, workdir, broker_port, overrides=None, secret=None, env=None, probe=True):
        Bridge.count += 1
        self.dir = Path(workdir)
        self.name = f"bridge{Bridge.count}"
        self.port = free_port()
        self.admin_port = free_port()
        self.broker_port = broker_port
        self.secret = secret or secrets.token_hex(32)
        self.secret_file = self.dir / f"{self.name}.secret"
        self.secret_file.write_text(self.secret + "\n")
        self.config = deep_merge(
            {
                "listen": {"host": "127.0.0.1", "port": self.port,
                           "web_root": str(WEB_ROOT)},
                "admin": {"host": "127.0.0.1", "port": self.admin_port},
                "mqtt": {"host": "127.0.0.1", "port": broker_port,
                         "client_id": f"tb-test-{uuid.uuid4().hex[:12]}"},
                "auth": {"algorithm": "HS256", "secret_file": str(self.secret_file)},
                "groups": {"building-a": ["sensor-temp-001", "sensor-hum-*"]},
            },
            overrides or {},
        )
        self.config_file = self.dir / f"{self.name}.json"
        self.log = self.dir / f"{self.name}.log"
        self.env = env
        self.probe = probe
        self.proc = None
        self.exit_codes = []
        self.expect_clean_exit = True

    # -- life --

    def start(self, wait_ready=True):
        """Starts the process and waits until it serves (and, with wait_ready, until it is
        ready and its MQTT subscription is live). A listen port another process took meanwhile
        is replaced by a new one."""
        assert BRIDGE_BIN.exists(), f"{BRIDGE_BIN} not built"
        for _ in range(START_ATTEMPTS):
            offset = self._spawn()
            # The "listening" line comes after the bind: /healthz then answers from this
            # process, not from whatever else might hold the port.
            wait_until(lambda: self.proc.poll() is not None or
                       ('msg="listening"' in self._log_since(offset) and
                        self._status("/healthz") == 200),
                       START_TIMEOUT, "/healthz 200")
            if self.proc.poll() is None:
                break
            if "cannot listen" not in self._log_since(offset):
                raise AssertionError(f"bridge exited at start:\n{self.log_text()}")
            self.port = free_port()
            self.config["listen"]["port"] = self.port
            if self.config["admin"]["port"]:
                self.admin_port = free_port()
                self.config["admin"]["port"] = self.admin_port
        else:
            raise AssertionError(f"bridge found no free port:\n{self.log_text()}")
        if wait_ready:
            self.wait_ready()
            if self.probe:
                self.sync_ingest()
        return self

    def _spawn(self):
        """Writes the config and starts the process; returns the log offset it starts at."""
        self.config_file.write_text(json.dumps(self.config, indent=2))
        env = dict(os.environ)
        env.pop("TELEBRIDGE_JWT_SECRET", None)
        env.update(self.env or {})
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BRIDGE_BIN), "--config", str(self.config_file), "--log-level", "debug"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        return offset

    def _log_since(self, offset):
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=START_TIMEOUT):
        wait_until(lambda: self._status("/readyz") == 200, timeout, "/readyz 200")

    def sync_ingest(self):
        """Makes sure the bridge's MQTT subscription is live: publishes one status message on a
        probe device and waits until messages_in counts it."""
        before = self.stats()["messages_in"]
        mqtt_publish(self.broker_port, "devices/tb-probe/status", "online")
        wait_until(lambda: self.stats()["messages_in"] > before, START_TIMEOUT,
                   "the probe message to be ingested")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals the process (sig None: only waits) and waits; returns the exit code. Kills
        it and fails past timeout."""
        if self.proc is None:
            return None
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            self.proc = None
            raise AssertionError(f"{self.name} did not exit within {timeout} s of signal {sig}")
        self.proc = None
        self.exit_codes.append(rc)
        return rc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def rss_kb(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    # -- inspection --

    def _status(self, path):
        try:
            return http_get(self.port, path, timeout=1.0)[0]
        except OSError:
            return 0

    def get(self, path, token=None):
        """GET on the public listener. The operator endpoints without a token go to the admin
        listener (every test bridge has one unless its config turns it off), or, without one,
        get an admin token (for an HS256 bridge)."""
        if token is None and path.partition("?")[0] in OPERATOR_PATHS:
            if self.config["admin"]["port"]:
                return http_get(self.admin_port, path)
            token = self.mint(sub="operator", rooms=(), scope="admin")
        return http_get(self.port, path, token=token)

    def stats(self):
        status, body = self.get("/stats")
        assert status == 200, (status, body)
        return body

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_log(self):
        """Problems in the log: sanitizer reports, tokens, the secret. [] when clean."""
        text = self.log_text()
        problems = [f"sanitizer report ({m})" for m in SANITIZER_MARKERS if m in text]
        problems += ["a minted token appears in the log" for t in MINTED_TOKENS if t in text][:1]
        problems += ["an issued ticket appears in the log"
                     for t in ISSUED_TICKETS if t in text][:1]
        if self.secret in text:
            problems.append("the JWT secret appears in the log")
        return problems

    def mint(self, sub="alice", rooms=("*",), ttl=3600, **claims):
        return mint(sub, rooms, ttl, self.secret, **claims)

    def url(self, path="/ws", token=None):
        q = f"?token={token}" if token else ""
        return f"ws://127.0.0.1:{self.port}{path}{q}"


# ---- WebSocket client ----------------------------------------------------------------------


class Loop:
    """An asyncio loop on its own thread, so WebSocket clients keep reading in the background
    while a test publishes or sleeps."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


class WS:
    """A synchronous face on one websockets (asyncio) client connection."""

    def __init__(self, loop, conn):
        self.loop = loop
        self.conn = conn
        self.connected = None
        # Snapshot frames ("snapshot": true, sent after each subscribe) are skipped by recv()
        # unless a test that checks them turns this on.
        self.keep_snapshots = False

    @classmethod
    def open(cls, loop, url, headers=None, compression=None, expect_connected=True):
        async def go():
            return await websockets.connect(
                url, extra_headers=headers or {}, compression=compression, max_queue=None,
                max_size=None, ping_interval=None, open_timeout=RECV_TIMEOUT,
                close_timeout=2)

        ws = cls(loop, loop.run(go(), RECV_TIMEOUT + 1))
        if expect_connected:
            first = ws.recv()
            assert first["type"] == "connected", first
            ws.connected = first
        return ws

    def send(self, msg):
        data = msg if isinstance(msg, (str, bytes)) else json.dumps(msg)
        self.loop.run(self.conn.send(data), RECV_TIMEOUT)

    def send_fragments(self, parts):
        """Sends one text message as several frames."""
        self.loop.run(self.conn.send(list(parts)), RECV_TIMEOUT)

    def recv_text(self, timeout=RECV_TIMEOUT):
        async def go():
            return await asyncio.wait_for(self.conn.recv(), timeout)

        try:
            return self.loop.run(go(), timeout + 1)
        except asyncio.TimeoutError:
            raise AssertionError(f"no message within {timeout} s") from None

    def recv(self, timeout=RECV_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            text = self.recv_text(max(0.05, deadline - time.monotonic()))
            assert isinstance(text, str), f"binary frame: {text!r}"
            msg = json.loads(text)
            if self.keep_snapshots or msg.get("snapshot") is not True:
                return msg

    def recv_n(self, n, timeout=RECV_TIMEOUT):
        deadline = time.monotonic() + timeout
        return [self.recv(max(0.05, deadline - time.monotonic())) for _ in range(n)]

    def expect_silence(self, seconds=0.5):
        """Asserts that nothing arrives for `seconds`."""
        async def go():
            try:
                return await asyncio.wait_for(self.conn.recv(), seconds)
            except asyncio.TimeoutError:
                return None

        msg = self.loop.run(go(), seconds + 2)
        assert msg is None, f"unexpected message: {msg}"

    def request(self, msg, timeout=RECV_TIMEOUT):
        self.send(msg)
        return self.recv(timeout)

    def subscribe(self, rooms, request_id=None):
        msg = {"type": "subscribe", "payload": {"rooms": list(rooms)}}
        if request_id is not None:
            msg["request_id"] = request_id
        return self.request(msg)

    def wait_closed(self, timeout=RECV_TIMEOUT):
        """Reads until the server closes; returns (close code, messages read before)."""
        got = []

        async def go():
            try:
                while True:
                    got.append(await self.conn.recv())
            except websockets.ConnectionClosed:
                return self.conn.close_code

        return self.loop.run(asyncio.wait_for(go(), timeout), timeout + 1), got

    @property
    def closed(self):
        return self.conn.closed

    def close(self):
        try:
            self.loop.run(self.conn.close(), 5)
        except Exception:  # noqa: BLE001 — best effort at teardown
            pass


def assert_device_envelope(env, type_, device, seq=None):
    """Checks a device message envelope exactly (docs/protocol.md → Server → client envelope)."""
    assert set(env) == {"type", "room", "payload", "timestamp", "seq"}, env
    assert env["type"] == type_
    assert env["room"] == f"device:{device}"
    assert RFC3339_MS.match(env["timestamp"]), env["timestamp"]
    assert isinstance(env["seq"], int) and env["seq"] >= 1
    if seq is not None:
        assert env["seq"] == seq
    p = env["payload"]
    if type_ == "telemetry":
        assert set(p) == {"device_id", "timestamp", "fields", "tags"}, p
        assert isinstance(p["fields"], dict) and isinstance(p["tags"], dict)
    else:
        assert set(p) == {"device_id", "status", "timestamp"}, p
    assert p["device_id"] == device
    assert isinstance(p["timestamp"], str)


def assert_next_client_served(bridge, broker, connect, device="dev-next", rooms=("global",),
                              **connect_kw):
    """After bad input, the bridge carries on: a new client connects, joins rooms and receives
    a device message of `device`. Returns that client, still open."""
    ws = connect(bridge, rooms=list(rooms), **connect_kw)
    broker.publish(f"devices/{device}/telemetry", json.dumps({"v": 1}))
    assert_device_envelope(ws.recv(), "telemetry", device)
    return ws
