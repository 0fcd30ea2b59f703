"""The alerts' rows against their journal: what ``yujing audit verify`` reconciles for alerts.

Every alert row must be explained by its last journal entry: the same version, and the fields of
the entry's snapshot (state, colour, acknowledged by, assignee, shelving, …) equal to the row's;
a row with no entry, or entries whose row is gone, are problems too.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from alerts import records
from journal import SubjectCheck, VerifyReport, verify
from journal.subjects import ALERT

# Snapshot fields that change without a journal entry (a repeated finding updates the value only).
_UNJOURNALED = frozenset({"value", "setpoint"})


async def reconcile_alerts(conn: asyncpg.Connection, batch: int) -> tuple[int, list[str]]:
    """Each alert row against its last journal entry (version and snapshot): (rows checked, problems)."""
    checked, problems = 0, []
    after = 0
    while True:
        alerts = await records.fetch(conn, "id > $1 ORDER BY id LIMIT $2", after, batch)
        if not alerts:
            break
        ids = [a.id for a in alerts]
        last = {r["alert_id"]: r for r in await conn.fetch(
            "SELECT DISTINCT ON (alert_id) alert_id, seq, version, detail FROM alert_journal"
            " WHERE subject_type = 'alert' AND alert_id = ANY($1::bigint[]) ORDER BY alert_id, seq DESC", ids)}
        for a in alerts:
            checked += 1
            entry = last.get(a.id)
            if entry is None:
                problems.append(f"alert {a.id} ({a.alert_key}) has no journal entry: its row was written "
                                "outside the journal")
                continue
            problems.extend(_differences(a, entry))
        after = ids[-1]
    orphans = await conn.fetch(
        "SELECT DISTINCT j.alert_id FROM alert_journal j WHERE j.subject_type = 'alert' AND j.alert_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = j.alert_id) ORDER BY 1 LIMIT 20")
    for r in orphans:
        problems.append(f"alert {r['alert_id']} is in the journal but its row is gone (deleted)")
    return checked, problems


def _differences(alert, entry) -> list[str]:
    where = f"alert {alert.id} ({alert.alert_key})"
    if alert.version != entry["version"]:
        return [f"{where}: the row is at version {alert.version} but its journal's last entry (seq {entry['seq']}) "
                f"is version {entry['version']}: the row was changed outside the journal"]
    try:
        journaled = json.loads(entry["detail"]).get("alert") or {}
    except (ValueError, AttributeError):
        return [f"{where}: journal entry {entry['seq']} has no readable alert snapshot"]
    row = alert.snapshot()
    fields = sorted(k for k in journaled if k not in _UNJOURNALED and row.get(k) != journaled[k])
    if not fields:
        return []
    diff = ", ".join(f"{k}={row.get(k)!r} (journal: {journaled[k]!r})" for k in fields)
    return [f"{where}: the row differs from its journal (entry {entry['seq']}, version {entry['version']}): {diff}"]


ALERT_ROWS = SubjectCheck(ALERT, reconcile_alerts)


async def verify_alerts_journal(conn: asyncpg.Connection, anchor_dir: Path | None = None, **options) -> VerifyReport:
    """:func:`journal.verify` with the alerts' rows reconciled (``options``: its keywords)."""
    return await verify(conn, anchor_dir, subjects=[ALERT_ROWS], **options)
