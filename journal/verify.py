"""``verify``: the chain, its anchors, and each subject's rows against their journal.

Reported problems:

- an edited entry (hash mismatch), a deleted one (gap in ``seq`` or broken ``prev_hash``), a
  reordered one (``seq`` is hashed, so a swap breaks both);
- a cut-off tail: the head row, an anchor or a notarised head beyond the journal's end;
- a rewritten chain: an anchored or notarised entry whose hash differs;
- **no anchor at all** while the journal has entries (the anchor file deleted or emptied, the
  anchor directory not configured or not the service's): without one, a chain rewritten with a
  superuser's rights would verify as intact, so it is a failure, not a warning;
- a row of a subject that its journal does not explain, as that subject's :class:`SubjectCheck`
  finds it (the alerts' is ``alerts.journaled.ALERT_ROWS``: a version or a field of the journal's
  snapshot that differs from the row, a row with no journal entry, entries whose row is gone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

import asyncpg

from journal.anchors import anchor_path, database_id, read_anchors
from journal.chain import COLUMNS, GENESIS, entry_hash
from journal.subjects import check_subject_type


@dataclasses.dataclass(frozen=True)
class SubjectCheck:
    """How one subject type's rows are reconciled with their journal: ``reconcile(conn, batch)``
    returns (rows checked, problems), read inside verification's snapshot."""

    subject_type: str
    reconcile: Callable[[asyncpg.Connection, int], Awaitable[tuple[int, list[str]]]]

    def __post_init__(self) -> None:
        check_subject_type(self.subject_type)


@dataclasses.dataclass
class VerifyReport:
    entries: int = 0
    last_seq: int = 0
    anchors_checked: int = 0
    rows_checked: dict[str, int] = dataclasses.field(default_factory=dict)  # subject type -> rows reconciled
    anchor_file: Path | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"audit journal intact: {self.entries} entries, head seq {self.last_seq}, "
                    f"{self.anchors_checked} anchors checked ({self.anchor_file or 'notarised heads only'}), "
                    f"{self._reconciled()} reconciled with their journal")
        return "audit journal NOT intact:\n  " + "\n  ".join(self.problems)

    def _reconciled(self) -> str:
        return ", ".join(f"{n} {t} rows" for t, n in self.rows_checked.items()) or "no rows"


def parse_notarised(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as ``yujing audit head`` printed it for a notary."""
    seq, sep, h = text.partition(":")
    if not sep or not seq.isdigit() or len(h) != 64:
        raise ValueError(f"a notarised head is SEQ:HASH (64 hex digits), not {text!r}")
    return int(seq), h.lower()


async def verify(conn: asyncpg.Connection, anchor_dir: Path | None = None, *,
                 notarised: Iterable[tuple[int, str]] = (), batch: int = 5000,
                 subjects: Sequence[SubjectCheck] = ()) -> VerifyReport:
    """Verify the journal in one read-only snapshot. ``anchor_dir`` (absolute) holds the anchor
    file; ``notarised``: ``(seq, hash)`` heads kept by an external notary; ``subjects``: the
    subject types whose rows are reconciled with their journal."""
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
        for subject in subjects:
            checked, problems = await subject.reconcile(conn, batch)
            report.rows_checked[subject.subject_type] = checked
            report.problems.extend(problems)
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
                                    r["action"], r["actor"], r["detail"], r["subject_type"])
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
