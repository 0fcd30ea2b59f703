"""``verify``: the chain, its anchors, and every alert's row against its journal.

Reported problems:

- an edited entry (hash mismatch), a deleted one (gap in ``seq`` or broken ``prev_hash``), a
  reordered one (``seq`` is hashed, so a swap breaks both);
- a cut-off tail: the head row, an anchor or a notarised head beyond the journal's end;
- a rewritten chain: an anchored or notarised entry whose hash differs;
- **no anchor at all** while the journal has entries (the anchor file deleted or emptied, the
  anchor directory not configured or not the service's): without one, a chain rewritten with a
  superuser's rights would verify as intact, so it is a failure, not a warning;
- an alert row that its journal does not explain: a version or a field of the journal's snapshot
  (state, colour, acknowledged by, assignee, shelving, …) that differs from the row, a row with no
  journal entry, or journal entries whose row is gone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import asyncpg

from alerts import records
from alerts.journal.anchors import anchor_path, database_id, read_anchors
from alerts.journal.chain import COLUMNS, GENESIS, entry_hash

# Snapshot fields that change without a journal entry (a repeated finding updates the value only).
_UNJOURNALED = frozenset({"value", "setpoint"})


@dataclasses.dataclass
class VerifyReport:
    entries: int = 0
    last_seq: int = 0
    anchors_checked: int = 0
    alerts_checked: int = 0
    anchor_file: Path | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"audit journal intact: {self.entries} entries, head seq {self.last_seq}, "
                    f"{self.anchors_checked} anchors checked ({self.anchor_file or 'notarised heads only'}), "
                    f"{self.alerts_checked} alerts reconciled with their journal")
        return "audit journal NOT intact:\n  " + "\n  ".join(self.problems)


def parse_notarised(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as ``yujing audit head`` printed it for a notary."""
    seq, sep, h = text.partition(":")
    if not sep or not seq.isdigit() or len(h) != 64:
        raise ValueError(f"a notarised head is SEQ:HASH (64 hex digits), not {text!r}")
    return int(seq), h.lower()


async def verify(conn: asyncpg.Connection, anchor_dir: Path | None = None, *,
                 notarised: Iterable[tuple[int, str]] = (), batch: int = 5000) -> VerifyReport:
    """Verify the journal in one read-only snapshot. ``anchor_dir`` (absolute) holds the anchor
    file; ``notarised``: ``(seq, hash)`` heads kept by an external notary."""
    report = VerifyReport()
    anchors: dict[int, str] = {}
    if anchor_dir is not None:
        report.anchor_file = anchor_path(Path(anchor_dir), await database_id(conn))
        anchors.update(read_anchors(report.anchor_file))
    file_anchors = len(anchors)
    sources = {s: "anchor file" for s in anchors}
    for s, h in notarised:
        if s in anchors and anchors[s] != h:
            report.problems.append(f"the anchor file and the notarised head disagree about entry {s}")
        anchors[s] = h
        sources[s] = "notarised head"
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM alert_journal_head WHERE singleton")
        last_hash = await _walk(conn, report, anchors, sources, batch)
        await _reconcile(conn, report, batch)
    if int(head["seq"]) != report.last_seq or (report.last_seq and head["hash"] != last_hash):
        if int(head["seq"]) > report.last_seq:
            report.problems.append(
                f"tail cut off: the head row records seq {head['seq']} but the journal ends at {report.last_seq}")
        else:
            report.problems.append(
                f"the head row (seq {head['seq']}) does not match the journal's last entry (seq {report.last_seq})")
    beyond = sorted(s for s in anchors if s > report.last_seq)
    for s in beyond[-1:]:
        report.problems.append(
            f"tail cut off: the {sources[s]} records seq {s} but the journal ends at {report.last_seq}")
    if max(report.last_seq, int(head["seq"])) > 0 and not anchors:
        where = (f"no anchor in {report.anchor_file} (deleted, emptied, or not the directory the service writes)"
                 if report.anchor_file is not None and file_anchors == 0
                 else "no anchor directory configured (audit.anchor_dir) and no notarised head given")
        report.problems.append(
            f"{where}: the journal's {report.last_seq} entries cannot be told from a rewritten chain")
    return report


async def _walk(conn: asyncpg.Connection, report: VerifyReport, anchors: Mapping[int, str],
                sources: Mapping[int, str], batch: int) -> str:
    prev, expected, after, last_hash = GENESIS, 1, 0, GENESIS
    while True:
        rows = await conn.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM alert_journal WHERE seq > $1 ORDER BY seq LIMIT $2", after, batch)
        if not rows:
            break
        for r in rows:
            seq = r["seq"]
            if seq != expected:
                report.problems.append(f"entries {expected}..{seq - 1} are missing (deleted)" if seq > expected
                                       else f"entry {seq} is out of order")
            if r["prev_hash"] != prev:
                report.problems.append(f"entry {seq}: prev_hash does not match entry {seq - 1} (an entry before it "
                                       "was deleted, inserted or reordered)")
            recomputed = entry_hash(r["prev_hash"], seq, r["at_us"], r["alert_id"], r["alert_key"], r["version"],
                                    r["action"], r["actor"], r["detail"])
            if recomputed != r["hash"]:
                report.problems.append(f"entry {seq} ({r['action']} of {r['alert_key']}) was edited: hash mismatch")
            if seq in anchors:
                report.anchors_checked += 1
                if anchors[seq] != r["hash"]:
                    report.problems.append(f"entry {seq} differs from the {sources[seq]} written when it was the head "
                                           "(the chain was rewritten)")
            prev = last_hash = r["hash"]
            expected = seq + 1
            report.entries += 1
        after = rows[-1]["seq"]
    report.last_seq = after
    return last_hash


async def _reconcile(conn: asyncpg.Connection, report: VerifyReport, batch: int) -> None:
    """Each alert row against its last journal entry (version and snapshot)."""
    after = 0
    while True:
        alerts = await records.fetch(conn, "id > $1 ORDER BY id LIMIT $2", after, batch)
        if not alerts:
            break
        ids = [a.id for a in alerts]
        last = {r["alert_id"]: r for r in await conn.fetch(
            "SELECT DISTINCT ON (alert_id) alert_id, seq, version, detail FROM alert_journal"
            " WHERE alert_id = ANY($1::bigint[]) ORDER BY alert_id, seq DESC", ids)}
        for a in alerts:
            report.alerts_checked += 1
            entry = last.get(a.id)
            if entry is None:
                report.problems.append(f"alert {a.id} ({a.alert_key}) has no journal entry: its row was written "
                                       "outside the journal")
                continue
            report.problems.extend(_differences(a, entry))
        after = ids[-1]
    orphans = await conn.fetch(
        "SELECT DISTINCT j.alert_id FROM alert_journal j WHERE j.alert_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = j.alert_id) ORDER BY 1 LIMIT 20")
    for r in orphans:
        report.problems.append(f"alert {r['alert_id']} is in the journal but its row is gone (deleted)")


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
