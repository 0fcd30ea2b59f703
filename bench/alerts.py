"""Alert latency end to end: MQTT publish of a crossing reading → ingest → detectors → alerts → webhook.

Issue 4's figure: p50 and p99 from the publish of the crossing reading to the webhook's receipt,
with the ingest at half its capacity and a route whose ``group_wait`` is zero. Targets: p99 < 1 s,
p50 < 300 ms.

    e2e    a private PostgreSQL cluster (tuned like bench/ingest.py) and a private broker; the
           service as a subprocess with a policy whose routes have group_wait 0 (grouped by alert
           key, group_interval 0) to a local webhook receiver (tests/alerts/support.Receiver).
           Background load: bench/ingest.py's publisher processes, 50 readings per message, at
           --load readings/s (default: 0.25 × a quick COPY baseline of this cluster, i.e. half of
           the ~0.5 × COPY that bench/ingest.py measures as the service's capacity — printed).
           Every --interval s a probe (simulators.load.Probe) publishes 1.8 %VOL on a T1 methane
           sensor (power-cut 1.5 → an orange alert) and brings the previous one back to 0.2; the
           latency is receipt at the webhook (and on the MQTT alerts topic) minus the publish time.
           The same probes are also run with no background load, as the baseline of the ratio.
    stage  the alerts stage alone (AlertsService.handle → webhook), on the machine's PostgreSQL;
           with --storm N also a storm of N findings in 100 batches.

Run:  .venv/bin/python bench/alerts.py                          (about 3 minutes)
      .venv/bin/python bench/alerts.py --load 40000 --duration 120 --phases e2e
      .venv/bin/python bench/alerts.py --phases stage --storm 10000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from simulators.load import PROBE_ENTERPRISE, Probe, load_fleet, load_registry_document  # noqa: E402
from store.migrate import apply_migrations, chunk_interval_s, set_chunk_interval  # noqa: E402
from store.registry_records import import_registry  # noqa: E402
from store.registry_file import parse_registry_file  # noqa: E402
from tests.alerts.support import Receiver, policy_doc  # noqa: E402
from tests.support.postgres import PrivateCluster  # noqa: E402
from tests.support.services import Broker  # noqa: E402


def _bench_ingest():
    """bench/ingest.py as a module (bench/ is not a package, and ``ingest`` is ours)."""
    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "ingest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_ingest"] = mod
    spec.loader.exec_module(mod)
    return mod


bi = _bench_ingest()


def pct(xs: list[float], p: float) -> float | None:
    return float(np.percentile(np.asarray(xs), p)) if xs else None


def zero_wait_policy(url: str) -> dict:
    """The test policy (default grading) with every route at group_wait 0, grouped per alert."""
    doc = policy_doc(url, tick="0.2s")
    for r in [doc["route"], *doc["route"]["routes"]]:
        r["group_wait"] = "0s"
        r["group_interval"] = "0s"
        r["group_by"] = ["alert_key"]
    doc["escalation"] = {"chains": {}}
    return doc


def registry_text() -> str:
    """bench/ingest.py's 1,000 gateways × 50 sensors plus the probe enterprise of simulators.load."""
    doc = yaml.safe_load(bi.registry_yaml())
    probe = load_registry_document(load_fleet(1, 1))
    doc.setdefault("regions", [])
    doc["regions"] += [r for r in probe["regions"] if r["code"] not in {x["code"] for x in doc["regions"]}]
    for key in ("enterprises", "zones", "gateways", "sensors"):
        doc.setdefault(key, [])
        doc[key] += [x for x in probe[key] if x.get("enterprise", x.get("id")) == PROBE_ENTERPRISE]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def webhook_latencies(receiver: Receiver, sent: dict[str, float]) -> list[float]:
    """Receipt of the first orange (or red) firing notification of each probe minus its publish."""
    first: dict[str, float] = {}
    with receiver.lock:
        reqs = list(receiver.requests)
    for req in reqs:
        try:
            body = json.loads(req["body"])
        except ValueError:
            continue
        for a in body.get("alerts", []):
            code = (a.get("subject") or {}).get("code")
            if code in sent and a.get("grade") in ("orange", "red") and a.get("state") in ("firing", "latched"):
                if req["received"] >= sent[code]:
                    first.setdefault(code, req["received"])
    return [first[c] - t for c, t in sent.items() if c in first]


