"""Gateway liveness: last-seen times and the stale flag."""

from __future__ import annotations

import datetime as dt

from store.gateway_liveness import write_liveness
from store.registry_records import import_registry
from store.registry_file import parse_registry_file

REGISTRY = """
enterprises: [{id: E1, name: 矿, region: "360100", industry: coal_mine}]
gateways: [{id: G1, enterprise: E1, expected_interval_s: 60}, {id: G2, enterprise: E1, expected_interval_s: 60}]
"""


async def test_seen_gateways_are_fresh_and_silent_ones_go_stale(db):
    await import_registry(db, parse_registry_file(REGISTRY))
    ids = {r["code"]: r["id"] for r in await db.fetch("SELECT id, code FROM gateways")}
    now = dt.datetime.now(dt.UTC)
    seen = {ids["G1"]: int(now.timestamp() * 1e6)}
    assert await write_liveness(db, seen, now) == []
    # 100 s later: G1 was seen 10 s ago, G2 never since its registration (> 1.5 × 60 s).
    later = now + dt.timedelta(seconds=100)
    stale = await write_liveness(db, {ids["G1"]: int(later.timestamp() * 1e6) - 10_000_000}, later)
    assert stale == [ids["G2"]]
    rows = {r["code"]: r for r in await db.fetch("SELECT code, stale, last_seen_at FROM gateways")}
    assert rows["G1"]["stale"] is False and rows["G1"]["last_seen_at"] is not None
    # G1 silent for 110 s goes stale too, and a message makes it fresh again.
    assert await write_liveness(db, {}, now + dt.timedelta(seconds=200)) == [ids["G1"]]
    await write_liveness(db, {ids["G1"]: int((now.timestamp() + 201) * 1e6)}, now + dt.timedelta(seconds=201))
    assert await db.fetchval("SELECT stale FROM gateways WHERE code = 'G1'") is False
