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
and memory with psutil; :mod:`simulators.loadreport` turns the samples into each step's figures
and the knee. A run that could only report blanks or falsehoods stops instead: metrics that
cannot be read at the start, or a service that after the first seconds dead-letters the load as
unknown (registry not imported) or records none of it (:func:`check_service`).

The registry the deployment needs (load fleet + probe) is :func:`load_registry_document`; an
operator writes it and imports it before the run (``yujing loadtest --registry-only``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from domain.codec import encode_batch
from domain.errors import FixConfiguration, RetryLater
from domain.topics import alerts_topic, up_topic
from simulators.fleet import Fleet, FleetConfig, build_fleet
from simulators.gateway import Emitter
from simulators.loadreport import (  # noqa: F401  (re-exported: the report's names are part of this module's surface)
    COMMITTED,
    E2E_LAG,
    UNKNOWN_REASONS,
    LoadPlan,
    LoadReport,
    Sample,
    StepResult,
    build_report,
    dead_letters_by_reason,
    format_report,
    histogram_percentiles,
    parse_metrics,
    write_outputs,
)
from simulators.publisher import Publisher, PublisherOptions, parse_mqtt_url
from simulators.registry import registry_document

log = logging.getLogger(__name__)

LOAD_ENTERPRISE = "LOAD"
PROBE_ENTERPRISE, PROBE_GATEWAY = "LOADPROBE", "PROBE"
PROBE_SENSORS = 300  # rotated; each is reused after PROBE_SENSORS × probe_interval_s (≥ 10 min at 2 s)
PROBE_HIGH, PROBE_LOW = 1.8, 0.2  # %VOL: above the T1 power-cut setpoint (1.5), then normal
SERVICE_CHECK_S = 5.0  # after this long, check that the service stores the load (check_service)


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


class Sampler:
    """A thread sampling the service's metrics and process once per ``interval_s``."""

    def __init__(self, metrics_url: str | None, service_pid: int | None, counters: Callable[[], tuple[int, int]],
                 interval_s: float = 1.0) -> None:
        self.metrics_url = metrics_url
        self.counters = counters
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.failures = 0  # scrapes that failed
        self.checked: Sample | None = None  # the sample check_service judged
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
        except (OSError, ValueError) as exc:
            self.failures += 1
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

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- the run ------------------------------------------------------------------------------------------
class FleetUnknown(FixConfiguration):
    """The service refuses the load fleet's readings as unknown: its registry was not imported."""


def check_service(first: Sample, last: Sample, metrics_url: str) -> None:
    """After the run's first seconds: did the service see the load at all, and did it know it?

    Raises :class:`FleetUnknown` when it dead-lettered the readings as unknown gateway or sensor,
    :class:`RetryLater` when its metrics cannot be read or show nothing of what was published."""
    published = last.published_readings - first.published_readings
    if not last.metrics:
        raise RetryLater(f"cannot read the service's metrics at {metrics_url} any more; check that the service "
                         "still runs and rerun")
    committed = last.metrics.get(COMMITTED, 0.0) - first.metrics.get(COMMITTED, 0.0)
    dead = dead_letters_by_reason(first.metrics, last.metrics)
    unknown = {r: n for r, n in dead.items() if r.rsplit(' ', 1)[0] in UNKNOWN_REASONS}
    if unknown and committed < 0.5 * published:
        reasons = ", ".join(f"{n:,.0f} {r}" for r, n in sorted(unknown.items()))
        raise FleetUnknown(f"the service refused the load as unknown (dead letters: {reasons}; {committed:,.0f} of "
                           f"{published:,} readings stored): it does not know the load fleet, so import the "
                           "registry loadtest wrote (yujing registry import DIR/registry.yaml) and rerun")
    if published and committed <= 0 and not dead:
        raise RetryLater(f"the service behind {metrics_url} recorded none of the {published:,} readings published in "
                         f"the first {last.t - first.t:.0f} s (nothing stored, no dead letters): check that it runs "
                         "and reads the broker given by --mqtt-url")


def run_load(plan: LoadPlan, mqtt_url: str, *, metrics_url: str | None = None, service_pid: int | None = None,
             stop: threading.Event | None = None, progress: Callable[[int, float, float], None] | None = None,
             max_pending: int = 20_000) -> LoadReport:
    """Run the ramp and return its report. Blocking; ``progress`` gets (step, seconds done, seconds planned).

    With a ``metrics_url`` the service must answer it before anything is published, and
    :func:`check_service` runs after :data:`SERVICE_CHECK_S` (or at the end of a shorter run):
    a run whose figures would all be missing or wrong stops with an error instead of a report."""
    stop = stop or threading.Event()
    fleet = load_fleet(plan.gateways, plan.readings_per_message, plan.seed)
    pub = Publisher(fleet, PublisherOptions(mqtt_url=mqtt_url, connections=plan.connections, max_pending=max_pending,
                                            client_id_prefix=f"yj-load-{uuid.uuid4().hex[:6]}"))
    pub.connect()
    probe = sampler = None
    try:
        probe = Probe(mqtt_url, plan.probe_interval_s)
        sampler = Sampler(metrics_url, service_pid, lambda: (pub.stats.readings, pub.stats.acked)).start()
        if metrics_url and not sampler.samples[0].metrics:
            raise RetryLater(f"cannot read the service's metrics at {metrics_url}: start the service (yujing run) "
                             "or give its /metrics address with --metrics-url")
        edges = _ramp(plan, fleet, pub, probe, sampler, stop, progress, max_pending)
        probe.quiet()
        pub.drain(10.0)
        time.sleep(2.0)  # the last probes' alerts
        if metrics_url and sampler.checked is None:
            check_service(sampler.samples[0], sampler.sample(), metrics_url)
    finally:
        if sampler is not None:
            sampler.stop()
        if probe is not None:
            probe.close()
        pub.close(10.0)
    return build_report(plan, fleet.config.name, fleet.n_sensors, edges, sampler.samples, list(probe.latencies),
                        probe.injected, {"messages": pub.stats.published, "acked": pub.stats.acked,
                                         "readings": pub.stats.readings, "disconnects": pub.stats.disconnects},
                        metrics_url, service_pid, sampler.failures)


def _ramp(plan: LoadPlan, fleet: Fleet, pub: Publisher, probe: Probe, sampler: Sampler, stop: threading.Event,
          progress: Callable[[int, float, float], None] | None, max_pending: int) -> list[tuple[float, float, float]]:
    """Publish the steps; returns (target rate, t0, t1) of each step run."""
    base_rate = fleet.offered_rate()
    emitter = Emitter(fleet, time.time(), plan.seed)
    base_interval = emitter.interval_s.copy()
    total_s = plan.steps * plan.dwell_s
    edges: list[tuple[float, float, float]] = []
    run0 = time.time()
    next_probe = run0 + 1.0
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
            if sampler.metrics_url and sampler.checked is None and now - run0 >= SERVICE_CHECK_S:
                sampler.checked = sampler.sample()
                check_service(sampler.samples[0], sampler.checked, sampler.metrics_url)
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
    return edges
