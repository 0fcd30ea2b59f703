"""Every shipped drill scenario × several seeds against the real service, as one score table.

Issue 6's target: each scenario detected, at the expected grade, within its deadline, for every
seed; at most one false alarm per 1,000 sensor-hours of normal fleet traffic.

Each drill gets a fresh database (cloned from a migrated template on the machine's PostgreSQL), a
private Mosquitto from the project's configuration and ``python -m yujing run`` as a subprocess
with the default detectors and alerts policy, so no drill sees another's state, retained status
or alerts. The fleet's registry is imported, then :func:`simulators.drill.run_drill` publishes
the fleet with the scenario bound by seed (one MQTT connection per gateway, real Last Wills) and
scores what the service published on ``yj/v1/+/+/alerts``.

Simulated time runs ``--speed`` times faster than the wall clock; a scenario whose deadline is
long (sensor drift: 2 h) may run faster (``--fast-speed`` for deadlines of 20 minutes and more).
Pipeline latency is counted ``speed`` times over (see simulators/drill.py), so a higher speed
makes delays look worse, never better.

Run:  .venv/bin/python bench/drills.py                               (7 scenarios × seeds 0–4, ~25 min)
      .venv/bin/python bench/drills.py --scenarios stuck-sensor --seeds 0-1 --json var/drills.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import asyncpg  # noqa: E402

from bench.ingest import ServiceUnderTest  # noqa: E402
from simulators import build_fleet, load_preset, load_scenario, scenario_names, write_registry  # noqa: E402
from simulators.drill import FALSE_ALARMS_PER_1000H_TARGET, DrillOptions, DrillReport, run_drill  # noqa: E402
from store.registry_records import import_registry  # noqa: E402
from store.registry_file import parse_registry_file  # noqa: E402
from tests.support import services  # noqa: E402

BEIJING = dt.timezone(dt.timedelta(hours=8))
FAST_DEADLINE_S = 1200.0  # scenarios whose deadline is at least this long may run at --fast-speed


# The shipped detectors and policy are what is measured: no configuration files from the caller.
SERVICE_ENV: dict[str, str | None] = {"YUJING_LOG_LEVEL": "warning", "YUJING_DETECTORS_CONFIG": None,
                                      "YUJING_ALERTS_CONFIG": None, "YUJING_CONFIG": None}


async def _prepare(template: str, registry: Path) -> str:
    name = await services.clone_database(template)
    url = services.database_url(name)
    conn = await asyncpg.connect(url)
    try:
        await import_registry(conn, parse_registry_file(registry.read_text(encoding="utf-8")))
    finally:
        await conn.close()
    return name


def one_drill(fleet, spec, seed: int, speed: float, template: str, registry: Path, work: Path) -> DrillReport:
    name = asyncio.run(_prepare(template, registry))
    broker = services.Broker()
    broker.start()
    service = None
    try:
        service = ServiceUnderTest(services.database_url(name), broker.url, work / f"{spec.name}-{seed}.log",
                                   env=SERVICE_ENV)
        return run_drill(fleet, spec, broker.tools_url, seed=seed, options=DrillOptions(speed=speed, linger_s=3.0))
    finally:
        if service is not None:
            service.stop()
        broker.close()
        asyncio.run(services.drop_database(name))


def parse_seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5-6``."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _rel(x: float | None) -> str:
    return "—" if x is None else f"{x:+.0f}"


def _clock(sim_s: float) -> str:
    return dt.datetime.fromtimestamp(sim_s, BEIJING).strftime("%H:%M")


def _window(reports: list[DrillReport]) -> str:
    """The local clock times the drills' traffic covered, merged where they overlap."""
    merged: list[list[float]] = []
    for a, b in sorted((r.sim0_s, r.sim0_s + (r.run.sim_s if r.run else r.score.observed_sim_s - r.sim0_s))
                       for r in reports):
        if merged and a <= merged[-1][1] + 60.0:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return ", ".join(f"{_clock(a)}–{_clock(b)}" for a, b in merged)


def kind_of(fleet) -> dict[tuple[str, str], str]:
    return {(fleet.enterprises[e].id, s.id): s.kind for e, s in fleet.sensors}


