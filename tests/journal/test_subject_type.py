"""The journal's subject type: entries written before it existed still verify after the migration
that adds it, and other subjects are journaled and verified the same way."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import pytest

import journal
from journal.subjects import KEY_CHANGE, USER
from store import migrate
from store.roles import OWNER_ROLE, ensure_roles
from tests.support import services

SUBJECT_MIGRATION = 75


def old_hash(prev: str, seq: int, at_us: int, alert_id, alert_key: str, version: int, action: str, actor: str,
             detail: str) -> str:
    """The chain's hash as migration 0065 defined it, before there were subject types."""
    fields = (prev, str(seq), str(at_us), "" if alert_id is None else str(alert_id), alert_key, str(version),
              action, actor, detail)
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


@pytest.fixture
async def before_subjects(monkeypatch):
    """A database migrated up to (not including) the subject-type migration, as its owner."""
    name = f"yj_subjects_{uuid.uuid4().hex[:12]}"
    admin = await services.admin_connect()
    try:
        await ensure_roles(admin)
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    finally:
        await admin.close()
    conn = await asyncpg.connect(services.database_url(name))
    try:
        await conn.execute("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS timescaledb")
    finally:
        await conn.close()
    every = migrate.discover()
    assert SUBJECT_MIGRATION in [m.version for m in every]
    monkeypatch.setattr(migrate, "discover", lambda: [m for m in every if m.version < SUBJECT_MIGRATION])
    conn = await asyncpg.connect(services.owner_url(name))
    await migrate.apply_migrations(conn)
    monkeypatch.setattr(migrate, "discover", lambda: every)
    try:
        yield conn
    finally:
        await conn.close()
        await services.drop_database(name)


async def _head(conn) -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head")
    return int(row["seq"]), row["hash"]


async def test_entries_from_before_the_subject_type_verify_after_it(before_subjects):
    conn = before_subjects
    assert not await conn.fetchval("SELECT count(*) FROM information_schema.columns "
                                   "WHERE table_name = 'alert_journal' AND column_name = 'subject_type'")
    prev = journal.GENESIS
    for seq, (alert_id, key) in enumerate([(None, "silence:1"), (7, "sensor:3:limit"), (7, "sensor:3:limit")], 1):
        detail = journal.canonical({"n": seq})
        h = old_hash(prev, seq, 1_700_000_000_000_000 + seq, alert_id, key, seq, "open", "test", detail)
        await conn.execute(
            "INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor, detail, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, 'open', 'test', $6, $7, $8)",
            seq, 1_700_000_000_000_000 + seq, alert_id, key, seq, detail, prev, h)
        prev = h
    old_head = await _head(conn)

    assert [m.version for m in await migrate.apply_migrations(conn)] == [SUBJECT_MIGRATION]

    assert await conn.fetchval("SELECT array_agg(DISTINCT subject_type) FROM alert_journal") == ["alert"]
    report = await journal.verify(conn, notarised=[old_head])
    assert report.ok, report.summary()
    assert report.entries == 3 and report.anchors_checked == 1

    async with conn.transaction():
        appended = await journal.append(conn, [
            journal.Entry(1_700_000_001_000_000, None, "user:li.wei", 1, "create", "admin", {"role": "inspector"},
                          subject_type=USER),
            journal.Entry(1_700_000_002_000_000, None, "api-key:3", 2, "revoke", "admin", {}, subject_type=KEY_CHANGE),
        ])
    report = await journal.verify(conn, notarised=[old_head, appended[-1]])
    assert report.ok, report.summary()
    assert report.entries == 5 and report.anchors_checked == 2
    rows = await conn.fetch("SELECT seq, subject_type, hash, prev_hash, at_us, alert_id, alert_key, version, action,"
                            " actor, detail FROM alert_journal WHERE seq > 3 ORDER BY seq")
    assert [r["subject_type"] for r in rows] == [USER, KEY_CHANGE]
    for r in rows:  # the type is hashed: the same fields without it give another hash
        assert r["hash"] != old_hash(r["prev_hash"], r["seq"], r["at_us"], r["alert_id"], r["alert_key"],
                                     r["version"], r["action"], r["actor"], r["detail"])


async def test_an_entry_hashed_without_its_subject_type_is_refused(db):
    seq, prev = await _head(db)
    detail = journal.canonical({})
    untyped = old_hash(prev, seq + 1, 1, None, "user:x", 1, "create", "test", detail)
    with pytest.raises(asyncpg.RaiseError, match="does not carry the hash of its fields"):
        await db.execute(
            "INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor, detail, prev_hash,"
            " hash, subject_type) VALUES ($1, 1, NULL, 'user:x', 1, 'create', 'test', $2, $3, $4, 'user')",
            seq + 1, detail, prev, untyped)
    typed = journal.entry_hash(prev, seq + 1, 1, None, "user:x", 1, "create", "test", detail, USER)
    await db.execute(
        "INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor, detail, prev_hash,"
        " hash, subject_type) VALUES ($1, 1, NULL, 'user:x', 1, 'create', 'test', $2, $3, $4, 'user')",
        seq + 1, detail, prev, typed)
    assert await _head(db) == (seq + 1, typed)


def test_an_unknown_subject_type_and_a_non_alert_with_an_alert_id_are_refused():
    with pytest.raises(ValueError, match="unknown journal subject type"):
        journal.Entry(1, None, "x", 1, "create", "test", {}, subject_type="Nonsense")
    with pytest.raises(ValueError, match="named by its key only"):
        journal.Entry(1, 3, "user:x", 1, "create", "test", {}, subject_type=USER)
