"""The API docs: Swagger UI from local files (it renders with no Internet: every request the page
makes stays on loopback), at /api/docs with /docs redirecting; /metrics and the docs need a key
from any address but loopback (setting ``keyless_ops``)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright

from api import ApiSettings
from api.keyless import is_loopback
from tests.api.conftest import auth
from tests.api.support import ApiServer
from tests.api.test_dashboard import ARGS, CHROMIUM
from tests.support.netns import OutsideHost, outside_host


def test_docs_page_renders_the_operations_with_every_request_on_loopback(server, client):
    assert client.get("/docs").headers["location"] == "/api/docs"
    assert client.get("/openapi.json").headers["location"] == "/api/openapi.json"
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/v1/riskmap" in paths
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)

            def gate(route):
                requested.append(route.request.url)
                host = urlsplit(route.request.url).hostname
                return route.continue_() if host and is_loopback(host) else route.abort()

            page.route("**/*", gate)
            page.goto(server.url + "/docs")  # the old address leads to the page
            page.wait_for_selector(".opblock", state="attached")
            assert page.url == server.url + "/api/docs"
            rendered = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
            title = page.inner_text(".info .title")
        finally:
            browser.close()
    assert "/api/v1/riskmap" in rendered and len(rendered) >= 0.9 * sum(len(v) for v in paths.values()), rendered
    assert "yujing" in title
    outside = [u for u in requested if not is_loopback(urlsplit(u).hostname)]
    assert not outside, outside
    assert any(u.endswith("/swagger-ui-bundle.js") for u in requested)


def _get_from_outside(host: OutsideHost, port: int, requests: list[tuple[str, dict]]) -> list[tuple[int, str]]:
    """Each (path, headers) fetched from a host in a network namespace of the test's own:
    (status, body)."""
    code = (
        "import httpx, json\n"
        f"reqs = {json.dumps(requests)}\n"
        "with httpx.Client(timeout=30) as c:\n"
        f"    out = [(r.status_code, r.text) for r in (c.get('http://{host.server_address}:{port}' + p, headers=h) for p, h in reqs)]\n"
        "print(json.dumps(out))\n"
    )
    return [tuple(x) for x in json.loads(host.python(code))]


@pytest.fixture
def open_server(db_url, seeded):
    s = ApiServer(db_url, host="0.0.0.0").start()
    yield s
    s.stop()


def test_metrics_and_docs_need_a_key_from_outside_loopback(open_server, keys):
    paths = ("/metrics", "/api/openapi.json", "/api/docs")
    with httpx.Client(timeout=30) as c:
        for path in paths:
            assert c.get(open_server.url + path).status_code == 200, path  # loopback, no key
            # a reverse proxy on this host says who the client is; uvicorn trusts it from loopback
            assert c.get(open_server.url + path, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 401
    with outside_host() as host:
        got = _get_from_outside(host, open_server.port, [
            *((path, {}) for path in paths),
            ("/api/openapi.json", auth(keys["ent_a"])),
            ("/metrics", auth(keys["ent_a"])),
            ("/metrics", auth(keys["province"])),
            ("/api/docs/vendor/swagger-ui.css", {}),  # public files
        ])
    assert [status for status, _ in got] == [401, 401, 401, 200, 403, 200, 200], got
    assert "yujing_api_requests_total" in got[5][1]


@pytest.mark.parametrize("mode, loopback, outside", [("nobody", 401, 401), ("everyone", 200, 200)])
def test_keyless_ops_setting(db_url, seeded, mode, loopback, outside):
    s = ApiServer(db_url, ApiSettings(keyless_ops=mode), host="0.0.0.0").start()
    try:
        with httpx.Client(timeout=30) as c:
            assert c.get(s.url + "/metrics").status_code == loopback
        with outside_host() as host:
            assert _get_from_outside(host, s.port, [("/api/openapi.json", {})])[0][0] == outside
    finally:
        s.stop()


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.1") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.0.2.2") and not is_loopback("testclient") and not is_loopback(None)
