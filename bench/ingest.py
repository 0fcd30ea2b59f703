"""Ingest benchmark: gateways → Mosquitto → yujing → TimescaleDB, against baselines in the same run.

Everything runs on this machine, loopback only, against a private PostgreSQL cluster (the same
binaries and timescaledb build as the machine's server, tuned like `make setup` tunes it) and a
private Mosquitto with the project's configuration, so the outage phase can stop the database.

Phases (each prints its figures):
  copy      plain binary COPY of the same rows, 50,000 per transaction over two connections,
            into the same table and chunk interval: the database's limit on this box (baseline)
  steady    50-reading batches offered at --steady-fraction of the COPY rate: committed
            readings/s, end-to-end lag percentiles, the ratio to COPY, peak collector memory
  capacity  50-reading batches offered at --capacity-fraction of the COPY rate: what is committed
  bare      single-reading messages to a bare paho-mqtt subscriber (baseline)
  single    the same offered load to yujing: committed readings/s and the ratio to bare
  outage    the steady load while PostgreSQL is down for --outage seconds: peak collector memory,
            peak broker queue, and the time until every published reading is stored once

Run:  .venv/bin/python bench/ingest.py                       (about 8 minutes)
      .venv/bin/python bench/ingest.py --duration 300        (the 5-minute sustained figure)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from domain.codec import encode_batch  # noqa: E402
from domain.topics import up_topic  # noqa: E402
from store.copy_format import READING_COLUMNS, readings_copy_buffer  # noqa: E402
from store.migrate import apply_migrations, chunk_interval_s, set_chunk_interval  # noqa: E402
from store.registry import import_registry  # noqa: E402
from store.registry_file import parse_registry_file  # noqa: E402
from tests.support.postgres import PrivateCluster  # noqa: E402
from tests.support.services import Broker, free_port, tools_login  # noqa: E402

GATEWAYS = 1000
SENSORS_PER_GATEWAY = 50
ENTERPRISES = 20
EXPECTED_RATE = 150_000  # readings/s the bench deployment is sized for (sets the chunk interval)
COPY_ROWS = 50_000
MAX_PENDING = 20_000  # unacknowledged messages per publisher process (< 65,535 packet ids)
PG_TUNING = {  # what deploy/setup/pgtune.sh sets on the machine's server
    "shared_buffers": "4GB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "12GB",
}


def gateway_ids() -> list[tuple[str, str]]:
    return [(f"B{g % ENTERPRISES:02d}", f"G{g:04d}") for g in range(GATEWAYS)]


def sensor_codes(gateway: str) -> list[str]:
    return [f"{gateway}-T{s:02d}" for s in range(SENSORS_PER_GATEWAY)]


def registry_yaml() -> str:
    lines = ["enterprises:"]
    lines += [f'  - {{id: B{e:02d}, name: 基准企业{e}, region: "360100", industry: hazardous_chemicals}}' for e in range(ENTERPRISES)]
    lines.append("gateways:")
    lines += [f"  - {{id: {g}, enterprise: {e}, expected_interval_s: 10}}" for e, g in gateway_ids()]
    lines.append("sensors:")
    for e, g in gateway_ids():
        lines += [f"  - {{id: {c}, gateway: {g}, enterprise: {e}, kind: temperature}}" for c in sensor_codes(g)]
    return "\n".join(lines) + "\n"


# --- publishers (separate processes) ---------------------------------------------------------


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher for load generation: pre-built PUBLISH packets written
    straight to the socket, PUBACKs counted by a reader thread. paho-mqtt costs ~50 µs of CPU per
    publish, which on a 2-core machine would take the CPU the system under test needs; this costs
    a few µs. (``mosquitto_pub`` cannot drive the broker either: MEASUREMENTS.md.)"""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Clean session, with the test broker's tools login (username and password flags).
        fields = [client_id.encode(), *(x.encode() for x in tools_login(port))]
        body = b"\x00\x04MQTT\x04\xc2\x00\x3c" + b"".join(len(f).to_bytes(2, "big") + f for f in fields)
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        if self._recv_exact(4)[:1] != b"\x20":
            raise RuntimeError("broker refused the connection")
        self.acked = 0
        self.sent = 0
        self._mid = 0
        self._out: list[bytes] = []
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _read_acks(self) -> None:
        pending = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                pending += data
                # PUBACK is 4 bytes (0x40 0x02 id id); PINGRESP 2 bytes (0xd0 0x00)
                i = 0
                while len(pending) - i >= 2:
                    size = 2 + pending[i + 1]
                    if len(pending) - i < size:
                        break
                    if pending[i] == 0x40:
                        self.acked += 1
                    i += size
                pending = pending[i:]
        except OSError:
            return

    def publish(self, topic: bytes, payload: bytes) -> None:
        self._mid = self._mid % 65535 + 1
        head = len(topic).to_bytes(2, "big") + topic + self._mid.to_bytes(2, "big")
        self._out.append(b"\x32" + _varint(len(head) + len(payload)) + head + payload)
        self.sent += 1
        if len(self._out) >= 32:
            self.flush()

    def flush(self) -> None:
        if self._out:
            self.sock.sendall(b"".join(self._out))
            self._out.clear()

    def close(self) -> None:
        self.flush()
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_process(port: int, gateways: list[tuple[str, str]], per_message: int, rate_msgs_s: float,
                    duration_s: float, published: mp.Value, acked: mp.Value, seed: int) -> None:
    """Publish for ``duration_s`` at ``rate_msgs_s`` (0: as fast as it goes).

    Payloads are the codec's own bytes (``encode_batch``), prepared per gateway in a few value
    variants; only the batch ``ts`` is spliced in per message, strictly increasing per gateway so
    that every reading has its own (sensor, ts)."""
    pub = RawPublisher(port, f"bench-pub-{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(seed)
    topics, templates = [], []
    marker = 1_111_111_111_111
    for e, g in gateways:
        codes = sensor_codes(g)
        variants = []
        for c in range(0, SENSORS_PER_GATEWAY, per_message):
            ids = codes[c:c + per_message]
            for _ in range(4):
                values = (25.0 + rng.normal(0, 0.5, len(ids))).round(2)
                head, tail = encode_batch(marker, ids, values).split(str(marker).encode())
                variants.append((head, tail))
        topics.append(up_topic(e, g).encode())
        templates.append(variants)
    last_ts = [0] * len(gateways)
    turn = [0] * len(gateways)
    start = time.perf_counter()
    n = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= duration_s:
            break
        if rate_msgs_s and n >= int(elapsed * rate_msgs_s) + 1:
            pub.flush()
            time.sleep(0.002)
            continue
        if n - pub.acked > MAX_PENDING:
            pub.flush()
            time.sleep(0.001)
            continue
        g = n % len(gateways)
        ts = max(int(time.time() * 1000), last_ts[g] + 1)
        last_ts[g] = ts
        variants = templates[g]
        head, tail = variants[turn[g] % len(variants)]
        turn[g] += 1
        pub.publish(topics[g], head + str(ts).encode() + tail)
        n += 1
        if n % 512 == 0:
            published.value = n * per_message
    pub.flush()
    published.value = n * per_message
    deadline = time.monotonic() + 600
    while pub.acked < n and time.monotonic() < deadline:
        time.sleep(0.05)
    acked.value = pub.acked * per_message
    pub.close()


class Offer:
    """Publisher processes splitting the gateways between them."""

    def __init__(self, port: int, per_message: int, rate_readings_s: float, duration_s: float, processes: int = 1):
        gws = gateway_ids()
        self.published = [mp.Value("q", 0) for _ in range(processes)]
        self.acked = [mp.Value("q", 0) for _ in range(processes)]
        rate_msgs = rate_readings_s / per_message / processes if rate_readings_s else 0
        self.procs = [
            mp.Process(target=publish_process, args=(port, gws[i::processes], per_message, rate_msgs, duration_s,
                                                     self.published[i], self.acked[i], i), daemon=True)
            for i in range(processes)
        ]

    def start(self) -> Offer:
        for p in self.procs:
            p.start()
        return self

    def join(self) -> int:
        for p in self.procs:
            p.join()
        return sum(v.value for v in self.acked)

    @property
    def readings(self) -> int:
        return sum(v.value for v in self.published)


def bare_subscriber(port: int, received: mp.Value, stop: mp.Event) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"bench-bare-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    count = [0]

    def on_message(c, u, msg):
        count[0] += 1

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("yj/v1/+/+/up", qos=1)
    client.username_pw_set(*tools_login(port))
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    while not stop.is_set():
        received.value = count[0]
        time.sleep(0.1)
    received.value = count[0]
    client.loop_stop()


# --- the service under test ------------------------------------------------------------------


class ServiceUnderTest:
    """``python -m yujing run`` as a separate process; ready once its metrics answer. ``env``
    overrides the environment it gets (a value of None removes the variable)."""

    def __init__(self, db_url: str, mqtt_url: str, log_path: Path, env: dict[str, str | None] | None = None) -> None:
        self.metrics_port = free_port()
        self.http_port = free_port()
        overrides = env or {}
        env = {
            **os.environ,
            "YUJING_DATABASE_URL": db_url,
            "YUJING_MQTT_URL": mqtt_url,
            "YUJING_MQTT_CLIENT_ID": f"bench-{uuid.uuid4().hex[:6]}",
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
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
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


# --- phases ------------------------------------------------------------------------------------


async def copy_baseline(db_url: str, duration_s: float) -> float:
    """Two connections, 50,000 rows per COPY transaction, rows shaped like the ingest's."""
    n_sensors = GATEWAYS * SENSORS_PER_GATEWAY
    rng = np.random.default_rng(1)
    values = (25.0 + rng.normal(0, 0.5, COPY_ROWS)).round(2)
    quality = np.zeros(COPY_ROWS, np.int16)
    totals = [0, 0]
    t_end = time.perf_counter() + duration_s

    async def worker(w: int) -> None:
        conn = await asyncpg.connect(db_url)
        base_us = int(time.time() * 1e6) + w  # distinct timestamps per worker
        step = 0
        try:
            while time.perf_counter() < t_end:
                sensor = ((np.arange(COPY_ROWS) + step * COPY_ROWS) % n_sensors + 1).astype(np.int32)
                ts = base_us + ((np.arange(COPY_ROWS) + step * COPY_ROWS) // n_sensors) * 1000 * 2 + 0
                buf = readings_copy_buffer(ts.astype(np.int64), sensor, values, quality)
                async with conn.transaction():
                    await conn.copy_to_table("readings", source=io.BytesIO(buf), columns=READING_COLUMNS, format="binary")
                totals[w] += COPY_ROWS
                step += 1
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(worker(0), worker(1))
    return sum(totals) / (time.perf_counter() - start)


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


def run_offered(service: ServiceUnderTest, port: int, per_message: int, rate: float, duration_s: float,
                warmup_s: float = 5.0) -> dict:
    offer = Offer(port, per_message, rate, duration_s, processes=1 if per_message > 1 else 2).start()
    time.sleep(warmup_s)
    before, t0 = service.scrape(), time.perf_counter()
    time.sleep(max(duration_s - warmup_s - 1.0, 1.0))
    after, t1 = service.scrape(), time.perf_counter()
    published = offer.join()
    return {
        "offered_readings_s": rate or None,
        "committed_readings_s": (committed(after) - committed(before)) / (t1 - t0),
        "lag_end_to_end_s": lag_percentiles(before, after, "yujing_ingest_end_to_end_lag_seconds"),
        "published_readings": published,
    }


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per phase (steady/capacity/copy)")
    ap.add_argument("--single-duration", type=float, default=30.0)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the database is down")
    ap.add_argument("--steady-fraction", type=float, default=0.55, help="offered load as a fraction of COPY")
    ap.add_argument("--capacity-fraction", type=float, default=1.0)
    ap.add_argument("--phases", default="copy,steady,capacity,bare,single,outage")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    results: dict = {"machine": {"cpus": os.cpu_count()}}
    work = Path(tempfile.mkdtemp(prefix="yj-bench-"))

    cluster = PrivateCluster()
    cluster.init(**PG_TUNING)
    cluster.start()
    broker = Broker(overrides={"sys_interval": "1"})
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
        print(f"bench: {GATEWAYS} gateways x {SENSORS_PER_GATEWAY} sensors, private PostgreSQL :{cluster.port}, "
              f"broker :{broker.port}", flush=True)

        copy_rate = None
        if "copy" in phases or {"steady", "capacity", "outage"} & phases:
            copy_rate = asyncio.run(copy_baseline(db_url, args.duration))
            asyncio.run(reset(db_url))
            results["copy"] = {"rows_s": copy_rate}
            print(f"copy      plain binary COPY, 2 connections, 50k rows/tx: {copy_rate:,.0f} rows/s", flush=True)

        if "steady" in phases:
            service = ServiceUnderTest(db_url, broker.url, work / "steady.log")
            r = run_offered(service, broker.port, 50, args.steady_fraction * copy_rate, args.duration)
            service.stop()
            r["peak_rss_mb"] = service.peak_rss / 2**20
            r["ratio_to_copy"] = r["committed_readings_s"] / copy_rate
            results["steady"] = r
            lag = r["lag_end_to_end_s"]
            print(f"steady    offered {r['offered_readings_s']:,.0f}/s (50/msg): committed {r['committed_readings_s']:,.0f}/s "
                  f"= {r['ratio_to_copy']:.2f} x COPY; end-to-end lag p50 {lag.get('p50', 0) * 1000:.0f} ms "
                  f"p90 {lag.get('p90', 0) * 1000:.0f} ms p99 {lag.get('p99', 0) * 1000:.0f} ms; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            asyncio.run(reset(db_url))

        if "capacity" in phases:
            service = ServiceUnderTest(db_url, broker.url, work / "capacity.log")
            r = run_offered(service, broker.port, 50, args.capacity_fraction * copy_rate, args.duration)
            service.stop()
            r["ratio_to_copy"] = r["committed_readings_s"] / copy_rate
            r["peak_rss_mb"] = service.peak_rss / 2**20
            results["capacity"] = r
            print(f"capacity  offered {r['offered_readings_s']:,.0f}/s (50/msg): committed {r['committed_readings_s']:,.0f}/s "
                  f"= {r['ratio_to_copy']:.2f} x COPY; peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            asyncio.run(reset(db_url))

        bare_rate = None
        if "bare" in phases or "single" in phases:
            received, stop = mp.Value("q", 0), mp.Event()
            sub = mp.Process(target=bare_subscriber, args=(broker.port, received, stop), daemon=True)
            sub.start()
            time.sleep(1.0)
            offer = Offer(broker.port, 1, 0, args.single_duration, processes=2).start()
            time.sleep(5.0)
            c0, t0 = received.value, time.perf_counter()
            time.sleep(max(args.single_duration - 6.0, 1.0))
            c1, t1 = received.value, time.perf_counter()
            offer.join()
            stop.set()
            sub.join(30)
            bare_rate = (c1 - c0) / (t1 - t0)
            results["bare"] = {"messages_s": bare_rate}
            print(f"bare      bare paho-mqtt subscriber, single-reading messages: {bare_rate:,.0f} msg/s", flush=True)

        if "single" in phases:
            service = ServiceUnderTest(db_url, broker.url, work / "single.log")
            r = run_offered(service, broker.port, 1, 0, args.single_duration)
            service.stop()
            r["ratio_to_bare"] = r["committed_readings_s"] / bare_rate
            results["single"] = r
            print(f"single    yujing, single-reading messages: committed {r['committed_readings_s']:,.0f} readings/s "
                  f"= {r['ratio_to_bare']:.2f} x bare subscriber", flush=True)
            asyncio.run(reset(db_url))

        if "outage" in phases:
            service = ServiceUnderTest(db_url, broker.url, work / "outage.log")
            rate = args.steady_fraction * copy_rate
            lead_s, tail_s = 10.0, 20.0
            total_s = lead_s + args.outage + tail_s
            peak_queue, stop_q = [0], threading.Event()
            broker_queue_sampler(broker.port, peak_queue, stop_q)
            offer = Offer(broker.port, 50, rate, total_s).start()
            time.sleep(lead_s)
            rss_before = service.peak_rss
            cluster.stop("fast")
            down_at = time.perf_counter()
            time.sleep(args.outage)
            rss_down = service.peak_rss
            cluster.start()
            print(f"outage    database down for {time.perf_counter() - down_at:.0f} s under {rate:,.0f} readings/s",
                  flush=True)
            published = offer.join()
            drain_s = wait_all_stored(service, db_url, published)
            stored_rows = asyncio.run(count_rows(db_url))
            service.stop()
            stop_q.set()
            r = {
                "offered_readings_s": rate,
                "outage_s": args.outage,
                "published_readings": published,
                "stored_readings": stored_rows,
                "peak_rss_mb_before": rss_before / 2**20,
                "peak_rss_mb_during_outage": rss_down / 2**20,
                "peak_rss_mb": service.peak_rss / 2**20,
                "peak_broker_queue_messages": peak_queue[0],
                "drain_after_publishing_stopped_s": drain_s,
            }
            results["outage"] = r
            print(f"outage    published {published:,} readings, stored {stored_rows:,} (each once); peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB (before outage {r['peak_rss_mb_before']:.0f} MB); peak broker queue "
                  f"{peak_queue[0]:,} messages; all stored {drain_s:.0f} s after publishing stopped", flush=True)
            assert stored_rows == published, "lost or duplicated readings"
    finally:
        broker.close()
        cluster.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
