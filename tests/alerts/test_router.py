"""Grouping, inhibition, silences, maintenance, escalation, flapping, upgrades — on a fake clock."""

from __future__ import annotations

import json

from alerts import silences, transitions
from alerts.policy import from_config
from domain.severity import SubjectKind
from tests.alerts.support import (
    ALARM, CLEAR, NOTICE, RAISE, WARNING, findings, make_policy, make_service, outbox, policy_doc,
)

GW = SubjectKind.GATEWAY


def keys_in(rows, receiver="control-room"):
    return [[a["alert_key"] for a in r["payload"]["alerts"]] for r in rows if r["receiver"] == receiver]


async def test_grouping_wait_interval_and_repeat(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    # CO and methane in roadway RW1301: two causes, two incidents, one group (enterprise, zone, rule)
    await svc.handle(findings([(3, "limit", RAISE, WARNING, t, 30, 24)]))
    clock.advance(10)
    await svc.handle(findings([(6, "limit", RAISE, WARNING, clock.t, 1.1, 1.0)]))
    await svc.tick()
    async with pool.acquire() as conn:
        clock.advance(20)  # t + 30: group_wait of the first member
        await svc.tick()
        rows = await outbox(conn, "control-room")
        assert keys_in(rows) == [["zone:2:carbon_monoxide", "zone:2:methane"]]  # one message for the group
        clock.advance(10)
        await svc.handle(findings([(3, "limit", CLEAR, WARNING, clock.t, 5, 24)]))
        clock.advance(289)  # t + 329: inside group_interval (300 s) of the first flush
        await svc.tick()
        assert len(await outbox(conn, "control-room")) == 1
        clock.advance(1)  # t + 330
        await svc.tick()
        rows = await outbox(conn, "control-room")
        assert keys_in(rows)[1] == ["zone:2:carbon_monoxide"]
        assert rows[1]["payload"]["status"] == "resolved"
        assert "预警解除" in rows[1]["payload"]["alerts"][0]["message"]
        clock.advance(4 * 3600 - 1)
        await svc.tick()
        assert len(await outbox(conn, "control-room")) == 2
        clock.advance(1)  # repeat_interval (4 h) after the last flush: the open alert again
        await svc.tick()
        rows = await outbox(conn, "control-room")
    assert keys_in(rows)[2] == ["zone:2:methane"] and rows[2]["payload"]["repeat"] is True
    assert len({r["idempotency_key"] for r in rows}) == 3


async def test_flush_is_not_repeated_after_a_restart(pool, clock, receiver):
    policy = make_policy(receiver.url)
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    clock.advance(30)
    await svc.tick()
    restarted = await make_service(None, policy, clock, pool=pool)  # state comes from the database
    await restarted.tick()
    clock.advance(600)
    await restarted.tick()
    async with pool.acquire() as conn:
        assert len(await outbox(conn)) == 1


async def test_crash_before_flush_loses_nothing(pool, clock, receiver):
    policy = make_policy(receiver.url)
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    # the process dies here: handle() committed, no tick ran
    restarted = await make_service(None, policy, clock, pool=pool)
    await restarted.tick()
    async with pool.acquire() as conn:
        rows = await outbox(conn)
    assert keys_in(rows) == [["zone:1:methane"]]


async def test_gateway_offline_inhibits_its_sensors_stale_alerts(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([
        (1, "gateway_offline", RAISE, WARNING, t, float("nan"), float("nan"), GW),
        (1, "nodata", RAISE, NOTICE, t, float("nan"), float("nan")),
        (2, "nodata", RAISE, NOTICE, t, float("nan"), float("nan")),
        (4, "nodata", RAISE, NOTICE, t, float("nan"), float("nan")),  # another enterprise's gateway is fine
    ]))
    clock.advance(30)
    await svc.tick()
    async with pool.acquire() as conn:
        told = sorted(k for ks in keys_in(await outbox(conn)) for k in ks)
        assert told == ["gateway:1:gateway_offline", "sensor:4:health"]
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 4  # inhibited alerts still exist
        # the gateway comes back: its sensors' alerts are told at the next group interval
        await svc.handle(findings([(1, "gateway_offline", CLEAR, WARNING, clock.t, float("nan"), float("nan"), GW)]))
        clock.advance(300)
        await svc.tick()
        told = sorted(k for ks in keys_in(await outbox(conn)) for k in ks)
    assert "sensor:1:health" in told and "sensor:2:health" in told


async def test_fault_and_higher_grade_inhibit_but_never_hide_orange(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([
        (1, "fault", RAISE, NOTICE, t, float("nan"), float("nan")),
        (1, "limit", RAISE, WARNING, t, 1.2, 1.0),  # yellow on a faulty sensor: inhibited
        (6, "ttt", RAISE, NOTICE, t, 1.2, 1.5),  # blue trend, folded into the red incident of its zone
        (6, "over_range", RAISE, ALARM, t, 40.0, 40.0),  # red (saturated): never inhibited
        (6, "stuck", RAISE, NOTICE, t, 40.0, float("nan")),  # blue health under a red value on one sensor
    ]))
    clock.advance(30)
    await svc.tick()
    async with pool.acquire() as conn:
        told = sorted(k for ks in keys_in(await outbox(conn)) for k in ks)
        red = await conn.fetchrow("SELECT grade, rule, jsonb_array_length(evidence) AS n FROM alerts"
                                  " WHERE alert_key = 'zone:2:methane'")
    assert told == ["sensor:1:health", "zone:2:methane"]
    assert (red["grade"], red["rule"], red["n"]) == (4, "over_range", 2)


async def test_silence_mutes_then_expiry_releases(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    async with pool.acquire() as conn:
        s = await silences.create_silence(conn, {"enterprise": "E001", "rule": "limit*"}, None,
                                          clock.us + 3600_000_000, "调度员甲", "传感器标校", now_us=clock.us)
        assert [x.id for x in await silences.list_silences(conn, active_at_us=clock.us)] == [s.id]
        await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
        await svc.tick()
        clock.advance(60)
        await svc.tick()
        assert keys_in(await outbox(conn)) == []
        await silences.expire_silence(conn, s.id, "调度员乙", now_us=clock.us)
        clock.advance(30)
        await svc.tick()
        assert keys_in(await outbox(conn)) == [["zone:1:methane"]]
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM alert_journal WHERE alert_id IS NULL")]
    assert actions == ["silence_created", "silence_expired"]


async def test_silence_validation(pool, clock):
    import pytest

    async with pool.acquire() as conn:
        with pytest.raises(silences.SilenceError, match="at least one matcher"):
            await silences.create_silence(conn, {}, None, clock.us + 10**9, "甲", "r", now_us=clock.us)
        with pytest.raises(silences.SilenceError, match="reason"):
            await silences.create_silence(conn, {"enterprise": "E001"}, None, clock.us + 10**9, "甲", " ",
                                          now_us=clock.us)
        s = await silences.create_silence(conn, {"enterprise": "E001"}, None, clock.us + 10**9, "甲", "检修",
                                          now_us=clock.us)
        s2 = await silences.update_silence(conn, s.id, "乙", ends_us=clock.us + 2 * 10**9, now_us=clock.us)
        assert s2.version == 2 and s2.ends_us == clock.us + 2 * 10**9


async def test_maintenance_window_mutes_up_to_its_colour(pool, clock, receiver):
    # T0 is Saturday 15:06 in Asia/Shanghai
    policy = make_policy(receiver.url, maintenance=[{
        "name": "周六标校", "match": {"enterprise": "E001"}, "max_colour": "yellow",
        "times": [{"weekdays": ["sat"], "start": "15:00", "end": "16:00"}]}])
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0),
                               (3, "limit", RAISE, ALARM, clock.t, 200, 24)]))  # CO alarm: yellow by coal-co
    await svc.handle(findings([(6, "over_range", RAISE, ALARM, clock.t, 40, 40)]))  # red: goes through
    clock.advance(30)
    await svc.tick()
    async with pool.acquire() as conn:
        told = sorted(k for ks in keys_in(await outbox(conn)) for k in ks)
        assert told == ["zone:2:methane"]
        clock.advance(3600)  # 16:06: the window is over
        await svc.tick()
        told = sorted(k for ks in keys_in(await outbox(conn)) for k in ks)
    assert "zone:1:methane" in told and "zone:2:carbon_monoxide" in told


