"""The stepped load runner behind ``yujing loadtest``: what a deployment can take.

A load fleet is ``gateways`` uniform gateways of one enterprise (``LOAD``), each sending
``readings_per_message`` readings per message (site template ``uniform``). The offered rate
climbs in ``steps`` equal steps up to ``rate``, each held for ``dwell_s``; the emitter's scan
periods are rescaled at each step, so the same connections carry the whole ramp.

Beside the load, a probe (enterprise ``LOADPROBE``, one methane sensor per zone, location class
T1) publishes a crossing reading (1.8 %VOL ≥ the 1.5 %VOL 断电 setpoint → an orange ``limit``
alert) every ``probe_interval_s`` and the normal value again on the next probe, rotating over
:data:`PROBE_SENSORS` sensors so that no probe sensor changes often enough to count as flapping.
Alert latency is the time from the probe's publish to the orange alert on
``yj/v1/LOADPROBE/PROBE/alerts`` (the default policy sends every alert change there).

While it runs, a sampler thread scrapes the service's Prometheus ``/metrics`` (committed
readings, end-to-end lag histogram, dead letters by reason) and reads the service process's CPU
and memory with psutil. Each step's figures come from the samples at its edges (its first second
is skipped as a transition). The knee is the first step where committed < 95 % of offered or
the lag keeps growing (median lag over the step's second half above both 1 s and 1.5× the
first half's).

The registry the deployment needs (load fleet + probe) is :func:`load_registry_document`; an
operator writes it and imports it before the run (``yujing loadtest --registry-only``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml

from domain.codec import encode_batch
from domain.errors import RetryLater
from domain.topics import alerts_topic, up_topic
from simulators.fleet import Fleet, FleetConfig, build_fleet
from simulators.gateway import Emitter
from simulators.publisher import Publisher, PublisherOptions, parse_mqtt_url
from simulators.registry import registry_document

log = logging.getLogger(__name__)

LOAD_ENTERPRISE = "LOAD"
PROBE_ENTERPRISE, PROBE_GATEWAY = "LOADPROBE", "PROBE"
PROBE_SENSORS = 300  # rotated; each is reused after PROBE_SENSORS × probe_interval_s (≥ 10 min at 2 s)
PROBE_HIGH, PROBE_LOW = 1.8, 0.2  # %VOL: above the T1 power-cut setpoint (1.5), then normal
KNEE_COMMITTED_SHARE = 0.95
LAG_GROWTH_FACTOR, LAG_GROWTH_MIN_S = 1.5, 1.0
E2E_LAG = "yujing_ingest_end_to_end_lag_seconds"
COMMITTED = "yujing_ingest_readings_committed_total"
REFUSED = {"messages": "yujing_ingest_refused_messages_total", "readings": "yujing_ingest_refused_readings_total"}


@dataclasses.dataclass(frozen=True, slots=True)
class LoadPlan:
    gateways: int = 1000
    readings_per_message: int = 50
    rate: float = 50_000.0  # top offered readings/s
    steps: int = 5
    dwell_s: float = 60.0
    probe_interval_s: float = 2.0
    connections: int = 4
    seed: int = 1

    def step_rates(self) -> list[float]:
        return [self.rate * (k + 1) / self.steps for k in range(self.steps)]


def load_fleet(gateways: int, readings_per_message: int, seed: int = 1) -> Fleet:
    """The load fleet: ``gateways`` × ``readings_per_message`` sensors, one message per gateway per scan."""
    doc = {"name": f"load-{gateways}x{readings_per_message}", "seed": seed,
           "gateway": {"jitter_share": 0.02, "max_batch": readings_per_message, "clock_skew_s": [0.0, 0.0]},
           "regions": [{"code": "360000", "name": "江西省"}, {"code": "360100", "name": "南昌市", "parent": "360000"}],
           "enterprises": [{"id": LOAD_ENTERPRISE, "name": "负载测试企业", "region": "360100", "industry": "hazardous_chemicals",
                            "site": {"template": "uniform", "gateways": gateways,
                                     "sensors_per_gateway": readings_per_message, "interval_s": 1.0}}]}
    return build_fleet(FleetConfig.from_config(doc))


def probe_codes() -> list[str]:
    return [f"CH4-P{i:03d}" for i in range(PROBE_SENSORS)]


def load_registry_document(fleet: Fleet) -> dict[str, Any]:
    """The load fleet's registry plus the probe enterprise (one zone per probe sensor)."""
    doc = registry_document(fleet)
    doc["enterprises"].append({"id": PROBE_ENTERPRISE, "name": "告警延迟探针", "region": "360100", "industry": "coal_mine"})
    codes = probe_codes()
    doc["zones"] += [{"id": f"PZ{i:03d}", "enterprise": PROBE_ENTERPRISE, "name": f"探针{i}号掘进工作面", "kind": "heading_face",
                      "adjacent": []} for i in range(len(codes))]
    doc["gateways"].append({"id": PROBE_GATEWAY, "enterprise": PROBE_ENTERPRISE, "name": "探针分站",
                            "expected_interval_s": 3600.0})
    doc["sensors"] += [{"id": c, "gateway": PROBE_GATEWAY, "enterprise": PROBE_ENTERPRISE, "kind": "methane",
                        "unit": "%VOL", "location": "掘进工作面", "location_class": "T1", "zone": f"PZ{i:03d}",
                        "expected_interval_s": 3600.0} for i, c in enumerate(codes)]
    return doc