def probe_run(probe: Probe, receiver: Receiver, n: int, interval_s: float) -> dict:
    receiver.requests.clear()
    probe.latencies.clear()
    sent: dict[str, float] = {}
    next_t = time.time()
    for _ in range(n):
        next_t += interval_s
        code, t = probe.inject()
        sent[code] = t
        time.sleep(max(0.0, next_t - time.time()))
    probe.quiet()
    deadline = time.time() + 15
    while time.time() < deadline and len(webhook_latencies(receiver, sent)) < n:
        time.sleep(0.2)
    hook = webhook_latencies(receiver, sent)
    mqtt_lat = [lat for _, lat in probe.latencies]
    return {"probes": n, "webhook_received": len(hook),
            "webhook_ms": {k: (None if v is None else v * 1e3) for k, v in
                           {"p50": pct(hook, 50), "p99": pct(hook, 99), "max": max(hook) if hook else None}.items()},
            "mqtt_received": len(mqtt_lat),
            "mqtt_ms": {k: (None if v is None else v * 1e3) for k, v in
                        {"p50": pct(mqtt_lat, 50), "p99": pct(mqtt_lat, 99)}.items()}}


def fmt(r: dict) -> str:
    w, m = r["webhook_ms"], r["mqtt_ms"]
    f = lambda v: "—" if v is None else f"{v:.0f}"  # noqa: E731
    return (f"webhook p50 {f(w['p50'])} ms, p99 {f(w['p99'])} ms, max {f(w['max'])} ms "
            f"({r['webhook_received']}/{r['probes']}); MQTT alerts topic p50 {f(m['p50'])} ms, p99 {f(m['p99'])} ms")


def e2e(args) -> dict:
    out: dict = {}
    work = Path(tempfile.mkdtemp(prefix="yj-bench-alerts-"))
    cluster = PrivateCluster()
    cluster.init(**bi.PG_TUNING)
    cluster.start()
    broker = Broker()
    broker.start()
    receiver = Receiver()
    db_url = cluster.url("bench")
    service = probe = None
    try:
        async def prepare():
            admin = await asyncpg.connect(cluster.admin_url)
            await admin.execute("CREATE DATABASE bench")
            await admin.close()
            conn = await asyncpg.connect(db_url)
            await apply_migrations(conn)
            await set_chunk_interval(conn, chunk_interval_s(bi.EXPECTED_RATE, 20_000_000))
            await import_registry(conn, parse_registry_file(registry_text()))
            await conn.close()

        asyncio.run(prepare())
        load = args.load
        if load is None:
            copy_rate = asyncio.run(bi.copy_baseline(db_url, args.copy_duration))
            asyncio.run(bi.reset(db_url))
            load = 0.25 * copy_rate
            out["copy_rows_s"] = copy_rate
            print(f"copy      plain binary COPY, 2 connections: {copy_rate:,.0f} rows/s → background load "
                  f"0.25 × COPY = {load:,.0f} readings/s (half of the ~0.5 × COPY bench/ingest.py finds as capacity)",
                  flush=True)
        else:
            print(f"load      --load {load:,.0f} readings/s", flush=True)
        out["load_readings_s"] = load
        policy = work / "policy.yaml"
        policy.write_text(yaml.safe_dump(zero_wait_policy(receiver.url), allow_unicode=True), encoding="utf-8")
        os.environ["YUJING_ALERTS_CONFIG"] = str(policy)  # read by the service subprocess
        service = bi.ServiceUnderTest(db_url, broker.url, work / "service.log")
        probe = Probe(broker.tools_url, args.interval)
        n = max(5, int(args.idle_duration / args.interval))
        idle = probe_run(probe, receiver, n, args.interval)
        out["idle"] = idle
        print(f"idle      no background load, {n} probes: {fmt(idle)}", flush=True)

        warm = 5.0
        offer = bi.Offer(broker.port, 50, load, args.duration + warm + 5.0).start()
        time.sleep(warm)
        before, t0 = service.scrape(), time.perf_counter()
        n = max(5, int(args.duration / args.interval))
        loaded = probe_run(probe, receiver, n, args.interval)
        after, t1 = service.scrape(), time.perf_counter()
        offer.join()
        loaded["committed_readings_s"] = (bi.committed(after) - bi.committed(before)) / (t1 - t0)
        loaded["ingest_lag_s"] = bi.lag_percentiles(before, after, "yujing_ingest_end_to_end_lag_seconds")
        loaded["peak_rss_mb"] = service.peak_rss / 2**20
        out["loaded"] = loaded
        lag = loaded["ingest_lag_s"]
        print(f"loaded    {load:,.0f} readings/s offered, {loaded['committed_readings_s']:,.0f}/s committed "
              f"(ingest lag p50 {lag.get('p50', 0) * 1e3:.0f} ms, p99 {lag.get('p99', 0) * 1e3:.0f} ms), {n} probes: "
              f"{fmt(loaded)}", flush=True)
        w, wi = loaded["webhook_ms"], idle["webhook_ms"]
        if w["p50"] is not None and wi["p50"]:
            print(f"ratio     loaded / idle webhook latency: p50 {w['p50'] / wi['p50']:.2f}×, p99 {w['p99'] / wi['p99']:.2f}×")
        ok = w["p99"] is not None and w["p99"] < 1000 and w["p50"] < 300 and loaded["webhook_received"] == loaded["probes"]
        out["targets_met"] = ok
        print(f"targets   p99 < 1000 ms and p50 < 300 ms at half load, every probe told: {'met' if ok else 'NOT met'}")
    finally:
        if probe is not None:
            probe.close()
        if service is not None:
            service.stop()
        receiver.close()
        broker.close()
        cluster.close()
    return out


