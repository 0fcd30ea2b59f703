"""Persistence and the durations in messages count the current excursion only (issue 10 §6).

An alert that resolved and reopened must not inherit the time of its first opening: its
persistence upgrade (methane power-cut lasting 5 min → red) and its "持续 N 分钟" start again at
the reopening. Fake clock, no sleeps.
"""

from __future__ import annotations

from alerts import records, render
from tests.alerts.support import ALARM, CLEAR, RAISE, load_snapshot, make_policy, make_service, findings


async def test_persistence_and_duration_restart_with_each_excursion(pool, clock, receiver):
    policy = make_policy(receiver.url)
    svc = await make_service(None, policy, clock, pool=pool)
    t0 = clock.t
    await svc.handle(findings([(1, "limit", RAISE, ALARM, t0, 1.6, 1.5)]))  # 断电值 → orange, red after 5 min
    clock.advance(120)
    await svc.tick()
    await svc.handle(findings([(1, "limit", CLEAR, ALARM, clock.t, 0.4, 1.5)]))
    clock.advance(60)
    await svc.tick()
    async with pool.acquire() as conn:
        snap = await load_snapshot(conn)
        [a] = await records.fetch(conn, "true")
        assert a.state.value == "resolved"
        await svc.handle(findings([(1, "limit", RAISE, ALARM, clock.t, 1.6, 1.5)]))  # second excursion, 180 s in
        [a] = await records.fetch(conn, "true")
        assert a.state.value == "firing" and a.grade.id == "orange" and a.reopened == 1
        rule = svc.grader.rule_named(a.grading_rule)
        text = render.describe(a, snap, rule, "zh", clock.us)
        assert text.endswith("持续 0 秒"), text  # not 持续 3 分钟: the first excursion is over
        assert render.describe(a, snap, rule, "en", clock.us).endswith("for 0 s")

        clock.advance(143)  # 323 s after the first opening, 143 s into this excursion
        await svc.tick()
        [a] = await records.fetch(conn, "true")
        assert a.grade.id == "orange", "persistence counted across the resolved gap"
        assert render.describe(a, snap, rule, "zh", clock.us).endswith("持续 2 分钟")

        clock.advance(300 - 143 - 1)
        await svc.tick()
        [a] = await records.fetch(conn, "true")
        assert a.grade.id == "orange"
        clock.advance(1)  # 5 min of this excursion
        await svc.tick()
        [a] = await records.fetch(conn, "true")
        assert a.grade.id == "red" and a.upgraded == "persist"
        raised = await conn.fetch(
            "SELECT at_us FROM alert_journal WHERE action = 'grade_raised' ORDER BY seq")
    assert [r["at_us"] for r in raised] == [clock.us]


async def test_message_of_a_resolved_excursion_counts_that_excursion(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(findings([(3, "limit", RAISE, ALARM, clock.t, 30, 24)]))  # CO
    clock.advance(600)
    await svc.handle(findings([(3, "limit", CLEAR, ALARM, clock.t, 5, 24)]))
    clock.advance(60)
    await svc.handle(findings([(3, "limit", RAISE, ALARM, clock.t, 30, 24)]))
    clock.advance(90)
    await svc.handle(findings([(3, "limit", CLEAR, ALARM, clock.t, 5, 24)]))
    async with pool.acquire() as conn:
        snap = await load_snapshot(conn)
        [a] = await records.fetch(conn, "true")
    assert render.describe(a, snap, None, "zh", clock.us).endswith("持续 1 分钟 后恢复")