async def test_escalation_chain_stops_on_acknowledgement(pool, clock, receiver):
    async with pool.acquire() as conn:
        await conn.execute("UPDATE enterprises SET contacts = $1::text::jsonb WHERE id = 'E001'", json.dumps(
            [{"role": "safety_officer", "name": "张工", "webhook": receiver.url + "/officer"}], ensure_ascii=False))
        await conn.execute("INSERT INTO webhook_hosts (host, state) VALUES ('127.0.0.1', 'approved')")  # allow-list
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "over_range", RAISE, ALARM, t, 40, 40),   # red, acknowledged at 6 min
                               (6, "over_range", RAISE, ALARM, t, 40, 40)]))  # red, never acknowledged
    await svc.tick()
    async with pool.acquire() as conn:
        def esc(rows):
            return sorted((r["payload"]["alerts"][0]["alert_key"], r["payload"]["escalation"]["step"], r["receiver"])
                          for r in rows if r["payload"]["kind"] == "escalation")
        assert esc(await outbox(conn)) == [("zone:1:methane", 1, "enterprise:E001"),
                                           ("zone:2:methane", 1, "enterprise:E001")]
        clock.advance(5 * 60)
        await svc.tick()
        # E001 is a city enterprise: the county step goes to the city centre
        assert ("zone:1:methane", 2, "city-centre") in esc(await outbox(conn))
        clock.advance(60)
        await transitions.acknowledge(conn, 1, "调度员", now_us=clock.us)
        clock.advance(20 * 60)
        await svc.tick()
        rows = esc(await outbox(conn))
        await svc.deliver()
    assert [r for r in rows if r[0] == "zone:1:methane"] == [
        ("zone:1:methane", 1, "enterprise:E001"), ("zone:1:methane", 2, "city-centre")]
    # the city step would reach the city centre again: skipped; the province step went out
    assert [r for r in rows if r[0] == "zone:2:methane"] == [
        ("zone:2:methane", 1, "enterprise:E001"), ("zone:2:methane", 2, "city-centre"),
        ("zone:2:methane", 4, "province-centre")]
    paths = sorted(r["path"] for r in receiver.requests)
    assert paths.count("/officer") == 2 and paths.count("/province") == 1
    body = json.loads(next(r["body"] for r in receiver.requests if r["path"] == "/province"))
    assert "未确认" in body["text"] and "省级监测中心" in body["text"]


