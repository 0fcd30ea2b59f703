"""Findings → alerts → groups → outbox, with a fake clock (no sleeps)."""

from __future__ import annotations

import pytest

from alerts import transitions
from alerts.feed import AlertFeed
from alerts.lifecycle import State
from tests.alerts.support import (
    ALARM, CLEAR, CRITICAL, RAISE, UPDATE, WARNING, make_policy, make_service, outbox, findings,
)


async def alerts_of(conn):
    return await conn.fetch("SELECT * FROM alerts ORDER BY id")


async def test_finding_opens_graded_alert_and_notifies_after_group_wait(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        assert (a["state"], a["grade"], a["grading_rule"]) == ("firing", 2, "coal-methane-alarm")
        await svc.tick()
        assert await outbox(conn) == []  # yellow: the root route waits group_wait (30 s)
        clock.advance(29)
        await svc.tick()
        assert await outbox(conn) == []
        clock.advance(1)
        await svc.tick()
        rows = await outbox(conn)
    assert len(rows) == 1
    p = rows[0]["payload"]
    assert rows[0]["receiver"] == "control-room"
    assert p["alerts"][0]["message"].startswith("【黄色预警】南昌市 某煤矿 采煤工作面 甲烷 1.2%VOL ≥ 报警值 1%VOL，持续 30 秒")
    assert p["idempotency_key"].startswith("zone:1:methane#1@1")  # the incident: zone WF1301, methane


async def test_replayed_findings_change_nothing(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    batch = findings([(1, "limit", RAISE, WARNING, t, 1.2, 1.0), (1, "limit", UPDATE, ALARM, t + 10, 1.6, 1.5)])
    await svc.handle(batch)
    async with pool.acquire() as conn:
        before = dict((await alerts_of(conn))[0])
        journal_before = await conn.fetchval("SELECT count(*) FROM alert_journal")
        await svc.handle(batch)  # a replay after a restart of the detectors
        await svc.handle(findings([(1, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
        after = await alerts_of(conn)
        assert len(after) == 1
        assert after[0]["version"] == before["version"]
        assert await conn.fetchval("SELECT count(*) FROM alert_journal") == journal_before
    assert svc.stats.replayed == 3


async def test_rise_in_grade_notifies_at_once(pool, clock, receiver):
    doc_policy = make_policy(receiver.url)
    svc = await make_service(None, doc_policy, clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(3, "limit", RAISE, WARNING, t, 30, 24)]))  # CO yellow, group_wait 30 s
    await svc.tick()
    clock.advance(31)
    await svc.tick()
    async with pool.acquire() as conn:
        assert len(await outbox(conn)) == 1
        clock.advance(5)  # well inside group_interval (5 min)
        await svc.handle(findings([(3, "limit", UPDATE, CRITICAL, clock.t, 200, 24)]))  # → red by default grading
        await svc.tick()
        rows = await outbox(conn)
    assert len(rows) >= 2
    last = rows[-1]["payload"]["alerts"][0]
    assert last["grade"] == "red" and last["version"] > rows[0]["payload"]["alerts"][0]["version"]


async def test_grade_can_fall_while_open(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, ALARM, t, 1.6, 1.5)]))
    await svc.handle(findings([(1, "limit", UPDATE, WARNING, t + 60, 1.2, 1.0)]))
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        assert (a["grade"], a["peak_grade"], a["state"]) == (2, 3, "firing")
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM alert_journal ORDER BY seq")]
    assert actions == ["opened", "grade_lowered"]


async def test_clear_resolves_and_raise_after_close_opens_new_incident(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
    await svc.handle(findings([(1, "limit", CLEAR, WARNING, t + 5, 0.4, 1.0)]))
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        assert a["state"] == "resolved" and not a["active"]
        await transitions.close(conn, a["id"], "张三", "现场核查无异常", now_us=clock.us)
        clock.advance(100)
        await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.3, 1.0)]))
        rows = await alerts_of(conn)
    assert [r["state"] for r in rows] == ["closed", "firing"]
    assert rows[0]["alert_key"] == rows[1]["alert_key"] == "zone:1:methane"


