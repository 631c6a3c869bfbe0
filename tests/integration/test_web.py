"""The dashboard's static files at GET / (listen.web_root): content, types, caching, 404s,
and that nothing outside the folder is reachable."""

import tb


def get(bridge, path, extra=""):
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n")
    return tb.http_raw(bridge.port, req.encode())


def test_root_serves_index_html(bridge):
    status, headers, body = get(bridge, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == (tb.WEB_ROOT / "index.html").read_bytes()
    assert "max-age=60" in headers["cache-control"], headers
    assert headers.get("etag"), headers


def test_assets_have_their_types(bridge):
    for name, ctype in [("index.html", "text/html; charset=utf-8"),
                        ("telebridge-client.js", "text/javascript; charset=utf-8"),
                        ("app.js", "text/javascript; charset=utf-8"),
                        ("style.css", "text/css; charset=utf-8")]:
        status, headers, body = get(bridge, "/" + name)
        assert status == 200, name
        assert headers["content-type"] == ctype, (name, headers)
        assert body == (tb.WEB_ROOT / name).read_bytes(), name


def test_unchanged_file_answers_304(bridge):
    _, headers, _ = get(bridge, "/index.html")
    status, _, body = get(bridge, "/index.html", f"If-None-Match: {headers['etag']}\r\n")
    assert status == 304
    assert body == b""


def test_missing_file_is_json_404_and_endpoints_still_answer(bridge):
    status, headers, body = get(bridge, "/no-such-file.js")
    assert status == 404
    assert b"not_found" in body
    assert bridge.get("/healthz") == (200, {"status": "ok"})
    assert bridge.get("/stats")[0] == 200


def test_traversal_stays_inside_the_web_root(bridge):
    secret_name = bridge.secret_file.name
    for path in ["/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/..%2fCMakeLists.txt",
                 "/vendor/../../CMakeLists.txt", "/%2e%2e/%2e%2e/etc/passwd",
                 "/../../../../../../etc/passwd", f"/../tests/{secret_name}",
                 "//etc/passwd"]:
        status, _, body = get(bridge, path)
        assert status in (400, 403, 404), (path, status)
        assert b"cmake_minimum_required" not in body and b"root:" not in body, path
    # The bridge still serves after all of it.
    assert get(bridge, "/")[0] == 200


def test_no_web_root_means_no_dashboard(make_bridge):
    b = make_bridge({"listen": {"web_root": None}})
    status, _, body = get(b, "/")
    assert status == 404
    assert b"not_found" in body
    assert b.get("/healthz")[0] == 200


def test_missing_web_root_is_logged_and_404(make_bridge, tmp_path):
    b = make_bridge({"listen": {"web_root": str(tmp_path / "nowhere")}})
    assert get(b, "/")[0] == 404
    assert "no dashboard" in b.log_text()


def test_overlong_web_root_is_refused_at_start(make_bridge, tmp_path):
    b = make_bridge({"listen": {"web_root": "/" + "x" * 300}}, start=False)
    b.expect_clean_exit = False
    b._spawn()
    assert b.proc.wait(tb.PROCESS_TIMEOUT) == 1
    assert "listen.web_root: must be at most" in b.log_text()
    b.proc = None
