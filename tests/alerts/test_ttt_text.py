"""The time-to-threshold warning tells how long is left: the finding's ``eta_s`` is kept with its
evidence (stored with the alert) and shown in the alert text, Chinese first."""

from __future__ import annotations

from alerts import records, render
from domain.messages import FindingBatch
from domain.severity import SubjectKind
from tests.alerts.support import NOTICE, RAISE, load_snapshot, make_policy, make_service


async def test_ttt_alert_text_carries_the_minutes_left(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(FindingBatch.build(subject_kind=int(SubjectKind.SENSOR), subject=[1], rule=["ttt"],
                                        event=[int(RAISE)], severity=[int(NOTICE)], ts_us=[clock.us],
                                        value=[0.8], setpoint=[1.0], eta_s=[12 * 60.0]))
    async with pool.acquire() as conn:
        [a] = await records.fetch(conn, "true")  # read back: the evidence keeps the time left
        snap = await load_snapshot(conn)
    zh = render.describe(a, snap, svc.grader.rule_named(a.grading_rule), "zh", clock.us)
    assert "预计 12 分钟后达到" in zh and "1%VOL" in zh, zh
    en = render.describe(a, snap, None, "en", clock.us)
    assert "expected to reach the setpoint 1 %VOL in 12 min" in en, en
    assert a.as_dict()["findings"][0]["rule"] == "ttt"


async def test_a_finding_without_eta_renders_as_before(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    await svc.handle(FindingBatch.build(subject_kind=int(SubjectKind.SENSOR), subject=[1], rule=["ttt"],
                                        event=[int(RAISE)], severity=[int(NOTICE)], ts_us=[clock.us],
                                        value=[0.8], setpoint=[1.0]))
    async with pool.acquire() as conn:
        [a] = await records.fetch(conn, "true")
        snap = await load_snapshot(conn)
    assert "预计" not in render.describe(a, snap, None, "zh", clock.us)
