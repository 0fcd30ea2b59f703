"""One incident per place and cause (issue 13 §7): findings of several rules on one sensor, and of
the sensors of one zone, fold into one alert graded by its worst evidence. Fake clock; the MQTT
test runs against the real broker."""

from __future__ import annotations

import asyncio
import json

from alerts import records, render
from domain.severity import SubjectKind
from tests.alerts.support import (
    ALARM, CLEAR, NOTICE, RAISE, UPDATE, WARNING, findings, load_snapshot, make_policy, make_service, outbox,
)
from tests.alerts.test_state_updates import Gateway

NAN = float("nan")


async def test_one_ammonia_leak_is_one_alert_listing_its_six_findings(pool, clock, receiver):
    """limit + anomaly + rate on each of two sensors of the machine room: six findings, one alert."""
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(5, "rate", RAISE, NOTICE, t, 60, 30), (5, "anomaly", RAISE, NOTICE, t, 60, 0.999)]))
    clock.advance(5)
    await svc.handle(findings([(7, "rate", RAISE, NOTICE, clock.t, 50, 30), (5, "limit", RAISE, WARNING, clock.t, 120, 100),
                               (7, "anomaly", RAISE, NOTICE, clock.t, 50, 0.999)]))
    clock.advance(5)
    await svc.handle(findings([(7, "limit", RAISE, WARNING, clock.t, 110, 100),
                               (5, "limit", UPDATE, ALARM, clock.t, 300, 300)]))  # 300 ppm: red, latched
    async with pool.acquire() as conn:
        [a] = await records.fetch(conn, "true")
        snap = await load_snapshot(conn)
    assert a.alert_key == "zone:4:ammonia" and a.subject == 5
    assert (a.grade.id, a.rule, a.grading_rule, a.value) == ("red", "limit", "ammonia-power-cut", 300)
    assert sorted((e.subject, e.rule) for e in a.evidence) == [
        (5, "anomaly"), (5, "limit"), (5, "rate"), (7, "anomaly"), (7, "limit"), (7, "rate")]
    assert a.sensor_ids() == (5, 7)
    d = a.as_dict()  # what the API shows: its existing fields, plus every contributing finding
    assert d["alert_key"] == "zone:4:ammonia" and d["grade"] == "red" and len(d["findings"]) == 6
    assert {f["subject"]["code"] for f in d["findings"]} == {"NH3-0301", "NH3-0302"}
    text = render.describe(a, snap, svc.grader.rule_named(a.grading_rule), "zh", clock.us)
    assert "证据 6 项：超限 NH3-0301、超限 NH3-0302" in text, text
    assert "6 findings: over limit NH3-0301" in render.describe(a, snap, None, "en", clock.us)


async def test_a_methane_step_is_one_orange_alert_and_its_rise_is_told_at_once(pool, clock, receiver):
    """rate (blue) then limit at the power-cut setpoint (orange) on one sensor: one alert, orange,
    listing both; the rise from blue to orange is told at once, past the group's timers."""
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "rate", RAISE, NOTICE, clock.t, 0.9, 0.5)]))  # blue: group_wait 30 s
    await svc.tick()
    async with pool.acquire() as conn:
        assert await outbox(conn, "control-room") == []
        clock.advance(2)
        await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
        await svc.tick()
        rows = await outbox(conn, "control-room")
        [a] = await records.fetch(conn, "true")
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM alert_journal ORDER BY seq")]
    assert (a.grade.id, a.rule, a.state.value) == ("orange", "limit", "firing")
    assert sorted(e.rule for e in a.evidence) == ["limit", "rate"]
    assert actions[:2] == ["opened", "grade_raised"]
    [row] = rows  # told at once, 2 s after the first finding: the rise, graded orange
    told = row["payload"]["alerts"][0]
    assert told["grade"] == "orange" and [f["rule"] for f in told["findings"]] == ["rate", "limit"]
    assert told["message"].startswith("【橙色预警】南昌市 某煤矿 采煤工作面 甲烷 1.6%VOL ≥ 断电值 1.5%VOL")


async def test_the_grade_follows_the_worst_active_evidence_and_clears_with_the_last(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, ALARM, t, 1.6, 1.5), (1, "rate", RAISE, NOTICE, t, 0.9, 0.5)]))
    clock.advance(10)
    await svc.handle(findings([(1, "limit", CLEAR, ALARM, clock.t, 0.4, 1.5)]))
    async with pool.acquire() as conn:
        [a] = await records.fetch(conn, "true")
        assert (a.grade.id, a.rule, a.active, a.state.value) == ("blue", "rate", True, "firing")
        clock.advance(10)
        await svc.handle(findings([(1, "rate", CLEAR, NOTICE, clock.t, 0.1, 0.5)]))
        [a] = await records.fetch(conn, "true")
        assert (a.active, a.state.value) == (False, "resolved")
        # a replay of a finding already applied to its evidence changes nothing
        version = a.version
        await svc.handle(findings([(1, "limit", CLEAR, ALARM, t + 10, 0.4, 1.5)]))
        [a] = await records.fetch(conn, "true")
    assert a.version == version and svc.stats.replayed == 1


