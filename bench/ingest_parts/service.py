"""The service under test in the ingest benchmark: a ``yujing run`` process, its metrics, its database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import psutil

from tests.support.services import free_port
from tests.support.services import tools_login

REPO = Path(__file__).resolve().parents[2]


class ServiceUnderTest:
    """``python -m yujing run`` as a separate process; ready once its metrics answer. ``env``
    overrides the environment it gets (a value of None removes the variable)."""

    def __init__(self, db_url: str, mqtt_url: str, log_path: Path, env: dict[str, str | None] | None = None) -> None:
        self.metrics_port = free_port()
        self.http_port = free_port()
        overrides = env or {}
        self.client_id = f"bench-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "YUJING_DATABASE_URL": db_url,
            "YUJING_MQTT_URL": mqtt_url,
            "YUJING_MQTT_CLIENT_ID": self.client_id,
            "YUJING_METRICS_PORT": str(self.metrics_port),
            "YUJING_HTTP_PORT": str(self.http_port),
            "YUJING_LOG_FORMAT": "json",
            "YUJING_DETECTORS_REBUILD_S": "0",
            "MALLOC_ARENA_MAX": "2",  # as deployed (README, Operations): fewer glibc arenas, less RSS
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        for k in [k for k, v in overrides.items() if v is None]:
            env.pop(k, None)
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "yujing", "run"], env=env, cwd=REPO,
                                     stdout=self.log, stderr=self.log)
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self.rss_samples: list[tuple[float, int]] = []  # (perf_counter, bytes) every 0.2 s
        deadline = time.monotonic() + 60
        while True:
            try:
                if "yujing_ingest_readings_committed_total" in self.scrape_text():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"service did not start; see {log_path}")
            time.sleep(0.2)
        time.sleep(1.0)  # subscriptions in place
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()

    def _sample_rss(self) -> None:
        while self.proc.poll() is None:
            try:
                rss = self.ps.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_samples.append((time.perf_counter(), rss))
            except psutil.Error:
                return
            time.sleep(0.2)

    def scrape_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def scrape(self) -> dict[str, float]:
        out = {}
        for line in self.scrape_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def rss_between(self, t0: float, t1: float) -> list[int]:
        return [rss for t, rss in self.rss_samples if t0 <= t <= t1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def committed(m: dict[str, float]) -> float:
    return m.get("yujing_ingest_readings_committed_total", 0.0)


def lag_percentiles(before: dict[str, float], after: dict[str, float], name: str, qs=(0.5, 0.9, 0.99)) -> dict[str, float]:
    """Percentiles from the delta of a Prometheus histogram (linear within buckets)."""
    pat = re.compile(rf'^{name}_bucket{{le="([^"]+)"}}$')
    buckets = sorted(
        (float("inf") if m.group(1) == "+Inf" else float(m.group(1)), after[k] - before.get(k, 0.0))
        for k in after if (m := pat.match(k))
    )
    total = buckets[-1][1] if buckets else 0
    out = {}
    for q in qs:
        target = q * total
        prev_le, prev_c = 0.0, 0.0
        for le, c in buckets:
            if c >= target:
                if le == float("inf"):
                    out[f"p{int(q * 100)}"] = prev_le
                else:
                    frac = 0 if c == prev_c else (target - prev_c) / (c - prev_c)
                    out[f"p{int(q * 100)}"] = prev_le + frac * (le - prev_le)
                break
            prev_le, prev_c = le, c
    return out


async def reset(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("TRUNCATE readings, rollup_dirty, dead_letters")
    finally:
        await conn.close()


async def count_rows(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM readings")
    finally:
        await conn.close()


def wait_all_stored(service: ServiceUnderTest, db_url: str, expected: int, timeout_s: float = 900) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if asyncio.run(count_rows(db_url)) >= expected:
            return time.perf_counter() - start
        time.sleep(1.0)
    raise TimeoutError(f"not every reading was stored within {timeout_s} s")


def broker_queue_sampler(port: int, peak: list[int], stop: threading.Event) -> threading.Thread:
    import paho.mqtt.client as mqtt

    def run():
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_message(c, u, msg):
            try:
                peak[0] = max(peak[0], int(msg.payload))
            except ValueError:
                pass

        client.on_message = on_message
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("$SYS/broker/store/messages/count")
        client.username_pw_set(*tools_login(port))
        client.connect("127.0.0.1", port)
        client.loop_start()
        stop.wait()
        client.loop_stop()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
