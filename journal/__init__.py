"""The audit journal: append-only, hash-chained, with its head recorded outside the table.

Each entry is one change of one subject: its type (:mod:`~journal.subjects`: alerts and silences
today; hidden hazards, users and key changes next), its key, its version, the action, the actor and
the detail (:mod:`~journal.chain`). The database checks each link as it is written and the
service's role may only read and append (migrations 0065, 0075). The head is also kept outside the
database (:mod:`~journal.anchors`): an anchor file at an absolute path and, optionally, a webhook
of an external notary, or ``yujing audit head`` for one to copy. :func:`verify`
(:mod:`~journal.verify`) walks the chain, checks it against the anchors — a missing anchor is a
failure — and reconciles each subject type's rows with what its journal says, through the
:class:`SubjectCheck` its owner hands in (the alerts': ``alerts.journaled``).
"""

from journal.anchors import Anchor, Head, anchor_path, database_id, read_anchors, read_head, write_anchor
from journal.chain import GENESIS, Entry, append, canonical, entry_hash
from journal.subjects import ALERT, SUBJECT_TYPES
from journal.verify import SubjectCheck, VerifyReport, parse_notarised, verify

__all__ = [
    "ALERT", "GENESIS", "SUBJECT_TYPES", "Anchor", "Entry", "Head", "SubjectCheck", "VerifyReport", "anchor_path",
    "append", "canonical", "database_id", "entry_hash", "parse_notarised", "read_anchors", "read_head", "verify",
    "write_anchor",
]