async def test_another_sensor_joins_a_resolved_incident_only_within_the_fold_window(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    clock.advance(30)
    await svc.handle(findings([(1, "limit", CLEAR, WARNING, clock.t, 0.4, 1.0)]))
    clock.advance(601)  # past the 10 min fold window: the face's other point opens a new incident
    await svc.handle(findings([(2, "limit", RAISE, WARNING, clock.t, 1.1, 1.0)]))
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, alert_key, state FROM alerts ORDER BY id")
        assert [(r["alert_key"], r["state"]) for r in rows] == [
            ("zone:1:methane", "closed"), ("zone:1:methane", "firing")]
        by = await conn.fetchval("SELECT detail::jsonb->>'by' FROM alert_journal WHERE action = 'closed'")
        assert by.startswith("a new incident")
        clock.advance(30)
        await svc.handle(findings([(2, "limit", CLEAR, WARNING, clock.t, 0.4, 1.0)]))
        clock.advance(300)  # 5 min after this one resolved: the first point joins (reopens) it
        await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
        rows = await conn.fetch("SELECT alert_key, state, reopened, jsonb_array_length(evidence) AS n"
                                " FROM alerts ORDER BY id")
    assert [(r["state"], r["reopened"], r["n"]) for r in rows] == [("closed", 0, 1), ("firing", 1, 2)]


async def test_an_operators_resolve_ends_the_evidence_and_only_a_raise_reopens(pool, clock, receiver):
    from alerts import transitions

    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, WARNING, t, 1.2, 1.0), (2, "rate", RAISE, NOTICE, t, 0.9, 0.5)]))
    async with pool.acquire() as conn:
        [a] = await records.fetch(conn, "true")
        clock.advance(10)
        await transitions.resolve(conn, a.id, "王五", "传感器已拆除", force=True, now_us=clock.us)
        clock.advance(10)
        await svc.handle(findings([(1, "limit", CLEAR, WARNING, clock.t, 0.4, 1.0)]))
        [a] = await records.fetch(conn, "true")
        assert (a.state.value, a.active) == ("resolved", False)
        clock.advance(10)
        await svc.handle(findings([(2, "rate", RAISE, NOTICE, clock.t, 0.9, 0.5)]))
        [a] = await records.fetch(conn, "true")
    assert (a.state.value, a.active, a.reopened) == ("firing", True, 1)


async def test_instrument_health_is_its_own_cause_per_sensor(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "stuck", RAISE, NOTICE, t, 0.3, NAN), (1, "fault", RAISE, NOTICE, t, NAN, NAN),
                               (2, "nodata", RAISE, NOTICE, t, NAN, NAN), (1, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
    async with pool.acquire() as conn:
        keys = sorted(r["alert_key"] for r in await conn.fetch("SELECT alert_key FROM alerts"))
    assert keys == ["sensor:1:health", "sensor:2:health", "zone:1:methane"]


async def test_zone_alerts_reach_every_gateway_of_the_zone_on_mqtt(pool, clock, receiver, broker):
    gw = Gateway(broker)
    try:
        assert gw.ready.wait(5)
        await asyncio.sleep(0.2)
        svc = await make_service(None, make_policy(receiver.url), clock, pool=pool, mqtt_publish=gw.publish)
        # a compound rule of the machine room (zone 4, served by gateways G003 and G004)
        await svc.handle(findings([(4, "compound.fan_off", RAISE, ALARM, clock.t, NAN, NAN, SubjectKind.ZONE)]))
        # and a zone rule of a zone without any sensor on a gateway: every gateway of its enterprise
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO zones (id, enterprise, code, name) VALUES (9, 'E002', 'TF09', '空罐区')")
        svc.registry = svc.dispatcher.registry = svc.updates.registry = await _snapshot(pool)
        await svc.handle(findings([(9, "compound.spread", RAISE, ALARM, clock.t, NAN, NAN, SubjectKind.ZONE)]))
        await svc.tick()
        await svc.deliver()
        got = await gw.wait_for(3)
    finally:
        gw.close()
    topics = sorted((t, m["alert_key"]) for t, m in got)
    assert topics == [("yj/v1/E002/G002/alerts", "zone:9:compound.spread"),
                      ("yj/v1/E003/G003/alerts", "zone:4:compound.fan_off"),
                      ("yj/v1/E003/G004/alerts", "zone:4:compound.fan_off")]
    for _, m in got:
        assert m["schema"] == "yujing.alert/2" and m["subject"]["kind"] == "zone"


async def _snapshot(pool):
    async with pool.acquire() as conn:
        snap = await load_snapshot(conn)
    return lambda: snap


async def test_folded_incident_publishes_to_each_gateway_of_its_sensors(pool, clock, receiver):
    sent = []
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool,
                             mqtt_publish=lambda t, p: sent.append((t, json.loads(p))))
    await svc.handle(findings([(5, "limit", RAISE, WARNING, clock.t, 120, 100)]))
    await svc.tick()
    clock.advance(5)
    await svc.handle(findings([(7, "limit", RAISE, ALARM, clock.t, 300, 300)]))  # red: another gateway's sensor
    await svc.tick()
    await svc.deliver()
    tops = [(t, m["grade"]) for t, m in sent]
    assert tops == [("yj/v1/E003/G003/alerts", "yellow"),
                    ("yj/v1/E003/G003/alerts", "red"), ("yj/v1/E003/G004/alerts", "red")]
