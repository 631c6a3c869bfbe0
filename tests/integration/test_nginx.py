"""docs/operations.md's nginx examples, run as written in front of a real bridge: the reverse
proxy (WebSocket upgrade on /ws and /api/v1/ws, the dashboard and tickets, the operator
endpoints answering only an admin token: docs/security.md → Operator endpoints) and TLS
termination (wss://, HSTS, the port-80 redirect); and the fleet example, three bridges with one
secret behind one nginx, round robin: tickets issued and redeemed wherever nginx sends them, and
web/telebridge-client.js (in node, tests/js/fleet-client.mjs) failing over when its bridge is
killed or restarted with history.file. A missing node or tests/js/node_modules fails those tests.

Needs an nginx binary: TB_NGINX (tools/test.sh unpacks Debian's package without installing it)
or nginx in PATH; without one every test here fails (a missing tool is a failure, not a skip). The only edits to the documented text are the addresses,
ports and certificate paths, and each must apply, so a changed example fails here."""

import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import signal
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
import websockets

import tb

NGINX = os.environ.get("TB_NGINX") or shutil.which("nginx")


@pytest.fixture(autouse=True)
def nginx_present():
    assert NGINX, "no nginx binary: set TB_NGINX or put nginx in PATH (tools/test.sh does)"
HOST = "telemetry.example.com"


def doc_blocks():
    """The proxy, TLS and fleet (three bridges) examples, in this order."""
    text = (tb.ROOT / "docs" / "operations.md").read_text()
    blocks = re.findall(r"^```nginx\n(.*?)^```$", text, re.M | re.S)
    assert len(blocks) == 3, "operations.md has the proxy, the TLS and the fleet nginx examples"
    return blocks


def edit(text, old, new, count=1):
    assert text.count(old) == count, f"the nginx example no longer contains {old!r} {count}x"
    return text.replace(old, new)


def nginx_main(d, http):
    """A whole nginx.conf in the foreground, everything under d, around the http block text."""
    temp = "".join(f"    {k}_temp_path {d / k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"daemon off;\nmaster_process off;\npid {d / 'nginx.pid'};\n"
            f"error_log {d / 'error.log'};\nevents {{}}\nhttp {{\n"
            f"    access_log {d / 'access.log'};\n{temp}{http}}}\n")


@contextlib.contextmanager
def running_nginx(d, conf_text, ports):
    """Checks and starts nginx on conf_text; yields once it listens on every port; stops it."""
    conf = d / "nginx.conf"
    conf.write_text(conf_text)
    check = subprocess.run([NGINX, "-t", "-p", str(d), "-c", str(conf)], capture_output=True,
                           text=True, timeout=tb.PROCESS_TIMEOUT)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(d), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        tb.wait_until(lambda: proc.poll() is not None or all(map(tb.port_open, ports)),
                      tb.START_TIMEOUT, "nginx to listen")
        assert proc.poll() is None, (d / "error.log").read_text()
        yield proc
    finally:
        proc.terminate()
        proc.wait(tb.STOP_TIMEOUT)


def nginx_conf(d, bridge_port, ports, cert, key):
    proxy, tls, _ = doc_blocks()
    inner = proxy[proxy.index("    # WebSocket"):proxy.rindex("}")]
    proxy = edit(proxy, "server 127.0.0.1:8080;", f"server 127.0.0.1:{bridge_port};")
    proxy = edit(proxy, "listen 80;", f"listen 127.0.0.1:{ports['http']};")
    tls = edit(tls, "    # the two location blocks above, unchanged\n", inner)
    tls = edit(tls, "listen 443 ssl;", f"listen 127.0.0.1:{ports['tls']} ssl;")
    tls = edit(tls, "listen 80;", f"listen 127.0.0.1:{ports['redirect']};")
    tls = edit(tls, f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(cert))
    tls = edit(tls, f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(key))
    return nginx_main(d, f"{proxy}\n{tls}")


