"""Live feeds: WebSocket and SSE stream readings and alert events filtered by scope and
subscription; a client that falls behind is disconnected with its reason; ops endpoints."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from api import ApiSettings, ReadingHub
from domain.messages import ReadingBatch
from tests.api.conftest import auth
from tests.api.support import Alerts, ApiServer, ticket


def ws_url(server, key: str, **params) -> str:
    q = httpx.QueryParams({"ticket": ticket(server.url, key), **params})
    return server.url.replace("http", "ws") + f"/api/v1/live/ws?{q}"


def batch(sensors, t0_us=1_767_225_600_000_000) -> ReadingBatch:
    n = len(sensors)
    return ReadingBatch.build(sensor=sensors, ts_us=t0_us + np.arange(n), value=np.arange(n) * 0.1)


def test_ws_readings_and_alerts_filtered_by_scope(server, keys, seeded):
    a, b = seeded["sensors"]["EA1/CH4-0101"], seeded["sensors"]["EB1/CH4-0101"]
    alerts = Alerts(server)
    with connect(ws_url(server, keys["ent_a"]), open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "subscribed" and set(hello["sensors"]) == {a, seeded["sensors"]["EA1/CO-0101"]}
        server.call_soon(lambda: server.hub.publish(batch([a, b, b, a])))
        msg = json.loads(ws.recv(timeout=10))
        assert msg["type"] == "readings" and msg["sensor"] == [a, a] and msg["value"] == [0.0, 0.30000000000000004]
        alerts.raise_(b)
        alerts.raise_(a)
        event = json.loads(ws.recv(timeout=10))
        assert event["type"] == "alert" and event["enterprise"] == "EA1"
    # another scope's sensor is not subscribed at all
    with connect(ws_url(server, keys["ent_a"], sensor=str(b)), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["sensors"] == []


def test_ws_subscription_by_grade_and_bad_subscription(server, keys, seeded):
    a = seeded["sensors"]["EA1/CH4-0101"]
    alerts = Alerts(server)
    with connect(ws_url(server, keys["province"], grade="red", readings="false"), open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        alerts.raise_(a)  # yellow: filtered out
        alerts.raise_(seeded["sensors"]["EA2/EX-0201"], rule="limit2")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)
    with connect(ws_url(server, keys["province"], grade="purple"), open_timeout=10) as ws:
        with pytest.raises(Exception) as exc:
            ws.recv(timeout=10)
        assert "4422" in str(exc.value)
    with connect(server.url.replace("http", "ws") + "/api/v1/live/ws", open_timeout=10) as ws:
        with pytest.raises(Exception) as exc:
            ws.recv(timeout=10)
        assert "4401" in str(exc.value)


def test_slow_client_is_dropped_with_reason_and_ingest_never_waits(db_url, seeded):
    server = ApiServer(db_url, settings=ApiSettings(live_queue=4)).start()
    try:
        a = seeded["sensors"]["EA1/CH4-0101"]
        with connect(ws_url(server, seeded["keys"]["ent_a"], alerts="false"), open_timeout=10) as ws:
            json.loads(ws.recv(timeout=10))

            def flood():  # one loop turn: the client's pump cannot run in between
                for _ in range(50):
                    server.hub.publish(batch([a]))

            server.call_soon(flood)
            received = 0
            with pytest.raises(Exception) as exc:
                while True:
                    ws.recv(timeout=10)
                    received += 1
            assert "4408" in str(exc.value) and "fell behind" in str(exc.value)
            assert received <= 4
        assert server.hub.clients == 0
    finally:
        server.stop()


def test_sse_stream(server, keys, seeded):
    a = seeded["sensors"]["EA1/CH4-0101"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", "/api/v1/live/sse", params={"ticket": ticket(server.url, keys["county_a"]), "sensor": a}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(lines) == "event: subscribed"
            hello = json.loads(next(lines).removeprefix("data: "))
            assert hello["sensors"] == [a]
            server.call_soon(lambda: server.hub.publish(batch([seeded["sensors"]["EB1/CH4-0101"], a])))
            while (line := next(lines)) != "event: readings":
                pass
            assert json.loads(next(lines).removeprefix("data: "))["sensor"] == [a]
        assert client.get("/api/v1/live/sse").status_code == 401
        r = client.get("/api/v1/live/sse", params={"ticket": ticket(server.url, keys["county_a"]), "grade": "x"})
        assert r.status_code == 422


def test_hub_publish_matches_naive_dispatch():
    """The vectorised fan-out against a per-reading reference, random subscriptions (seed 7)."""
    rng = np.random.default_rng(7)
    hub = ReadingHub(queue_size=10_000)
    subs = [rng.choice(np.arange(1, 200), size=rng.integers(1, 20), replace=False) for _ in range(30)]
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        clients = [hub.subscribe(s.tolist()) for s in subs]
        b = ReadingBatch.build(sensor=rng.integers(0, 250, 5000), ts_us=np.arange(5000), value=rng.normal(size=5000))
        hub.publish(b)
        for s, c in zip(subs, clients, strict=True):
            want = [(int(x), int(t)) for x, t in zip(b.sensor, b.ts_us, strict=True) if x in set(s.tolist())]
            got = []
            while not c.queue.empty():
                m = json.loads(c.queue.get_nowait())
                got += list(zip(m["sensor"], m["ts_us"], strict=True))
            assert sorted(got) == sorted(want)
            # within one sensor, arrival order is kept
            for sensor in set(x for x, _ in want):
                assert [t for x, t in got if x == sensor] == [t for x, t in want if x == sensor]
        for c in clients:
            c.close()
        assert hub.clients == 0 and not hub._watched.any()
    finally:
        loop.close()


def test_ops_endpoints(client, db_url, seeded):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] and r.json()["database"]
    assert "yujing_api_requests_total" in client.get("/metrics").text
    server = ApiServer(db_url, ready=lambda: {"broker": False, "ingest_lag_s": 12.0}).start()
    try:
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 503 and r.json()["broker"] is False
    finally:
        server.stop()


def test_rate_limit_per_key(client, db_url):
    import asyncio

    import asyncpg

    from api import Scope, create_key

    async def make():
        conn = await asyncpg.connect(db_url)
        try:
            return (await create_key(conn, Scope.parse("province"), "slow", rate_per_s=1, burst=3))[0]
        finally:
            await conn.close()

    key = asyncio.run(make())
    codes = [client.get("/api/v1/regions", headers=auth(key)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    r = client.get("/api/v1/regions", headers=auth(key))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
