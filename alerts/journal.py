"""The audit journal: append-only, hash-chained, with its head recorded outside the table.

Every alert transition, acknowledgement, comment, assignment and silence change is one entry.
``hash = sha256(prev_hash, seq, at_us, alert_id, alert_key, version, action, actor, detail)``, and
``detail`` is stored as the exact canonical JSON text that was hashed, so verification never
depends on how PostgreSQL re-serialises JSON.

The head is kept in two places, because each catches what the other cannot:

- ``alert_journal_head``, written in the appending transaction, is never behind the journal.
  It catches a tail cut by a plain ``DELETE`` (or a restore of an older journal table), but
  someone who can rewrite the journal can rewrite this row too.
- the **anchor file** ``{anchor_dir}/{database}.anchor``, one ``seq hash at_us`` line appended
  (and fsynced) whenever the head moves (:func:`write_anchor`, run by the service every tick).
  It lives outside the database's trust domain (other owner, shippable to WORM storage or a log
  host), so a cut-off tail is caught even when the head row was rewritten with it. It lags the
  journal by at most one tick, so only the entries of that last tick are covered by the table
  head alone.

:func:`verify` walks the chain and reports edited entries (hash mismatch), deleted entries (gap in
``seq`` or broken ``prev_hash``), reordered entries (``seq`` is hashed, so a swap breaks both)
and a cut-off tail (head row or an anchor beyond the journal's end).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

GENESIS = "0" * 64
_SEP = "\x1f"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    at_us: int
    alert_id: int | None
    alert_key: str
    version: int
    action: str
    actor: str
    detail: dict[str, Any]


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
               action: str, actor: str, detail_text: str) -> str:
    text = _SEP.join(
        (prev_hash, str(seq), str(at_us), "" if alert_id is None else str(alert_id), alert_key, str(version),
         action, actor, detail_text)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_COLUMNS = ("seq", "at_us", "alert_id", "alert_key", "version", "action", "actor", "detail", "prev_hash", "hash")


async def append(conn: asyncpg.Connection, entries: Sequence[Entry]) -> list[tuple[int, str]]:
    """Append entries in order; the caller holds the transaction. Returns (seq, hash) of each.

    The head row is locked ``FOR UPDATE``: appends are serialised, and a transaction must append
    once, after locking every alert row it changes (always the same lock order: no deadlocks).
    """
    if not entries:
        return []
    head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head WHERE singleton FOR UPDATE")
    seq, prev = int(head["seq"]), head["hash"]
    records = []
    out = []
    for e in entries:
        seq += 1
        text = canonical(e.detail)
        h = entry_hash(prev, seq, e.at_us, e.alert_id, e.alert_key, e.version, e.action, e.actor, text)
        records.append((seq, e.at_us, e.alert_id, e.alert_key, e.version, e.action, e.actor, text, prev, h))
        out.append((seq, h))
        prev = h
    if len(records) > 8:
        await conn.copy_records_to_table("alert_journal", records=records, columns=_COLUMNS)
    else:
        await conn.executemany(
            "INSERT INTO alert_journal (seq, at_us, alert_id, alert_key, version, action, actor, detail, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            records,
        )
    await conn.execute("UPDATE alert_journal_head SET seq = $1, hash = $2 WHERE singleton", seq, prev)
    return out


# --------------------------------------------------------------------------- anchors


async def database_id(conn: asyncpg.Connection) -> str:
    """Names the anchor file: the cluster's system identifier and the database name."""
    name = await conn.fetchval("SELECT current_database()")
    try:
        system = await conn.fetchval("SELECT system_identifier FROM pg_control_system()")
    except asyncpg.PostgresError:
        system = "pg"
    return f"{system}-{name}"


def anchor_path(anchor_dir: Path, db_id: str) -> Path:
    return Path(anchor_dir) / f"{db_id}.anchor"


def read_anchors(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1]))
    return out


