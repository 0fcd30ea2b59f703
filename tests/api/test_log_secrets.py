"""Issue 12, item 6: the log of a real `yujing run` holds none of the secrets the test used —
API keys (in headers, in legacy ``?api_key=`` URLs that uvicorn logs with each WebSocket
handshake, wrong ones), live-feed tickets, a DingTalk robot's token and signing secret."""

from __future__ import annotations

import json
import time

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from websockets.sync.client import connect

from tests.api.support import seed
from tests.support.running import ServiceProcess

pytestmark = pytest.mark.security

TOKEN = "TOKENabcdef0123456789abcdef0123456789"
SIGNING = "SECfedcba9876543210fedcba9876543210fedcba9876543210fedcba98765432"


def _wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the service's API did not answer at {url} within {timeout_s} s")


async def test_the_service_log_holds_no_secret(db_url, broker, tmp_path):
    seeded = await seed(db_url)
    keys = seeded["keys"]
    log_path = tmp_path / "service.log"
    svc = ServiceProcess(db_url, broker.url, "yj-log-secrets", log_path,
                         YUJING_SECRET_KEYS=Fernet.generate_key().decode(), YUJING_LOG_LEVEL="debug")
    url = f"http://127.0.0.1:{svc.env['YUJING_HTTP_PORT']}"
    used: list[str] = [*keys.values(), TOKEN, SIGNING]
    svc.start()
    try:
        _wait_http(url)
        ws_base = url.replace("http", "ws") + "/api/v1/live/ws"
        with httpx.Client(base_url=url, timeout=10) as c:
            for key in keys.values():
                assert c.get("/api/v1/enterprises", headers={"X-API-Key": key}).status_code == 200
                assert c.get("/api/v1/enterprises", params={"api_key": key}).status_code == 401
                with connect(f"{ws_base}?api_key={key}&readings=false", open_timeout=10) as ws:  # an old client
                    with pytest.raises(Exception):
                        ws.recv(timeout=10)
                ticket = c.post("/api/v1/live/ticket", headers={"X-API-Key": key}).json()["ticket"]
                used.append(ticket)
                with connect(f"{ws_base}?ticket={ticket}&readings=false", open_timeout=10) as ws:
                    assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
            body = {"id": "EA1", "name": "甲煤矿", "region": "360102", "industry": "coal_mine", "risk_colour": "yellow",
                    "contacts": [{"role": "safety_officer", "secret": SIGNING,
                                  "webhook": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"}]}
            assert c.put("/api/v1/enterprises/EA1", json=body, headers={"X-API-Key": keys["ent_a"]}).status_code == 200
            bad = {**body, "contacts": [{**body["contacts"][0], "role": "x" * 40}]}  # a 422 echoing its input
            assert c.put("/api/v1/enterprises/EA1", json=bad, headers={"X-API-Key": keys["ent_a"]}).status_code == 422
            for i in range(25):  # wrong keys: refused, then throttled, and logged
                wrong = f"yj_wrong{i:036d}"
                used.append(wrong)
                c.get("/api/v1/enterprises", headers={"Authorization": f"Bearer {wrong}"})
    finally:
        assert svc.terminate() == 0
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert "/api/v1/live/ws" in log, "uvicorn logged no handshake: the test would prove nothing"
    assert "throttled" in log
    leaked = [s[:12] + "…" for s in used if s in log]
    assert not leaked, f"secrets in the service log: {leaked}"
    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval("SELECT string_agg(contacts::text, ' ') FROM enterprises")
        audit = await conn.fetchval("SELECT string_agg(detail::text, ' ') FROM api_write_audit")
    finally:
        await conn.close()
    assert TOKEN not in stored and SIGNING not in stored and TOKEN not in audit and SIGNING not in audit
