"""Shared helpers for the alerts tests: a fake clock, a small registry, local receivers."""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import asyncpg
import numpy as np

from alerts.feed import AlertFeed
from alerts.policy import from_config
from alerts.service import AlertsService
from domain.messages import FindingBatch
from domain.registry import (
    EnterpriseInfo,
    GatewayInfo,
    RegionInfo,
    RegistrySnapshot,
    SensorInfo,
    SensorTable,
    ZoneInfo,
)
from domain.severity import FindingEvent, Severity, SubjectKind

T0 = 1_764_400_000.0  # 2025-11-29 07:06:40 UTC, a Saturday


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t

    @property
    def us(self) -> int:
        return int(self.t * 1e6)


# --------------------------------------------------------------------------- registry

REGISTRY_SQL = """
INSERT INTO regions (code, name, parent, level) VALUES
  ('360000', '江西省', NULL, 'province'), ('360100', '南昌市', '360000', 'city'),
  ('360102', '东湖区', '360100', 'county'), ('360200', '景德镇市', '360000', 'city')
  ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent = EXCLUDED.parent, level = EXCLUDED.level;
INSERT INTO enterprises (id, name, region, industry, risk_colour, contacts) VALUES
  ('E001', '某煤矿', '360100', 'coal_mine', 'yellow', $1::text::jsonb),
  ('E002', '某化工厂', '360102', 'hazardous_chemicals', 'orange', '[]'),
  ('E003', '某冷库', '360200', 'cold_storage', 'blue', '[]');
INSERT INTO zones (id, enterprise, code, name, kind) VALUES
  (1, 'E001', 'WF1301', '1301采煤工作面', 'working_face'), (2, 'E001', 'RW1301', '1301回风巷', 'roadway'),
  (3, 'E002', 'TF01', '罐区', 'tank_farm'), (4, 'E003', 'MR01', '氨机房', 'machine_room');
INSERT INTO gateways (id, enterprise, code, zone) VALUES (1, 'E001', 'G001', 1), (2, 'E002', 'G002', 3), (3, 'E003', 'G003', 4),
  (4, 'E003', 'G004', 4);
INSERT INTO sensors (id, enterprise, code, gateway, zone, kind, unit, location, location_class, expected_interval_s) VALUES
  (1, 'E001', 'CH4-0101', 1, 1, 'methane', '%VOL', '采煤工作面', 'T1', 10),
  (2, 'E001', 'CH4-0102', 1, 1, 'methane', '%VOL', '采煤工作面上隅角', 'T0', 10),
  (3, 'E001', 'CO-0101', 1, 2, 'carbon_monoxide', 'ppm', '回风巷', '', 10),
  (4, 'E002', 'EX-0201', 2, 3, 'combustible_gas', '%LEL', '储罐区', '', 10),
  (5, 'E003', 'NH3-0301', 3, 4, 'ammonia', 'ppm', '氨机房', '', 10),
  (6, 'E001', 'CH4-0201', 1, 2, 'methane', '%VOL', '回风巷', 'T2', 10),
  (7, 'E003', 'NH3-0302', 4, 4, 'ammonia', 'ppm', '氨机房东侧', '', 10);
SELECT setval('zones_id_seq', 10), setval('gateways_id_seq', 10), setval('sensors_id_seq', 10);
"""

N_SENSORS = 7


async def seed_registry(conn: asyncpg.Connection, contacts: list[dict] | None = None) -> None:
    await conn.execute("SET search_path = public")
    stmts = REGISTRY_SQL.strip().split(";\n")
    await conn.execute(stmts[0])
    await conn.execute(stmts[1], json.dumps(contacts or [], ensure_ascii=False))
    for s in stmts[2:]:
        if s.strip():
            await conn.execute(s)


async def add_storm_sensors(conn: asyncpg.Connection, n: int, zones: int) -> list[int]:
    """n extra methane sensors of E001 spread over ``zones`` new zones; returns their ids."""
    await conn.execute(
        "INSERT INTO zones (id, enterprise, code, name) SELECT 100 + z, 'E001', 'Z' || z, '工作面' || z"
        " FROM generate_series(0, $1 - 1) z", zones)
    rows = await conn.fetch(
        """INSERT INTO sensors (id, enterprise, code, gateway, zone, kind, unit, location, expected_interval_s)
           SELECT 1000 + i, 'E001', 'S' || i, 1, 100 + (i % $2), 'methane', '%VOL', '工作面', 10
           FROM generate_series(0, $1 - 1) i RETURNING id""", n, zones)
    return sorted(r["id"] for r in rows)


