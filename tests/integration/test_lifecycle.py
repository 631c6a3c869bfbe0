"""Process life: signals, --check-config, --version, HTTP basics 
(docs/architecture.md → Shutdown; docs/configuration.md; docs/operations.md → Health and
monitoring; docs/telebridge.1)."""

import json
import os
import signal
import subprocess
import time

import pytest

import tb


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_clients_1001_and_exits_0(bridge, connect, sig):
    a = connect(bridge, rooms=["global"])
    b = connect(bridge)
    t0 = time.monotonic()
    bridge.send_signal(sig)
    for ws in (a, b):
        code, _ = ws.wait_closed(timeout=5)
        assert code == 1001
    rc = bridge.stop(sig=None, timeout=max(0.1, 5.5 - (time.monotonic() - t0)))
    assert rc == 0
    assert "stopped" in bridge.log_text()


def signals_blocked(pid, sigs):
    """True when the main thread of pid has every signal of sigs blocked (SigBlk in /proc)."""
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return all(mask >> (s - 1) & 1 for s in sigs)
    return False


def test_signals_during_start_up_wait_for_the_server(make_bridge):
    """docs/architecture.md (Shutdown): the stop and reload signals are blocked from the start
    of main() and taken by the signal thread once the server runs, so a SIGHUP and a SIGTERM
    sent while the bridge starts neither kill it nor get lost: it stops cleanly with 0."""
    b = make_bridge(start=False)
    b._spawn()
    sigs = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
    tb.wait_until(lambda: b.proc.poll() is not None or signals_blocked(b.pid, sigs), 5,
                  "the stop and reload signals to be blocked")
    b.send_signal(signal.SIGHUP)
    b.send_signal(signal.SIGTERM)
    rc = b.stop(sig=None)
    assert rc == 0, b.log_text()
    assert 'msg="listening"' in b.log_text()
    assert 'msg="stopped"' in b.log_text()


def run_bridge(args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if k != "TELEBRIDGE_JWT_SECRET"}
    full_env.update(env or {})
    return subprocess.run([str(tb.BRIDGE_BIN)] + args, capture_output=True, text=True,
                          timeout=tb.PROCESS_TIMEOUT, env=full_env, cwd=cwd)


def write_config(tmp_path, cfg, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def test_check_config_masks_env_secret(tmp_path):
    secret = "s3cr3t-" + os.urandom(8).hex()
    cfg = write_config(tmp_path, {"listen": {"port": 18080}, "auth": {"algorithm": "HS256"}})
    r = run_bridge(["--config", str(cfg), "--check-config"],
                   env={"TELEBRIDGE_JWT_SECRET": secret})
    assert r.returncode == 0, r.stderr
    effective = json.loads(r.stdout)
    assert effective["listen"]["port"] == 18080
    assert effective["limits"]["max_connections"] == 10000  # defaults filled in
    assert effective["mqtt"]["telemetry_topic"] == "devices/{device}/telemetry"
    assert secret not in r.stdout and secret not in r.stderr


def test_check_config_does_not_print_file_secrets(tmp_path):
    secret = "filesecret-" + os.urandom(8).hex()
    password = "mqttpass-" + os.urandom(8).hex()
    (tmp_path / "jwt.key").write_text(secret + "\n")
    (tmp_path / "mqtt.pw").write_text(password + "\n")
    cfg = write_config(tmp_path, {"auth": {"secret_file": "jwt.key"},
                                  "mqtt": {"username": "bridge", "password_file": "mqtt.pw"}})
    r = run_bridge(["--config", str(cfg), "--check-config"])
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
    for s in (secret, password):
        assert s not in r.stdout and s not in r.stderr


def test_check_config_applies_flags(tmp_path):
    cfg = write_config(tmp_path, {"auth": {"secret_file": "k"}})
    (tmp_path / "k").write_text("k" * 32)
    r = run_bridge(["--config", str(cfg), "--check-config", "--listen", "127.0.0.1:9123",
                    "--mqtt", "127.0.0.1:1999"])
    assert r.returncode == 0, r.stderr
    effective = json.loads(r.stdout)
    assert (effective["listen"]["host"], effective["listen"]["port"]) == ("127.0.0.1", 9123)
    assert (effective["mqtt"]["host"], effective["mqtt"]["port"]) == ("127.0.0.1", 1999)


@pytest.mark.parametrize("cfg,key", [
    ({"limits": {"max_conections": 5}}, "limits.max_conections"),
    ({"listen": {"port": "eighty"}}, "listen.port"),
    ({"limits": {"max_connections": 0}}, "limits.max_connections"),
    ({"limits": {"slow_consumer": "explode"}}, "limits.slow_consumer"),
    ({"bogus_section": {}}, "bogus_section"),
])
def test_bad_config_exits_1_naming_the_key(tmp_path, cfg, key):
    cfg.setdefault("auth", {})["secret_file"] = "k"
    (tmp_path / "k").write_text("k" * 32)
    path = write_config(tmp_path, cfg)
    for extra in (["--check-config"], []):
        r = run_bridge(["--config", str(path)] + extra)
        assert r.returncode == 1, (extra, r.stdout, r.stderr)
        assert key in r.stderr, r.stderr


def test_missing_secret_exits_1(tmp_path):
    path = write_config(tmp_path, {"auth": {"algorithm": "HS256"}})
    r = run_bridge(["--config", str(path), "--check-config"])
    assert r.returncode == 1


def test_version_and_help():
    r = run_bridge(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("telebridge ")
    r = run_bridge(["--help"])
    assert r.returncode == 0 and "--check-config" in r.stdout
    r = run_bridge(["--no-such-flag"])
    assert r.returncode == 2


def test_http_endpoints(bridge):
    assert bridge.get("/healthz") == (200, {"status": "ok"})
    assert bridge.get("/readyz")[0] == 200
    status, stats = bridge.get("/stats")
    assert status == 200
    for key in ("connections", "rooms", "mqtt_connected", "messages_in", "messages_out",
                "dropped", "invalid_mqtt", "slow_consumer_disconnects", "uptime_s"):
        assert key in stats, key
    assert bridge.get("/api/v1/ws/stats")[0] == 200
    assert bridge.get("/rooms") == (200, [])
    assert bridge.get("/no/such/path") == (404, {"error": "not_found"})
    # /ws without an upgrade is not a WebSocket handshake.
    assert bridge.get("/ws")[0] == 400
