"""Issue 12, the API's findings, each as it was found: scopes moved by a write, the existence
oracle, the YAML alias bomb, bodies read before authentication, brute force on keys, webhooks
to any host, secrets in answers and audits, keys in URLs, live sessions of revoked keys."""

from __future__ import annotations

import json
import socket
import time

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from websockets.sync.client import connect

from api import ApiSettings, Scope, create_key, revoke_key
from api.guard import GuardSettings
from store import secretbox
from store.contact_hosts import escalation_contacts
from tests.api.conftest import auth
from tests.api.support import ApiServer, ticket

pytestmark = pytest.mark.security

DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN0123456789abcdef"
SIGNING = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"


@pytest.fixture
def secret_keys(monkeypatch):
    keys = [Fernet.generate_key().decode()]
    monkeypatch.setenv(secretbox.ENV, ",".join(keys))
    secretbox.configure(None)
    yield keys
    secretbox.configure(None)


# --------------------------------------------------------------------------- 1. moving scopes


def test_a_county_key_cannot_move_its_county(client, keys):
    county = auth(keys["county_a"])
    for parent in ("360200", "360000"):
        r = client.put("/api/v1/regions/360102", json={"code": "360102", "name": "东湖区", "parent": parent},
                       headers=county)
        assert r.status_code == 403, r.text
    city_a = auth(keys["city_a"])
    assert "EA1" in [e["id"] for e in client.get("/api/v1/enterprises", headers=city_a).json()]
    assert "EA1" not in [e["id"] for e in client.get("/api/v1/enterprises", headers=auth(keys["city_b"])).json()]
    # its name it may change; its parent stays
    r = client.put("/api/v1/regions/360102", json={"code": "360102", "name": "东湖区（新）"}, headers=county)
    assert r.status_code == 200 and r.json()["parent"] == "360100"
    # a city key moves no enterprise between its counties; the administrator may move anything
    body = {"id": "EA2", "name": "甲化工", "region": "360102", "industry": "hazardous_chemicals",
            "risk_colour": "blue"}
    assert client.put("/api/v1/enterprises/EA2", json=body, headers=city_a).status_code == 403
    r = client.put("/api/v1/regions/360102", json={"code": "360102", "name": "东湖区", "parent": "360200"},
                   headers=auth(keys["province"]))
    assert r.status_code == 200 and r.json()["parent"] == "360200"


def test_only_the_administrator_creates_enterprises(client, keys):
    body = {"id": "EN1", "name": "新", "region": "360102", "industry": "coal_mine"}
    assert client.post("/api/v1/enterprises", json=body, headers=auth(keys["city_a"])).status_code == 404
    assert client.post("/api/v1/enterprises", json=body, headers=auth(keys["province_user"])).status_code == 403
    assert client.post("/api/v1/enterprises", json=body, headers=auth(keys["province"])).status_code == 201


# --------------------------------------------------------------------------- 3. YAML


def test_yaml_alias_bomb_and_unbounded_fields_are_refused(client, keys):
    h = {**auth(keys["province"]), "Content-Type": "application/yaml"}
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(levels) + "\nenterprises:\n  - {id: EA1, name: x, region: '360102', industry: coal_mine,\n" \
        "     contacts: [{role: r, extra: *a8}]}\n"
    assert len(bomb) < 1000
    started = time.monotonic()
    r = client.post("/api/v1/registry/import", content=bomb.encode(), headers=h)
    assert r.status_code == 422 and "aliases" in r.text
    assert time.monotonic() - started < 2
    for contact in ({"role": "r", "extra": "x"}, {"role": "r", "name": "x" * 101}):
        r = client.post("/api/v1/registry/import", headers=auth(keys["province"]), json={"enterprises": [
            {"id": "EA1", "name": "x", "region": "360102", "industry": "coal_mine", "contacts": [contact]}]})
        assert r.status_code == 422, r.text


# --------------------------------------------------------------------------- 4. bodies


