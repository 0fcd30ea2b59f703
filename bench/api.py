"""API benchmark: latest values and 30-day aggregates (requests/s, p50/p99), the rollup worker's
catch-up rate, and live-feed clients served at full ingest.

    .venv/bin/python bench/api.py [--total-rows 5000000] [--requests 2000] [--concurrency 8]
        [--live-clients 500] [--ingest-rate 20000] [--live-seconds 5]

One target sensor sampled every second for 30 days (2.6 M rows) among --total-rows rows (the
issue's figure is 50 M: pass --total-rows 50000000; it takes ~10 min to load on 2 cores). Rows are
loaded with server-side generate_series and marked dirty as the writer does; the rollup worker
then catches up (its rate is reported). The API runs in this process on a thread of its own
(uvicorn, as in `yujing run`); clients run in a child process (httpx with --concurrency
connections; websockets for the live feed), so they do not share the server's GIL.
Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from domain.messages import ReadingBatch  # noqa: E402
from store.rollups import rollup_once  # noqa: E402
from tests.api.support import ApiServer, seed  # noqa: E402
from tests.support import services  # noqa: E402

DAY_S = 86400
END = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
START = END - dt.timedelta(days=30)


def emit(name: str, **fields) -> None:
    print(json.dumps({"bench": name, **fields}, ensure_ascii=False), flush=True)


async def load(db_url: str, total_rows: int, other_sensors: int) -> tuple[int, list[int]]:
    conn = await asyncpg.connect(db_url, command_timeout=3600)
    try:
        await conn.execute(
            """INSERT INTO sensors (enterprise, code, gateway, kind, unit, expected_interval_s)
               SELECT 'EA1', 'B' || i, (SELECT id FROM gateways WHERE enterprise = 'EA1' AND code = 'G1'),
                      'methane', '%VOL', 1 FROM generate_series(1, $1) i""", other_sensors)
        target = await conn.fetchval("SELECT id FROM sensors WHERE enterprise = 'EA1' AND code = 'CH4-0101'")
        others = [r["id"] for r in await conn.fetch("SELECT id FROM sensors WHERE code LIKE 'B%' ORDER BY id")]
        started = time.perf_counter()
        await conn.execute(
            """INSERT INTO readings (ts, sensor, value)
               SELECT t, $1, 0.3 + 0.1 * sin(extract(epoch FROM t) / 600) FROM generate_series($2::timestamptz, $3::timestamptz, interval '1 second') t""",
            target, START, END - dt.timedelta(seconds=1))
        target_rows = 30 * DAY_S
        rest = max(0, total_rows - target_rows)
        if rest and others:
            step_s = max(1, int(30 * DAY_S * len(others) / rest))
            await conn.execute(
                """INSERT INTO readings (ts, sensor, value)
                   SELECT t, s, random() FROM unnest($1::int[]) s,
                          generate_series($2::timestamptz, $3::timestamptz, make_interval(secs => $4)) t""",
                others, START, END - dt.timedelta(seconds=1), float(step_s))
        await conn.execute("INSERT INTO rollup_dirty SELECT generate_series($1::timestamptz, $2::timestamptz, interval '1 minute') ON CONFLICT DO NOTHING",
                           START, END - dt.timedelta(minutes=1))
        rows = await conn.fetchval("SELECT count(*) FROM readings")
        emit("load", rows=rows, target_rows=target_rows, seconds=round(time.perf_counter() - started, 1))
        await conn.execute("ANALYZE readings")
        started = time.perf_counter()
        minutes = 0
        while True:
            done = await rollup_once(conn, int(time.time() * 1e6), max_minutes=1440)
            if not done.minutes:
                break
            minutes += done.minutes
        seconds = time.perf_counter() - started
        emit("rollup_catch_up", minutes=minutes, rows=rows, seconds=round(seconds, 1),
             rows_per_s=round(rows / seconds))
        await conn.execute("ANALYZE readings_1m; ANALYZE readings_1h")
        # the query alone, through asyncpg: the target (p99 < 50 ms, plan reads the rollup)
        from api.routes.telemetry import aggregate_sql

        sql = aggregate_sql(3600)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN ANALYZE " + sql, target, dt.timedelta(hours=1),
                                                            START, END))
        lat = []
        for _ in range(300):
            t0 = time.perf_counter()
            await conn.fetch(sql, target, dt.timedelta(hours=1), START, END)
            lat.append(time.perf_counter() - t0)
        emit("aggregate_30d_query", p50_ms=round(1e3 * float(np.percentile(lat, 50)), 2),
             p99_ms=round(1e3 * float(np.percentile(lat, 99)), 2), reads_hour_rollup="readings_1h" in plan,
             reads_raw="readings_sensor_ts" in plan)
        return target, others
    finally:
        await conn.close()


async def sensors_only(db_url: str, other_sensors: int) -> tuple[int, list[int]]:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            """INSERT INTO sensors (enterprise, code, gateway, kind, unit, expected_interval_s)
               SELECT 'EA1', 'B' || i, (SELECT id FROM gateways WHERE enterprise = 'EA1' AND code = 'G1'),
                      'methane', '%VOL', 1 FROM generate_series(1, $1) i""", other_sensors)
        target = await conn.fetchval("SELECT id FROM sensors WHERE enterprise = 'EA1' AND code = 'CH4-0101'")
        others = [r["id"] for r in await conn.fetch("SELECT id FROM sensors WHERE code LIKE 'B%' ORDER BY id")]
        return target, others
    finally:
        await conn.close()


async def hammer(url: str, key: str, path: str, params: dict, requests: int, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.get(path, params=params)
                lat.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        seconds = time.perf_counter() - started
    return {"requests": requests, "errors": errors, "req_per_s": round(requests / seconds),
            "p50_ms": round(1e3 * float(np.percentile(lat, 50)), 2),
            "p99_ms": round(1e3 * float(np.percentile(lat, 99)), 2)}


def _hammer_in_child(url, key, path, params, requests, concurrency) -> dict:
    return asyncio.run(hammer(url, key, path, params, requests, concurrency))


def _live_clients_in_child(url: str, key: str, sensors: list[int], clients: int, seconds: float, ready, go) -> dict:
    """`clients` WebSocket clients, each on 10 sensors' readings and its enterprise's alerts."""
    from websockets.asyncio.client import connect

    all_sensors = np.asarray(sensors, np.int32)
    stats = {"received": 0, "dropped": 0, "connected": 0}

    async def client(i: int) -> None:
        chosen = all_sensors[(i * 10 + np.arange(10)) % all_sensors.size]
        q = "&".join(f"sensor={s}" for s in chosen.tolist())
        url_i = url.replace("http", "ws") + f"/api/v1/live/ws?api_key={key}&enterprise=EA1&{q}"
        async with connect(url_i, open_timeout=120, max_queue=None) as ws:
            await ws.recv()
            stats["connected"] += 1
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), seconds + 5)
                    stats["received"] += 1
            except Exception as exc:  # noqa: BLE001 — a close or the end of the run ends the client
                stats["dropped"] += "4408" in str(exc)

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(clients):
                tg.create_task(client(i))
            while stats["connected"] < clients:
                await asyncio.sleep(0.1)
            ready.set()

    asyncio.run(run())
    return stats


def live(server: ApiServer, key: str, sensors: list[int], clients: int, rate: float, seconds: float) -> None:
    """Clients in a child process; the service thread publishes `rate` readings/s (a batch every
    50 ms, random sensors) and measures what publish() costs it."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    all_sensors = np.asarray(sensors, np.int32)
    batch_n = max(1, int(rate * 0.05))
    stats = {"publish_s": 0.0, "batches": 0}

    async def publisher() -> None:
        rng = np.random.default_rng(1)
        ts = int(time.time() * 1e6)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            b = ReadingBatch.build(sensor=rng.choice(all_sensors, batch_n), ts_us=ts + np.arange(batch_n),
                                   value=rng.normal(size=batch_n))
            ts += batch_n
            t0 = time.perf_counter()
            server.hub.publish(b)
            stats["publish_s"] += time.perf_counter() - t0
            stats["batches"] += 1
            await asyncio.sleep(0.05)

    results = ctx.Queue()
    proc = ctx.Process(target=lambda: results.put(_live_clients_in_child(server.url, key, sensors, clients, seconds,
                                                                         ready, go)))
    proc.start()
    try:
        if not ready.wait(300):
            raise RuntimeError("live clients did not connect within 300 s")
        server.call(publisher, timeout_s=seconds + 60)
        child = results.get(timeout=seconds + 120)
    finally:
        proc.join(10)
    batches = max(1, stats["batches"])
    emit("live_feed", clients=clients, served=child["connected"], ingest_rate=rate, seconds=seconds,
         messages_received=child["received"], clients_dropped=child["dropped"],
         publish_ms_per_batch=round(1e3 * stats["publish_s"] / batches, 3), readings_per_batch=batch_n,
         publish_cpu_share=round(stats["publish_s"] / seconds, 4))