# ---- the alerts stage alone (the earlier figure) ------------------------------------------------------
async def stage(n_alerts: int, rate: float, storm: int) -> dict:
    from alerts.feed import AlertFeed
    from alerts.policy import from_config
    from alerts.service import AlertsService
    from domain.clock import now_us
    from tests.alerts.support import ALARM, RAISE, WARNING, add_storm_sensors, findings, load_snapshot, seed_registry
    from tests.support import services

    template = "yj_bench_alerts_t"
    await services.create_template(template)
    name = await services.clone_database(template)
    url = services.database_url(name)
    receiver = Receiver()
    out: dict = {}
    try:
        conn = await asyncpg.connect(url)
        await seed_registry(conn)
        sensors = await add_storm_sensors(conn, n_alerts + storm, 50)
        await conn.close()
        policy = from_config(zero_wait_policy(receiver.url))
        pool = await asyncpg.create_pool(url, min_size=2, max_size=8)
        async with pool.acquire() as c:
            snap = await load_snapshot(c)
        svc = AlertsService(pool, policy, lambda: snap, now_us, AlertFeed())
        runner = asyncio.create_task(svc.run())
        await asyncio.sleep(0.5)

        sent: dict[str, float] = {}
        handle_s = []
        for i in range(n_alerts):
            s = sensors[i]
            t = time.time()
            sent[f"sensor:{s}:limit"] = t
            await svc.handle(findings([(s, "limit", RAISE, ALARM, t, 1.6, 1.5)]))
            handle_s.append(time.time() - t)
            await asyncio.sleep(1 / rate)
        got: dict[str, float] = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            for req, body in zip(list(receiver.requests), receiver.json(), strict=False):
                for a in body["alerts"]:
                    got.setdefault(a["alert_key"], req["received"])
            if set(sent) <= set(got):
                break
            await asyncio.sleep(0.1)
        lat = [(got[k] - t0) * 1e3 for k, t0 in sent.items() if k in got]
        out["stage_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else None, "told": len(lat)}
        print(f"stage     handle() → webhook receipt, {len(lat)}/{n_alerts} alerts at {rate:g}/s: "
              f"p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms; "
              f"handle() p50 {pct(handle_s, 50) * 1e3:.1f} ms, p99 {pct(handle_s, 99) * 1e3:.1f} ms", flush=True)

        if storm:
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
            out["storm"] = {"findings": len(want), "handed_s": handed, "all_told_s": done, "webhook_calls": len(receiver.requests)}
            print(f"storm     {len(want)} findings handed over in {handed:.2f} s ({len(want) / handed:.0f}/s; handle() per "
                  f"{per}-finding batch p50 {pct(hs, 50) * 1e3:.0f} ms, max {max(hs) * 1e3:.0f} ms); all told after "
                  f"{done:.2f} s in {len(receiver.requests)} webhook calls", flush=True)
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
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default="e2e,stage", help="e2e, stage (comma-separated)")
    ap.add_argument("--load", type=float, default=None, help="background readings/s (default 0.25 × COPY)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of probes under load")
    ap.add_argument("--idle-duration", type=float, default=15.0, help="seconds of probes with no load (baseline)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between probes")
    ap.add_argument("--copy-duration", type=float, default=10.0)
    ap.add_argument("--alerts", type=int, default=100, help="stage: findings, one at a time")
    ap.add_argument("--rate", type=float, default=20.0, help="stage: findings per second")
    ap.add_argument("--storm", type=int, default=0, help="stage: also a storm of N findings (issue 4: 10000)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    results: dict = {"machine": {"cpus": os.cpu_count()}}
    if "e2e" in phases:
        results["e2e"] = e2e(args)
    if "stage" in phases:
        results["stage"] = asyncio.run(stage(args.alerts, args.rate, args.storm))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