@pytest.fixture
def proxy(bridge, tmp_path):
    d = tmp_path / "nginx"
    d.mkdir()
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=tb.PROCESS_TIMEOUT)
    ports = {k: tb.free_port() for k in ("http", "tls", "redirect")}
    with running_nginx(d, nginx_conf(d, bridge.port, ports, cert, key), ports.values()):
        yield {"ports": ports, "ssl": ssl.create_default_context(cafile=str(cert))}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, headers=None):
    """GET → (status, headers, body), redirects not followed."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect()).open(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def fetch_tls(port, path, ctx, method="GET", headers=None):
    """An HTTPS request to 127.0.0.1:port with the certificate checked against HOST."""
    conn = http.client.HTTPSConnection(HOST, port, context=ctx, timeout=5)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5),
                                server_hostname=HOST)
    try:
        conn.request(method, path, headers={"Host": HOST, **(headers or {})})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


async def session(url, ctx=None, extra=None):
    """Connects and subscribes to global; returns (connected, the answer to subscribe)."""
    kw = {"ssl": ctx, "server_hostname": HOST} if ctx else {}
    async with websockets.connect(url, open_timeout=5, extra_headers=extra or {}, **kw) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps({"type": "subscribe", "payload": {"rooms": ["global"]}}))
        sub = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return hello, sub


def test_websocket_dashboard_and_endpoints_through_the_proxy(bridge, proxy, loop):
    port = proxy["ports"]["http"]
    for path in ("/ws", "/api/v1/ws"):
        hello, sub = loop.run(session(f"ws://127.0.0.1:{port}{path}?token={bridge.mint()}"), 10)
        assert hello["type"] == "connected" and sub["type"] == "subscribed", (path, hello, sub)
    status, headers, body = fetch(f"http://127.0.0.1:{port}/")
    assert status == 200 and body == (tb.WEB_ROOT / "index.html").read_bytes()
    assert fetch(f"http://127.0.0.1:{port}/healthz")[0] == 200
    admin = {"Authorization": f"Bearer {bridge.mint(sub='prometheus', rooms=(), scope='admin')}"}
    user = {"Authorization": f"Bearer {bridge.mint()}"}
    for path in ("/metrics", "/stats", "/rooms"):
        status, headers, body = fetch(f"http://127.0.0.1:{port}{path}")
        assert status == 401 and json.loads(body) == {"error": "missing_token"}, (path, body)
        assert {k.lower(): v for k, v in headers.items()}["www-authenticate"] == "Bearer"
        status, _, body = fetch(f"http://127.0.0.1:{port}{path}", headers=user)
        assert status == 403 and json.loads(body) == {"error": "forbidden"}, (path, body)
        assert fetch(f"http://127.0.0.1:{port}{path}", headers=admin)[0] == 200, path
    # The scraper's way in: the admin listener, straight, not through the proxy.
    assert fetch(f"http://127.0.0.1:{bridge.admin_port}/metrics")[0] == 200
    # A refused handshake keeps its status through the proxy.
    with pytest.raises(websockets.InvalidStatusCode) as e:
        loop.run(session(f"ws://127.0.0.1:{port}/ws?token=bad"), 10)
    assert e.value.status_code == 401


def test_tls_termination_with_a_ticket_as_the_dashboard_does(bridge, proxy, loop):
    port, ctx = proxy["ports"]["tls"], proxy["ssl"]
    status, headers, body = fetch_tls(port, "/", ctx)
    assert status == 200 and b"telebridge" in body
    assert headers.get("Strict-Transport-Security") == "max-age=31536000"
    status, _, body = fetch_tls(port, "/api/v1/ws/ticket", ctx, method="POST",
                                headers={"Authorization": f"Bearer {bridge.mint()}",
                                         "Content-Length": "0"})
    assert status == 200, body
    ticket = json.loads(body)["ticket"]
    hello, sub = loop.run(session(f"wss://127.0.0.1:{port}/ws?ticket={ticket}", ctx), 10)
    assert hello["type"] == "connected" and sub["type"] == "subscribed"
    with pytest.raises(ssl.SSLError):  # and the certificate really is checked
        fetch_tls(port, "/", ssl.create_default_context())


def test_port_80_redirects_to_https(proxy):
    status, headers, _ = fetch(f"http://127.0.0.1:{proxy['ports']['redirect']}/x?y=1",
                               headers={"Host": HOST})
    assert status == 301
    assert headers["Location"] == f"https://{HOST}/x?y=1"


# ---- three bridges behind nginx (docs/operations.md → Several bridges behind nginx) ----------

FLEET_DOC_PORTS = ("8081", "8082", "8083")


def fleet_conf(d, bridge_ports, port):
    """The fleet example with its three servers and listen port replaced, after the map of the
    proxy example (the text says to use it)."""
    proxy, _, fleet = doc_blocks()
    conf = proxy[:proxy.index("upstream")]
    for doc_port, bridge_port in zip(FLEET_DOC_PORTS, bridge_ports, strict=True):
        fleet = edit(fleet, f"server 127.0.0.1:{doc_port} ", f"server 127.0.0.1:{bridge_port} ")
    return nginx_main(d, conf + edit(fleet, "listen 80;", f"listen 127.0.0.1:{port};"))


class Fleet:
    """Three bridges with one secret and one config shape on one mosquitto, behind nginx."""

    def __init__(self, bridges, port):
        self.bridges, self.port = bridges, port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.epochs = {}
        for b in bridges:
            self.learn(b)

    def learn(self, b):
        """Records b's epoch and ticket issuer id, asked of b directly (not through nginx)."""
        hello, _ = asyncio.run(session(f"ws://127.0.0.1:{b.port}/ws?token={b.mint()}"))
        self.epochs[hello["payload"]["epoch"]] = b
        b.issuer = tb.ticket_issuer(tb.get_ticket(b.port, b.mint(sub="probe")))

    def bridge_of(self, epoch):
        return self.epochs[epoch]