def _raw(server, request: bytes, wait_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as s:
        s.sendall(request)
        return s.recv(4096)


def test_no_body_is_read_before_the_key_nor_beyond_the_route_limit(server, keys):
    # 500 MB announced, none sent: the answer comes at once, from the headers alone
    head = (b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500000000\r\n")
    assert _raw(server, head + b"\r\n").startswith(b"HTTP/1.1 401")
    assert _raw(server, head + f"X-API-Key: {keys['ent_a']}\r\n\r\n".encode()).startswith(b"HTTP/1.1 413")
    # streamed without a length: cut at the limit
    with httpx.Client(base_url=server.url, timeout=10) as c:
        def chunks():
            for _ in range(1000):
                yield b"x" * 1024
        r = c.post("/api/v1/silences", content=chunks(), headers=auth(keys["ent_a"]))
        assert r.status_code == 413
        big = c.post("/api/v1/registry/import", content=b"{}" + b" " * (100 * 1024), headers=auth(keys["province"]))
        assert big.status_code == 200  # the import's own limit is 20 MiB


def test_requests_open_per_address_are_capped_and_idle_bodies_dropped(db_url, seeded):
    server = ApiServer(db_url, settings=ApiSettings(guard=GuardSettings(connections_per_client=2,
                                                                        body_idle_s=1.0))).start()
    key = seeded["keys"]["ent_a"]
    stalled = (f"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").encode()
    try:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        for s in held:
            s.sendall(stalled)  # a body that never comes
        time.sleep(0.3)
        r = httpx.get(f"{server.url}/api/v1/enterprises", headers=auth(key), timeout=5)
        assert r.status_code == 429 and "this address" in r.text
        for s in held:  # after body_idle_s, 408 and the slots are free again
            assert s.recv(4096).startswith(b"HTTP/1.1 408")
            s.close()
        assert httpx.get(f"{server.url}/api/v1/enterprises", headers=auth(key), timeout=5).status_code == 200
    finally:
        server.stop()


# --------------------------------------------------------------------------- 8. brute force


def test_failed_keys_are_throttled_per_address(db_url, seeded, caplog):
    server = ApiServer(db_url, settings=ApiSettings(guard=GuardSettings(auth_failures_burst=10,
                                                                        auth_failures_per_s=0.2))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c, caplog.at_level("WARNING", "yujing.api.guard"):
            codes = [c.get("/api/v1/enterprises", headers=auth(f"yj_guess{i:040d}")).status_code for i in range(40)]
            assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
            # the address is refused before its key is looked at, a right one included
            assert c.get("/api/v1/enterprises", headers=auth(seeded["keys"]["ent_a"])).status_code == 429
        assert len([r for r in caplog.records if "throttled" in r.getMessage()]) == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- 5, 6. contacts


async def test_contact_secrets_are_encrypted_write_only_and_not_audited(client, keys, db_url, secret_keys):
    body = {"id": "EA1", "name": "甲煤矿", "region": "360102", "industry": "coal_mine", "risk_colour": "yellow",
            "contacts": [{"role": "safety_officer", "name": "张工", "webhook": DINGTALK, "secret": SIGNING}]}
    r = client.put("/api/v1/enterprises/EA1", json=body, headers=auth(keys["ent_a"]))
    assert r.status_code == 200, r.text
    for name in ("province", "city_a", "ent_a"):
        shown = client.get("/api/v1/enterprises/EA1", headers=auth(keys[name])).text
        assert "TOKEN0123" not in shown and SIGNING not in shown and '"secret_set":true' in shown
    view = client.get("/api/v1/enterprises/EA1", headers=auth(keys["ent_a"])).json()
    # given back as shown (webhook without its token, no secret): the stored ones stay
    again = {**body, "name": "甲煤矿2", "contacts": [{k: v for k, v in view["contacts"][0].items() if k != "secret_set"}]}
    assert client.put("/api/v1/enterprises/EA1", json=again, headers=auth(keys["ent_a"])).status_code == 200
    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval("SELECT contacts::text FROM enterprises WHERE id = 'EA1'")
        audit = await conn.fetchval("SELECT string_agg(detail::text, ' ') FROM api_write_audit")
        assert "TOKEN0123" not in stored and SIGNING not in stored
        assert "TOKEN0123" not in audit and SIGNING not in audit
        # nothing goes to a host no administrator approved (the enterprise proposed it)
        assert await escalation_contacts(conn, "EA1") == []
        assert await conn.fetchval("SELECT state FROM webhook_hosts WHERE host = 'oapi.dingtalk.com'") == "proposed"
    finally:
        await conn.close()
    assert client.post("/api/v1/webhook-hosts/oapi.dingtalk.com", headers=auth(keys["province_user"])).status_code == 403
    assert client.post("/api/v1/webhook-hosts/oapi.dingtalk.com", headers=auth(keys["province"])).status_code == 200
    conn = await asyncpg.connect(db_url)
    try:
        [contact] = await escalation_contacts(conn, "EA1")
        assert contact["webhook"] == DINGTALK and secretbox.box().decrypt(contact["secret_enc"]) == SIGNING
        # rotation: a new key first, every secret re-encrypted, the old key dropped
        new = Fernet.generate_key().decode()
        secretbox.configure([new, secret_keys[0]])
        assert await secretbox.rotate_contacts(conn) == 2
        secretbox.configure([new])
        [contact] = await escalation_contacts(conn, "EA1")
        assert contact["webhook"] == DINGTALK and secretbox.box().decrypt(contact["secret_enc"]) == SIGNING
    finally:
        await conn.close()


def test_escalation_sends_to_approved_hosts_only(server, client, keys, seeded, secret_keys):
    """The SSRF: an enterprise key points its contact at loopback; nothing is sent until the
    province administrator approves the host."""
    from alerts.outbox import contact_channel

    body = {"id": "EA1", "name": "甲煤矿", "region": "360102", "industry": "coal_mine", "risk_colour": "yellow",
            "contacts": [{"role": "safety_officer", "webhook": "http://127.0.0.1:9/internal", "secret": SIGNING}]}
    assert client.put("/api/v1/enterprises/EA1", json=body, headers=auth(keys["ent_a"])).status_code == 200

    async def targets():
        async with server.pool.acquire() as conn:
            return await escalation_contacts(conn, "EA1")

    assert server.call(targets) == []
    assert client.post("/api/v1/webhook-hosts/127.0.0.1", headers=auth(keys["province"])).status_code == 200
    [c] = server.call(targets)
    ch = contact_channel({"type": "dingtalk", "url": c["webhook"], "secret_enc": c["secret_enc"]})
    assert ch.secret == SIGNING and ch.url == "http://127.0.0.1:9/internal"
    # what the outbox keeps: the URL only encrypted, as stored; decrypted as it is sent
    assert "127.0.0.1" not in c["webhook_enc"]
    ch = contact_channel({"type": "dingtalk", "url_enc": c["webhook_enc"], "secret_enc": c["secret_enc"]})
    assert ch.secret == SIGNING and ch.url == "http://127.0.0.1:9/internal"
    assert client.delete("/api/v1/webhook-hosts/127.0.0.1", headers=auth(keys["province"])).status_code == 200
    assert server.call(targets) == []


# --------------------------------------------------------------------------- 6, 10. live feeds


def _close_code(ws) -> str:
    with pytest.raises(Exception) as exc:
        while True:
            ws.recv(timeout=12)
    return str(exc.value)


def test_live_feeds_take_one_use_tickets_not_keys(server, keys):
    base = server.url.replace("http", "ws") + "/api/v1/live/ws"
    with connect(f"{base}?api_key={keys['ent_a']}", open_timeout=10) as ws:
        assert "4401" in _close_code(ws)
    t = ticket(server.url, keys["ent_a"])
    with connect(f"{base}?ticket={t}&alerts=false", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
    with connect(f"{base}?ticket={t}", open_timeout=10) as ws:  # used once already
        assert "4401" in _close_code(ws)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/api/v1/live/sse", params={"api_key": keys["ent_a"]}).status_code == 401


async def test_sessions_capped_per_key_and_closed_within_10_s_of_revocation(server, db_url):
    conn = await asyncpg.connect(db_url)
    try:
        plain, key = await create_key(conn, Scope.parse("enterprise:EA1"), "capped", live_sessions=2)
    finally:
        await conn.close()
    base = server.url.replace("http", "ws") + "/api/v1/live/ws?readings=false&ticket="
    with connect(base + ticket(server.url, plain), open_timeout=10) as ws1, \
            connect(base + ticket(server.url, plain), open_timeout=10) as ws2:
        ws1.recv(timeout=10)
        ws2.recv(timeout=10)
        with connect(base + ticket(server.url, plain), open_timeout=10) as ws3:
            assert "4429" in _close_code(ws3)
        conn = await asyncpg.connect(db_url)
        try:
            assert await revoke_key(conn, key.id)
        finally:
            await conn.close()
        revoked = time.monotonic()
        assert "4403" in _close_code(ws1)
        assert time.monotonic() - revoked <= 10.0
        assert "4403" in _close_code(ws2)


def test_log_filter_scrubs_messages_arguments_and_tracebacks(caplog):
    import logging

    from api.redact import RedactingFilter

    key = "yj_" + "k" * 43
    handler = logging.Handler()
    handler.addFilter(RedactingFilter())
    seen = []
    handler.emit = lambda record: seen.append(logging.Formatter().format(record))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    try:
        log.warning("handshake %s", f"/api/v1/live/ws?api_key={key}&ticket=yjt_abcdefghijkl")
        try:
            raise ValueError(f"bad contact {DINGTALK} {SIGNING} postgresql://u:pw0rd@h/db")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = "\n".join(seen)
    assert "ValueError" in text and "handshake" in text
    for secret in (key, "yjt_abcdefghijkl", "TOKEN0123", SIGNING, "pw0rd"):
        assert secret not in text, secret


def test_a_stream_outlives_the_body_idle_timeout(db_url, seeded):
    """The body timeout bounds a request's body only, never a response that streams for long."""
    server = ApiServer(db_url, settings=ApiSettings(live_heartbeat_s=0.5, guard=GuardSettings(body_idle_s=0.5))).start()
    try:
        t = ticket(server.url, seeded["keys"]["ent_a"])
        with httpx.Client(base_url=server.url, timeout=10) as c, \
                c.stream("GET", "/api/v1/live/sse", params={"ticket": t, "readings": "false"}) as r:
            started = time.monotonic()
            beats = 0
            for line in r.iter_lines():
                beats += line.startswith(": heartbeat")
                if time.monotonic() - started > 2.5:
                    break
            assert beats >= 3
    finally:
        server.stop()