def write_load_registry(fleet: Fleet, path: Path) -> None:
    text = yaml.safe_dump(load_registry_document(fleet), allow_unicode=True, sort_keys=False, width=140)
    Path(path).write_text(f"# Registry of load fleet {fleet.config.name!r} and the alert probe, written by "
                          f"yujing loadtest (import with: yujing registry import {Path(path).name}).\n" + text,
                          encoding="utf-8")


# ---- Prometheus text ------------------------------------------------------------------------------
def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` → value for every sample line of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def histogram_percentiles(before: dict[str, float], after: dict[str, float], name: str,
                          qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """Percentiles of the observations between two scrapes (linear within a bucket)."""
    pat = re.compile(rf'^{name}_bucket{{(?:.*,)?le="([^"]+)"}}$')
    buckets = sorted((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), after[k] - before.get(k, 0.0))
                     for k in after if (m := pat.match(k)))
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{round(q * 100)}"
        if total <= 0:
            out[key] = None
            continue
        target, prev_le, prev_c = q * total, 0.0, 0.0
        for le, c in buckets:
            if c >= target:
                out[key] = prev_le if le == float("inf") else prev_le + (0.0 if c == prev_c else (target - prev_c) / (c - prev_c)) * (le - prev_le)
                break
            prev_le, prev_c = le, c
    return out


def dead_letters_by_reason(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Refused messages and refused readings during the run, apart: ``"<reason> <messages|readings>"``."""
    out = {}
    for unit, name in REFUSED.items():
        pat = re.compile(rf'^{name}{{reason="([^"]*)"}}$')
        for k in after:
            if (m := pat.match(k)) and after[k] - before.get(k, 0.0) > 0:
                out[f"{m.group(1)} {unit}"] = after[k] - before.get(k, 0.0)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    t: float  # wall clock
    metrics: dict[str, float]
    cpu_percent: float | None  # of one core, since the previous sample
    rss_bytes: int | None
    published_readings: int
    acked_messages: int


class Sampler:
    """A thread sampling the service's metrics and process once per ``interval_s``."""

    def __init__(self, metrics_url: str | None, service_pid: int | None, counters: Callable[[], tuple[int, int]],
                 interval_s: float = 1.0) -> None:
        self.metrics_url = metrics_url
        self.counters = counters
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._proc = None
        if service_pid is not None:
            import psutil

            try:
                self._proc = psutil.Process(service_pid)
                self._proc.cpu_percent(None)
            except psutil.Error as exc:
                raise RetryLater(f"--service-pid {service_pid}: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="loadtest-sampler", daemon=True)

    def scrape(self) -> dict[str, float]:
        if not self.metrics_url:
            return {}
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2.0) as r:
                return parse_metrics(r.read().decode())
        except OSError as exc:
            log.warning("metrics scrape of %s failed: %s", self.metrics_url, exc)
            return {}

    def sample(self) -> Sample:
        cpu = rss = None
        if self._proc is not None:
            try:
                with self._proc.oneshot():
                    cpu = self._proc.cpu_percent(None)
                    rss = self._proc.memory_info().rss
            except Exception:  # noqa: BLE001 - the process may have gone; the run goes on
                pass
        published, acked = self.counters()
        s = Sample(time.time(), self.scrape(), cpu, rss, published, acked)
        with self._lock:
            self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()

    def between(self, t0: float, t1: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if t0 <= s.t <= t1]


# ---- the alert probe --------------------------------------------------------------------------------
class Probe:
    """Publishes crossing readings and times the orange alert each one raises (own paho thread)."""

    def __init__(self, mqtt_url: str, interval_s: float) -> None:
        host, port, user, password = parse_mqtt_url(mqtt_url)
        self.interval_s = interval_s
        self.codes = probe_codes()
        self.topic = up_topic(PROBE_ENTERPRISE, PROBE_GATEWAY)
        self._lock = threading.Lock()
        self.sent: dict[str, float] = {}  # sensor code → publish time of its pending crossing
        self.latencies: list[tuple[float, float]] = []  # (publish wall time, latency s)
        self.injected = 0
        self._k = 0
        self._last_ms = 0
        self._subscribed = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"yj-load-probe-{uuid.uuid4().hex[:6]}",
                                      protocol=mqtt.MQTTv311, clean_session=True)
        if user:
            c.username_pw_set(user, password)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(alerts_topic(PROBE_ENTERPRISE, "+"), qos=1)
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        try:
            c.connect(host, port, keepalive=30)
        except OSError as exc:
            raise RetryLater(f"MQTT broker {host}:{port} is not reachable ({exc})") from exc
        c.loop_start()
        if not self._subscribed.wait(10.0):
            self.close()
            raise RetryLater(f"the probe got no SUBACK from {host}:{port}")

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        try:
            d = json.loads(msg.payload)
            code, grade, state = d["subject"]["code"], d["grade"], d["state"]
        except (ValueError, KeyError, TypeError):
            return
        if grade not in ("orange", "red") or state not in ("firing", "latched"):
            return
        with self._lock:
            t = self.sent.pop(code, None)
            if t is not None:
                self.latencies.append((t, now - t))

    def _ts_ms(self) -> int:
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    def inject(self) -> tuple[str, float]:
        """Clear the previous probe sensor and raise the next one; returns (its code, publish time)."""
        prev = self.codes[(self._k - 1) % len(self.codes)]
        code = self.codes[self._k % len(self.codes)]
        self._k += 1
        if self._k > 1:
            ts = self._ts_ms()
            self.client.publish(self.topic, encode_batch(ts, [prev], [PROBE_LOW]), qos=1)
        ts = self._ts_ms()
        with self._lock:
            sent = self.sent[code] = time.time()
        self.client.publish(self.topic, encode_batch(ts, [code], [PROBE_HIGH]), qos=1)
        self.injected += 1
        return code, sent

    def quiet(self) -> None:
        """Bring the last probe sensor back to normal."""
        if self._k:
            self.client.publish(self.topic, encode_batch(self._ts_ms(), [self.codes[(self._k - 1) % len(self.codes)]],
                                                         [PROBE_LOW]), qos=1)

    def between(self, t0: float, t1: float) -> list[float]:
        with self._lock:
            return [lat for t, lat in self.latencies if t0 <= t < t1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs), q)) if xs else None


# ---- the run ------------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class StepResult:
    step: int
    target_readings_s: float
    offered_readings_s: float  # what the publisher sent
    committed_readings_s: float | None
    committed_share: float | None
    lag_s: dict[str, float | None]
    lag_first_half_p50_s: float | None
    lag_second_half_p50_s: float | None
    lag_growing: bool
    alert_latency_s: dict[str, float | None]
    alert_probes: int
    cpu_percent_mean: float | None
    rss_mb_max: float | None
    t0: float
    t1: float


@dataclasses.dataclass(slots=True)
class LoadReport:
    plan: LoadPlan
    fleet: str
    sensors: int
    steps: list[StepResult]
    knee_step: int | None
    knee_readings_s: float | None
    knee_reason: str | None
    dead_letters: dict[str, float]
    alert_latency_s: dict[str, float | None]
    alert_probes_injected: int
    alert_probes_answered: int
    publisher: dict[str, Any]
    metrics_url: str | None
    service_pid: int | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_load(plan: LoadPlan, mqtt_url: str, *, metrics_url: str | None = None, service_pid: int | None = None,
             stop: threading.Event | None = None, progress: Callable[[int, float, float], None] | None = None,
             max_pending: int = 20_000) -> LoadReport:
    """Run the ramp and return its report. Blocking; ``progress`` gets (step, seconds done, seconds planned)."""
    stop = stop or threading.Event()
    fleet = load_fleet(plan.gateways, plan.readings_per_message, plan.seed)
    base_rate = fleet.offered_rate()
    pub = Publisher(fleet, PublisherOptions(mqtt_url=mqtt_url, connections=plan.connections, max_pending=max_pending,
                                            client_id_prefix=f"yj-load-{uuid.uuid4().hex[:6]}"))
    pub.connect()
    probe = Probe(mqtt_url, plan.probe_interval_s)
    sampler = Sampler(metrics_url, service_pid, lambda: (pub.stats.readings, pub.stats.acked)).start()
    emitter = Emitter(fleet, time.time(), plan.seed)
    base_interval = emitter.interval_s.copy()
    total_s = plan.steps * plan.dwell_s
    edges: list[tuple[float, float, float]] = []
    run0 = time.time()
    next_probe = run0 + 1.0
    try:
        for k, rate in enumerate(plan.step_rates()):
            if stop.is_set():
                break
            emitter.interval_s[:] = base_interval * (base_rate / rate)
            t0 = time.time()
            t1 = t0 + plan.dwell_s
            sim_done = t0
            while not stop.is_set():
                now = time.time()
                if now >= t1:
                    break
                if now >= next_probe:
                    probe.inject()
                    next_probe += plan.probe_interval_s
                if progress:
                    progress(k, now - run0, total_s)
                if pub.pending > max_pending:
                    pub.poll(0.01)
                    continue
                target = min(now, sim_done + 1.0)
                pub.handle(emitter.step(target))
                sim_done = target
                pub.poll(max(0.0, min(0.02, emitter.next_event_s() - time.time(), next_probe - time.time())))
            edges.append((rate, t0, min(time.time(), t1)))
        probe.quiet()
        pub.drain(10.0)
        time.sleep(2.0)  # the last probes' alerts
    finally:
        sampler.stop()
        probe.close()
        pub.close(10.0)
    steps = [_step_result(i, rate, t0, t1, sampler, probe) for i, (rate, t0, t1) in enumerate(edges)]
    knee = next((s for s in steps if _knee_reason(s)), None)
    first, last = sampler.samples[0], sampler.samples[-1]
    all_lat = [lat for _, lat in probe.latencies]
    return LoadReport(
        plan=plan, fleet=fleet.config.name, sensors=fleet.n_sensors, steps=steps,
        knee_step=None if knee is None else knee.step, knee_readings_s=None if knee is None else knee.target_readings_s,
        knee_reason=None if knee is None else _knee_reason(knee),
        dead_letters=dead_letters_by_reason(first.metrics, last.metrics),
        alert_latency_s={"p50": _pct(all_lat, 50), "p90": _pct(all_lat, 90), "p99": _pct(all_lat, 99),
                         "max": max(all_lat) if all_lat else None},
        alert_probes_injected=probe.injected, alert_probes_answered=len(all_lat),
        publisher={"messages": pub.stats.published, "acked": pub.stats.acked, "readings": pub.stats.readings,
                   "disconnects": pub.stats.disconnects},
        metrics_url=metrics_url, service_pid=service_pid,
    )


def _nearest(samples: list[Sample], t: float) -> Sample | None:
    return min(samples, key=lambda s: abs(s.t - t)) if samples else None


def _step_result(i: int, rate: float, t0: float, t1: float, sampler: Sampler, probe: Probe) -> StepResult:
    inside = sampler.between(t0 + 1.0, t1 + 0.5) or sampler.between(t0, t1 + 1.0)
    a, b = (inside[0], inside[-1]) if len(inside) >= 2 else (None, None)
    offered = committed = share = None
    lag: dict[str, float | None] = {"p50": None, "p90": None, "p99": None}
    h1 = h2 = None
    growing = False
    if a is not None and b.t > a.t:
        dt = b.t - a.t
        offered = (b.published_readings - a.published_readings) / dt
        if a.metrics and b.metrics:
            committed = (b.metrics.get(COMMITTED, 0.0) - a.metrics.get(COMMITTED, 0.0)) / dt
            share = committed / offered if offered else None
            lag = histogram_percentiles(a.metrics, b.metrics, E2E_LAG)
            mid = _nearest(inside, (a.t + b.t) / 2)
            if mid is not None and a.t < mid.t < b.t:
                h1 = histogram_percentiles(a.metrics, mid.metrics, E2E_LAG, (0.5,))["p50"]
                h2 = histogram_percentiles(mid.metrics, b.metrics, E2E_LAG, (0.5,))["p50"]
                growing = h1 is not None and h2 is not None and h2 > max(LAG_GROWTH_FACTOR * h1, LAG_GROWTH_MIN_S)
    lats = probe.between(t0, t1)
    cpus = [s.cpu_percent for s in inside if s.cpu_percent is not None]
    rss = [s.rss_bytes for s in inside if s.rss_bytes is not None]
    return StepResult(
        step=i, target_readings_s=rate, offered_readings_s=offered or 0.0, committed_readings_s=committed,
        committed_share=share, lag_s=lag, lag_first_half_p50_s=h1, lag_second_half_p50_s=h2, lag_growing=growing,
        alert_latency_s={"p50": _pct(lats, 50), "p99": _pct(lats, 99), "max": max(lats) if lats else None},
        alert_probes=len(lats), cpu_percent_mean=float(np.mean(cpus)) if cpus else None,
        rss_mb_max=max(rss) / 2**20 if rss else None, t0=t0, t1=t1)


def _knee_reason(s: StepResult) -> str | None:
    if s.committed_share is not None and s.committed_share < KNEE_COMMITTED_SHARE:
        return f"committed {s.committed_share:.0%} of offered"
    if s.lag_growing:
        return f"lag growing ({s.lag_first_half_p50_s:.2f} s → {s.lag_second_half_p50_s:.2f} s median)"
    return None


# ---- outputs ------------------------------------------------------------------------------------------
def write_outputs(report: LoadReport, out_dir: Path) -> tuple[Path, Path]:
    """``loadtest.json`` and ``loadtest.png`` (offered/committed per step; lag and alert latency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "loadtest.json"
    js.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    x = [s.step + 1 for s in report.steps]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax1.plot(x, [s.target_readings_s for s in report.steps], "k--", label="target")
    ax1.plot(x, [s.offered_readings_s for s in report.steps], "o-", label="offered")
    ax1.plot(x, [s.committed_readings_s or 0 for s in report.steps], "s-", label="committed")
    if report.knee_step is not None:
        ax1.axvline(report.knee_step + 1, color="r", alpha=0.5, label=f"knee ({report.knee_reason})")
    ax1.set_ylabel("readings/s")
    ax1.legend()
    ax1.set_title(f"yujing loadtest: {report.plan.gateways} gateways x {report.plan.readings_per_message} readings/message")
    for key, style in (("p50", "o-"), ("p99", "s-")):
        ax2.plot(x, [s.lag_s.get(key) or np.nan for s in report.steps], style, label=f"ingest lag {key}")
        ax2.plot(x, [s.alert_latency_s.get(key) or np.nan for s in report.steps], style.replace("-", ":"),
                 label=f"alert latency {key}")
    ax2.set_yscale("log")
    ax2.set_ylabel("seconds")
    ax2.set_xlabel("step")
    ax2.legend()
    fig.tight_layout()
    png = out_dir / "loadtest.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return js, png


def format_report(report: LoadReport) -> str:
    def f(v, spec="{:.3f}"):
        return "—" if v is None else spec.format(v)

    lines = [f"loadtest {report.fleet}: {report.sensors} sensors, {report.plan.steps} steps x {report.plan.dwell_s:g} s",
             f"{'step':>4} {'target/s':>10} {'offered/s':>10} {'committed/s':>12} {'share':>6} {'lag p50':>8} "
             f"{'lag p99':>8} {'alert p50':>9} {'alert p99':>9} {'cpu %':>6} {'rss MB':>7}"]
    for s in report.steps:
        lines.append(f"{s.step + 1:>4} {s.target_readings_s:>10,.0f} {s.offered_readings_s:>10,.0f} "
                     f"{f(s.committed_readings_s, '{:,.0f}'):>12} {f(s.committed_share, '{:.0%}'):>6} "
                     f"{f(s.lag_s.get('p50')):>8} {f(s.lag_s.get('p99')):>8} {f(s.alert_latency_s.get('p50')):>9} "
                     f"{f(s.alert_latency_s.get('p99')):>9} {f(s.cpu_percent_mean, '{:.0f}'):>6} {f(s.rss_mb_max, '{:.0f}'):>7}"
                     + ("  lag growing" if s.lag_growing else ""))
    lat = report.alert_latency_s
    lines.append(f"alert latency publish → MQTT alert: p50 {f(lat['p50'])} s, p99 {f(lat['p99'])} s "
                 f"({report.alert_probes_answered}/{report.alert_probes_injected} probes answered)")
    lines.append("refused (dead letters): " + (", ".join(
        f"{k.rsplit(' ', 1)[0]} {v:,.0f} {k.rsplit(' ', 1)[1]}" for k, v in sorted(report.dead_letters.items())) or "none"))
    lines.append("knee: " + ("not reached" if report.knee_step is None else
                             f"step {report.knee_step + 1} at {report.knee_readings_s:,.0f} readings/s ({report.knee_reason})"))
    return "\n".join(lines)
