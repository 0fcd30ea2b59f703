"""The audit journal: a hash chain, a head row, anchors outside the database, and a service role
that can neither rewrite it nor switch its protection off; verify catches each tampering.

The ``pool``/``seeded`` fixtures connect as the service role ``yujing`` (tests/support/services.py);
tampering is done through ``admin``, a superuser's connection, as an attacker with the host's
database superuser would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest

import journal
from alerts import transitions
from alerts.journaled import verify_alerts_journal
from alerts.policy import PolicyError
from store.roles import service_role_problems
from tests.alerts.support import (
    ALARM, CLEAR, RAISE, UPDATE, WARNING, Receiver, findings, make_policy, make_service, policy_doc,
)
from tests.support.services import REPO
from yujing.commands import audit

TRIGGER = "alert_journal_no_change"


@pytest.fixture
async def admin(admin_db_url, seeded):
    conn = await asyncpg.connect(admin_db_url)
    yield conn
    await conn.close()


@pytest.fixture
def notary():
    r = Receiver()
    yield r
    r.close()


HISTORY_SENSORS = (1, 3, 4)  # three places, so three incidents: alerts 1, 2 and 3


async def _history(pool, clock, receiver):
    svc = await make_service(None, make_policy(receiver.url), clock, pool=pool)
    t = clock.t
    for s in HISTORY_SENSORS:
        await svc.handle(findings([(s, "limit", RAISE, WARNING, t, 1.2, 1.0)]))
        await svc.handle(findings([(s, "limit", UPDATE, ALARM, t + 1, 1.6, 1.5)]))
    async with pool.acquire() as conn:
        await transitions.acknowledge(conn, 1, "王五", "收到", now_us=clock.us)
        await transitions.comment(conn, 2, "王五", "派人核查", now_us=clock.us)
    await svc.handle(findings([(HISTORY_SENSORS[2], "limit", CLEAR, ALARM, t + 9, 0.2, 1.5)]))
    return svc


async def _tamper(admin, sql, *args):
    """As a superuser can: switch the append-only trigger off, change, switch it on again."""
    async with admin.transaction():
        await admin.execute(f"ALTER TABLE alert_journal DISABLE TRIGGER {TRIGGER}")
        await admin.execute(sql, *args)
        await admin.execute(f"ALTER TABLE alert_journal ENABLE TRIGGER {TRIGGER}")


async def _rewrite_chain(admin, actor: str) -> None:
    """A full, self-consistent rewrite: every entry's actor changed, every hash recomputed, the
    head row moved along — what a superuser who knows the hash function can do."""
    rows = await admin.fetch("SELECT * FROM alert_journal ORDER BY seq")
    prev, new = journal.GENESIS, []
    for r in rows:
        h = journal.entry_hash(prev, r["seq"], r["at_us"], r["alert_id"], r["alert_key"], r["version"], r["action"],
                               actor, r["detail"])
        new.append((r["seq"], actor, prev, h))
        prev = h
    async with admin.transaction():
        await admin.execute("ALTER TABLE alert_journal DISABLE TRIGGER USER")
        await admin.executemany("UPDATE alert_journal SET actor = $2, prev_hash = $3, hash = $4 WHERE seq = $1", new)
        await admin.execute("ALTER TABLE alert_journal ENABLE TRIGGER USER")
        await admin.execute("UPDATE alert_journal_head SET hash = $1", prev)


async def test_intact_journal_verifies(pool, clock, receiver, tmp_path, seeded):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await journal.write_anchor(conn, tmp_path, clock.us)
        report = await verify_alerts_journal(conn, tmp_path)
    assert report.ok, report.summary()
    assert report.entries >= 8 and report.anchors_checked == 1 and report.rows_checked == {"alert": 3}
    await asyncio.to_thread(audit.verify, database_url=seeded, anchor_dir=str(tmp_path))  # the CLI: exits 0


async def test_service_role_cannot_change_the_journal_or_switch_its_trigger_off(pool, clock, receiver, admin):
    """Before: the service connected as `postgres` and could run each of these."""
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == "yujing"
        assert await service_role_problems(conn) == []
        for sql in (f"ALTER TABLE alert_journal DISABLE TRIGGER {TRIGGER}",
                    "ALTER TABLE alert_journal DISABLE TRIGGER USER",
                    "SET session_replication_role = replica",  # would skip every trigger
                    "SET ROLE yujing_owner",
                    "UPDATE alert_journal SET actor = 'x' WHERE seq = 1",
                    "DELETE FROM alert_journal WHERE seq = 1",
                    "TRUNCATE alert_journal",
                    "UPDATE alert_journal_head SET seq = 1",
                    "DROP TRIGGER alert_journal_link ON alert_journal",
                    "SELECT drop_chunks('readings', older_than => now())",
                    "SELECT set_chunk_time_interval('readings', interval '1 minute')"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
        # appending is the one write it has, and only as the next link of the chain
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head")
        forged = (head["seq"] + 2, 1, None, "x", 1, "forged", "x", "{}", head["hash"], "0" * 64)
        with pytest.raises(asyncpg.RaiseError, match="does not continue the chain"):
            await conn.execute("INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor,"
                               " detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", *forged)
        with pytest.raises(asyncpg.RaiseError, match="does not carry the hash"):
            await conn.execute("INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor,"
                               " detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                               head["seq"] + 1, *forged[1:])
        # retention's owner-only operations go through checked SECURITY DEFINER functions
        with pytest.raises(asyncpg.RaiseError, match="keeps at least 92 days"):
            await conn.execute("SELECT yujing_drop_chunks('readings', now() - interval '1 day')")
        assert await conn.fetchval("SELECT yujing_drop_chunks('readings', now() - interval '200 days')") == 0
    assert await service_role_problems(admin), "a superuser connection is reported"


async def test_owner_is_still_refused_by_the_append_only_trigger(pool, clock, receiver, db_name):
    from tests.support.services import owner_url

    await _history(pool, clock, receiver)
    conn = await asyncpg.connect(owner_url(db_name))
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE alert_journal SET actor = 'x' WHERE seq = 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM alert_journal WHERE seq = 1")
    finally:
        await conn.close()


async def test_edited_entry_is_detected(pool, clock, receiver, tmp_path, seeded, admin):
    await _history(pool, clock, receiver)
    await _tamper(admin, "UPDATE alert_journal SET actor = '某人' WHERE action = 'acknowledged'")
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn)
    assert any("was edited" in p for p in report.problems)
    with pytest.raises(audit.typer.Exit):
        await asyncio.to_thread(audit.verify, database_url=seeded, anchor_dir=str(tmp_path))


async def test_deleted_entry_is_detected(pool, clock, receiver, admin):
    await _history(pool, clock, receiver)
    await _tamper(admin, "DELETE FROM alert_journal WHERE seq = 3")
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn)
    assert any("entries 3..3 are missing" in p for p in report.problems)
    assert any("prev_hash does not match" in p for p in report.problems)


async def test_reordered_entries_are_detected(pool, clock, receiver, admin):
    await _history(pool, clock, receiver)
    # swap entries 4 and 5 (their sequence numbers), keeping every column as written
    await _tamper(admin, "UPDATE alert_journal SET seq = -4 WHERE seq = 4")
    await _tamper(admin, "UPDATE alert_journal SET seq = 4 WHERE seq = 5")
    await _tamper(admin, "UPDATE alert_journal SET seq = 5 WHERE seq = -4")
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn)
    assert any("entry 4" in p for p in report.problems) and any("entry 5" in p for p in report.problems)


async def test_cut_off_tail_is_detected_by_the_head_row(pool, clock, receiver, admin):
    await _history(pool, clock, receiver)
    last = await admin.fetchval("SELECT max(seq) FROM alert_journal")
    await _tamper(admin, "DELETE FROM alert_journal WHERE seq > $1", last - 2)
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn)
    assert any(f"head row records seq {last}" in p for p in report.problems), report.problems


async def test_cut_off_tail_with_rewritten_head_is_detected_by_the_anchor(pool, clock, receiver, tmp_path, admin):
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        anchored = await journal.write_anchor(conn, tmp_path, clock.us)
    # a careful attacker cuts the tail and moves the head row back to match
    keep = anchored - 3
    h = await admin.fetchval("SELECT hash FROM alert_journal WHERE seq = $1", keep)
    await _tamper(admin, "DELETE FROM alert_journal WHERE seq > $1", keep)
    await admin.execute("UPDATE alert_journal_head SET seq = $1, hash = $2", keep, h)
    async with pool.acquire() as conn:
        without_anchor = await verify_alerts_journal(conn)
        with_anchor = await verify_alerts_journal(conn, tmp_path)
    # the chain alone cannot tell; verify says so, and the alert rows ahead of their journal show it
    assert not [p for p in without_anchor.problems if "tail" in p or "entry" in p.split(":")[0]]
    assert any("no anchor directory configured" in p for p in without_anchor.problems)
    assert any("changed outside the journal" in p for p in without_anchor.problems)
    assert any("anchor file" in p and f"seq {anchored}" in p for p in with_anchor.problems), with_anchor.problems


async def test_rewritten_chain_fails_with_the_anchor_deleted_or_elsewhere(pool, clock, receiver, tmp_path, admin,
                                                                          seeded):
    """Before: with the anchor file deleted, the directory empty or verify run from another
    directory (a relative anchor_dir), a full rewrite passed as "intact, 0 anchors checked"."""
    anchors = tmp_path / "audit"
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await journal.write_anchor(conn, anchors, clock.us)
        path = journal.anchor_path(anchors, await journal.database_id(conn))
    await _rewrite_chain(admin, "某人")
    async with pool.acquire() as conn:
        assert [p for p in (await verify_alerts_journal(conn, anchors)).problems if "rewritten" in p]
        path.unlink()  # the anchor file deleted: the directory is empty
        report = await verify_alerts_journal(conn, anchors)
        assert not report.ok and any("no anchor in" in p for p in report.problems), report.problems
        report = await verify_alerts_journal(conn, tmp_path / "elsewhere")  # a directory the service never wrote
        assert not report.ok and any("no anchor in" in p for p in report.problems), report.problems
    # the CLI, from another directory, with the policy's (absolute) anchor directory
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps({**policy_doc(receiver.url), "audit": {"anchor_dir": str(anchors)}}))
    other = tmp_path / "cwd"
    other.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "yujing", "audit", "verify", "--database-url", seeded], cwd=other, capture_output=True,
        text=True, env={**os.environ, "YUJING_ALERTS_CONFIG": str(policy), "PYTHONPATH": str(REPO)}, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"no anchor in {path}" in run.stdout
    # and a relative anchor directory is refused when the policy is loaded
    with pytest.raises(PolicyError, match="absolute"):
        make_policy(receiver.url, audit={"anchor_dir": "var/audit"})


async def test_edited_alert_row_is_detected(pool, clock, receiver, tmp_path, admin):
    """Before: editing the alerts row (state, acknowledged by) was never detected."""
    await _history(pool, clock, receiver)
    async with pool.acquire() as conn:
        await journal.write_anchor(conn, tmp_path, clock.us)
        assert (await verify_alerts_journal(conn, tmp_path)).ok
        # the service role itself may write alert rows: an edit that bypasses transitions
        await conn.execute("UPDATE alerts SET state = 'acknowledged', acked_by = '某人' WHERE id = 2")
        await conn.execute("UPDATE alerts SET grade = 1 WHERE id = 3")
        report = await verify_alerts_journal(conn, tmp_path)
    assert any("alert 2 " in p and "acked_by='某人' (journal: None)" in p and "state='acknowledged'" in p
               for p in report.problems), report.problems
    assert any("alert 3 " in p and "grade='blue'" in p for p in report.problems), report.problems
    await admin.execute("UPDATE alerts SET version = version + 1, state = 'closed' WHERE id = 1")
    await admin.execute("DELETE FROM alerts WHERE id = 2")
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn, tmp_path)
    assert any("alert 1 " in p and "changed outside the journal" in p for p in report.problems), report.problems
    assert any("alert 2 is in the journal but its row is gone" in p for p in report.problems), report.problems


async def test_head_for_a_notary_verifies_without_the_anchor_file(pool, clock, receiver, seeded, admin):
    await _history(pool, clock, receiver)
    printed = await audit.head_async(seeded)
    async with pool.acquire() as conn:
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head")
        at_us = await conn.fetchval("SELECT at_us FROM alert_journal WHERE seq = $1", head["seq"])
        assert (printed["seq"], printed["hash"], printed["at_us"]) == (head["seq"], head["hash"], at_us)
        assert printed["at"].endswith("+00:00") and printed["database"] == await journal.database_id(conn)
        notarised = [journal.parse_notarised(f"{printed['seq']}:{printed['hash']}")]
        assert (await verify_alerts_journal(conn, notarised=notarised)).ok
    await _rewrite_chain(admin, "某人")
    async with pool.acquire() as conn:
        report = await verify_alerts_journal(conn, notarised=notarised)
    assert any("notarised head" in p and "rewritten" in p for p in report.problems), report.problems


async def test_service_writes_the_anchor_and_ships_it_to_the_webhook(pool, clock, receiver, tmp_path, notary):
    notary.script.append((503, b"busy"))  # the first delivery fails; the next tick retries
    policy = make_policy(receiver.url, audit={"anchor_dir": str(tmp_path), "anchor_webhook": notary.url + "/anchors"})
    svc = await make_service(None, policy, clock, pool=pool)
    await svc.handle(findings([(1, "limit", RAISE, WARNING, clock.t, 1.2, 1.0)]))
    await svc.tick()
    async with pool.acquire() as conn:
        db_id = await journal.database_id(conn)
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head")
    assert journal.read_anchors(journal.anchor_path(tmp_path, db_id))[-1] == (head["seq"], head["hash"])
    assert svc._anchor.shipped == 0 and len(notary.requests) == 1
    await svc.tick()
    assert svc._anchor.shipped == 1
    got = notary.json()[-1]
    assert (got["database"], got["seq"], got["hash"]) == (db_id, head["seq"], head["hash"])
    assert notary.requests[-1]["path"] == "/anchors"
    await svc.tick()  # the head did not move: nothing new to ship
    assert len(notary.requests) == 2
    await svc.handle(findings([(1, "limit", UPDATE, ALARM, clock.t + 1, 1.6, 1.5)]))
    await svc.tick()
    assert len(notary.requests) == 3 and notary.json()[-1]["seq"] > head["seq"]
