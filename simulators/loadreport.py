"""The plan and the report of a load run (``yujing loadtest``): the service's Prometheus samples
turned into per-step figures, the knee, and what is printed and written.

Each step's figures come from the samples at its edges (its first second is skipped as a
transition). A step is judged past the knee when what the service committed fell short of what
was offered by more than 5 % *and* by more than :data:`LAG_ALLOWANCE_S` seconds' worth of
readings — a service that keeps up stays that far behind anyway, by its lag and its batching,
and over a short step that alone is more than 5 % — or when its lag keeps growing (median lag
over the step's second half above both 1 s and 1.5× the first half's; judged on steps of at least
:data:`MIN_LAG_GROWTH_WINDOW_S`). So a short step can only show a deep knee: the report says how
deep (``knee_detectable_below``). Nothing measured is never printed as zero or "none".
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

KNEE_COMMITTED_SHARE = 0.95
LAG_ALLOWANCE_S = 1.0  # committed may trail offered by this many seconds of readings and keep up
MIN_JUDGED_WINDOW_S = 1.5  # a step measured over less than this is not judged at all
MIN_LAG_GROWTH_WINDOW_S = 4.0  # halves of at least 2 s for the lag-growth rule
LAG_GROWTH_FACTOR, LAG_GROWTH_MIN_S = 1.5, 1.0
FULL_JUDGEMENT_DWELL_S = 1.0 + LAG_ALLOWANCE_S / (1 - KNEE_COMMITTED_SHARE)  # 21 s: the 5 % rule binds
E2E_LAG = "yujing_ingest_end_to_end_lag_seconds"
COMMITTED = "yujing_ingest_readings_committed_total"
REFUSED = {"messages": "yujing_ingest_refused_messages_total", "readings": "yujing_ingest_refused_readings_total"}
UNKNOWN_REASONS = ("unknown_gateway", "unknown_sensor")


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
    """Refused messages and refused readings between two scrapes, apart:
    ``"<reason> messages"`` and ``"<reason> readings"`` (other labels, if any, summed)."""
    out: dict[str, float] = {}
    for unit, name in REFUSED.items():
        pat = re.compile(rf'^{name}{{(?:.*,)?reason="([^"]*)"(?:,.*)?}}$')
        for k in after:
            if (m := pat.match(k)) and after[k] - before.get(k, 0.0) > 0:
                key = f"{m.group(1)} {unit}"
                out[key] = out.get(key, 0.0) + after[k] - before.get(k, 0.0)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    t: float  # wall clock
    metrics: dict[str, float]  # empty: the scrape failed or there is no metrics URL
    cpu_percent: float | None  # of one core, since the previous sample
    rss_bytes: int | None
    published_readings: int
    acked_messages: int


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs), q)) if xs else None


# ---- results --------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class StepResult:
    step: int
    target_readings_s: float
    offered_readings_s: float  # what the publisher sent
    committed_readings_s: float | None  # None: not measured
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
    window_s: float = 0.0  # the measured part of the step
    judged: bool = False  # False: too short or no metrics, so no knee can be told
    knee_detectable_below: float | None = None  # a committed share under this is a knee


@dataclasses.dataclass(slots=True)
class LoadReport:
    plan: LoadPlan
    fleet: str
    sensors: int
    steps: list[StepResult]
    knee_step: int | None
    knee_readings_s: float | None
    knee_reason: str | None
    dead_letters: dict[str, float] | None  # None: not measured
    alert_latency_s: dict[str, float | None]
    alert_probes_injected: int
    alert_probes_answered: int
    publisher: dict[str, Any]
    metrics_url: str | None
    service_pid: int | None
    scrape_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _nearest(samples: list[Sample], t: float) -> Sample | None:
    return min(samples, key=lambda s: abs(s.t - t)) if samples else None


def judge_step(i: int, rate: float, t0: float, t1: float, samples: list[Sample],
               latencies: list[float]) -> StepResult:
    """One step's figures from the samples taken during it (``t0 <= s.t <= t1 + 1``) and the
    alert latencies of the probes published in it."""
    inside = [s for s in samples if t0 + 1.0 <= s.t <= t1 + 0.5] or [s for s in samples if t0 <= s.t <= t1 + 1.0]
    scraped = [s for s in inside if s.metrics]
    a, b = (inside[0], inside[-1]) if len(inside) >= 2 else (None, None)
    offered = committed = share = detectable = None
    lag: dict[str, float | None] = {"p50": None, "p90": None, "p99": None}
    h1 = h2 = None
    growing = judged = False
    window = 0.0 if a is None else b.t - a.t
    if a is not None and window > 0:
        offered = (b.published_readings - a.published_readings) / window
    if len(scraped) >= 2 and scraped[-1].t > scraped[0].t:
        a, b = scraped[0], scraped[-1]
        window = b.t - a.t
        offered = (b.published_readings - a.published_readings) / window
        committed = (b.metrics.get(COMMITTED, 0.0) - a.metrics.get(COMMITTED, 0.0)) / window
        share = committed / offered if offered else None
        lag = histogram_percentiles(a.metrics, b.metrics, E2E_LAG)
        judged = window >= MIN_JUDGED_WINDOW_S
        detectable = min(KNEE_COMMITTED_SHARE, 1.0 - LAG_ALLOWANCE_S / window) if judged else None
        mid = _nearest(scraped, (a.t + b.t) / 2)
        if mid is not None and a.t < mid.t < b.t:
            h1 = histogram_percentiles(a.metrics, mid.metrics, E2E_LAG, (0.5,))["p50"]
            h2 = histogram_percentiles(mid.metrics, b.metrics, E2E_LAG, (0.5,))["p50"]
            growing = (window >= MIN_LAG_GROWTH_WINDOW_S and h1 is not None and h2 is not None
                       and h2 > max(LAG_GROWTH_FACTOR * h1, LAG_GROWTH_MIN_S))
    cpus = [s.cpu_percent for s in inside if s.cpu_percent is not None]
    rss = [s.rss_bytes for s in inside if s.rss_bytes is not None]
    return StepResult(
        step=i, target_readings_s=rate, offered_readings_s=offered or 0.0, committed_readings_s=committed,
        committed_share=share, lag_s=lag, lag_first_half_p50_s=h1, lag_second_half_p50_s=h2, lag_growing=growing,
        alert_latency_s={"p50": _pct(latencies, 50), "p99": _pct(latencies, 99), "max": max(latencies) if latencies else None},
        alert_probes=len(latencies), cpu_percent_mean=float(np.mean(cpus)) if cpus else None,
        rss_mb_max=max(rss) / 2**20 if rss else None, t0=t0, t1=t1, window_s=window, judged=judged,
        knee_detectable_below=detectable)


def knee_reason(s: StepResult) -> str | None:
    if not s.judged:
        return None
    if s.committed_share is not None and s.knee_detectable_below is not None \
            and s.committed_share < s.knee_detectable_below:
        return f"committed {s.committed_share:.0%} of offered"
    if s.lag_growing:
        return f"lag growing ({s.lag_first_half_p50_s:.2f} s → {s.lag_second_half_p50_s:.2f} s median)"
    return None


def build_report(plan: LoadPlan, fleet_name: str, sensors: int, edges: list[tuple[float, float, float]],
                 samples: list[Sample], latencies: list[tuple[float, float]], probes_injected: int,
                 publisher: dict[str, Any], metrics_url: str | None, service_pid: int | None,
                 scrape_failures: int) -> LoadReport:
    """The report of a run: ``edges`` are (target rate, t0, t1) of each step, ``latencies``
    (probe publish time, alert latency s)."""
    steps = [judge_step(i, rate, t0, t1, samples, [lat for t, lat in latencies if t0 <= t < t1])
             for i, (rate, t0, t1) in enumerate(edges)]
    knee = next((s for s in steps if knee_reason(s)), None)
    scraped = [s for s in samples if s.metrics]
    all_lat = [lat for _, lat in latencies]
    return LoadReport(
        plan=plan, fleet=fleet_name, sensors=sensors, steps=steps,
        knee_step=None if knee is None else knee.step, knee_readings_s=None if knee is None else knee.target_readings_s,
        knee_reason=None if knee is None else knee_reason(knee),
        dead_letters=dead_letters_by_reason(scraped[0].metrics, scraped[-1].metrics) if len(scraped) >= 2 else None,
        alert_latency_s={"p50": _pct(all_lat, 50), "p90": _pct(all_lat, 90), "p99": _pct(all_lat, 99),
                         "max": max(all_lat) if all_lat else None},
        alert_probes_injected=probes_injected, alert_probes_answered=len(all_lat), publisher=publisher,
        metrics_url=metrics_url, service_pid=service_pid, scrape_failures=scrape_failures)
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
    ax1.plot(x, [np.nan if s.committed_readings_s is None else s.committed_readings_s for s in report.steps], "s-",
             label="committed")
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
    if report.metrics_url is None:
        lines.append("committed, lag and dead letters: not measured (no --metrics-url)")
    elif report.scrape_failures:
        lines.append(f"metrics: {report.scrape_failures} scrapes of {report.metrics_url} failed; figures come from the others")
    if report.dead_letters is None:
        lines.append("dead letters: not measured")
    else:
        lines.append("refused (dead letters): " + (", ".join(
            f"{k.rsplit(' ', 1)[0]} {v:,.0f} {k.rsplit(' ', 1)[1]}" for k, v in sorted(report.dead_letters.items())) or "none"))
    lines.append("knee: " + _knee_line(report))
    return "\n".join(lines)


def _knee_line(report: LoadReport) -> str:
    if report.knee_step is not None:
        return f"step {report.knee_step + 1} at {report.knee_readings_s:,.0f} readings/s ({report.knee_reason})"
    judged = [s for s in report.steps if s.judged]
    if not judged:
        return "not judged (no step was measured long enough; give each step --dwell of at least 10 s)"
    weakest = min(s.knee_detectable_below for s in judged if s.knee_detectable_below is not None)
    unjudged = len(report.steps) - len(judged)
    text = "not reached"
    if unjudged:
        text += f" in the {len(judged)} judged steps ({unjudged} too short to judge)"
    if weakest < KNEE_COMMITTED_SHARE:
        text += (f"; steps of {report.plan.dwell_s:g} s show a knee only below {weakest:.0%} committed "
                 f"(--dwell {FULL_JUDGEMENT_DWELL_S:.0f} or more for the {KNEE_COMMITTED_SHARE:.0%} rule)")
    return text