async def test_flapping_alert_is_held_open_and_not_renotified(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    seq = [RAISE, CLEAR] * 5
    for i, ev in enumerate(seq):
        await svc.handle(findings([(1, "limit", ev, WARNING, clock.t, 1.2 if ev == RAISE else 0.5, 1.0)]))
        clock.advance(30)
    async with pool.acquire() as conn:
        a = await conn.fetchrow("SELECT * FROM alerts")
        assert a["flapping"] and a["state"] == "firing" and not a["active"]
        nv = a["notify_version"]
        for ev in [RAISE, CLEAR, RAISE, CLEAR]:
            await svc.handle(findings([(1, "limit", ev, WARNING, clock.t, 1.2, 1.0)]))
            clock.advance(30)
        a = await conn.fetchrow("SELECT * FROM alerts")
        assert a["notify_version"] == nv and a["version"] > nv  # journaled, not notified
        clock.advance(600)  # quiet for 10 min: flapping ends, the alert resolves (and that is told)
        await svc.tick()
        a = await conn.fetchrow("SELECT * FROM alerts")
        assert not a["flapping"] and a["state"] == "resolved" and a["notify_version"] > nv
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 1


async def test_persisting_power_cut_becomes_red_at_once(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))  # orange, group_wait 0
    await svc.tick()
    async with pool.acquire() as conn:
        assert [r["payload"]["grade"] for r in await outbox(conn, "control-room")] == ["orange"]
        clock.advance(4 * 60 + 59)
        await svc.tick()
        assert (await conn.fetchrow("SELECT grade FROM alerts"))["grade"] == 3
        clock.advance(1)
        await svc.tick()  # 5 min at power-cut: red, told at once (group_interval is 1 min)
        rows = await outbox(conn, "control-room")
    assert [r["payload"]["grade"] for r in rows] == ["orange", "red"]
    assert rows[1]["payload"]["alerts"][0]["message"].startswith("【红色预警】南昌市 某煤矿 采煤工作面 甲烷 1.6%VOL ≥ 断电值 1.5%VOL，持续 5 分钟")


async def test_two_points_of_one_face_stay_orange_by_default(pool, clock, receiver):
    # T1 and T0 of one face read one air stream: one accumulation, not spreading (default policy);
    # one incident listing both points
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    clock.advance(10)
    await svc.handle(findings([(2, "limit", RAISE, ALARM, clock.t, 1.7, 1.5)]))
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT grade, evidence::text FROM alerts ORDER BY id")
    assert [r["grade"] for r in rows] == [3]
    assert sorted(e["subject"] for e in json.loads(rows[0]["evidence"])) == [1, 2]


async def test_points_of_one_face_in_power_cut_spread_to_red(pool, clock, receiver):
    doc = policy_doc(receiver.url)
    rule = next(r for r in doc["grading"]["rules"] if r["name"] == "coal-methane-power-cut")
    rule["spread"]["points"] = 2  # the spread mechanism, with two points standing for the default three
    svc = await make_service(None, from_config(doc), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))
    clock.advance(10)
    await svc.handle(findings([(2, "limit", RAISE, ALARM, clock.t, 1.7, 1.5)]))  # same zone WF1301
    async with pool.acquire() as conn:
        grades = [(r["grade"], r["upgraded"]) for r in await conn.fetch("SELECT grade, upgraded FROM alerts ORDER BY id")]
        assert grades == [(4, "spread")]  # one incident, red: two points of its zone in power-cut
        await svc.handle(findings([(2, "limit", CLEAR, ALARM, clock.t + 5, 0.4, 1.5)]))
        grades = [(r["grade"], r["state"]) for r in await conn.fetch("SELECT grade, state FROM alerts ORDER BY id")]
        # the spread ended: the incident falls back to the orange of its remaining point
        assert grades == [(3, "firing")]
        await svc.handle(findings([(1, "limit", CLEAR, ALARM, clock.t + 6, 0.4, 1.5)]))
        grades = [(r["grade"], r["state"]) for r in await conn.fetch("SELECT grade, state FROM alerts ORDER BY id")]
    assert grades == [(3, "latched")]  # it was red: latched until reset