@pytest.fixture
def make_fleet(make_bridge, tmp_path):
    """make_fleet(per_bridge=None): per_bridge(i) gives bridge i's config overrides."""
    procs = contextlib.ExitStack()

    def make(per_bridge=None):
        secret = None
        bridges = []
        for i in range(3):
            overrides = tb.deep_merge({"mqtt": {"client_id": "tb-fleet-{hostname}-{port}"}},
                                      per_bridge(i) if per_bridge else {})
            bridges.append(make_bridge(overrides, secret=secret))
            secret = bridges[0].secret
        d = tmp_path / "nginx-fleet"
        d.mkdir()
        port = tb.free_port()
        procs.enter_context(running_nginx(d, fleet_conf(d, [b.port for b in bridges], port),
                                          [port]))
        return Fleet(bridges, port)

    with procs:
        yield make


def test_tickets_through_the_proxy_redeem_wherever_they_land(make_fleet):
    """Round robin, no stickiness: each ticket POST and each WebSocket goes to whichever bridge
    nginx picks, and every ticket is redeemed there."""
    fleet = make_fleet()
    token = fleet.bridges[0].mint(sub="fleet", rooms=["device:*"])
    url = f"http://127.0.0.1:{fleet.port}/api/v1/ws/ticket"
    pairs = []

    async def one():
        status, _, body = fetch_post(url, token)
        assert status == 200, body
        ticket = json.loads(body)["ticket"]
        tb.ISSUED_TICKETS.add(ticket)
        hello, sub = await session(f"ws://127.0.0.1:{fleet.port}/ws?ticket={ticket}")
        assert hello["payload"]["user"] == "fleet" and sub["type"] == "subscribed"
        pairs.append((tb.ticket_issuer(ticket), fleet.bridge_of(hello["payload"]["epoch"]).issuer))

    for _ in range(30):
        asyncio.run(one())
    issuers = {b.issuer for b in fleet.bridges}
    assert {i for i, _ in pairs} == issuers, "every bridge issued tickets"
    assert {r for _, r in pairs} == issuers, "every bridge redeemed tickets"
    elsewhere = sum(1 for i, r in pairs if i != r)
    assert elsewhere >= 10, f"only {elsewhere} of 30 tickets were redeemed off their issuer"
    # The replay window docs/security.md states, seen through the proxy: one ticket tried six
    # times goes through once on each of the three bridges, and is refused as used after that.
    ticket = ticket_through(fleet, token)
    statuses = [tb.handshake_status(fleet.port, f"/ws?ticket={ticket}")[0] for _ in range(6)]
    assert sorted(statuses) == [101] * 3 + [401] * 3, statuses
    assert sum(b.stats()["refused"]["handshake_by_reason"]["ticket_used"]
               for b in fleet.bridges) == 3