class Anchor:
    """Appends the journal head to the anchor file when it moves (one writer per database)."""

    def __init__(self, anchor_dir: Path) -> None:
        self.anchor_dir = Path(anchor_dir)
        self._path: Path | None = None
        self._last: tuple[int, str] | None = None

    async def write(self, conn: asyncpg.Connection, at_us: int) -> int:
        if self._path is None:
            self._path = anchor_path(self.anchor_dir, await database_id(conn))
            self.anchor_dir.mkdir(parents=True, exist_ok=True)
            anchors = read_anchors(self._path)
            self._last = anchors[-1] if anchors else None
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head WHERE singleton")
        current = (int(head["seq"]), head["hash"])
        if current[0] == 0 or current == self._last:
            return current[0]
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, f"{current[0]} {current[1]} {at_us}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last = current
        return current[0]


async def write_anchor(conn: asyncpg.Connection, anchor_dir: Path, at_us: int) -> int:
    """One-shot anchor write (for tools and tests); returns the anchored seq."""
    return await Anchor(anchor_dir).write(conn, at_us)


# --------------------------------------------------------------------------- verification


@dataclasses.dataclass
class VerifyReport:
    entries: int = 0
    last_seq: int = 0
    anchors_checked: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"audit journal intact: {self.entries} entries, head seq {self.last_seq}, "
                    f"{self.anchors_checked} anchors checked")
        return "audit journal NOT intact:\n  " + "\n  ".join(self.problems)


async def verify(conn: asyncpg.Connection, anchor_dir: Path | None = None, batch: int = 5000) -> VerifyReport:
    report = VerifyReport()
    anchors: dict[int, str] = {}
    anchor_file = None
    if anchor_dir is not None:
        anchor_file = anchor_path(Path(anchor_dir), await database_id(conn))
        for s, h in read_anchors(anchor_file):
            anchors[s] = h
    prev, expected = GENESIS, 1
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head WHERE singleton")
        last_hash = GENESIS
        after = 0
        while True:
            rows = await conn.fetch(
                f"SELECT {', '.join(_COLUMNS)} FROM alert_journal WHERE seq > $1 ORDER BY seq LIMIT $2", after, batch
            )
            if not rows:
                break
            for r in rows:
                seq = r["seq"]
                if seq != expected:
                    report.problems.append(
                        f"entries {expected}..{seq - 1} are missing (deleted)" if seq > expected
                        else f"entry {seq} is out of order"
                    )
                if r["prev_hash"] != prev:
                    report.problems.append(
                        f"entry {seq}: prev_hash does not match entry {seq - 1} (an entry before it was deleted, "
                        "inserted or reordered)"
                    )
                recomputed = entry_hash(r["prev_hash"], seq, r["at_us"], r["alert_id"], r["alert_key"], r["version"],
                                        r["action"], r["actor"], r["detail"])
                if recomputed != r["hash"]:
                    report.problems.append(f"entry {seq} ({r['action']} of {r['alert_key']}) was edited: hash mismatch")
                if seq in anchors:
                    report.anchors_checked += 1
                    if anchors[seq] != r["hash"]:
                        report.problems.append(f"entry {seq} differs from the anchor written when it was the head")
                prev = r["hash"]
                expected = seq + 1
                report.entries += 1
                last_hash = r["hash"]
            after = rows[-1]["seq"]
        report.last_seq = after
    if int(head["seq"]) != report.last_seq or (report.last_seq and head["hash"] != last_hash):
        if int(head["seq"]) > report.last_seq:
            report.problems.append(
                f"tail cut off: the head row records seq {head['seq']} but the journal ends at {report.last_seq}"
            )
        else:
            report.problems.append(
                f"the head row (seq {head['seq']}) does not match the journal's last entry (seq {report.last_seq})"
            )
    if anchors:
        top = max(anchors)
        if top > report.last_seq:
            report.problems.append(
                f"tail cut off: anchor file {anchor_file} records seq {top} but the journal ends at {report.last_seq}"
            )
    return report
