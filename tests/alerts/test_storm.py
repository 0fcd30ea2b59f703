"""An alert storm: 10,000 findings in one minute on 10,000 sensors of 50 zones. They fold into one
incident per zone (place and cause); notifications stay bounded by the grouping rules (at most one
per group per group_interval, plus one per rise in grade), and every finding is accounted for:
listed as evidence, or counted in ``evidence_dropped`` when the list is full."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict

import asyncpg
import pytest

from tests.alerts.support import (
    ALARM, RAISE, UPDATE, WARNING, add_storm_sensors, findings, make_policy, make_service, outbox,
)

N, ZONES, BATCHES = 10_000, 50, 100


@pytest.mark.timeout(300)
async def test_storm_of_10000_findings_in_one_minute(seeded, clock, receiver):
    conn = await asyncpg.connect(seeded)
    sensors = await add_storm_sensors(conn, N, ZONES)
    await conn.close()
    pool = await asyncpg.create_pool(seeded, min_size=1, max_size=4)
    try:
        svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
        t0 = clock.t
        per = N // BATCHES
        rising = set(sensors[:: 50])  # 200 sensors reach the power-cut setpoint mid-storm
        handle_s = []
        rises = 0
        for b in range(BATCHES):
            clock.t = t0 + b * 0.6
            rows = [(s, "limit", RAISE, WARNING, clock.t, 1.2, 1.0) for s in sensors[b * per:(b + 1) * per]]
            if b >= BATCHES // 2:
                rows += [(s, "limit", UPDATE, ALARM, clock.t, 1.6, 1.5)
                         for s in sensors[(b - BATCHES // 2) * per:(b - BATCHES // 2 + 1) * per] if s in rising]
            rises += len(rows) - per
            start = time.perf_counter()
            await svc.handle(findings(rows))
            handle_s.append(time.perf_counter() - start)
            await svc.tick()
        clock.t = t0 + 60
        await svc.tick()
        async with pool.acquire() as c:
            minute = [r for r in await outbox(c, "control-room")]
            assert await c.fetchval("SELECT count(*) FROM alerts") == ZONES  # one incident per zone
            assert await c.fetchval("SELECT count(DISTINCT alert_key) FROM alerts") == ZONES
            # every finding accounted for: listed (at most 64 per incident) or counted
            listed, unlisted = await c.fetchrow(
                "SELECT sum(jsonb_array_length(evidence)), sum(evidence_dropped) FROM alerts")
            assert listed == ZONES * 64 and listed + unlisted >= N
            grades = Counter(r["grade"] for r in await c.fetch("SELECT grade FROM alerts"))
            # the zone of the 200 rising sensors: 3+ points in power-cut spread it to red, and its
            # listed evidence is the orange (power-cut) one, which replaced the yellow
            red = await c.fetchrow("SELECT upgraded, evidence::text FROM alerts WHERE grade = 4")
            assert red is not None and red["upgraded"] == "spread"
            assert all(e["grade"] == 3 for e in json.loads(red["evidence"]))
        per_group = Counter(r["payload"]["group_key"] for r in minute)
        groups_by_route = defaultdict(list)
        for gk, n in per_group.items():
            groups_by_route[gk.split("|", 1)[0]].append(n)
        # yellow groups (catch-all route 0.2: group_wait 30 s, group_interval 5 min): one message each
        assert groups_by_route["0.2"] and max(groups_by_route["0.2"]) == 1
        # orange/red groups (route 0.1: group_wait 0, group_interval 1 min): the first flush plus one
        # per batch that raised a grade in the group (urgent), never more
        rises_per_batch_and_zone = BATCHES // 2  # every later batch raised some sensor in a zone
        assert max(groups_by_route["0.1"]) <= 1 + rises_per_batch_and_zone
        total = len(minute)
        assert total <= len(per_group) * 2 + BATCHES  # bounded by groups, not by findings
        # let the storm settle: every alert is in some notification, none twice per version
        for _ in range(12):
            clock.advance(60)
            await svc.tick()
        async with pool.acquire() as c:
            rows = await outbox(c, "control-room")
        told = {(a["alert_key"], a["version"]) for r in rows for a in r["payload"]["alerts"]}
        assert {k for k, _ in told} == {f"zone:{100 + z}:methane" for z in range(ZONES)}
        assert grades == Counter({2: ZONES - 1, 4: 1})
        print(f"\nstorm: {N} findings (+{rises} rises) in 60 s → {total} notifications in the first minute "
              f"over {len(per_group)} groups ({len(rows)} after 13 min); grades {dict(grades)}; "
              f"handle() per 100-finding batch p50 {sorted(handle_s)[len(handle_s) // 2] * 1e3:.1f} ms, "
              f"max {max(handle_s) * 1e3:.1f} ms")
    finally:
        await pool.close()
