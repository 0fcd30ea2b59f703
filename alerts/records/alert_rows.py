"""The ``alerts`` table: load, insert and update :class:`~alerts.lifecycle.Alert` records.

JSON columns are written as text cast to jsonb and read back as text, so these functions work
whatever JSON codec a pool's connections have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import asyncpg

from alerts.colours import Colour
from alerts.incidents import Evidence
from alerts.lifecycle import Alert, State
from domain.severity import FindingEvent, Severity

# (column, SQL array type for unnest inserts)
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("alert_key", "text"), ("subject_kind", "smallint"), ("subject", "integer"), ("rule", "text"),
    ("enterprise", "text"), ("region", "text"), ("regions", "text"), ("industry", "text"), ("kind", "text"),
    ("gateway", "integer"), ("zone", "integer"), ("labels", "text"), ("grading_rule", "text"),
    ("state", "text"), ("active", "boolean"), ("grade", "smallint"), ("base_grade", "smallint"),
    ("peak_grade", "smallint"), ("upgraded", "text"), ("severity", "smallint"), ("finding_event", "smallint"),
    ("finding_ts_us", "bigint"), ("value", "float8"), ("setpoint", "float8"), ("peak_value", "float8"),
    ("started_us", "bigint"), ("grade_since_us", "bigint"), ("unacked_since_us", "bigint"),
    ("cleared_us", "bigint"), ("resolved_us", "bigint"), ("closed_us", "bigint"), ("acked_us", "bigint"),
    ("acked_by", "text"), ("assignee", "text"), ("shelved_until_us", "bigint"), ("shelved_by", "text"),
    ("shelve_reason", "text"), ("flapping", "boolean"), ("flap_changes_us", "text"), ("reopened", "integer"),
    ("escalation_step", "smallint"), ("timer_due_us", "bigint"), ("version", "integer"),
    ("notify_version", "integer"), ("routed_version", "integer"), ("updated_us", "bigint"), ("raised_us", "bigint"),
    ("evidence", "text"), ("evidence_dropped", "integer"),
)
_NAMES = [c for c, _ in _COLUMNS]
_SELECT_LIST = ", ".join(
    ["id", "told_version"] + [
        "array_to_string(regions, ',') AS regions" if c == "regions"
        else "labels::text AS labels" if c == "labels"
        else "evidence::text AS evidence" if c == "evidence"
        else "array_to_string(flap_changes_us, ',') AS flap_changes_us" if c == "flap_changes_us"
        else c
        for c in _NAMES
    ]
)
SELECT = f"SELECT {_SELECT_LIST} FROM alerts"


def _insert_sql() -> str:
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, (_, t) in enumerate(_COLUMNS))
    exprs = []
    for c, _ in _COLUMNS:
        if c == "regions":
            exprs.append("coalesce(string_to_array(nullif(u.regions, ''), ','), '{}')")
        elif c == "flap_changes_us":
            exprs.append("coalesce(string_to_array(nullif(u.flap_changes_us, ''), ',')::bigint[], '{}')")
        elif c in ("labels", "evidence"):
            exprs.append(f"u.{c}::jsonb")
        else:
            exprs.append(f"u.{c}")
    return (
        f"INSERT INTO alerts ({', '.join(_NAMES)}) SELECT {', '.join(exprs)} "
        f"FROM unnest({unnest}) AS u({', '.join(_NAMES)}) RETURNING id, alert_key"
    )


def _update_sql() -> str:
    sets = []
    for i, (c, t) in enumerate(_COLUMNS):
        p = f"${i + 2}"
        if c == "regions":
            sets.append(f"regions = coalesce(string_to_array(nullif({p}::text, ''), ','), '{{}}')")
        elif c == "flap_changes_us":
            sets.append(f"flap_changes_us = coalesce(string_to_array(nullif({p}::text, ''), ',')::bigint[], '{{}}')")
        elif c in ("labels", "evidence"):
            sets.append(f"{c} = {p}::text::jsonb")
        else:
            sets.append(f"{c} = {p}::{t}")
    return f"UPDATE alerts SET {', '.join(sets)} WHERE id = $1"


_INSERT = _insert_sql()
_UPDATE = _update_sql()


def _row_values(a: Alert) -> tuple:
    return (
        a.alert_key, a.subject_kind, a.subject, a.rule, a.enterprise, a.region, ",".join(a.regions), a.industry,
        a.kind, a.gateway, a.zone, json.dumps(a.labels, ensure_ascii=False, sort_keys=True), a.grading_rule,
        a.state.value, a.active, int(a.grade), int(a.base_grade), int(a.peak_grade), a.upgraded, int(a.severity),
        int(a.finding_event), a.finding_ts_us, a.value, a.setpoint, a.peak_value, a.started_us, a.grade_since_us,
        a.unacked_since_us, a.cleared_us, a.resolved_us, a.closed_us, a.acked_us, a.acked_by, a.assignee,
        a.shelved_until_us, a.shelved_by, a.shelve_reason, a.flapping, ",".join(map(str, a.flap_changes_us)),
        a.reopened, a.escalation_step, a.timer_due_us, a.version, a.notify_version, a.routed_version, a.updated_us,
        a.raised_us or a.started_us,
        json.dumps([e.as_dict() for e in a.evidence], ensure_ascii=False, separators=(",", ":")),
        a.evidence_dropped,
    )


def from_row(r: asyncpg.Record) -> Alert:
    labels = r["labels"]
    flap = r["flap_changes_us"]
    return Alert(
        id=r["id"], alert_key=r["alert_key"], subject_kind=r["subject_kind"], subject=r["subject"], rule=r["rule"],
        enterprise=r["enterprise"], region=r["region"],
        regions=tuple(x for x in (r["regions"] or "").split(",") if x),
        industry=r["industry"], kind=r["kind"], gateway=r["gateway"], zone=r["zone"],
        labels=json.loads(labels) if isinstance(labels, str) else dict(labels),
        grading_rule=r["grading_rule"], state=State(r["state"]), active=r["active"], grade=Colour(r["grade"]),
        base_grade=Colour(r["base_grade"]), peak_grade=Colour(r["peak_grade"]), upgraded=r["upgraded"],
        severity=Severity(r["severity"]), finding_event=FindingEvent(r["finding_event"]),
        finding_ts_us=r["finding_ts_us"], value=r["value"], setpoint=r["setpoint"], peak_value=r["peak_value"],
        started_us=r["started_us"], grade_since_us=r["grade_since_us"], unacked_since_us=r["unacked_since_us"],
        cleared_us=r["cleared_us"], resolved_us=r["resolved_us"], closed_us=r["closed_us"], acked_us=r["acked_us"],
        acked_by=r["acked_by"], assignee=r["assignee"], shelved_until_us=r["shelved_until_us"],
        shelved_by=r["shelved_by"], shelve_reason=r["shelve_reason"], flapping=r["flapping"],
        flap_changes_us=tuple(int(x) for x in (flap or "").split(",") if x), reopened=r["reopened"],
        escalation_step=r["escalation_step"], timer_due_us=r["timer_due_us"], version=r["version"],
        notify_version=r["notify_version"], routed_version=r["routed_version"], updated_us=r["updated_us"],
        raised_us=r["raised_us"], told_version=r["told_version"],
        evidence=tuple(Evidence.from_dict(d) for d in json.loads(r["evidence"] or "[]")),
        evidence_dropped=r["evidence_dropped"],
    )


async def insert(conn: asyncpg.Connection, alerts: Sequence[Alert]) -> None:
    """Insert new alerts (one statement) and set their ids."""
    if not alerts:
        return
    columns = list(zip(*(_row_values(a) for a in alerts), strict=True))
    rows = await conn.fetch(_INSERT, *columns)
    ids = {r["alert_key"]: r["id"] for r in rows}
    for a in alerts:
        a.id = ids[a.alert_key]


async def update(conn: asyncpg.Connection, alerts: Iterable[Alert]) -> None:
    rows = [(a.id, *_row_values(a)) for a in alerts]
    if rows:
        await conn.executemany(_UPDATE, rows)


async def get(conn: asyncpg.Connection, alert_id: int, for_update: bool = False) -> Alert | None:
    row = await conn.fetchrow(f"{SELECT} WHERE id = $1{' FOR UPDATE' if for_update else ''}", alert_id)
    return from_row(row) if row else None


async def latest_for_keys(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, Alert]:
    """The newest alert (open or closed) of each key (the incident identity), locked ``FOR UPDATE``."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"""{SELECT} WHERE id IN (
                SELECT (SELECT a.id FROM alerts a WHERE a.alert_key = k ORDER BY a.id DESC LIMIT 1)
                FROM unnest($1::text[]) AS k)
            ORDER BY id FOR UPDATE""",
        list(keys),
    )
    return {r["alert_key"]: from_row(r) for r in rows}


async def fetch(conn: asyncpg.Connection, where: str, *args, for_update: bool = False) -> list[Alert]:
    sql = f"{SELECT} WHERE {where}{' FOR UPDATE SKIP LOCKED' if for_update else ''}"
    return [from_row(r) for r in await conn.fetch(sql, *args)]


async def by_ids(conn: asyncpg.Connection, alert_ids: Sequence[int]) -> dict[int, Alert]:
    if not alert_ids:
        return {}
    return {a.id: a for a in await fetch(conn, "id = ANY($1::bigint[])", list(alert_ids))}


async def open_active_of(conn: asyncpg.Connection, enterprises: Sequence[str]) -> list[Alert]:
    """The open alerts whose condition holds, of these enterprises (the sources of inhibition)."""
    return await fetch(conn, "state IN ('firing', 'acknowledged', 'latched') AND active AND enterprise = ANY($1::text[])",
                       list(enterprises))


async def timers_due(conn: asyncpg.Connection, now_us: int, limit: int) -> list[Alert]:
    """Not-closed alerts with a timer due by ``now_us``, locked (others skip them)."""
    return await fetch(conn, "state <> 'closed' AND timer_due_us <= $1 ORDER BY id LIMIT $2", now_us, limit,
                       for_update=True)


async def unrouted(conn: asyncpg.Connection, limit: int) -> list[Alert]:
    """Alerts with a change worth a notification not yet routed (operator transitions), locked."""
    return await fetch(conn, "notify_version > routed_version ORDER BY id LIMIT $1", limit, for_update=True)


async def untold(conn: asyncpg.Connection, limit: int) -> list[Alert]:
    """Alerts changed since their state was last published (alerts.updates), locked."""
    return await fetch(conn, "version > told_version ORDER BY id LIMIT $1", limit, for_update=True)


async def visible(conn: asyncpg.Connection, alert_id: int, scope_sql: str, *args) -> bool:
    """Whether the alert exists within a caller's scope (``scope_sql`` uses ``$2``… for ``args``)."""
    return await conn.fetchval(f"SELECT id FROM alerts WHERE id = $1 AND {scope_sql}", alert_id, *args) is not None


async def close_superseded(conn: asyncpg.Connection, alert_ids: Sequence[int]) -> None:
    """Free the keys of superseded incidents (one open incident per key) before new ones go in."""
    await conn.execute("UPDATE alerts SET state = 'closed' WHERE id = ANY($1::bigint[])", list(alert_ids))


async def mark_routed(conn: asyncpg.Connection, alerts: Sequence[Alert]) -> None:
    """Record that the alerts' changes up to ``notify_version`` were routed."""
    await conn.execute(
        "UPDATE alerts a SET routed_version = u.v FROM unnest($1::bigint[], $2::int[]) AS u(id, v) WHERE a.id = u.id",
        [a.id for a in alerts], [a.notify_version for a in alerts],
    )


async def mark_told(conn: asyncpg.Connection, alerts: Sequence[Alert]) -> None:
    """Record that the alerts' state up to ``version`` was published (alerts.updates)."""
    await conn.execute(
        "UPDATE alerts a SET told_version = u.v FROM unnest($1::bigint[], $2::int[]) AS u(id, v) WHERE a.id = u.id",
        [a.id for a in alerts], [a.version for a in alerts],
    )
