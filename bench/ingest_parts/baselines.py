"""Baselines the ingest benchmark measures in the same run as the service.

``copy_baseline``   the database's limit: binary COPY of exactly the rows the publisher sends (same
                    sensors, same timestamp rule, so the same chunks), 50,000 per transaction (the
                    service's largest batch) over two connections (its writers).
``HandRolled``      what a competent team writes by hand: paho-mqtt + asyncpg
                    ``copy_records_to_table``, a buffer flushed every 0.5 s or 10,000 rows, one
                    connection, QoS 1 acknowledged on receipt (so a crash loses the buffer), no
                    validation, no detectors, no exactly-once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import multiprocessing as mp
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np

from bench.ingest_parts.load import RowPlan
from bench.ingest_parts.search import percentile
from store.copy_format import READING_COLUMNS, readings_copy_buffer
from tests.support.services import tools_login

COPY_ROWS = 50_000
FLUSH_S = 0.5
FLUSH_ROWS = 10_000
LAG_SAMPLES_PER_FLUSH = 64


async def sensor_ids(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        return {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM sensors")}
    finally:
        await conn.close()


async def copy_baseline(db_url: str, duration_s: float) -> float:
    """Rows/s committed by two connections writing the publisher's rows in 50,000-row COPYs."""
    plan = RowPlan(await sensor_ids(db_url))
    rng = np.random.default_rng(1)
    values = (25.0 + rng.normal(0, 0.5, COPY_ROWS)).round(2)
    quality = np.zeros(COPY_ROWS, np.int16)
    totals = [0, 0]
    t_end = time.perf_counter() + duration_s

    async def worker(w: int) -> None:
        conn = await asyncpg.connect(db_url)
        try:
            while time.perf_counter() < t_end:
                ts_us, sensor = plan.take(COPY_ROWS // 50)  # the event loop runs one take at a time
                buf = readings_copy_buffer(ts_us, sensor, values, quality)
                async with conn.transaction():
                    await conn.copy_to_table("readings", source=io.BytesIO(buf), columns=READING_COLUMNS, format="binary")
                totals[w] += COPY_ROWS
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(worker(0), worker(1))
    return sum(totals) / (time.perf_counter() - start)


def handrolled_main(port: int, db_url: str, stats_path: str, committed: mp.Value, ready: mp.Event, stop: mp.Event) -> None:
    """The hand-rolled subscriber (a process of its own) until ``stop``; after each commit it
    appends ``commit-time lag-seconds`` lines for sampled rows to ``stats_path``."""
    import paho.mqtt.client as mqtt

    async def run() -> None:
        conn = await asyncpg.connect(db_url)
        ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM sensors")}
        buf: list[tuple] = []
        lock = threading.Lock()

        def on_message(client, userdata, msg) -> None:
            doc = json.loads(msg.payload)
            ts = dt.datetime.fromtimestamp(doc["ts"] / 1000, tz=dt.UTC)
            rows = [(ts, ids[r["s"]], float(r["v"]), 0) for r in doc["readings"] if r["s"] in ids]
            with lock:
                buf.extend(rows)

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-hand-{uuid.uuid4().hex[:8]}")
        client.on_message = on_message
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("yj/v1/+/+/up", qos=1)
        client.username_pw_set(*tools_login(port))
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        lags = open(stats_path, "a")
        last_flush = time.monotonic()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            if len(buf) < FLUSH_ROWS and time.monotonic() - last_flush < FLUSH_S:
                continue
            last_flush = time.monotonic()
            with lock:
                rows, buf[:] = list(buf), []
            if not rows:
                continue
            await conn.copy_records_to_table("readings", records=rows, columns=["ts", "sensor", "value", "quality"])
            now = time.time()
            committed.value += len(rows)
            step = max(1, len(rows) // LAG_SAMPLES_PER_FLUSH)
            lags.write("".join(f"{now:.3f} {now - r[0].timestamp():.4f}\n" for r in rows[::step]))
            lags.flush()
        client.loop_stop()
        await conn.close()
        lags.close()

    asyncio.run(run())


class HandRolled:
    """The hand-rolled subscriber as a process, with the same measuring interface as the service."""

    def __init__(self, port: int, db_url: str, work: Path) -> None:
        self.stats_path = work / f"hand-{uuid.uuid4().hex[:6]}.lags"
        self.committed, self.ready, self._stop = mp.Value("q", 0), mp.Event(), mp.Event()
        self.proc = mp.Process(target=handrolled_main, args=(port, db_url, str(self.stats_path), self.committed,
                                                             self.ready, self._stop), daemon=True)
        self.proc.start()
        if not self.ready.wait(60):
            raise RuntimeError("hand-rolled subscriber did not start")
        time.sleep(1.0)  # subscribed

    def lag_p99(self, t0: float, t1: float) -> float:
        """p99 of the lag of rows committed between wall times ``t0`` and ``t1``."""
        lags = []
        for line in self.stats_path.read_text().splitlines():
            t, lag = line.split()
            if t0 <= float(t) <= t1:
                lags.append(float(lag))
        return percentile(lags, 0.99)

    def stop(self) -> None:
        self._stop.set()
        self.proc.join(120)
