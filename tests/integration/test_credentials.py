"""Bad credentials, table-driven (docs/security.md → Tokens, What a
refused client learns; RFC 8725): every one is refused at the handshake
with the right status, body code and counted reason, the bridge does not crash, and a good
connection works right after each. RS256 and ES256 bridges use keys made by openssl here."""

import base64
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import threading
import time

import jwt
import pytest

import tb

ISS = "https://issuer.example"
AUD = "telebridge-test"
LEEWAY = 5
HS_CONFIG = {"auth": {"issuer": ISS, "audience": AUD, "leeway_s": LEEWAY,
                      "expiry_warning_s": 0}}


def b64(raw):
    if isinstance(raw, str):
        raw = raw.encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**over):
    now = int(time.time())
    c = {"sub": "alice", "rooms": ["*"], "iss": ISS, "aud": AUD, "iat": now, "exp": now + 3600}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hs_craft(secret, header, payload_text, alg=hashlib.sha256):
    """header (dict) . payload (raw text) . HMAC over both with secret (str or bytes)."""
    key = secret.encode() if isinstance(secret, str) else secret
    signing_input = b64(json.dumps(header)) + "." + b64(payload_text)
    sig = hmac.new(key, signing_input.encode(), alg).digest()
    return tb.remember_token(signing_input + "." + b64(sig))


def sign(payload, key, alg):
    token = jwt.encode(payload, key, algorithm=alg)
    return tb.remember_token(token if isinstance(token, str) else token.decode())


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def keys(tmp_path):
    """RSA and EC key pairs (PEM text) made with openssl in the test's folder."""
    d = tmp_path / "keys"
    d.mkdir()
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem",
            cwd=d)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
            "rsa2.pem", cwd=d)
    for name in ("ec", "ec2"):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                f"{name}.pem", cwd=d)
    for name in ("rsa", "rsa2", "ec"):
        openssl("pkey", "-in", f"{name}.pem", "-pubout", "-out", f"{name}.pub", cwd=d)
    return {p.name: p.read_text() for p in d.iterdir()} | {"dir": d}


def attempt(bridge, token=None, headers=None, path=None):
    """Handshake with the credential as ?token= (or path/headers as given): (status, body)."""
    if path is None:
        path = "/ws" if token is None else f"/ws?token={token}"
    return tb.handshake_status(bridge.port, path, headers)


def check_refusals(bridge, connect, cases):
    """Runs (name, thunk → (status, body), status, code, reason) cases; after each, a good
    connection must work."""
    for name, run, status, code, reason in cases:
        before = bridge.stats()["refused"]["handshake_by_reason"]
        got = run()
        assert got == (status, {"error": code}), (name, got)
        after = bridge.stats()["refused"]["handshake_by_reason"]
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        assert changed == {reason: 1}, (name, changed)
        ws = connect(bridge, token=bridge.good_token())
        assert ws.request({"type": "ping", "request_id": name})["request_id"] == name
        ws.close()
        assert bridge.running(), name


