"""A short drill against the real service: a methane accumulation after a local fan stops is
detected at the expected grade (orange, the 断电 setpoint) within the scenario's deadline.

The service runs in this process (private broker, a database of its own) with the default alert
policy, which sends every alert change to ``yj/v1/{enterprise}/{gateway}/alerts``. Simulated time
runs 30× faster than the wall clock, and the drill stops as soon as the expected grade is seen.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from simulators import FleetConfig, build_fleet, load_scenario, write_registry
from simulators.drill import AlertSeen, DrillOptions, format_report, run_drill, score
from store.registry_records import import_registry
from store.registry_file import parse_registry_file
from tests.support.running import running_service, service_settings

SEED = 2  # methane at T1 crosses 1.0 %VOL ~70 s after onset; any seed works, this one is short
SPEED = 30.0

FLEET = {
    "name": "drill-test",
    "seed": 11,
    "gateway": {"jitter_share": 0.05, "max_batch": 50},
    "regions": [{"code": "360000", "name": "江西省"}, {"code": "360300", "name": "萍乡市", "parent": "360000"},
                {"code": "360302", "name": "安源区", "parent": "360300"}],
    "enterprises": [
        {"id": "CM-T1", "name": "演练煤矿", "region": "360302", "industry": "coal_mine",
         "site": {"faces": 1, "headings": 1}},
        {"id": "CS-T1", "name": "演练冷库", "region": "360302", "industry": "cold_storage"},
    ],
}


@pytest.fixture(scope="module")
def fleet():
    return build_fleet(FleetConfig.from_config(FLEET))


@pytest.mark.timeout(120)
async def test_methane_fan_stop_is_detected_at_the_expected_grade(fleet, db_url, db, broker, tmp_path):
    registry = tmp_path / "registry.yaml"
    write_registry(fleet, registry)
    await import_registry(db, parse_registry_file(registry.read_text(encoding="utf-8")))
    spec = load_scenario("methane-fan-stop")

    async with running_service(service_settings(db_url, broker.url, detectors_rebuild_s=0)):
        report = await asyncio.to_thread(
            run_drill, fleet, spec, broker.tools_url, seed=SEED,
            options=DrillOptions(speed=SPEED, stop_when_scored=True, linger_s=1.0))
    print(format_report(report))

    s = report.score
    assert s.expected_grade == "orange"
    assert s.detected, "the methane accumulation was missed"
    assert s.raised_grade == "orange", s.incident_alerts
    assert s.in_time and s.passed
    assert s.grade_delay_s is not None and s.grade_delay_s <= report.truth.deadline_s - s.reference_s
    # the face (T1, power-cut 1.5 %VOL) or its return (T2, power-cut 1.0 %VOL) reaches 断电
    assert {a["subject"] for a in s.incident_alerts if a["grade"] == "orange"} <= {
        f"sensor:{c}" for c in report.truth.sensors}
    assert not s.false_alarms, s.false_alarms
    # what the service stored agrees with what was heard on the alerts topic
    stored = await db.fetchval(
        "SELECT max(a.grade) FROM alerts a JOIN sensors s ON s.id = a.subject AND a.subject_kind = 1"
        " WHERE s.code = ANY($1::text[]) AND s.enterprise = $2", list(report.truth.sensors), report.truth.enterprise)
    assert stored == 3  # orange
    json.dumps(report.as_dict(), ensure_ascii=False)  # the CLI's JSON report is serialisable


def test_score_counts_reopenings_and_ignores_alerts_open_before_the_drill(fleet):
    spec = load_scenario("methane-fan-stop")
    from simulators import bind

    truth = bind(spec, fleet, 1_767_225_600.0, SEED).truth
    face = truth.primary[0]
    other = next(s.id for e, s in fleet.sensors if fleet.enterprises[e].id == "CS-T1")

    def msg(t, key, state, grade, code, ent, kind="sensor", zone=""):
        payload = {"alert_key": key, "id": 1, "version": 1, "state": state, "grade": grade, "rule": "limit",
                   "subject": {"kind": kind, "id": 1, "code": code}, "enterprise": ent, "zone": zone}
        return AlertSeen.parse(json.dumps(payload).encode(), t, t)

    d = truth.dangerous_s
    alerts = [
        msg(d - 500, "sensor:9:nodata", "resolved", "blue", other, "CS-T1"),  # left over: not counted
        msg(d + 5, "sensor:1:limit", "firing", "yellow", face, truth.enterprise, zone=truth.zone),
        msg(d + 40, "sensor:1:limit", "firing", "orange", face, truth.enterprise, zone=truth.zone),
        msg(d + 41, "sensor:1:limit", "firing", "orange", face, truth.enterprise, zone=truth.zone),  # repeat
        msg(d + 50, "sensor:9:nodata", "firing", "blue", other, "CS-T1"),  # a false alarm elsewhere
    ]
    s = score(truth, fleet, alerts, d + 100, 3600.0)
    assert s.detected and s.raised_grade == "orange" and s.passed
    assert s.delay_s == pytest.approx(5.0) and s.grade_delay_s == pytest.approx(40.0)
    assert len(s.incident_alerts) == 2 and len(s.false_alarms) == 1
    assert s.false_alarms_per_1000h == pytest.approx(1000.0 / (fleet.n_sensors - len(truth.sensors)))
    late = score(truth, fleet, [msg(truth.deadline_s + 1, "k", "firing", "orange", face, truth.enterprise)], d, 60)
    assert late.detected and not late.in_time and late.verdict == "late"
    assert score(truth, fleet, [], d, 60).verdict == "missed"
