"""What a journal entry is about: its subject type.

Alerts (and silences, journaled with them) are the journal's first subjects; the type names the
others that are journaled and verified the same way. A type is a short lower-case word; the
database checks the same pattern (migration 0075).
"""

from __future__ import annotations

import re

ALERT = "alert"
HIDDEN_HAZARD = "hidden_hazard"  # 隐患: a hidden hazard found, rectified, accepted
USER = "user"
KEY_CHANGE = "key_change"  # an API key or gateway login issued, rotated, revoked
SUBJECT_TYPES = (ALERT, HIDDEN_HAZARD, USER, KEY_CHANGE)

_PATTERN = re.compile(r"^[a-z][a-z_]{0,31}$")


def check_subject_type(subject_type: str) -> str:
    """``subject_type`` if it is one of :data:`SUBJECT_TYPES`; ValueError otherwise."""
    if subject_type not in SUBJECT_TYPES or not _PATTERN.match(subject_type):
        raise ValueError(f"unknown journal subject type {subject_type!r} (known: {', '.join(SUBJECT_TYPES)})")
    return subject_type
