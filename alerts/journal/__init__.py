"""The audit journal: append-only, hash-chained, with its head recorded outside the table.

Every alert transition, acknowledgement, comment, assignment and silence change is one entry
(:mod:`~alerts.journal.chain`). The database checks each link as it is written and the service's
role may only read and append (migration 0065). The head is also kept outside the database
(:mod:`~alerts.journal.anchors`): an anchor file at an absolute path and, optionally, a webhook
of an external notary, or ``yujing audit head`` for one to copy. :func:`verify`
(:mod:`~alerts.journal.verify`) walks the chain, checks it against the anchors — a missing anchor
is a failure — and reconciles every alert's row with what its journal says.
"""

from alerts.journal.anchors import Anchor, Head, anchor_path, database_id, read_anchors, read_head, write_anchor
from alerts.journal.chain import GENESIS, Entry, append, canonical, entry_hash
from alerts.journal.verify import VerifyReport, parse_notarised, verify

__all__ = [
    "GENESIS", "Anchor", "Entry", "Head", "VerifyReport", "anchor_path", "append", "canonical", "database_id",
    "entry_hash", "parse_notarised", "read_anchors", "read_head", "verify", "write_anchor",
]
