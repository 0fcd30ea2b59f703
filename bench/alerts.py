"""Alerts-stage latency and storm throughput: ``python bench/alerts.py [--alerts N] [--rate R]``.

Measures the alerts stage on its own, with its real loops running (``AlertsService.run``), a
real PostgreSQL database and a local HTTP webhook receiver:

- latency from ``handle(findings)`` being called with a new orange finding to the webhook's
  receipt of the notification, on a route with ``group_wait: 0`` (p50, p99, max);
- how long ``handle()`` holds the caller (the ingest pipeline) per batch;
- a storm of 10,000 findings handed over in 100 batches: handle() time, and the time until every
  alert has been told.

The full publish-to-webhook figure of issue 4 (MQTT publish of the crossing reading → ingest →
detectors → alerts → webhook, ingest at half load) needs the service wiring of ``yujing/``; this
bench covers the alerts stage's share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402

from alerts.feed import AlertFeed  # noqa: E402
from alerts.policy import from_config  # noqa: E402
from alerts.service import AlertsService  # noqa: E402
from tests.alerts.support import (  # noqa: E402
    ALARM, RAISE, WARNING, Receiver, add_storm_sensors, findings, load_snapshot, policy_doc, seed_registry,
)
from tests.support import services  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main(n_alerts: int, rate: float, storm: int) -> None:
    template = "yj_bench_alerts_t"
    await services.create_template(template)
    name = await services.clone_database(template)
    url = services.database_url(name)
    receiver = Receiver()
    try:
        conn = await asyncpg.connect(url)
        await seed_registry(conn)
        sensors = await add_storm_sensors(conn, n_alerts + storm, 50)
        await conn.close()
        doc = policy_doc(receiver.url, tick="0.2s")
        doc["route"]["group_wait"] = "0s"
        doc["route"]["group_interval"] = "0s"
        doc["route"]["group_by"] = ["alert_key"]
        for r in doc["route"]["routes"]:
            r.pop("group_wait", None)
            r.pop("group_interval", None)
            r["group_by"] = ["alert_key"]
        doc["escalation"] = {"chains": {}}
        policy = from_config(doc)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=8)
        async with pool.acquire() as c:
            snap = await load_snapshot(c)
        svc = AlertsService(pool, policy, lambda: snap, time.time, AlertFeed())
        runner = asyncio.create_task(svc.run())
        await asyncio.sleep(0.5)

        # ---- latency: one new orange alert at a time, at `rate` per second
        sent: dict[str, float] = {}
        handle_s = []
        for i in range(n_alerts):
            s = sensors[i]
            t = time.time()
            sent[f"sensor:{s}:limit"] = t
            await svc.handle(findings([(s, "limit", RAISE, ALARM, t, 1.6, 1.5)]))
            handle_s.append(time.time() - t)
            await asyncio.sleep(1 / rate)
        deadline = time.time() + 30
        while time.time() < deadline:
            got = {}
            for req, body in zip(receiver.requests, receiver.json(), strict=True):
                for a in body["alerts"]:
                    got.setdefault(a["alert_key"], req["received"])
            if len(set(sent) & set(got)) == len(sent):
                break
            await asyncio.sleep(0.1)
        lat = [(got[k] - t0) * 1e3 for k, t0 in sent.items() if k in got]
        print(f"latency handle() → webhook receipt, {len(lat)}/{n_alerts} alerts at {rate:g}/s: "
              f"p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms")
        print(f"handle() of one finding: p50 {pct(handle_s, 50) * 1e3:.1f} ms, p99 {pct(handle_s, 99) * 1e3:.1f} ms")

        # ---- storm: `storm` yellow findings in 100 batches, as fast as handle() takes them
        receiver.requests.clear()
        t0 = time.time()
        per = max(1, storm // 100)
        hs = []
        for b in range(0, storm, per):
            t = time.time()
            rows = [(s, "limit", RAISE, WARNING, t, 1.2, 1.0) for s in sensors[n_alerts + b:n_alerts + b + per]]
            if rows:
                await svc.handle(findings(rows))
                hs.append(time.time() - t)
        handed = time.time() - t0
        want = {f"sensor:{s}:limit" for s in sensors[n_alerts:n_alerts + storm]}
        while time.time() < t0 + 120:
            told = {a["alert_key"] for body in receiver.json() for a in body["alerts"]}
            if want <= told:
                break
            await asyncio.sleep(0.2)
        done = time.time() - t0
        print(f"storm: {len(want)} findings handed over in {handed:.2f} s ({len(want) / handed:.0f}/s; "
              f"handle() per {per}-finding batch p50 {pct(hs, 50) * 1e3:.0f} ms, max {max(hs) * 1e3:.0f} ms); "
              f"all told after {done:.2f} s in {len(receiver.requests)} webhook calls")
        runner.cancel()
        try:
            await runner
        except asyncio.CancelledError:
            pass
        await pool.close()
    finally:
        receiver.close()
        await services.drop_database(name)
        await services.drop_database(template)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--storm", type=int, default=10_000)
    args = ap.parse_args()
    asyncio.run(main(args.alerts, args.rate, args.storm))
