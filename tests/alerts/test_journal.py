"""The audit journal: a hash chain, a head row and an anchor file; verify catches each tampering."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from alerts import journal, transitions
from tests.alerts.support import RAISE, WARNING, ALARM, UPDATE, CLEAR, findings, make_policy, make_service
from yujing.commands import audit


async def _history(pool, clock, receiver, n_sensors=3):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    for s in range(1, n_sensors + 1):
        await svc.handle(findings([(s, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
        await svc.handle(findings([(s, "limit", UPDATE, ALARM, t + 1, 1.6, 1.5)]))
    async with pool.acquire() as conn:
        await transitions.acknowledge(conn, 1, "王五", "收到", now_us=clock.us)
        await transitions.comment(conn, 2, "王五", "派人核查", now_us=clock.us)
    await svc.handle(findings([(3, "limit", CLEAR, ALARM, t + 9, 0.2, 1.5)]))
    return svc


async def _tamper(conn, sql, *args):
    await conn.execute("ALTER TABLE alert_journal DISABLE TRIGGER alert_journal_no_change")
    await conn.execute(sql, *args)
    await conn.execute("ALTER TABLE alert_journal ENABLE TRIGGER alert_journal_no_change")


async def test_intact_journal_verifies(pool, clock, receiver, tmp_path, seeded):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await journal.write_anchor(conn, tmp_path, clock.us)
        report = await journal.verify(conn, tmp_path)
    assert report.ok, report.summary()
    assert report.entries >= 8 and report.anchors_checked == 1
    await asyncio.to_thread(audit.verify, database_url=seeded, anchor_dir=str(tmp_path))  # the CLI: exits 0


async def test_journal_refuses_update_and_delete(pool, clock, receiver):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE alert_journal SET actor = 'x' WHERE seq = 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM alert_journal WHERE seq = 1")


async def test_edited_entry_is_detected(pool, clock, receiver, tmp_path, seeded):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await _tamper(conn, "UPDATE alert_journal SET actor = '某人' WHERE action = 'acknowledged'")
        report = await journal.verify(conn)
    assert not report.ok
    assert any("was edited" in p for p in report.problems)
    with pytest.raises(audit.typer.Exit):
        await asyncio.to_thread(audit.verify, database_url=seeded, anchor_dir=str(tmp_path))


async def test_deleted_entry_is_detected(pool, clock, receiver):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await _tamper(conn, "DELETE FROM alert_journal WHERE seq = 3")
        report = await journal.verify(conn)
    assert any("entries 3..3 are missing" in p for p in report.problems)
    assert any("prev_hash does not match" in p for p in report.problems)


async def test_reordered_entries_are_detected(pool, clock, receiver):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        # swap entries 4 and 5 (their sequence numbers), keeping every column as written
        await _tamper(conn, "UPDATE alert_journal SET seq = -4 WHERE seq = 4")
        await _tamper(conn, "UPDATE alert_journal SET seq = 4 WHERE seq = 5")
        await _tamper(conn, "UPDATE alert_journal SET seq = 5 WHERE seq = -4")
        report = await journal.verify(conn)
    assert not report.ok
    assert any("entry 4" in p for p in report.problems) and any("entry 5" in p for p in report.problems)


async def test_cut_off_tail_is_detected_by_the_head_row(pool, clock, receiver):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        last = await conn.fetchval("SELECT max(seq) FROM alert_journal")
        await _tamper(conn, "DELETE FROM alert_journal WHERE seq > $1", last - 2)
        report = await journal.verify(conn)
    assert any(f"head row records seq {last}" in p for p in report.problems), report.problems


async def test_cut_off_tail_with_rewritten_head_is_detected_by_the_anchor(pool, clock, receiver, tmp_path):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        anchored = await journal.write_anchor(conn, tmp_path, clock.us)
        # a careful attacker cuts the tail and moves the head row back to match
        keep = anchored - 3
        h = await conn.fetchval("SELECT hash FROM alert_journal WHERE seq = $1", keep)
        await _tamper(conn, "DELETE FROM alert_journal WHERE seq > $1", keep)
        await conn.execute("UPDATE alert_journal_head SET seq = $1, hash = $2", keep, h)
        without_anchor = await journal.verify(conn)
        with_anchor = await journal.verify(conn, tmp_path)
    assert without_anchor.ok  # the table alone cannot tell
    assert any("anchor file" in p and f"seq {anchored}" in p for p in with_anchor.problems), with_anchor.problems


async def test_service_writes_the_anchor_each_tick(pool, clock, receiver, tmp_path):
    policy = make_policy(receiver.url, audit={"anchor_dir": str(tmp_path)})
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    await svc.tick()
    async with pool.acquire() as conn:
        path = journal.anchor_path(tmp_path, await journal.database_id(conn))
        head = await conn.fetchval("SELECT seq FROM alert_journal_head")
    assert journal.read_anchors(path)[-1][0] == head
