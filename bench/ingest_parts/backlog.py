"""The backlog phases: the service's memory while a broker backlog waits for it and drains.

``run_backlog``  steady load first (its RSS is the yardstick), then the database goes down while
                 N 50-reading messages are queued in the broker, then the database comes back and
                 the backlog drains: every reading stored once, RSS throughout against the steady RSS.
``run_outage``   the steady load while the database is down for a while (the older phase).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path

from bench.ingest_parts.load import Offer
from bench.ingest_parts.service import ServiceUnderTest, broker_queue_sampler, committed, count_rows, wait_all_stored

MB = 2**20


def wait_committed(service: ServiceUnderTest, expected: int, timeout_s: float) -> float:
    """Seconds until the service's committed-readings counter reaches ``expected`` (a count(*) of
    tens of millions of rows every second would load the database it measures)."""
    start = time.perf_counter()
    while committed(service.scrape()) < expected:
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"not every reading was stored within {timeout_s} s")
        time.sleep(1.0)
    return time.perf_counter() - start


def run_backlog(cluster, broker, db_url: str, work: Path, steady_rate: float, steady_s: float, messages: int) -> dict:
    service = ServiceUnderTest(db_url, broker.url, work / "backlog.log")
    peak_queue, stop_q = [0], threading.Event()
    broker_queue_sampler(broker.port, peak_queue, stop_q)
    try:
        offer = Offer(broker.port, 50, steady_rate, steady_s).start()
        time.sleep(min(10.0, steady_s / 3))
        s0 = time.perf_counter()
        steady_published = offer.join()
        s1 = time.perf_counter()
        wait_all_stored(service, db_url, steady_published)
        steady = service.rss_between(s0, s1)
        print(f"backlog   steady {steady_rate:,.0f} readings/s for {steady_s:.0f} s: RSS median "
              f"{statistics.median(steady) / MB:.0f} MB, max {max(steady) / MB:.0f} MB", flush=True)

        cluster.stop("fast")
        d0 = time.perf_counter()
        offer = Offer(broker.port, 50, 0, 3600, max_messages=messages).start()
        backlog_published = offer.join()
        cluster.start()
        up = time.perf_counter()
        print(f"backlog   {backlog_published // 50:,} messages ({backlog_published:,} readings) queued in the broker "
              f"while the database was down for {up - d0:.0f} s", flush=True)
        expected = steady_published + backlog_published
        drain_s = wait_committed(service, expected, timeout_s=1800)
        d1 = time.perf_counter()
        stored = asyncio.run(count_rows(db_url))
        during = service.rss_between(d0, d1)
    finally:
        stop_q.set()
        service.stop()
    steady_median, steady_max = statistics.median(steady), max(steady)
    r = {
        "steady_readings_s": steady_rate,
        "steady_rss_mb_median": steady_median / MB,
        "steady_rss_mb_max": steady_max / MB,
        "backlog_messages": backlog_published // 50,
        "published_readings": expected,
        "stored_readings": stored,
        "database_down_s": up - d0,
        "drain_s": drain_s,
        "drain_readings_s": backlog_published / drain_s,
        "rss_mb_max_outage_and_drain": max(during) / MB,
        "rss_ratio_to_steady_median": max(during) / steady_median,
        "rss_ratio_to_steady_max": max(during) / steady_max,
        "peak_broker_queue_messages": peak_queue[0],
    }
    print(f"backlog   drained in {drain_s:.0f} s ({r['drain_readings_s']:,.0f} readings/s); published {expected:,}, "
          f"stored {stored:,}; RSS at most {r['rss_mb_max_outage_and_drain']:.0f} MB while down and draining = "
          f"{r['rss_ratio_to_steady_median']:.2f} x steady median ({r['rss_ratio_to_steady_max']:.2f} x steady max); "
          f"broker queue peak {peak_queue[0]:,} messages", flush=True)
    assert stored == expected, "lost or duplicated readings"
    return r


def run_outage(cluster, broker, db_url: str, work: Path, rate: float, outage_s: float) -> dict:
    service = ServiceUnderTest(db_url, broker.url, work / "outage.log")
    lead_s, tail_s = 10.0, 20.0
    peak_queue, stop_q = [0], threading.Event()
    broker_queue_sampler(broker.port, peak_queue, stop_q)
    offer = Offer(broker.port, 50, rate, lead_s + outage_s + tail_s).start()
    time.sleep(lead_s)
    rss_before = service.peak_rss
    cluster.stop("fast")
    time.sleep(outage_s)
    rss_down = service.peak_rss
    cluster.start()
    published = offer.join()
    drain_s = wait_all_stored(service, db_url, published)
    stored = asyncio.run(count_rows(db_url))
    service.stop()
    stop_q.set()
    r = {
        "offered_readings_s": rate, "outage_s": outage_s, "published_readings": published, "stored_readings": stored,
        "peak_rss_mb_before": rss_before / MB, "peak_rss_mb_during_outage": rss_down / MB,
        "peak_rss_mb": service.peak_rss / MB, "peak_broker_queue_messages": peak_queue[0],
        "drain_after_publishing_stopped_s": drain_s,
    }
    print(f"outage    published {published:,} readings, stored {stored:,}; peak RSS {r['peak_rss_mb']:.0f} MB "
          f"(before {r['peak_rss_mb_before']:.0f} MB); broker queue peak {peak_queue[0]:,}; all stored {drain_s:.0f} s "
          f"after publishing stopped", flush=True)
    assert stored == published, "lost or duplicated readings"
    return r