async def main_async(args) -> None:
    await services.create_template("yj_bench_api_template")
    name = await services.clone_database("yj_bench_api_template")
    db_url = services.database_url(name)
    try:
        seeded = await seed(db_url)
        if args.live_only:
            target, others = await sensors_only(db_url, args.other_sensors)
        else:
            target, others = await load(db_url, args.total_rows, args.other_sensors)
        server = ApiServer(db_url).start()
        try:
            key = seeded["keys"]["province"]
            if args.live_only:
                await asyncio.to_thread(live, server, seeded["keys"]["ent_a"], [target, *others], args.live_clients,
                                        args.ingest_rate, args.live_seconds)
                return
            import concurrent.futures
            import multiprocessing

            pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            run = lambda *a: asyncio.wrap_future(pool.submit(_hammer_in_child, server.url, key, *a))  # noqa: E731
            latest = await run("/api/v1/telemetry/latest", {"sensor": [target, *others[:99]], "limit": 100},
                               args.requests, args.concurrency)
            emit("latest_values_100_sensors", **latest)
            agg = await run(f"/api/v1/sensors/{target}/aggregates",
                            {"start": START.isoformat(), "end": END.isoformat(), "bucket": "1h"},
                            args.requests, args.concurrency)
            pool.shutdown()
            emit("aggregate_30d_1h_http", **agg)
            await asyncio.to_thread(live, server, seeded["keys"]["ent_a"], [target, *others], args.live_clients,
                                    args.ingest_rate, args.live_seconds)
        finally:
            server.stop()
    finally:
        await services.drop_database(name)
        await services.drop_database("yj_bench_api_template")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--total-rows", type=int, default=5_000_000)
    p.add_argument("--other-sensors", type=int, default=200)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--live-clients", type=int, default=500)
    p.add_argument("--ingest-rate", type=float, default=20_000)
    p.add_argument("--live-seconds", type=float, default=5)
    p.add_argument("--live-only", action="store_true", help="skip loading rows and the HTTP measurements")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
