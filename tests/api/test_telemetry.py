"""Telemetry endpoints: latest, raw range, aggregates from the rollups (plan reads the rollup),
CSV export; other scopes' sensors answer 404."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import asyncpg
import numpy as np

from store.telemetry import aggregate_source, aggregate_sql
from domain.messages import ReadingBatch
from store.rollups import rollup_once
from store.writer import ReadingWriter, WriteBatch
from tests.api.conftest import auth

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T0_US = int(T0.timestamp() * 1e6)


async def write_series(db_url: str, sensor: int, n: int, step_s: float = 1.0) -> np.ndarray:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        ts = T0_US + (np.arange(n) * step_s * 1e6).astype(np.int64)
        value = 0.3 + 0.1 * np.sin(np.arange(n) / 50.0)
        readings = ReadingBatch.build(sensor=np.full(n, sensor), ts_us=ts, value=value, received_us=ts)
        await ReadingWriter(pool).write(WriteBatch(readings, [], [], mids=[1], messages=1))
        async with pool.acquire() as conn:
            while (await rollup_once(conn, T0_US + 10 * 86400 * 1_000_000)).minutes:
                pass
    finally:
        await pool.close()
    return value


async def test_latest_raw_aggregates_csv(client, keys, seeded, db_url):
    sid = seeded["sensors"]["EA1/CH4-0101"]
    other = seeded["sensors"]["EB1/CH4-0101"]
    value = await write_series(db_url, sid, 3 * 3600)  # three hours at 1 Hz
    await write_series(db_url, other, 60)
    h = auth(keys["county_a"])

    latest = client.get("/api/v1/telemetry/latest", headers=h).json()
    by_sensor = {r["sensor"]: r for r in latest}
    assert set(by_sensor) == {sid, seeded["sensors"]["EA1/CO-0101"]}
    assert by_sensor[sid]["value"] == value[-1] and by_sensor[sid]["ts"].startswith("2026-01-01T02:59:59")
    assert client.get(f"/api/v1/sensors/{sid}/latest", headers=h).json()["value"] == value[-1]

    q = {"start": T0.isoformat(), "end": (T0 + dt.timedelta(minutes=10)).isoformat()}
    raw = client.get(f"/api/v1/sensors/{sid}/readings", params=q, headers=h).json()
    assert len(raw["ts"]) == 600 and raw["value"] == value[:600].tolist()
    text = client.get(f"/api/v1/sensors/{sid}/readings", params={**q, "format": "csv"}, headers=h).text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["ts", "value", "quality", "device_ts"] and len(rows) == 601

    q = {"start": T0.isoformat(), "end": (T0 + dt.timedelta(hours=3)).isoformat(), "bucket": "1h"}
    agg = client.get(f"/api/v1/sensors/{sid}/aggregates", params=q, headers=h).json()
    assert agg["source"] == "readings_1h" and len(agg["buckets"]) == 3
    for i, b in enumerate(agg["buckets"]):
        part = value[i * 3600:(i + 1) * 3600]
        assert b["count"] == 3600
        assert np.isclose(b["avg"], part.mean()) and b["min"] == part.min() and b["max"] == part.max()
        assert b["last"] == part[-1]
    agg15 = client.get(f"/api/v1/sensors/{sid}/aggregates", params={**q, "bucket": "15m"}, headers=h).json()
    assert agg15["source"] == "readings_1m" and len(agg15["buckets"]) == 12
    assert np.isclose(agg15["buckets"][0]["avg"], value[:900].mean())
    agg10s = client.get(f"/api/v1/sensors/{sid}/aggregates", params={**q, "bucket": "10s"}, headers=h).json()
    assert agg10s["source"] == "readings" and len(agg10s["buckets"]) == 1080
    text = client.get(f"/api/v1/sensors/{sid}/aggregates", params={**q, "format": "csv"}, headers=h).text
    assert text.splitlines()[0] == "bucket,min,max,avg,last,count" and len(text.splitlines()) == 4

    sp = client.get(f"/api/v1/sensors/{sid}/setpoints", headers=h).json()
    assert {p["name"] for p in sp["setpoints"]} >= {"alarm"}

    for path in ("latest", "readings", "aggregates", "setpoints"):
        assert client.get(f"/api/v1/sensors/{other}/{path}", headers=h).status_code == 404
    assert client.get(f"/api/v1/sensors/{sid}/aggregates", params={**q, "bucket": "7x"}, headers=h).status_code == 422


async def test_latest_is_fresh_before_the_rollup_covers_it(client, keys, seeded, db_url):
    """/latest reads sensor_latest (kept by the rollup worker) and, for the last few minutes,
    the raw readings: a reading committed a second ago shows at once, before any rollup."""
    sid = seeded["sensors"]["EA1/CH4-0101"]
    co = seeded["sensors"]["EA1/CO-0101"]
    await write_series(db_url, sid, 60)
    old = await write_series(db_url, co, 60)
    now_us = int(time.time() * 1e6)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    try:
        fresh = ReadingBatch.build(sensor=[sid], ts_us=[now_us - 1_000_000], value=[1.25], quality=[1],
                                   received_us=[now_us])
        await ReadingWriter(pool).write(WriteBatch(fresh, [], [], mids=[1], messages=1))
    finally:
        await pool.close()
    h = auth(keys["ent_a"])
    by_sensor = {r["sensor"]: r for r in client.get("/api/v1/telemetry/latest", headers=h).json()}
    assert (by_sensor[sid]["value"], by_sensor[sid]["quality"]) == (1.25, 1)
    assert by_sensor[co]["value"] == old[-1] and by_sensor[co]["ts"].startswith("2026-01-01T00:00:59")
    one = client.get(f"/api/v1/sensors/{sid}/latest", headers=h).json()
    assert (one["value"], one["quality"]) == (1.25, 1)
    ids = client.get("/api/v1/telemetry/latest", params={"sensor": [co]}, headers=h).json()
    assert [r["sensor"] for r in ids] == [co]


async def test_hourly_plan_reads_the_hour_rollup(db_url, seeded):
    assert aggregate_source(3600) == "readings_1h" and aggregate_source(900) == "readings_1m"
    sid = seeded["sensors"]["EA1/CH4-0101"]
    await write_series(db_url, sid, 2 * 3600, step_s=15.0)  # 30 hours
    conn = await asyncpg.connect(db_url)
    try:
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN " + aggregate_sql(3600), sid, dt.timedelta(hours=1), T0, T0 + dt.timedelta(days=30)))
    finally:
        await conn.close()
    assert "readings_1h" in plan and "readings_1m" not in plan, plan
    assert "readings_sensor_ts" not in plan and "readings_ts_brin" not in plan, plan
