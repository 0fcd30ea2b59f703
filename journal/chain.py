"""The chain: entries, their canonical form and hash, and the one way to append them.

``hash = sha256(prev_hash, seq, at_us, [subject_type,] subject_id, subject_key, version, action,
actor, detail)``, the subject type left out for alerts (:data:`journal.subjects.ALERT`, every
entry written before the journal had types, so those verify unchanged) and hashed for every other
type; ``detail`` is stored as the exact canonical JSON text that was hashed, so verification never
depends on how PostgreSQL re-serialises JSON. The table keeps its first names: ``alert_journal``,
with the subject's id and key in ``alert_id`` and ``alert_key``.

``alert_journal_head``, moved by the insert trigger in the appending transaction (migration
0065, its hash as of migration 0075; once per statement), is never behind the journal. The trigger refuses entries that do not
continue the head or whose hash is not that of their fields, and the service's role can neither update the head row
nor change, delete or truncate entries, nor disable the triggers (it owns nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import asyncpg

from journal.subjects import ALERT, check_subject_type

GENESIS = "0" * 64
_SEP = "\x1f"
COLUMNS = ("seq", "at_us", "alert_id", "alert_key", "version", "action", "actor", "detail", "prev_hash", "hash",
           "subject_type")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One change of one subject. ``alert_key`` is the subject's key whatever its type (the column
    names are the journal's first); only an alert has an ``alert_id``, so the alerts' reads of
    their entries by id never meet another subject's."""

    at_us: int
    alert_id: int | None
    alert_key: str
    version: int
    action: str
    actor: str
    detail: dict[str, Any]
    subject_type: str = ALERT

    def __post_init__(self) -> None:
        check_subject_type(self.subject_type)
        if self.subject_type != ALERT and self.alert_id is not None:
            raise ValueError(f"a {self.subject_type} entry is named by its key only (alert_id is an alert's)")


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def canonical(detail: dict[str, Any]) -> str:
    return json.dumps(_clean(detail), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def entry_hash(prev_hash: str, seq: int, at_us: int, alert_id: int | None, alert_key: str, version: int,
               action: str, actor: str, detail_text: str, subject_type: str = ALERT) -> str:
    """The same function as the insert trigger's ``sha256(concat_ws(E'\\x1f', …))`` (migration
    0075: the subject type after ``at_us``, left out for alerts as it was before there were types)."""
    typed = () if subject_type == ALERT else (subject_type,)
    text = _SEP.join(
        (prev_hash, str(seq), str(at_us), *typed, "" if alert_id is None else str(alert_id), alert_key,
         str(version), action, actor, detail_text)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def append(conn: asyncpg.Connection, entries: Sequence[Entry]) -> list[tuple[int, str]]:
    """Append entries in order; the caller holds the transaction. Returns (seq, hash) of each.

    ``alert_journal_lock_head()`` (SECURITY DEFINER) locks the head row ``FOR UPDATE``: appends
    are serialised, and a transaction must append once, after locking every alert row it changes
    (always the same lock order: no deadlocks). The insert trigger moves the head.
    """
    if not entries:
        return []
    head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_lock_head()")
    seq, prev = int(head["seq"]), head["hash"]
    records = []
    out = []
    for e in entries:
        seq += 1
        text = canonical(e.detail)
        h = entry_hash(prev, seq, e.at_us, e.alert_id, e.alert_key, e.version, e.action, e.actor, text, e.subject_type)
        records.append((seq, e.at_us, e.alert_id, e.alert_key, e.version, e.action, e.actor, text, prev, h,
                        e.subject_type))
        out.append((seq, h))
        prev = h
    if len(records) > 8:
        await conn.copy_records_to_table("alert_journal", records=records, columns=COLUMNS)
    else:  # one statement either way: the link trigger runs once per statement
        await conn.execute(_INSERT, *(list(col) for col in zip(*records, strict=True)))
    return out


_INSERT = (
    f"INSERT INTO alert_journal ({', '.join(COLUMNS)}) SELECT * FROM unnest($1::bigint[], $2::bigint[],"
    " $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],"
    " $11::text[])"
)
