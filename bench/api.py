"""API benchmark: latest values and 30-day aggregates (requests/s, p50/p99), the rollup worker's
catch-up rate, and live-feed clients served at full ingest.

    .venv/bin/python bench/api.py [--total-rows 5000000] [--requests 2000] [--concurrency 8]
        [--live-clients 500] [--ingest-rate 20000] [--live-seconds 5] [--keep-database] [--show-plan]
    .venv/bin/python bench/api.py --database NAME ...      (measure a database a --keep-database run kept)
    .venv/bin/python bench/api.py --service --ingest-rate 150000 --live-seconds 40 [--repeats 3]

One target sensor sampled every second for the 30 days up to a minute ago (2.6 M rows) among
--total-rows rows (the issue's figure is 50 M: pass --total-rows 50000000; ~3 min to load and
~1.5 min of rollup catch-up on 2 cores). Rows are loaded with server-side generate_series and
marked dirty as the writer does; the rollup worker then catches up (its rate is reported). The
queries alone are timed through asyncpg with the API pool's settings; then over HTTP with one
client (latency) and --concurrency clients (throughput; in a closed loop p50 ≈ clients / rate),
with the CPU seconds of the client, the API and PostgreSQL. The API runs in this process on a
thread of its own (uvicorn, as in `yujing run`, with no ingest beside it); clients run in a child
process (httpx; websockets for the live feed), so they do not share the server's GIL.

--service: ingest through the real service instead — `yujing run` as a separate process, a
private PostgreSQL cluster and Mosquitto, the raw-socket publisher of bench/ingest.py offering
--ingest-rate readings/s in 50-reading messages from 1,000 gateways × 50 sensors — without and
with --live-clients WebSocket clients (client i on enterprise i's key, so its alerts, and 10 of
its sensors' readings), alternately, --repeats times: committed readings/s both ways.
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
# The 30 days end a minute ago, so the latest-values endpoint meets recent raw readings as in service.
END = dt.datetime.fromtimestamp(time.time() // 60 * 60 - 60, dt.UTC)
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
        await conn.execute("ANALYZE readings_1m; ANALYZE readings_1h; ANALYZE sensor_latest")
        return target, others
    finally:
        await conn.close()


async def query_alone(db_url: str, target: int, others: list[int], show_plan: bool) -> None:
    """The queries alone, through asyncpg: the issue's target (p99 < 50 ms, plan reads the rollup)."""
    from api.context import POOL_SERVER_SETTINGS
    from store.telemetry import LATEST_COLUMNS, LATEST_JOIN, LATEST_TAIL_S, aggregate_sql

    conn = await asyncpg.connect(db_url, server_settings=POOL_SERVER_SETTINGS)  # as the API's pool
    try:
        sql = aggregate_sql(3600)
        args = (target, dt.timedelta(hours=1), START, END)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args))
        if show_plan:
            print(plan, flush=True)
        lat = []
        for _ in range(300):
            t0 = time.perf_counter()
            await conn.fetch(sql, *args)
            lat.append(time.perf_counter() - t0)
        emit("aggregate_30d_query", **_percentiles(lat), reads_hour_rollup="readings_1h" in plan,
             reads_raw="readings_sensor_ts" in plan)
        latest_sql = (f"SELECT s.id, {LATEST_COLUMNS} FROM sensors s {LATEST_JOIN.format(since='$2')}"
                      " WHERE s.id = ANY($1::int[]) ORDER BY s.id")
        ids = [target, *others[:99]]
        lat = []
        for _ in range(300):
            t0 = time.perf_counter()
            await conn.fetch(latest_sql, ids, dt.datetime.fromtimestamp(time.time() - LATEST_TAIL_S, dt.UTC))
            lat.append(time.perf_counter() - t0)
        emit("latest_100_query", **_percentiles(lat))
    finally:
        await conn.close()