def test_bad_hs256_credentials(make_bridge, connect, keys):
    bridge = make_bridge(HS_CONFIG)
    secret = bridge.secret
    now = int(time.time())
    bridge.good_token = lambda: sign(claims(), secret, "HS256")
    good = sign(claims(), secret, "HS256")
    head, payload, sig = good.split(".")
    # Over the 8192-byte token bound, under the bridge's header-data bound.
    huge = sign(claims(rooms=[f"device:d{i:05d}" for i in range(420)]), secret, "HS256")
    assert 8192 < len(huge) < 11000
    ticket_used = tb.get_ticket(bridge.port, good)
    assert attempt(bridge, path=f"/ws?ticket={ticket_used}")[0] == 101
    # A ticket never outlives its token: this one dies with a token that expires in 2 s.
    ticket_expired = tb.get_ticket(bridge.port, sign(claims(exp=now + 2), secret, "HS256"))
    hs = {"alg": "HS256", "typ": "JWT"}
    t = {
        "alg_none": tb.unsigned_token("alice", ["*"], 3600),
        "alg_none_signed": hs_craft(secret, {"alg": "none"}, json.dumps(claims())),
        "alg_lowercase": hs_craft(secret, {"alg": "hs256"}, json.dumps(claims())),
        "alg_hs384": sign(claims(), secret, "HS384"),
        "alg_hs512": sign(claims(), secret, "HS512"),
        "alg_rs256": sign(claims(), keys["rsa.pem"], "RS256"),
        "alg_es256": sign(claims(), keys["ec.pem"], "ES256"),
        "alg_missing": hs_craft(secret, {"typ": "JWT"}, json.dumps(claims())),
        "crit_header": hs_craft(secret, {"alg": "HS256", "crit": ["b64"], "b64": False},
                                json.dumps(claims())),
        "wrong_key": sign(claims(), "not-the-secret", "HS256"),
        "truncated": tb.remember_token(good[:-12]),
        "no_signature": tb.remember_token(f"{head}.{payload}."),
        "sig_of_other_payload": tb.remember_token(
            f"{head}.{b64(json.dumps(claims(sub='mallory')))}.{sig}"),
        "bad_base64": tb.remember_token(f"{head}.{payload[:-4]}!!!!.{sig}"),
        "bad_json_payload": hs_craft(secret, hs, '{"sub": "alice", "exp": '),
        "payload_not_object": hs_craft(secret, hs, "[1, 2, 3]"),
        "header_not_json": tb.remember_token(f"{b64('{alg')}.{payload}.{sig}"),
        "two_segments": tb.remember_token(f"{head}.{payload}"),
        "expired": sign(claims(exp=now - 3600), secret, "HS256"),
        "expired_past_leeway": sign(claims(exp=now - LEEWAY - 5), secret, "HS256"),
        "not_yet_valid": sign(claims(nbf=now + 3600), secret, "HS256"),
        "issued_in_future": sign(claims(iat=now + 3600), secret, "HS256"),
        "iat_string": sign(claims(iat="today"), secret, "HS256"),
        "wrong_iss": sign(claims(iss="https://evil.example"), secret, "HS256"),
        "missing_iss": sign(claims(iss=None), secret, "HS256"),
        "wrong_aud": sign(claims(aud="other-service"), secret, "HS256"),
        "aud_array_without_ours": sign(claims(aud=["a", "b"]), secret, "HS256"),
        "missing_exp": sign(claims(exp=None), secret, "HS256"),
        "exp_string": sign(claims(exp="tomorrow"), secret, "HS256"),
        "rooms_string": sign(claims(rooms="global"), secret, "HS256"),
        "rooms_bad_pattern": sign(claims(rooms=["bogus:room"]), secret, "HS256"),
        "rooms_numbers": sign(claims(rooms=[1, 2]), secret, "HS256"),
        "sub_number": sign(claims(sub=42), secret, "HS256"),
        "scope_number": sign(claims(scope=7), secret, "HS256"),
    }
    cases = [
        (name, (lambda tok=tok: attempt(bridge, tok)), 401, code, reason)
        for name, tok, code, reason in [
            ("alg_none", t["alg_none"], "invalid_token", "alg"),
            ("alg_none_signed", t["alg_none_signed"], "invalid_token", "alg"),
            ("alg_lowercase", t["alg_lowercase"], "invalid_token", "alg"),
            ("alg_hs384", t["alg_hs384"], "invalid_token", "alg"),
            ("alg_hs512", t["alg_hs512"], "invalid_token", "alg"),
            ("alg_rs256", t["alg_rs256"], "invalid_token", "alg"),
            ("alg_es256", t["alg_es256"], "invalid_token", "alg"),
            ("alg_missing", t["alg_missing"], "invalid_token", "malformed"),
            ("crit_header", t["crit_header"], "invalid_token", "malformed"),
            ("wrong_key", t["wrong_key"], "invalid_token", "signature"),
            ("truncated", t["truncated"], "invalid_token", "signature"),
            ("no_signature", t["no_signature"], "invalid_token", "signature"),
            ("sig_of_other_payload", t["sig_of_other_payload"], "invalid_token", "signature"),
            ("bad_base64", t["bad_base64"], "invalid_token", "malformed"),
            ("bad_json_payload", t["bad_json_payload"], "invalid_token", "malformed"),
            ("payload_not_object", t["payload_not_object"], "invalid_token", "malformed"),
            ("header_not_json", t["header_not_json"], "invalid_token", "malformed"),
            ("two_segments", t["two_segments"], "invalid_token", "malformed"),
            ("expired", t["expired"], "token_expired", "expired"),
            ("expired_past_leeway", t["expired_past_leeway"], "token_expired", "expired"),
            ("not_yet_valid", t["not_yet_valid"], "invalid_token", "not_yet_valid"),
            ("issued_in_future", t["issued_in_future"], "invalid_token", "not_yet_valid"),
            ("iat_string", t["iat_string"], "invalid_token", "claims"),
            ("wrong_iss", t["wrong_iss"], "invalid_token", "issuer"),
            ("missing_iss", t["missing_iss"], "invalid_token", "issuer"),
            ("wrong_aud", t["wrong_aud"], "invalid_token", "audience"),
            ("aud_array_without_ours", t["aud_array_without_ours"], "invalid_token", "audience"),
            ("missing_exp", t["missing_exp"], "invalid_token", "no_exp"),
            ("exp_string", t["exp_string"], "invalid_token", "no_exp"),
            ("rooms_string", t["rooms_string"], "invalid_token", "claims"),
            ("rooms_bad_pattern", t["rooms_bad_pattern"], "invalid_token", "claims"),
            ("rooms_numbers", t["rooms_numbers"], "invalid_token", "claims"),
            ("sub_number", t["sub_number"], "invalid_token", "claims"),
            ("scope_number", t["scope_number"], "invalid_token", "claims"),
        ]
    ]
    cases += [
        ("huge_token_bearer", lambda: attempt(bridge, headers={"Authorization": f"Bearer {huge}"}),
         401, "invalid_token", "malformed"),
        ("empty_query_token", lambda: attempt(bridge, path="/ws?token="), 401, "missing_token",
         "missing"),
        ("bearer_without_token", lambda: attempt(bridge, headers={"Authorization": "Bearer "}),
         401, "missing_token", "missing"),
        ("basic_auth", lambda: attempt(bridge, headers={"Authorization": "Basic YTpi"}), 401,
         "missing_token", "missing"),
        ("used_ticket", lambda: attempt(bridge, path=f"/ws?ticket={ticket_used}"), 401,
         "invalid_ticket", "ticket_used"),
        ("unknown_ticket", lambda: attempt(bridge, path=f"/ws?ticket={'7' * 64}"), 401,
         "invalid_ticket", "ticket_unknown"),
        ("garbage_ticket", lambda: attempt(bridge, path="/ws?ticket=..%2F..%2Fetc"), 401,
         "invalid_ticket", "ticket_unknown"),
    ]
    check_refusals(bridge, connect, cases)
    # The expired ticket last, once its token's exp has passed.
    time.sleep(max(0.0, now + 2.1 - time.time()))
    check_refusals(bridge, connect, [
        ("expired_ticket", lambda: attempt(bridge, path=f"/ws?ticket={ticket_expired}"), 401,
         "invalid_ticket", "ticket_expired")])
    assert len(cases) + 1 >= 25
    refused = bridge.stats()["refused"]
    assert refused["handshake_unauthorized"] == len(cases) + 1