def fetch_post(url, token):
    req = urllib.request.Request(url, method="POST", data=b"",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def ticket_through(fleet, token):
    status, _, body = fetch_post(f"http://127.0.0.1:{fleet.port}/api/v1/ws/ticket", token)
    assert status == 200, body
    ticket = json.loads(body)["ticket"]
    tb.ISSUED_TICKETS.add(ticket)
    return ticket


# ---- the Node client through failures of its bridge -------------------------------------------

NODE = shutil.which("node")
FLEET_CLIENT = tb.ROOT / "tests" / "js" / "fleet-client.mjs"
WS_PACKAGE = tb.ROOT / "tests" / "js" / "node_modules" / "ws"
DEVICE = "fleet-1"
ROOM = f"device:{DEVICE}"
TOPIC = f"devices/{DEVICE}/telemetry"
RATE = 100  # messages per second while the bridges fail


class StampedPublisher(tb.NumberedPublisher):
    """{"i": n, "timestamp": …}: each message with its own device timestamp, the key the client
    drops repeats by after a failover (docs/protocol.md → Recovery)."""

    def _run(self):
        while not self.done.wait(self.period):
            i = self.count
            ts = f"2026-01-01T00:{i // 60000:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z"
            payload = json.dumps({"i": i, "timestamp": ts})
            self.infos.append(self.client.publish(self.topic, payload, qos=1))
            self.count += 1


class NodeClient:
    """web/telebridge-client.js in node (tests/js/fleet-client.mjs), its events read by a
    thread. Stopped by closing its stdin; killed if it does not exit."""

    def __init__(self, url, rooms, token, log):
        assert NODE, "no node in PATH (tools/test.sh installs nodejs)"
        assert WS_PACKAGE.is_dir(), "tests/js/node_modules/ws missing: (cd tests/js && npm ci)"
        self.events, self.lock = [], threading.Lock()
        self.log = log
        self.proc = subprocess.Popen([NODE, str(FLEET_CLIENT), url, ",".join(rooms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, "wb"), env={**os.environ, "TB_TOKEN": token})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def of(self, event):
        with self.lock:
            return [e["detail"] for e in self.events if e["event"] == event]

    def numbers(self):
        """The i of every live telemetry message the application was given, in order."""
        return [m["payload"]["fields"]["i"] for m in self.of("telemetry") if not m.get("snapshot")]

    def wait(self, pred, timeout, what):
        tb.wait_until(lambda: self.proc.poll() is not None or pred(), timeout, what)
        assert self.proc.poll() is None, f"node exited: {self.log.read_text()}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(tb.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(tb.STOP_TIMEOUT)
        self.reader.join(tb.STOP_TIMEOUT)


@contextlib.contextmanager
def client_and_publisher(fleet, broker, tmp_path):
    """The Node client joined to ROOM through the proxy, then a publisher at RATE; both stopped
    on the way out (the publisher only if the test did not)."""
    client = NodeClient(fleet.url, [ROOM], fleet.bridges[0].mint(sub="fleet"),
                        tmp_path / "node.log")
    pub = None
    try:
        client.wait(lambda: client.of("subscribed"), 10, "the Node client to subscribe")
        pub = StampedPublisher(broker.port, TOPIC, RATE)
        yield client, pub
    finally:
        if pub:
            pub.stop()
            pub.client.loop_stop()
        client.stop()


def bridge_now(fleet, client):
    """The bridge the client is connected to (by the epoch of its last `connected`)."""
    return fleet.bridge_of(client.of("connected")[-1]["payload"]["epoch"])


def finish(fleet, client, pub):
    """Stops the flow; returns how many were published once every live bridge and the client
    have them all (bounded), plus a moment for any late repeat to show."""
    n = pub.stop()
    pub.close()
    client.wait(lambda: len(client.numbers()) >= n, 15, f"the client to get all {n} messages")
    time.sleep(0.5)
    return n


def test_node_client_fails_over_through_the_proxy_with_every_message_once(make_fleet, broker,
                                                                          tmp_path):
    """docs/operations.md → Several bridges behind nginx: SIGKILL the client's bridge while
    numbered messages flow; the client reconnects through nginx to another bridge, resumes with
    `since` by time (docs/protocol.md → Recovery) and drops the overlap's repeats."""
    fleet = make_fleet()
    with client_and_publisher(fleet, broker, tmp_path) as (client, pub):
        client.wait(lambda: len(client.numbers()) >= RATE // 2, 10, "messages before the kill")
        victim = bridge_now(fleet, client)
        victim.expect_clean_exit = False
        victim.stop(signal.SIGKILL)
        client.wait(lambda: len(client.of("subscribed")) >= 2, 10, "the client to resubscribe")
        time.sleep(1.0)  # and more messages after the failover
        n = finish(fleet, client, pub)
    again = client.of("subscribed")[1]["payload"]
    assert (again.get("recovered"), again.get("mode")) == (True, "time"), again
    assert bridge_now(fleet, client) is not victim
    # The replay by time overlaps what the client had (2 s): it dropped those itself.
    assert client.of("repeat"), "no repeat dropped: the failover replay overlapped nothing"
    assert client.numbers() == list(range(n)), "every message once, in order"
def restart(bridge):
    """Stops bridge cleanly and starts it again after a moment in which the broker keeps the
    messages for its persistent session."""
    assert bridge.stop() == 0
    time.sleep(0.3)
    bridge.start()


def resubscribed(client, before):
    """Waits for the client's next `subscribed` after the before-th; returns its payload."""
    client.wait(lambda: len(client.of("subscribed")) > before, 10, "the client to resubscribe")
    return client.of("subscribed")[before]["payload"]


def test_node_client_through_restarts_with_history_file(make_fleet, broker, tmp_path):
    """history.file (docs/operations.md → Restarts without a gap) behind nginx: the client's
    bridge restarted while the others serve, then again while they are down, so it moves once
    to another bridge (by time) and once back to the same, restarted bridge, whose epoch and
    history survived (by seq, messages the broker held for it while all three were down
    included); every bridge keeps its epoch; every message once."""
    fleet = make_fleet(lambda i: {"history": {"file": str(tmp_path / f"history-{i}.tbh")}})
    epochs = {b: e for e, b in fleet.epochs.items()}
    with client_and_publisher(fleet, broker, tmp_path) as (client, pub):
        client.wait(lambda: len(client.numbers()) >= RATE // 2, 10, "messages before restarts")
        first = bridge_now(fleet, client)
        restart(first)
        moved = resubscribed(client, 1)
        second = bridge_now(fleet, client)
        # Another bridge, by time; back on the restarted one (were it up again before the client
        # retried, as on a slow machine it can be), by seq.
        want = "seq" if second is first else "time"
        assert (moved.get("recovered"), moved.get("mode")) == (True, want), moved
        time.sleep(0.5)
        others = [b for b in fleet.bridges if b is not second]
        for b in others:
            assert b.stop() == 0
        restart(second)
        back = resubscribed(client, 2)
        assert (back.get("recovered"), back.get("mode")) == (True, "seq"), back
        assert bridge_now(fleet, client) is second
        for b in others:
            b.start()
        time.sleep(0.5)
        n = finish(fleet, client, pub)
    assert len(client.of("subscribed")) == 3
    for b in fleet.bridges:
        hello, _ = asyncio.run(session(f"ws://127.0.0.1:{b.port}/ws?token={b.mint()}"))
        assert hello["payload"]["epoch"] == epochs[b], f"{b.name} kept its epoch"
    assert client.numbers() == list(range(n)), "every message once, in order"