def _percentiles(lat: list[float]) -> dict:
    return {"p50_ms": round(1e3 * float(np.percentile(lat, 50)), 2),
            "p99_ms": round(1e3 * float(np.percentile(lat, 99)), 2)}


async def existing(db_url: str) -> tuple[dict, int, list[int]]:
    """A database a previous run kept (--keep-database): a fresh province key and its sensors."""
    from api import Scope, create_key

    global END, START
    conn = await asyncpg.connect(db_url)
    try:
        keys = {}
        for name, scope in (("province", "province"), ("ent_a", "enterprise:EA1")):
            keys[name], _ = await create_key(conn, Scope.parse(scope), name, rate_per_s=1000, burst=5000,
                                             live_sessions=10_000)
        target = await conn.fetchval("SELECT id FROM sensors WHERE enterprise = 'EA1' AND code = 'CH4-0101'")
        others = [r["id"] for r in await conn.fetch("SELECT id FROM sensors WHERE code LIKE 'B%' ORDER BY id")]
        last = await conn.fetchval("SELECT max(bucket) FROM readings_1h WHERE sensor = $1", target)
        END = last + dt.timedelta(hours=1)
        START = END - dt.timedelta(days=30)
    finally:
        await conn.close()
    return {"keys": keys}, target, others


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
    cpu = time.process_time()
    out = asyncio.run(hammer(url, key, path, params, requests, concurrency))
    return {**out, "client_cpu_s": round(time.process_time() - cpu, 2)}