def table(reports: list[DrillReport], fleet) -> str:
    kinds = kind_of(fleet)
    lines = ["| scenario | seed | verdict | delay s | to expected grade s | deadline s | grade raised / expected "
             "| false alarms | per 1,000 sensor-h | false-alarm rules |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = r.score
        rules = collections.Counter(f"{a['rule']}:{kinds.get((a['enterprise'], a['subject'].partition(':')[2]), a['subject'].partition(':')[0])}"
                                    for a in s.false_alarms)
        lines.append(
            f"| {s.scenario} | {s.seed} | {s.verdict} | {_rel(s.delay_s)} | {_rel(s.grade_delay_s)} "
            f"| {s.deadline_s - s.reference_s:.0f} | {s.raised_grade or '—'} / {s.expected_grade} "
            f"| {len(s.false_alarms)} | {s.false_alarms_per_1000h:.2f} "
            f"| {', '.join(f'{k} ×{n}' for k, n in rules.most_common()) or '—'} |")
    return "\n".join(lines)


def summary(reports: list[DrillReport], fleet) -> str:
    kinds = kind_of(fleet)
    by: dict[str, list] = collections.defaultdict(list)
    for r in reports:
        by[r.score.scenario].append(r.score)
    lines = ["| scenario | seeds | detected | at expected grade by deadline | higher than expected | worst delay to grade s "
             "(deadline s) | false alarms / sensor-h |",
             "|---|---|---|---|---|---|---|"]
    for name, ss in by.items():
        higher = sum(1 for s in ss if s.raised_grade and s.raised_grade != s.expected_grade and s.grade_ok)
        worst = max((s.grade_delay_s for s in ss if s.grade_delay_s is not None), default=None)
        deadline = max(s.deadline_s - s.reference_s for s in ss)
        fa = sum(len(s.false_alarms) for s in ss)
        hours = sum(s.normal_sensor_hours for s in ss)
        lines.append(f"| {name} | {len(ss)} | {sum(s.detected for s in ss)}/{len(ss)} | {sum(s.passed for s in ss)}/{len(ss)} "
                     f"| {higher} | {_rel(worst)} ({deadline:.0f}) | {fa} / {hours:,.0f} |")
    fa = [a for r in reports for a in r.score.false_alarms]
    hours = sum(r.score.normal_sensor_hours for r in reports)
    rate = 1000.0 * len(fa) / hours if hours else 0.0
    rules = collections.Counter(f"{a['rule']} on {kinds.get((a['enterprise'], a['subject'].partition(':')[2]), a['subject'])} "
                                f"({a['grade']})" for a in fa)
    passed = sum(r.score.passed for r in reports)
    lines += ["", f"simulated time of day covered: {_window(reports)} 北京时间 (drills run at the wall clock's time; "
              "for the whole-day rate run bench/false_alarms.py)",
              f"passed {passed}/{len(reports)}; false alarms {len(fa)} over {hours:,.0f} sensor-hours of normal traffic = "
              f"**{rate:.2f} per 1,000 sensor-hours** (target ≤ {FALSE_ALARMS_PER_1000H_TARGET:g})"
              + (f": {', '.join(f'{k} ×{n}' for k, n in rules.most_common())}" if rules else "")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(scenario_names()), help="comma-separated (default: every shipped one)")
    ap.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3,7")
    ap.add_argument("--preset", default="jiangxi-demo")
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    ap.add_argument("--fast-speed", type=float, default=120.0,
                    help=f"speed for scenarios whose deadline is ≥ {FAST_DEADLINE_S:.0f} s after the reference")
    ap.add_argument("--json", type=Path, help="also write every report here")
    args = ap.parse_args()

    fleet = build_fleet(load_preset(args.preset))
    specs = [load_scenario(n) for n in args.scenarios.split(",") if n]
    seeds = parse_seeds(args.seeds)
    work = Path(tempfile.mkdtemp(prefix="yj-drills-"))
    registry = work / "registry.yaml"
    write_registry(fleet, registry)
    template = f"yj_drills_{os.getpid()}"
    asyncio.run(services.create_template(template))
    print(f"fleet {args.preset}: {fleet.n_sensors} sensors, {fleet.n_gateways} gateways; {len(specs)} scenarios × "
          f"seeds {args.seeds}; speed {args.speed:g}× ({args.fast_speed:g}× for deadlines ≥ {FAST_DEADLINE_S:.0f} s); "
          f"logs in {work}", flush=True)
    reports: list[DrillReport] = []
    t0 = time.monotonic()
    try:
        for spec in specs:
            for seed in seeds:
                fast = spec.deadline_s >= FAST_DEADLINE_S
                speed = args.fast_speed if fast else args.speed
                w0 = time.monotonic()
                r = one_drill(fleet, spec, seed, speed, template, registry, work)
                reports.append(r)
                s = r.score
                print(f"{spec.name:<17} seed {seed}  {s.verdict:<12} delay {_rel(s.delay_s):>6} s, to grade "
                      f"{_rel(s.grade_delay_s):>6} s (deadline {s.deadline_s - s.reference_s:.0f} s), grade "
                      f"{s.raised_grade or '—'}/{s.expected_grade}, false alarms {len(s.false_alarms)} "
                      f"({s.false_alarms_per_1000h:.2f}/1,000 sensor-h) at {speed:g}×, {time.monotonic() - w0:.0f} s wall",
                      flush=True)
    finally:
        asyncio.run(services.drop_database(template))
        if args.json and reports:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\n{len(reports)} drills in {time.monotonic() - t0:.0f} s wall\n")
    print(table(reports, fleet))
    print()
    print(summary(reports, fleet))


if __name__ == "__main__":
    main()
