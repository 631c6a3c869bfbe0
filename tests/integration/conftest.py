"""Fixtures of the telebridge integration tests.

- broker: a private mosquitto on a free loopback port (stop()/start() keep the port);
- make_bridge(overrides=None, start=True, **kw): a telebridge process with its own config,
  secret file and log; at teardown it gets SIGTERM and must exit 0 within 8 s, and its log must
  hold no sanitizer report, no token minted in the session and not the secret;
- bridge: make_bridge() with the defaults;
- connect(bridge, token=None, ...): a WebSocket client (tb.WS) closed at teardown;
- wire: runs a test twice, with clients that compress ("deflate": Python websockets as it comes,
  offering permessage-deflate as browsers do) and with clients that do not ("plain"). connect's
  default follows it (compression= still overrides), and tb.raw_handshake takes
  deflate=(wire == "deflate"). Without it connect's clients do not compress.

Binaries: TELEBRIDGE_BIN and TELEBRIDGE_TOKEN_BIN (default build/bin/…).
"""

import pytest

import tb


@pytest.fixture
def broker(tmp_path):
    d = tmp_path / "broker"
    d.mkdir()
    b = tb.Broker(d)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def make_bridge(tmp_path, broker):
    bridges = []

    def make(overrides=None, start=True, **kw):
        b = tb.Bridge(tmp_path, broker.port, overrides, **kw)
        bridges.append(b)
        if start:
            b.start()
        return b

    yield make
    problems = []
    for b in bridges:
        try:
            b.stop()
        except AssertionError as e:
            problems.append(f"{b.name}: {e}")
        if b.expect_clean_exit and any(c != 0 for c in b.exit_codes):
            problems.append(f"{b.name}: exit codes {b.exit_codes} (expected 0)")
        problems += [f"{b.name}: {p}" for p in b.check_log()]
    if problems:
        logs = "\n".join(f"--- {b.log}:\n{b.log_text()[-4000:]}" for b in bridges)
        pytest.fail("bridge teardown: " + "; ".join(problems) + "\n" + logs)


@pytest.fixture
def bridge(make_bridge):
    return make_bridge()


@pytest.fixture
def loop():
    lp = tb.Loop()
    yield lp
    lp.close()


@pytest.fixture(params=["deflate", "plain"])
def wire(request):
    return request.param


@pytest.fixture
def connect(loop, request):
    clients = []
    default = None
    if "wire" in request.fixturenames and request.getfixturevalue("wire") == "deflate":
        default = "deflate"

    def open_(bridge, token=None, headers=None, path="/ws", compression="wire",
              expect_connected=True, rooms=None):
        if compression == "wire":
            compression = default
        if token is None and headers is None:
            token = bridge.mint()
        ws = tb.WS.open(loop, bridge.url(path, token), headers=headers, compression=compression,
                        expect_connected=expect_connected)
        clients.append(ws)
        if rooms is not None:
            ans = ws.subscribe(rooms)
            assert ans["type"] == "subscribed", ans
            assert sorted(ans["payload"]["rooms"]) == sorted(rooms), ans
        return ws

    yield open_
    for ws in clients:
        ws.close()