def _backend_cpu_s(db_url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to this database (the machine is
    shared: other databases' backends are left out)."""
    import psutil

    async def pids() -> list[int]:
        conn = await asyncpg.connect(db_url)
        try:
            return [r[0] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        finally:
            await conn.close()

    out = {}
    for pid in asyncio.run(pids()):
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = t.user + t.system
    return out


async def _ticket(url: str, key: str) -> str:
    """A one-use live-feed ticket (the key never goes in the URL)."""
    import httpx

    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.post(f"{url}/api/v1/live/ticket", headers={"X-API-Key": key})
        r.raise_for_status()
        return r.json()["ticket"]


def _live_clients_in_child(url: str, key: str, sensors: list[int], clients: int, seconds: float, ready, go) -> dict:
    """`clients` WebSocket clients, each on 10 sensors' readings and its enterprise's alerts."""
    from websockets.asyncio.client import connect

    all_sensors = np.asarray(sensors, np.int32)
    stats = {"received": 0, "dropped": 0, "connected": 0}

    async def client(i: int) -> None:
        chosen = all_sensors[(i * 10 + np.arange(10)) % all_sensors.size]
        q = "&".join(f"sensor={s}" for s in chosen.tolist())
        url_i = url.replace("http", "ws") + f"/api/v1/live/ws?ticket={await _ticket(url, key)}&{q}"  # alerts: the key's enterprise
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


# --- live clients against the real service ----------------------------------------------------


def _service_clients(http_port: int, keys: dict[str, str], sensors: dict[str, list[int]], clients: int,
                     ready, stop, results) -> None:
    """`clients` WebSocket clients, client i on enterprise i's key (its alerts, by scope) and 10 of
    its sensors' readings; they read until `stop` is set. Reports counts and this process's CPU."""
    from websockets.asyncio.client import connect

    stats = {"received": 0, "dropped": 0, "connected": 0, "errors": 0}
    enterprises = sorted(keys)

    async def client(i: int) -> None:
        e = enterprises[i % len(enterprises)]
        own = sensors[e]
        chosen = [own[(i // len(enterprises) * 10 + k) % len(own)] for k in range(10)]
        q = "&".join(f"sensor={s}" for s in chosen)
        url = f"ws://127.0.0.1:{http_port}/api/v1/live/ws?ticket={await _ticket(f'http://127.0.0.1:{http_port}', keys[e])}&{q}"
        try:
            async with connect(url, open_timeout=120, max_queue=None) as ws:
                await ws.recv()
                stats["connected"] += 1
                async for message in ws:
                    stats["received"] += 1
        except Exception as exc:  # noqa: BLE001 — a close ends the client
            stats["dropped"] += "4408" in str(exc)
            stats["errors"] += "4408" not in str(exc)

    async def run() -> None:
        tasks = []
        for i in range(clients):
            tasks.append(asyncio.create_task(client(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.2)  # do not trip the per-key rate limit
        while stats["connected"] + stats["errors"] < clients:
            await asyncio.sleep(0.1)
        ready.set()
        cpu = time.process_time()
        received = stats["received"]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        stats["cpu_s"] = time.process_time() - cpu
        stats["received_while_measured"] = stats["received"] - received
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    results.put(stats)


def service_live(args) -> None:
    """Ingest into the real service (`yujing run`, a separate process) at a fixed offered rate,
    without and with `--live-clients` WebSocket clients, alternately, `--repeats` times each."""
    import multiprocessing
    import tempfile

    import psutil

    from bench import ingest as ib
    from store.migrate import apply_migrations, chunk_interval_s, set_chunk_interval
    from store.registry_records import import_registry
    from store.registry_file import parse_registry_file
    from tests.support.postgres import PrivateCluster

    work = Path(tempfile.mkdtemp(prefix="yj-bench-api-"))
    cluster = PrivateCluster()
    cluster.init(**ib.PG_TUNING)
    cluster.start()
    broker = ib.Broker()
    broker.start()
    db_url = cluster.url("bench")
    ctx = multiprocessing.get_context("fork")
    try:
        async def prepare() -> tuple[dict, dict]:
            from api import Scope, create_key

            admin = await asyncpg.connect(cluster.admin_url)
            await admin.execute("CREATE DATABASE bench")
            await admin.close()
            conn = await asyncpg.connect(db_url)
            try:
                await apply_migrations(conn)
                await set_chunk_interval(conn, chunk_interval_s(ib.EXPECTED_RATE, 20_000_000))
                await import_registry(conn, parse_registry_file(ib.registry_yaml()))
                keys, sensors = {}, {}
                for r in await conn.fetch("SELECT id FROM enterprises ORDER BY id"):
                    keys[r["id"]], _ = await create_key(conn, Scope.parse(f"enterprise:{r['id']}"), r["id"],
                                                        rate_per_s=1000, burst=1000)
                for r in await conn.fetch("SELECT enterprise, array_agg(id ORDER BY id) AS ids FROM sensors GROUP BY 1"):
                    sensors[r["enterprise"]] = r["ids"]
                return keys, sensors
            finally:
                await conn.close()

        keys, sensors = asyncio.run(prepare())
        if args.ingest_rate <= 0:
            raise SystemExit("--ingest-rate must be a fixed offered rate (readings/s) for this phase")
        for repeat in range(args.repeats):
            for with_clients in (False, True):
                service = ib.ServiceUnderTest(db_url, broker.url, work / f"service-{repeat}-{with_clients}.log")
                services.wait_port(service.http_port, 30)
                ps = psutil.Process(service.proc.pid)
                proc = client_stats = None
                try:
                    if with_clients:
                        ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
                        proc = ctx.Process(target=_service_clients, args=(service.http_port, keys, sensors,
                                                                          args.live_clients, ready, stop, results))
                        proc.start()
                        if not ready.wait(300):
                            raise RuntimeError("live clients did not connect within 300 s")
                    cpu0 = sum(ps.cpu_times()[:2])
                    r = ib.run_offered(service, broker.port, 50, args.ingest_rate, args.live_seconds)
                    service_cpu = sum(ps.cpu_times()[:2]) - cpu0
                    if proc is not None:
                        stop.set()
                        client_stats = results.get(timeout=60)
                        proc.join(30)
                    metrics = service.scrape()
                finally:
                    if proc is not None and proc.is_alive():
                        proc.kill()
                    service.stop()
                emit("service_live", repeat=repeat, live_clients=args.live_clients if with_clients else 0,
                     offered_readings_s=args.ingest_rate, seconds=args.live_seconds,
                     committed_readings_s=round(r["committed_readings_s"]),
                     lag_p50_s=round(r["lag_end_to_end_s"].get("p50", 0), 3),
                     lag_p99_s=round(r["lag_end_to_end_s"].get("p99", 0), 3),
                     service_cpu_share=round(service_cpu / args.live_seconds, 2),
                     live_dropped=sum(v for k, v in metrics.items() if k.startswith("yujing_api_live_dropped_total")),
                     **({} if client_stats is None else {
                         "clients_connected": client_stats["connected"], "clients_dropped": client_stats["dropped"],
                         "client_errors": client_stats["errors"], "messages_received": client_stats["received"],
                         "client_cpu_share": round(client_stats["cpu_s"] / args.live_seconds, 2)}))
                asyncio.run(ib.reset(db_url))
    finally:
        broker.close()
        cluster.close()


async def main_async(args) -> None:
    if args.database:
        name = args.database
        db_url = services.database_url(name)
        seeded, target, others = await existing(db_url)
    else:
        await services.create_template("yj_bench_api_template")
        name = await services.clone_database("yj_bench_api_template")
        db_url = services.database_url(name)
    try:
        if args.database:
            pass
        elif args.live_only:
            seeded = await seed(db_url)
            target, others = await sensors_only(db_url, args.other_sensors)
        else:
            seeded = await seed(db_url)
            target, others = await load(db_url, args.total_rows, args.other_sensors)
        if not args.live_only:
            await query_alone(db_url, target, others, args.show_plan)
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

            async def run(*a) -> dict:
                """One client phase; CPU seconds of the client, of this process (the API's thread;
                the main thread only waits) and of PostgreSQL during it."""
                cpu, pg = time.process_time(), await asyncio.to_thread(_backend_cpu_s, db_url)
                out = await asyncio.wrap_future(pool.submit(_hammer_in_child, server.url, key, *a))
                server_cpu = time.process_time() - cpu
                pg_end = await asyncio.to_thread(_backend_cpu_s, db_url)
                return {**out, "server_cpu_s": round(server_cpu, 2),
                        "postgres_cpu_s": round(sum(t - pg.get(pid, 0.0) for pid, t in pg_end.items()), 2)}

            # one client: the latency of a request alone; --concurrency clients: throughput (in a
            # closed loop each request also waits for the others in flight: p50 ≈ clients / rate)
            for clients in sorted({1, args.concurrency}):
                latest = await run("/api/v1/telemetry/latest", {"sensor": [target, *others[:99]], "limit": 100},
                                   args.requests, clients)
                emit("latest_values_100_sensors_http", clients=clients, **latest)
                agg = await run(f"/api/v1/sensors/{target}/aggregates",
                                {"start": START.isoformat(), "end": END.isoformat(), "bucket": "1h"},
                                args.requests, clients)
                emit("aggregate_30d_1h_http", clients=clients, **agg)
            pool.shutdown()
            await asyncio.to_thread(live, server, seeded["keys"]["ent_a"], [target, *others], args.live_clients,
                                    args.ingest_rate, args.live_seconds)
        finally:
            server.stop()
    finally:
        if args.keep_database or args.database:
            emit("kept_database", database=name)
        else:
            await services.drop_database(name)
        if not args.database:
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
    p.add_argument("--keep-database", action="store_true", help="keep the loaded database (its name is printed)")
    p.add_argument("--database", help="measure a database an earlier run kept, without loading")
    p.add_argument("--show-plan", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of the aggregate")
    p.add_argument("--service", action="store_true",
                   help="live clients against `yujing run` (a separate process) at --ingest-rate, without and "
                        "with --live-clients, for --live-seconds each, --repeats times")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    if args.service:
        service_live(args)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
