"""The backlog phases: the service's memory while a broker backlog waits for it and drains.

``run_backlog``  steady load first (its RSS is the yardstick), then the database goes down while
                 N 50-reading messages are queued in the broker, then the database comes back and
                 the backlog drains: every reading stored once, RSS throughout against the steady RSS.
``run_outage``   the steady load while the database is down for a while (the older phase).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import threading
import time
from pathlib import Path

from bench.ingest_parts.accounting import MB, BrokerSys, broker_log_about, check_ledger, mqtt_events, rss_figures
from bench.ingest_parts.load import Ledger, Offer
from bench.ingest_parts.service import ServiceUnderTest, broker_queue_sampler, committed, count_rows, wait_all_stored



def wait_committed(service: ServiceUnderTest, expected: int, timeout_s: float) -> tuple[float, bool]:
    """Seconds until the service's committed-readings counter reaches ``expected`` (a count(*) of
    tens of millions of rows every second would load the database it measures), and whether it did
    within ``timeout_s``."""
    start = time.perf_counter()
    while committed(service.scrape()) < expected:
        if time.perf_counter() - start > timeout_s:
            return time.perf_counter() - start, False
        time.sleep(1.0)
    return time.perf_counter() - start, True


def stall(service: ServiceUnderTest, seconds: float) -> None:
    """Stop the service (SIGSTOP) for ``seconds``: past 1.5 keepalives the broker drops its
    connection, as any stall of the host would; then let it go on and reconnect."""
    os.kill(service.proc.pid, signal.SIGSTOP)
    time.sleep(seconds)
    os.kill(service.proc.pid, signal.SIGCONT)


def ingest_counters(m: dict[str, float]) -> dict[str, float]:
    return {"messages_taken": m.get("yujing_ingest_messages_total", 0.0),
            "readings_committed": committed(m),
            "readings_duplicate": m.get("yujing_ingest_readings_duplicate_total", 0.0)}


def run_backlog(cluster, broker, db_url: str, work: Path, steady_rate: float, steady_s: float, messages: int,
                drain_timeout_s: float = 1800, stall_s: float = 0, stalls: int = 1) -> dict:
    """Steady load, then ``messages`` queued while the database is down, then the drain; bounded by
    ``drain_timeout_s`` (figures are reported either way). ``stall_s`` > 0 stalls the service that
    long ``stalls`` times, evenly through the backlog, to provoke reconnects mid-drain."""
    log_path = work / "backlog.log"
    service = ServiceUnderTest(db_url, broker.url, log_path)
    sys_counters = BrokerSys(broker.port)
    ledger = Ledger()
    try:
        offer = Offer(broker.port, 50, steady_rate, steady_s, ledger=ledger).start()
        time.sleep(min(10.0, steady_s / 3))
        s0 = time.perf_counter()
        steady_published = offer.join()
        s1 = time.perf_counter()
        wait_all_stored(service, db_url, steady_published)
        steady = service.rss_between(s0, s1)
        print(f"backlog   steady {steady_rate:,.0f} readings/s for {steady_s:.0f} s: RSS median "
              f"{statistics.median(steady) / MB:.0f} MB, max {max(steady) / MB:.0f} MB ({len(steady)} samples at 0.2 s); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)

        before, broker_before = ingest_counters(service.scrape()), sys_counters.snapshot()
        cluster.stop("fast")
        d0 = time.perf_counter()
        offer = Offer(broker.port, 50, 0, 3600, max_messages=messages, ledger=ledger).start()
        backlog_published = offer.join()
        cluster.start()
        up = time.perf_counter()
        loads = [os.getloadavg()[0]]
        print(f"backlog   {backlog_published // 50:,} messages ({backlog_published:,} readings) queued in the broker "
              f"while the database was down for {up - d0:.0f} s; load average {loads[0]:.1f}", flush=True)
        expected = steady_published + backlog_published
        for k in range(1, stalls + 1) if stall_s else ():
            wait_committed(service, steady_published + backlog_published * k // (stalls + 1), drain_timeout_s)
            print(f"backlog   stalling the service for {stall_s:.0f} s at {committed(service.scrape()):,.0f} readings "
                  f"committed", flush=True)
            stall(service, stall_s)
        _, drained = wait_committed(service, expected, timeout_s=drain_timeout_s - (time.perf_counter() - up))
        d1 = time.perf_counter()
        loads.append(os.getloadavg()[0])
        after, broker_after = ingest_counters(service.scrape()), sys_counters.snapshot()
        during = service.rss_between(d0, d1)
        drain_only = service.rss_between(up, d1)
    finally:
        sys_counters.close()
        service.stop()
    accounting = asyncio.run(check_ledger(db_url, ledger)) if drained else {"every_reading_once": None}
    drain_s = d1 - up
    taken = after["messages_taken"] - before["messages_taken"]
    r = {
        "steady_readings_s": steady_rate,
        "steady_rss": rss_figures(steady, steady),
        "backlog_messages": backlog_published // 50,
        "published_readings": expected,
        "database_down_s": up - d0,
        "drained": drained,
        "drain_s": drain_s,
        "drain_readings_s": (after["readings_committed"] - before["readings_committed"]) / drain_s,
        "rss_outage_and_drain": rss_figures(during, steady),
        "rss_drain_only": rss_figures(drain_only, steady),
        "load_avg_at_drain_start_and_end": loads,
        "mqtt": mqtt_events(log_path),
        "broker_log": broker_log_about(broker.data_dir / "mosquitto.log", service.client_id),
        "messages_taken_in_drain": taken,
        "messages_taken_beyond_backlog": taken - backlog_published // 50,
        "redelivered_already_stored_messages": (after["readings_duplicate"] - before["readings_duplicate"]) / 50,
        "broker_publish_sent_in_drain": broker_after.get("publish/messages/sent", 0)
        - broker_before.get("publish/messages/sent", 0),
        "peak_broker_store_messages": sys_counters.peak_stored,
        "accounting": accounting,
    }
    print(f"backlog   {'drained' if drained else 'NOT drained (stopped at the bound)'} in {drain_s:.0f} s "
          f"({r['drain_readings_s']:,.0f} readings/s); published {expected:,}; every reading stored once: "
          f"{accounting['every_reading_once']} ({accounting.get('sensors_wrong', '-')} of "
          f"{accounting.get('sensors_checked', '-')} sensors wrong); RSS while down and draining max "
          f"{r['rss_outage_and_drain']['rss_mb_max']:.0f} MB = {r['rss_outage_and_drain']['ratio_max_to_steady_median']:.2f}"
          f" x steady median ({len(during)} samples); reconnects {r['mqtt']['reconnects']}; messages taken beyond "
          f"the backlog {taken - backlog_published // 50:,.0f}, of them already stored "
          f"{r['redelivered_already_stored_messages']:,.0f}; load average {loads}", flush=True)
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
