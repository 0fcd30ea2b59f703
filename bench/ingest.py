"""Ingest benchmark: gateways → Mosquitto → yujing → TimescaleDB, against baselines in the same run.

Everything runs on this machine, loopback only, against a private PostgreSQL cluster (the same
binaries and timescaledb build as the machine's server, tuned like `make setup` tunes it) and a
private Mosquitto with the project's configuration, so the outage phase can stop the database.

How a system is judged (one rule for yujing and for the baselines): its *sustained rate* is the
most it commits while holding the offered load (committed >= 95 % of what was published in the
measuring window) with end-to-end lag p99 (reading time → commit) under 2 s, found by a search
over offered rates (x1.3 while it holds, then bisection), each trial --trial seconds.

Phases (each prints its figures):
  copy      binary COPY of exactly the publisher's rows (same sensors and timestamps, so the same
            chunks), 50,000 per transaction over two connections: the database's limit (baseline)
  batches   sustained rate of yujing and of the hand-rolled subscriber (bench/ingest_parts/
            baselines.py) on 50-reading messages, --alternations times, alternating who goes first
  single    the same on single-reading messages
  backlog   steady load, then --backlog-messages 50-reading messages queued in the broker while
            the database is down, then the drain: nothing lost, RSS throughout against the same
            run's steady RSS
  outage    the steady load while PostgreSQL is down for --outage seconds (the older phase)

Run:  .venv/bin/python bench/ingest.py --phases copy,batches,single --trial 20 --steps 3 --first yujing   (~9 min)
      .venv/bin/python bench/ingest.py --phases copy,batches,single --trial 20 --steps 3 --first baseline
      .venv/bin/python bench/ingest.py --phases backlog --backlog-messages 1000000   (20-30 min on a busy box)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ingest_parts.baselines import HandRolled, copy_baseline  # noqa: E402
from bench.ingest_parts.load import Offer, registry_yaml  # noqa: E402
from bench.ingest_parts.search import search  # noqa: E402
from bench.ingest_parts.service import (  # noqa: E402, F401 (re-exported for bench/api.py and bench/drills.py)
    ServiceUnderTest, broker_queue_sampler, committed, count_rows, lag_percentiles, reset, wait_all_stored,
)
from store.migrate import apply_migrations, chunk_interval_s, set_chunk_interval  # noqa: E402
from store.registry_records import import_registry  # noqa: E402
from store.registry_file import parse_registry_file  # noqa: E402
from tests.support.postgres import PrivateCluster  # noqa: E402
from tests.support.services import Broker  # noqa: E402, F401

EXPECTED_RATE = 150_000  # readings/s the bench deployment is sized for (sets the chunk interval)
PG_TUNING = {  # what deploy/setup/pgtune.sh sets on the machine's server
    "shared_buffers": "4GB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "12GB",
}
WARMUP_S = 5.0


def run_offered(service: ServiceUnderTest, port: int, per_message: int, rate: float, duration_s: float,
                warmup_s: float = WARMUP_S) -> dict:
    """Offer ``rate`` readings/s for ``duration_s``; committed rate and lag in the window after warm-up."""
    offer = Offer(port, per_message, rate, duration_s, processes=1 if per_message > 1 else 2).start()
    time.sleep(warmup_s)
    before, p0, t0 = service.scrape(), offer.readings, time.perf_counter()
    time.sleep(max(duration_s - warmup_s - 1.0, 1.0))
    after, p1, t1 = service.scrape(), offer.readings, time.perf_counter()
    published = offer.join()
    return {
        "offered_readings_s": rate or None,
        "published_readings_s": (p1 - p0) / (t1 - t0),
        "committed_readings_s": (committed(after) - committed(before)) / (t1 - t0),
        "lag_end_to_end_s": lag_percentiles(before, after, "yujing_ingest_end_to_end_lag_seconds"),
        "published_readings": published,
    }


class Yujing:
    """The service, measured by its own metrics."""

    name = "yujing"

    def __init__(self, db_url: str, broker: Broker, work: Path, tag: str) -> None:
        log = work / (tag.replace(" ", "-").replace("/", "per") + ".log")
        try:
            self.service = ServiceUnderTest(db_url, broker.url, log)
        except RuntimeError:  # a free port taken by another process on a shared machine: once more
            self.service = ServiceUnderTest(db_url, broker.url, log)
        self.port = broker.port

    def committed(self) -> float:
        return committed(self.service.scrape())

    def trial(self, per_message: int, rate: float, duration_s: float) -> dict:
        r = run_offered(self.service, self.port, per_message, rate, duration_s)
        r["lag_p99_s"] = r["lag_end_to_end_s"].get("p99", float("inf"))
        return r

    def close(self) -> None:
        self.service.stop()


class Baseline:
    """The hand-rolled subscriber, measured the same way from its commit counter and lag samples."""

    name = "hand-rolled"

    def __init__(self, db_url: str, broker: Broker, work: Path, tag: str) -> None:
        self.db_url, self.port, self.work = db_url, broker.port, work
        self.sub = HandRolled(broker.port, db_url, work)

    def committed(self) -> float:
        return float(self.sub.committed.value)

    def trial(self, per_message: int, rate: float, duration_s: float) -> dict:
        offer = Offer(self.port, per_message, rate, duration_s, processes=1 if per_message > 1 else 2).start()
        time.sleep(WARMUP_S)
        c0, p0, t0, w0 = self.committed(), offer.readings, time.perf_counter(), time.time()
        time.sleep(max(duration_s - WARMUP_S - 1.0, 1.0))
        c1, p1, t1, w1 = self.committed(), offer.readings, time.perf_counter(), time.time()
        published = offer.join()
        return {"offered_readings_s": rate, "published_readings_s": (p1 - p0) / (t1 - t0), "published_readings": published,
                "committed_readings_s": (c1 - c0) / (t1 - t0), "lag_p99_s": self.sub.lag_p99(w0, w1)}

    def close(self) -> None:
        self.sub.stop()


def settle(system, db_url: str, expected: float, timeout_s: float = 180) -> None:
    """Wait until the system has committed ``expected`` readings in all (everything the broker
    acknowledged to the publisher so far), then empty the table for the next trial."""
    deadline = time.monotonic() + timeout_s
    while system.committed() < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    asyncio.run(reset(db_url))


def measure(kind, per_message: int, guess: float, args, db_url: str, broker: Broker, work: Path, tag: str) -> dict:
    system = kind(db_url, broker, work, tag)
    trials: list[dict] = []
    expected = [system.committed()]

    def trial(rate: float) -> dict:
        r = system.trial(per_message, rate, args.trial)
        trials.append(r)
        expected[0] += r["published_readings"]
        settle(system, db_url, expected[0])
        return r

    try:
        found = search(trial, guess, args.steps)
    finally:
        system.close()
    print(f"  {tag:<28} sustained {'≥' if found['lower_bound'] else ' '}{found['sustained_readings_s']:>9,.0f} readings/s "
          f"({len(trials)} trials: " + ", ".join(
              f"offered {r['offered_readings_s']:,.0f} published {r['published_readings_s']:,.0f} "
              f"committed {r['committed_readings_s']:,.0f} p99 {r['lag_p99_s']:.2f}s"
              f"{'' if r['holds'] else ' ✗'}" for r in trials) + ")", flush=True)
    return found


def compare(per_message: int, guess: float, args, db_url: str, broker: Broker, work: Path) -> dict:
    """yujing against the hand-rolled subscriber, alternating who goes first."""
    out = {"alternations": [], "per_message": per_message}
    guesses = {Yujing: guess, Baseline: guess}
    for a in range(args.alternations):
        order = (Yujing, Baseline) if (a + (args.first == "baseline")) % 2 == 0 else (Baseline, Yujing)
        got = {}
        for kind in order:
            tag = f"{kind.name} {per_message}/msg alt {a + 1}"
            got[kind] = measure(kind, per_message, guesses[kind], args, db_url, broker, work, tag)
            guesses[kind] = max(got[kind]["sustained_readings_s"], guess / 4)
        y, b = got[Yujing]["sustained_readings_s"], got[Baseline]["sustained_readings_s"]
        ratio = y / b if y and b else float("nan")  # nan: one of them held no trial; widen the search
        out["alternations"].append({"yujing": got[Yujing], "hand_rolled": got[Baseline], "ratio": ratio})
        print(f"  alternation {a + 1}: yujing / hand-rolled = {ratio:.2f}", flush=True)
    ratios = [x["ratio"] for x in out["alternations"]]
    out["ratio_median"] = statistics.median(ratios) if ratios else float("nan")
    print(f"{per_message}-reading messages: yujing / hand-rolled, {len(ratios)} alternations: "
          f"median {out['ratio_median']:.2f} (all: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of the COPY baseline and steady phases")
    ap.add_argument("--trial", type=float, default=25.0, help="seconds per trial of the sustained-rate search")
    ap.add_argument("--steps", type=int, default=4, help="trials per search")
    ap.add_argument("--alternations", type=int, default=1)
    ap.add_argument("--first", choices=("yujing", "baseline"), default="yujing",
                    help="who goes first in the first alternation (alternate it between runs)")
    ap.add_argument("--batch-guess", type=float, help="first offered rate, 50-reading messages (default 0.5 x COPY)")
    ap.add_argument("--single-guess", type=float, default=8_000.0, help="first offered rate, single readings")
    ap.add_argument("--backlog-messages", type=int, default=1_000_000)
    ap.add_argument("--drain-timeout", type=float, default=1800.0,
                    help="seconds the backlog phase waits for the drain before it reports what it has")
    ap.add_argument("--stall", type=float, default=0.0,
                    help="backlog phase: stall the service this long a third into the drain (a reconnect)")
    ap.add_argument("--stalls", type=int, default=1, help="how many stalls, evenly through the drain")
    ap.add_argument("--broker-debug", action="store_true", help="the broker logs every packet (slower)")
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the database is down (outage phase)")
    ap.add_argument("--steady-fraction", type=float, default=0.4, help="steady load as a fraction of COPY")
    ap.add_argument("--phases", default="copy,batches,single")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}}
    work = Path(tempfile.mkdtemp(prefix="yj-bench-"))

    cluster = PrivateCluster()
    cluster.init(**PG_TUNING)
    cluster.start()
    broker = Broker(overrides={"sys_interval": "1", **({"log_type": "all"} if args.broker_debug else {})})
    broker.start()
    db_url = cluster.url("bench")
    try:
        async def prepare():
            admin = await asyncpg.connect(cluster.admin_url)
            await admin.execute("CREATE DATABASE bench")
            await admin.close()
            conn = await asyncpg.connect(db_url)
            await apply_migrations(conn)
            await set_chunk_interval(conn, chunk_interval_s(EXPECTED_RATE, 20_000_000))
            await import_registry(conn, parse_registry_file(registry_yaml()))
            await conn.close()

        asyncio.run(prepare())
        print(f"bench: 1,000 gateways x 50 sensors, private PostgreSQL :{cluster.port}, broker :{broker.port}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)", flush=True)
        copy_rate = None
        if phases & {"copy", "batches", "backlog", "outage"}:
            copy_rate = asyncio.run(copy_baseline(db_url, args.duration))
            asyncio.run(reset(db_url))
            results["copy"] = {"rows_s": copy_rate}
            print(f"copy      the publisher's rows by binary COPY, 2 connections, 50k rows/tx: {copy_rate:,.0f} rows/s",
                  flush=True)
        if "batches" in phases:
            r = compare(50, args.batch_guess or 0.5 * copy_rate, args, db_url, broker, work)
            r["yujing_over_copy"] = [x["yujing"]["sustained_readings_s"] / copy_rate for x in r["alternations"]]
            results["batches"] = r
            print(f"batches   yujing sustained / COPY: {', '.join(f'{x:.2f}' for x in r['yujing_over_copy'])}", flush=True)
        if "single" in phases:
            results["single"] = compare(1, args.single_guess, args, db_url, broker, work)
        if "backlog" in phases:
            from bench.ingest_parts.backlog import run_backlog

            results["backlog"] = run_backlog(cluster, broker, db_url, work, args.steady_fraction * copy_rate,
                                             args.duration, args.backlog_messages, args.drain_timeout, args.stall, args.stalls)
        if "outage" in phases:
            from bench.ingest_parts.backlog import run_outage

            results["outage"] = run_outage(cluster, broker, db_url, work, args.steady_fraction * copy_rate, args.outage)
    finally:
        broker.close()
        cluster.close()
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))
    if results.get("backlog", {}).get("accounting", {}).get("every_reading_once") is False:
        sys.exit("backlog: lost or duplicated readings (see accounting)")


if __name__ == "__main__":
    main()