def rs_or_es_bridge(make_bridge, keys, alg, pub):
    return make_bridge({"auth": {"algorithm": alg, "public_key_file": str(keys["dir"] / pub),
                                 "expiry_warning_s": 0}})


def test_rs256_happy_path_and_key_confusion(make_bridge, connect, keys):
    bridge = rs_or_es_bridge(make_bridge, keys, "RS256", "rsa.pub")
    bridge.good_token = lambda: sign(claims(iss=None, aud=None), keys["rsa.pem"], "RS256")
    ws = connect(bridge, token=sign(claims(sub="rsa-user", rooms=["global"], iss=None, aud=None),
                                    keys["rsa.pem"], "RS256"))
    assert ws.connected["payload"]["user"] == "rsa-user"
    assert ws.subscribe(["global"])["payload"]["rooms"] == ["global"]
    c = json.dumps(claims(iss=None, aud=None))
    cases = [
        # HS256 keyed with the bridge's own public key PEM: the classic key confusion.
        ("hs256_keyed_with_public_pem", hs_craft(keys["rsa.pub"], {"alg": "HS256"}, c), "alg"),
        ("rs256_other_key", sign(claims(iss=None, aud=None), keys["rsa2.pem"], "RS256"),
         "signature"),
        ("rs512", sign(claims(iss=None, aud=None), keys["rsa.pem"], "RS512"), "alg"),
        # An algorithm libjwt does not know fails its parse: counted as malformed.
        ("ps256", sign(claims(iss=None, aud=None), keys["rsa.pem"], "PS256"), "malformed"),
        ("es256", sign(claims(iss=None, aud=None), keys["ec.pem"], "ES256"), "alg"),
        ("alg_none", tb.unsigned_token("alice", ["*"], 3600), "alg"),
    ]
    check_refusals(bridge, connect, [
        (name, (lambda tok=tok: attempt(bridge, tok)), 401, "invalid_token", reason)
        for name, tok, reason in cases])


