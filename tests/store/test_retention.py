"""Retention: whole chunks past the longest retention, per-industry trimming, dead letters."""

from __future__ import annotations

import datetime as dt

import asyncpg
import numpy as np
import pytest

from domain.messages import ReadingBatch
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from store.retention import apply_retention
from store.writer import ReadingWriter, WriteBatch
from store.settings import RetentionSettings

NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
DAY_US = 86_400_000_000
REGISTRY = """
enterprises:
  - {id: COAL, name: 煤矿, region: "360100", industry: coal_mine}
  - {id: GAS, name: 燃气, region: "360100", industry: gas_pipeline}
gateways: [{id: G1, enterprise: COAL}, {id: G1, enterprise: GAS}]
sensors:
  - {id: S1, gateway: G1, enterprise: COAL, kind: methane}
  - {id: S1, gateway: G1, enterprise: GAS, kind: methane}
"""


async def test_retention_per_industry(db_url, db):
    await import_registry(db, parse_registry_file(REGISTRY))
    coal = await db.fetchval("SELECT id FROM sensors WHERE enterprise = 'COAL'")
    gas = await db.fetchval("SELECT id FROM sensors WHERE enterprise = 'GAS'")
    now_us = int(NOW.timestamp() * 1e6)
    ages_days = [1, 40, 100, 200]
    sensors = [coal] * 4 + [gas] * 4
    ts = [now_us - a * DAY_US for a in ages_days] * 2
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        await ReadingWriter(pool).write(WriteBatch(ReadingBatch.build(sensor=sensors, ts_us=ts, value=np.ones(8)), [], [], [], 0))
    finally:
        await pool.close()
    await db.execute("INSERT INTO dead_letters (received_at, reason, detail, topic, payload) VALUES "
                     "($1, 'bad_schema', 'old', 't', ''), ($2, 'bad_schema', 'new', 't', '')",
                     NOW - dt.timedelta(days=60), NOW - dt.timedelta(days=1))
    policy = RetentionSettings(coal_mine=120, gas_pipeline=30, dead_letters=30)
    report = await apply_retention(db, policy, NOW)
    left = sorted((r["enterprise"], round((NOW - r["ts"]).days)) for r in await db.fetch(
        "SELECT s.enterprise, r.ts FROM readings r JOIN sensors s ON s.id = r.sensor"))
    assert left == [("COAL", 1), ("COAL", 40), ("COAL", 100), ("GAS", 1)]
    assert report.chunks_dropped >= 1 and report.rows_deleted["gas_pipeline"] == 2
    assert [r["detail"] for r in await db.fetch("SELECT detail FROM dead_letters")] == ["new"]


def test_coal_mines_keep_at_least_three_months():
    with pytest.raises(ValueError):
        RetentionSettings(coal_mine=30)