async def test_red_latches_until_reset_after_return_to_normal(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "over_range", RAISE, ALARM, t, 40.0, 40.0)]))  # saturated methane → red, latch
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        assert a["grade"] == 4
        with pytest.raises(transitions.lifecycle.TransitionError):
            await transitions.reset_latch(conn, a["id"], "李四", now_us=clock.us)  # not latched yet: still active
        await svc.handle(findings([(1, "over_range", CLEAR, ALARM, t + 60, 0.3, 40.0)]))
        [a] = await alerts_of(conn)
        assert a["state"] == "latched" and not a["active"]
        await svc.handle(findings([(1, "over_range", RAISE, ALARM, t + 70, 40.0, 40.0)]))
        [a] = await alerts_of(conn)
        assert a["state"] == "firing" and a["active"]
        with pytest.raises(transitions.lifecycle.TransitionError):
            await transitions.close(conn, a["id"], "李四", now_us=clock.us)
        await svc.handle(findings([(1, "over_range", CLEAR, ALARM, t + 80, 0.3, 40.0)]))
        [a] = await alerts_of(conn)
        assert a["state"] == "latched"
        reset = await transitions.reset_latch(conn, a["id"], "李四", "复位", now_us=clock.us)
        assert reset.state is State.RESOLVED
        again = await transitions.reset_latch(conn, a["id"], "李四", "复位", now_us=clock.us)
        assert again.version == reset.version  # idempotent


async def test_acknowledge_is_idempotent_and_versioned(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        acked = await transitions.acknowledge(conn, a["id"], "王五", "收到", expected_version=a["version"],
                                              now_us=clock.us)
        assert acked.state is State.ACKNOWLEDGED and acked.version == a["version"] + 1
        same = await transitions.acknowledge(conn, a["id"], "王五", "收到", expected_version=a["version"],
                                             now_us=clock.us)
        assert same.version == acked.version
        with pytest.raises(transitions.VersionConflict):
            await transitions.assign(conn, a["id"], "王五", "赵六", expected_version=a["version"], now_us=clock.us)
        await transitions.comment(conn, a["id"], "王五", "已派人", now_us=clock.us)
        hist = await transitions.history(conn, a["id"])
    assert [h["action"] for h in hist] == ["opened", "acknowledged", "commented"]
    assert hist[1]["actor"] == "王五"


async def test_operator_transitions_reach_the_feed(pool, clock, receiver):
    feed = AlertFeed()
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool, feed=feed)
    await svc.tick()  # starts the feed at the journal head
    sub = feed.subscribe()
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    await svc.tick()
    async with pool.acquire() as conn:
        [a] = await alerts_of(conn)
        await transitions.acknowledge(conn, a["id"], "王五", now_us=clock.us)
    await svc.tick()
    events = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [e["action"] for e in events] == ["opened", "acknowledged"]
    assert events[0]["enterprise"] == "E001" and events[1]["detail"]["alert"]["state"] == "acknowledged"


async def test_orange_spike_that_cleared_before_the_flush_is_still_told(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    # a power-cut spike raised and cleared within one ingest chunk
    await svc.handle(findings([(1, "limit", RAISE, ALARM, t, 1.6, 1.5), (1, "limit", CLEAR, ALARM, t + 0.05, 0.4, 1.5)]))
    async with pool.acquire() as conn:
        for _ in range(3):
            await svc.tick()
            clock.advance(1)
        rows = [r for r in await outbox(conn) if r["receiver"] == "control-room"]
    assert len(rows) == 1
    [told] = rows[0]["payload"]["alerts"]
    assert told["state"] == "resolved" and told["grade"] == "orange"


async def test_yellow_blip_that_cleared_before_the_flush_is_not_told(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    await svc.handle(findings([(1, "limit", RAISE, WARNING, t, 1.1, 1.0), (1, "limit", CLEAR, WARNING, t + 5, 0.4, 1.0)]))
    async with pool.acquire() as conn:
        for _ in range(40):
            await svc.tick()
            clock.advance(1)
        assert [r for r in await outbox(conn) if r["receiver"] == "control-room"] == []