def test_es256_happy_path(make_bridge, connect, keys):
    bridge = rs_or_es_bridge(make_bridge, keys, "ES256", "ec.pub")
    bridge.good_token = lambda: sign(claims(iss=None, aud=None), keys["ec.pem"], "ES256")
    token = sign(claims(sub="ec-user", iss=None, aud=None), keys["ec.pem"], "ES256")
    ws = connect(bridge, headers={"Authorization": f"Bearer {token}"})
    assert ws.connected["payload"]["user"] == "ec-user"
    c = json.dumps(claims(iss=None, aud=None))
    cases = [
        ("hs256_keyed_with_public_pem", hs_craft(keys["ec.pub"], {"alg": "HS256"}, c), "alg"),
        ("es256_other_key", sign(claims(iss=None, aud=None), keys["ec2.pem"], "ES256"),
         "signature"),
        ("rs256", sign(claims(iss=None, aud=None), keys["rsa.pem"], "RS256"), "alg"),
    ]
    check_refusals(bridge, connect, [
        (name, (lambda tok=tok: attempt(bridge, tok)), 401, "invalid_token", reason)
        for name, tok, reason in cases])
    # A ticket from an ES256 token carries it like any other.
    ticket = tb.get_ticket(bridge.port, bridge.good_token())
    ws = connect(bridge, headers={}, token=None, path=f"/ws?ticket={ticket}")
    assert ws.connected["payload"]["user"] == "alice"


def test_es256_fleet_tickets_need_a_ticket_secret(make_bridge, keys, tmp_path):
    """docs/security.md → Tickets across a fleet: ES256 bridges share no secret, so each one's
    tickets stay on it, until auth.ticket_secret_file gives them one key."""
    token = sign(claims(sub="ec-fleet", iss=None, aud=None), keys["ec.pem"], "ES256")
    a, b = (rs_or_es_bridge(make_bridge, keys, "ES256", "ec.pub") for _ in range(2))
    ticket = tb.get_ticket(a.port, token)
    assert tb.handshake_status(b.port, f"/ws?ticket={ticket}") == (
        401, {"error": "invalid_ticket"})
    assert tb.handshake_status(a.port, f"/ws?ticket={ticket}")[0] == 101
    shared = tmp_path / "ticket.key"
    shared.write_text("fleet-ticket-secret-0123456789abcdef\n")
    c, d = (make_bridge({"auth": {"algorithm": "ES256", "expiry_warning_s": 0,
                                  "public_key_file": str(keys["dir"] / "ec.pub"),
                                  "ticket_secret_file": str(shared)}}) for _ in range(2))
    ticket = tb.get_ticket(c.port, token)
    assert tb.handshake_status(d.port, f"/ws?ticket={ticket}")[0] == 101
    assert tb.handshake_status(c.port, f"/ws?ticket={ticket}")[0] == 101
    assert tb.handshake_status(d.port, f"/ws?ticket={ticket}") == (
        401, {"error": "invalid_ticket"})


def test_handshake_rate_limit_429_and_recovery(make_bridge, connect):
    # 1 per second: nothing refills while the burst is spent, even on a slow (ASan) run.
    bridge = make_bridge({"limits": {"handshakes_per_ip_per_s": 1, "handshake_burst": 3}})
    token = bridge.mint(sub="storm")
    # The burst, bad credentials included: a brute-force loop spends the same tokens.
    assert tb.handshake_status(bridge.port, "/ws?token=bad.bad.bad")[0] == 401
    assert [tb.handshake_status(bridge.port, f"/ws?token={token}")[0] for _ in range(2)] == [
        101, 101]
    sock, status, head, _ = tb.raw_handshake(bridge.port, f"/ws?token={token}")
    sock.close()
    assert status == 429
    assert "retry-after: 1" in head.lower()
    assert tb.handshake_status(bridge.port, f"/ws?token={token}") == (
        429, {"error": "rate_limited"})
    refused = bridge.stats()["refused"]
    assert refused["handshake_rate_limited"] == 2
    assert refused["handshake_by_reason"]["rate_limited"] == 2
    # GET endpoints are not handshakes: they still answer. Asking for a ticket is the first half
    # of one: it is refused too, before the token is looked at.
    assert bridge.get("/healthz")[0] == 200
    status, body, hdrs = tb.http_post(bridge.port, "/api/v1/ws/ticket",
                                      headers={"Authorization": f"Bearer {token}"})
    assert (status, body, hdrs["Retry-After"]) == (429, {"error": "rate_limited"}, "1")
    # After a second one more handshake goes through, and it works.
    time.sleep(1.1)
    ws = connect(bridge, token=token)
    assert ws.request({"type": "ping", "request_id": 1})["type"] == "pong"
    assert tb.handshake_status(bridge.port, f"/ws?token={token}")[0] == 429