async def load_snapshot(conn: asyncpg.Connection) -> RegistrySnapshot:
    """A registry snapshot read straight from the tables (as store.registry_records.load_snapshot does)."""
    regions = {r["code"]: RegionInfo(r["code"], r["name"], r["parent"], r["level"])
               for r in await conn.fetch("SELECT code, name, parent, level FROM regions")}
    enterprises = {r["id"]: EnterpriseInfo(r["id"], r["name"], r["region"], r["industry"], r["risk_colour"], r["active"])
                   for r in await conn.fetch("SELECT * FROM enterprises")}
    gateways = {r["id"]: GatewayInfo(r["id"], r["enterprise"], r["code"], float(r["expected_interval_s"]), r["active"])
                for r in await conn.fetch("SELECT * FROM gateways")}
    zones = {r["id"]: ZoneInfo(r["id"], r["enterprise"], r["code"], r["name"], ())
             for r in await conn.fetch("SELECT * FROM zones")}
    srows = await conn.fetch("SELECT * FROM sensors ORDER BY id")
    size = (srows[-1]["id"] + 1) if srows else 1
    table = SensorTable(
        active=np.zeros(size, bool), gateway=np.zeros(size, np.int32), zone=np.zeros(size, np.int32),
        kind=np.full(size, "", dtype=np.dtypes.StringDType()),
        location_class=np.full(size, "", dtype=np.dtypes.StringDType()),
        expected_interval_s=np.full(size, np.inf), range_min=np.full(size, np.nan), range_max=np.full(size, np.nan),
        retention_s=np.zeros(size))
    sensors = {}
    ids: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for r in srows:
        sensors[r["id"]] = SensorInfo(r["id"], r["enterprise"], r["code"], r["gateway"], r["zone"] or 0, r["kind"],
                                      r["unit"], r["location"], r["location_class"], {})
        ids[r["enterprise"]][r["code"]] = r["id"]
        table.active[r["id"]] = True
    return RegistrySnapshot(1, regions, enterprises, gateways, zones, sensors, table,
                            {(g.enterprise, g.code): g.id for g in gateways.values()}, dict(ids))


# --------------------------------------------------------------------------- findings

def findings(rows: list[tuple]) -> FindingBatch:
    """rows of (subject, rule, event, severity, ts_s, value, setpoint[, subject_kind])."""
    cols = list(zip(*[(*r, SubjectKind.SENSOR) if len(r) == 7 else r for r in rows], strict=True))
    return FindingBatch.build(
        subject=cols[0], rule=list(cols[1]), event=[int(e) for e in cols[2]], severity=[int(s) for s in cols[3]],
        ts_us=[int(t * 1e6) for t in cols[4]], value=cols[5], setpoint=cols[6], subject_kind=[int(k) for k in cols[7]],
    )


RAISE, UPDATE, CLEAR = FindingEvent.RAISE, FindingEvent.UPDATE, FindingEvent.CLEAR
NOTICE, WARNING, ALARM, CRITICAL = Severity.NOTICE, Severity.WARNING, Severity.ALARM, Severity.CRITICAL


# --------------------------------------------------------------------------- policy

def policy_doc(webhook_url: str, **overrides) -> dict:
    """A test policy: the default grading, one webhook receiver, short timers."""
    import importlib.resources

    import yaml

    doc = yaml.safe_load((importlib.resources.files("alerts") / "default_policy.yaml").read_text(encoding="utf-8"))
    doc["receivers"] = [
        {"name": "control-room", "webhook": [{"url": webhook_url}]},
        {"name": "gateways", "mqtt": [{"qos": 1}]},
        {"name": "county-centre", "webhook": [{"url": webhook_url + "/county"}]},
        {"name": "city-centre", "webhook": [{"url": webhook_url + "/city"}]},
        {"name": "province-centre", "webhook": [{"url": webhook_url + "/province"}]},
    ]
    doc["escalation"]["centres"] = {"360102": "county-centre", "360100": "city-centre", "360000": "province-centre"}
    doc["audit"] = {"anchor_dir": None}
    doc["outbox"] = {"backoff_initial": "1s", "backoff_max": "30s", "lease": "10s", "timeout": "5s"}
    doc.update(overrides)
    return doc


def make_policy(webhook_url: str, **overrides):
    return from_config(policy_doc(webhook_url, **overrides))


async def make_service(db_url: str, policy, clock: FakeClock, mqtt_publish=None, feed: AlertFeed | None = None,
                       pool: asyncpg.Pool | None = None) -> AlertsService:
    if pool is None:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        snap = await load_snapshot(conn)
    return AlertsService(pool, policy, lambda: snap, lambda: clock.us, feed or AlertFeed(), mqtt_publish)


async def outbox(conn: asyncpg.Connection, receiver: str | None = None) -> list[dict]:
    rows = await conn.fetch(
        "SELECT id, idempotency_key, receiver, channel, channel_type, payload::text AS payload, state, attempts,"
        " created_us FROM alert_outbox WHERE ($1::text IS NULL OR receiver = $1) ORDER BY id", receiver)
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


# --------------------------------------------------------------------------- local HTTP receiver

class Receiver:
    """A local HTTP server recording every request; answers from a script of (status, body)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: collections.deque = collections.deque()
        self.default = (200, b'{"errcode":0,"errmsg":"ok"}')
        self.on_request = None  # callable(request dict) run before answering
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                req = {"path": parts.path, "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                       "received": time.time()}
                with outer.lock:
                    outer.requests.append(req)
                    status, answer = outer.script.popleft() if outer.script else outer.default
                if callable(answer):
                    status, answer = answer(req)
                if outer.on_request is not None:
                    outer.on_request(req)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client was killed while we answered
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def json(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
