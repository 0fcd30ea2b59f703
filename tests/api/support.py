"""The API served by uvicorn on a thread of its own (its own event loop and pool), so tests can
call it over real HTTP, WebSocket and SSE — from sync code (schemathesis, Playwright) or async
code — and drive the alerts service on the server's loop (``server.call``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import asyncpg
import uvicorn

from alerts.feed import AlertFeed
from api import ApiContext, ApiSettings, ReadingHub, Scope, create_app, create_key
from api.context import POOL_SERVER_SETTINGS, SERVER_OPTIONS, keep_session
from store.registry_records import import_registry, load_snapshot
from store.registry_file import parse_registry_file
from tests.support.services import free_port

REGISTRY_YAML = """
regions:
  - {code: "360102", name: 东湖区, parent: "360100"}
  - {code: "360202", name: 昌江区, parent: "360200"}
enterprises:
  - {id: EA1, name: 甲煤矿, region: "360102", industry: coal_mine, risk_colour: yellow}
  - {id: EA2, name: 甲化工, region: "360100", industry: hazardous_chemicals, risk_colour: blue}
  - {id: EB1, name: LEAKMARK乙煤矿, region: "360202", industry: coal_mine, risk_colour: blue}
zones:
  - {id: WF1, enterprise: EA1, name: 1301工作面, kind: working_face}
  - {id: WF1, enterprise: EB1, name: LEAKMARK工作面, kind: working_face}
gateways:
  - {id: G1, enterprise: EA1, zone: WF1, expected_interval_s: 10}
  - {id: G2, enterprise: EA2, expected_interval_s: 10}
  - {id: G1, enterprise: EB1, zone: WF1, expected_interval_s: 10, name: LEAKMARK网关}
sensors:
  - {id: CH4-0101, gateway: G1, enterprise: EA1, kind: methane, location: 采煤工作面, location_class: T1}
  - {id: CO-0101, gateway: G1, enterprise: EA1, kind: co, location: 回风巷}
  - {id: EX-0201, gateway: G2, enterprise: EA2, kind: combustible_gas, location: 储罐区}
  - {id: CH4-0101, gateway: G1, enterprise: EB1, kind: methane, location: LEAKMARK工作面, location_class: T1}
hazard_sources:
  - {id: HS1, enterprise: EA2, name: 液氨储罐区, level: 2, sensors: [EX-0201]}
  - {id: HS1, enterprise: EB1, name: LEAKMARK危险源, level: 1, sensors: [CH4-0101]}
"""

SCOPES = {
    "province": "province",  # the administrator
    "province_user": "province",
    "city_a": "city:360100",
    "county_a": "county:360102",
    "ent_a": "enterprise:EA1",
    "city_b": "city:360200",
    "ent_b": "enterprise:EB1",
}


async def seed(db_url: str) -> dict:
    """The registry above plus one key per scope; returns keys and the dense ids of interest."""
    conn = await asyncpg.connect(db_url)
    try:
        await import_registry(conn, parse_registry_file(REGISTRY_YAML))
        keys = {}
        for name, scope in SCOPES.items():
            plain, _ = await create_key(conn, Scope.parse(scope), name, rate_per_s=1000, burst=5000,
                                        admin=name == "province", live_sessions=10_000)  # bench/api.py: 500 feeds
            keys[name] = plain
        ids = {f"{r['enterprise']}/{r['code']}": r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM sensors")}
        gw = {f"{r['enterprise']}/{r['code']}": r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM gateways")}
        zones = {f"{r['enterprise']}/{r['code']}": r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM zones")}
        hs = {f"{r['enterprise']}/{r['code']}": r["id"] for r in await conn.fetch("SELECT id, enterprise, code FROM hazard_sources")}
    finally:
        await conn.close()
    return {"keys": keys, "sensors": ids, "gateways": gw, "zones": zones, "hazard_sources": hs}


def ticket(url: str, key: str) -> str:
    """A live-feed ticket for ``key`` (POST /api/v1/live/ticket)."""
    import httpx

    r = httpx.post(f"{url}/api/v1/live/ticket", headers={"X-API-Key": key}, timeout=10)
    r.raise_for_status()
    return r.json()["ticket"]


class ApiServer:
    def __init__(self, db_url: str, settings: ApiSettings = ApiSettings(), clock: Callable[[], float] = time.time,
                 ready: Callable[[], dict] | None = None, host: str = "127.0.0.1") -> None:
        self.db_url = db_url
        self.host = host  # where it listens; self.url is always its loopback address
        self.settings = settings
        self.clock = clock
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_facts = ready or (lambda: {"broker": True, "ingest_lag_s": 0.0})
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.server: uvicorn.Server | None = None
        self.snapshot = None

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            raise RuntimeError(f"API server did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self.pool = await asyncpg.create_pool(self.db_url, min_size=1, max_size=8, reset=keep_session,
                                              server_settings=POOL_SERVER_SETTINGS)
        await self.reload()
        self.hub = ReadingHub(self.settings.live_queue)
        self.feed = AlertFeed(self.settings.live_queue)
        self.ctx = ApiContext(pool=self.pool, registry=lambda: self.snapshot, reading_hub=self.hub,
                              ready=self.ready_facts, settings=self.settings, alert_feed=self.feed, clock=self.clock)
        self.app = create_app(self.ctx)
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                ws_ping_interval=None, **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        serving = asyncio.ensure_future(self.server.serve())
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.02)
        self._started.set()
        try:
            await serving
        finally:
            await self.pool.close()

    async def reload(self) -> None:
        async with self.pool.acquire() as conn:
            self.snapshot = await load_snapshot(conn, lambda industry: 120)

    def call(self, fn: Callable[[], Awaitable], timeout_s: float = 30.0):
        """Run ``fn()`` (a coroutine function) on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout_s)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


# --------------------------------------------------------------------------- alerts on the server's loop

from domain.severity import FindingEvent, Severity  # noqa: E402


class Alerts:
    """The alerts service of the alerts package, run on the server's loop with a real clock,
    publishing to the server's AlertFeed. Findings are (sensor id, rule, event, severity, value, setpoint)."""

    def __init__(self, server: ApiServer) -> None:
        from alerts.service import AlertsService
        from domain.clock import now_us
        from tests.alerts.support import make_policy

        self.server = server
        self.svc = AlertsService(server.pool, make_policy("http://127.0.0.1:9"), lambda: server.snapshot,
                                 now_us, server.feed)
        server.call(self.svc.tick)  # the feed starts at the journal's head

    def findings(self, rows: list[tuple]) -> None:
        from tests.alerts.support import findings

        now = time.time()
        batch = findings([(s, rule, ev, sev, now, value, setpoint) for s, rule, ev, sev, value, setpoint in rows])
        self.server.call(lambda: self.svc.handle(batch))
        self.server.call(self.svc.tick)

    def raise_(self, sensor: int, severity: Severity = Severity.WARNING, value: float = 1.2,
               setpoint: float = 1.0, rule: str = "limit") -> None:
        self.findings([(sensor, rule, FindingEvent.RAISE, severity, value, setpoint)])

    def tick(self) -> None:
        self.server.call(self.svc.tick)