def test_sighup_swaps_public_keys_atomically(make_bridge, connect, keys):
    bridge = rs_or_es_bridge(make_bridge, keys, "RS256", "rsa.pub")
    pub = keys["dir"] / "rsa.pub"
    old = sign(claims(iss=None, aud=None), keys["rsa.pem"], "RS256")
    new = sign(claims(iss=None, aud=None), keys["rsa2.pem"], "RS256")
    kept = connect(bridge, token=old)

    def reload_and_wait(text):
        start = bridge.log_text().count(text)
        bridge.send_signal(signal.SIGHUP)
        tb.wait_until(lambda: bridge.log_text().count(text) > start, 5, f"log line {text!r}")

    # A broken key is refused with a log line; the old key keeps working.
    pub.write_text("-----BEGIN PUBLIC KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\n-----END PUBLIC KEY-----\n")
    reload_and_wait("reload refused")
    assert "holds no usable RS256 key" in bridge.log_text()
    assert attempt(bridge, old)[0] == 101
    assert attempt(bridge, new)[0] == 401
    # A good new key replaces the old one at once; the open connection stays.
    pub.write_text(keys["rsa2.pub"])
    reload_and_wait("reloaded groups, auth keys and alert rules")
    assert attempt(bridge, new)[0] == 101
    assert attempt(bridge, old) == (401, {"error": "invalid_token"})
    assert kept.request({"type": "ping", "request_id": "k"})["type"] == "pong"


def test_publish_needs_the_room_granted(bridge, connect):
    """POST /api/v1/publish authorises the room with the same rule as subscribe."""
    token = bridge.mint(sub="ops-bot", rooms=["group:ops", "device:pump-*"], scope="publish")
    listener = connect(bridge, rooms=["group:ops"])
    headers = {"Authorization": f"Bearer {token}"}
    for room, status in [("group:ops", 202), ("device:pump-7", 202), ("global", 403),
                         ("group:opsx", 403), ("device:valve-1", 403)]:
        got, body, _ = tb.http_post(bridge.port, "/api/v1/publish",
                                    {"room": room, "type": "notice", "payload": {"r": room}},
                                    headers=headers)
        assert got == status, (room, got, body)
        if status == 403:
            assert body == {"error": "forbidden"}
    msg = listener.recv()
    assert msg["payload"] == {"r": "group:ops"} and msg["room"] == "group:ops", msg
    listener.expect_silence(0.3)


def handshake_from(source, port, token):
    """One handshake attempt from the local address source; returns its status."""
    with socket.socket() as s:
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {tb.ws_key()}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = s.recv(4096)
    return int(head.split()[1])


def test_brute_force_from_one_address_does_not_starve_another(make_bridge, connect):
    bridge = make_bridge({"limits": {"handshakes_per_ip_per_s": 5, "handshake_burst": 5}})
    wrong = sign(claims(), "guessed-secret", "HS256")
    statuses = []
    stop = threading.Event()

    def attacker():
        while not stop.is_set():
            statuses.append(handshake_from("127.0.0.2", bridge.port, wrong))

    thread = threading.Thread(target=attacker)
    started = time.monotonic()
    thread.start()
    try:
        time.sleep(0.3)
        latencies = []
        for i in range(3):
            t0 = time.monotonic()
            ws = connect(bridge, token=bridge.mint(sub=f"real-{i}"))
            assert ws.request({"type": "ping", "request_id": i})["type"] == "pong"
            latencies.append(time.monotonic() - t0)
            ws.close()
    finally:
        stop.set()
        thread.join(10)
    elapsed = time.monotonic() - started
    assert max(latencies) < 1.0, latencies
    # The loop spent its burst on 401s, then got 429s without its tokens being verified: at
    # most burst + rate * elapsed of its guesses were checked.
    assert statuses.count(401) <= 5 + 5 * elapsed + 1, (statuses.count(401), elapsed)
    assert statuses.count(429) >= 10, statuses.count(429)
    assert set(statuses) <= {401, 429}
    refused = bridge.stats()["refused"]["handshake_by_reason"]
    assert refused["rate_limited"] == statuses.count(429)


def test_short_hmac_secret_is_logged_not_shown(make_bridge, connect):
    bridge = make_bridge(secret="only-16-bytes-ok")
    log = bridge.log_text()
    assert 'msg="auth secret shorter than its hash, RFC 7518 asks for more" algorithm=HS256 ' \
           "bytes=16 minimum=32" in log
    ws = connect(bridge)
    assert ws.request({"type": "ping", "request_id": 1})["type"] == "pong"
