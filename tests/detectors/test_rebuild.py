"""Restart: rebuild state from the readings table without a burst of findings."""

from __future__ import annotations

import datetime as dt

import numpy as np

from detectors import DetectorConfig, Engine
from detectors.rebuild import rebuild
from domain.messages import ReadingBatch
from store.telemetry import recent_readings
from tests.detectors.fleet import snapshot

S = 1_000_000
T0 = 1_700_000_000 * S


def make():
    e = Engine(DetectorConfig.from_config({"compound": []}))
    e.set_registry(snapshot(["methane", "methane", "co"], ["T1", "T1", "coal"]))
    return e


async def test_rebuild_restores_excursions_silently(db):
    rng = np.random.default_rng(8)
    rows, sensors, tss, vals = [], [], [], []
    for i in range(300):
        t = T0 + i * 10 * S
        v1 = 1.6 if i >= 250 else 0.3 + 0.01 * rng.standard_normal()  # power-cut level at the end
        v2 = 0.3 + 0.01 * rng.standard_normal()
        for s, v in ((1, v1), (2, v2), (3, 5.0)):
            rows.append((dt.datetime.fromtimestamp(t / S, dt.UTC), s, float(v), 0))
            sensors.append(s)
            tss.append(t)
            vals.append(v)
    await db.copy_records_to_table("readings", records=rows, columns=["ts", "sensor", "value", "quality"])
    live = make()
    live.update(ReadingBatch.build(sensor=sensors, ts_us=tss, value=vals))
    now = T0 + 300 * 10 * S
    restarted = make()
    n = await rebuild(restarted, recent_readings(db, now, lookback_s=3600))
    assert n == 900
    key = lambda b: sorted((r.subject, r.rule, r.severity) for r in b.rows())  # noqa: E731
    assert key(restarted.active()) == key(live.active())
    assert (1, "limit", 3) in key(restarted.active())
    # the broker redelivers the last unacknowledged batch, then new data: nothing new to say
    redelivered = ReadingBatch.build(sensor=sensors[-30:], ts_us=tss[-30:], value=vals[-30:])
    assert len(restarted.update(redelivered)) == 0
    nxt = ReadingBatch.build(sensor=[1, 2, 3], ts_us=[now] * 3, value=[1.6, 0.3, 5.0])
    assert len(restarted.update(nxt)) == 0
