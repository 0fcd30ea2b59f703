"""Refused readings of a message, gathered before its one dead letter is built, and the
repeated-reading masks of a burst (duplicates, conflicting values, clock-correction collisions)."""

from __future__ import annotations

import dataclasses

import numpy as np

from domain.messages import MAX_LISTED_READINGS, RefusedReading, RejectReason


@dataclasses.dataclass(slots=True)
class Refusals:
    """The refused readings of one message, gathered before its one dead letter is built."""

    total: int  # readings in the message
    listed: list[RefusedReading] = dataclasses.field(default_factory=list)
    counts: dict[RejectReason, int] = dataclasses.field(default_factory=dict)
    first_detail: str = ""

    def add(self, index: int | None, sensor: str | None, reason: RejectReason, detail: str) -> None:
        if not self.first_detail:
            self.first_detail = detail
        if len(self.listed) < MAX_LISTED_READINGS:
            self.listed.append(RefusedReading(index, sensor, reason))
        self.counts[reason] = self.counts.get(reason, 0) + 1


def merge_refusals(refusals: dict[int, Refusals], i: int, r: Refusals) -> None:
    have = refusals.get(i)
    if have is None:
        refusals[i] = r
        return
    for reason, c in r.counts.items():
        have.counts[reason] = have.counts.get(reason, 0) + c
    have.listed.extend(r.listed[:MAX_LISTED_READINGS - len(have.listed)])
    have.first_detail = have.first_detail or r.first_detail


def repeats(maybe_duplicates: list[int], starts, counts, msg_no, idx, ts_us, device_us, value, eligible):
    """Masks of readings repeating an earlier one of the same message at the same (sensor, stored
    time): ``duplicate`` (same device time and value), ``conflicting`` (same device time, another
    value), ``collision`` (another device time, brought there by a clock correction). Only the
    messages that name a sensor twice are looked at."""
    n = idx.shape[0]
    duplicate = np.zeros(n, dtype=bool)
    conflicting = np.zeros(n, dtype=bool)
    collision = np.zeros(n, dtype=bool)
    if not maybe_duplicates:
        return duplicate, conflicting, collision
    cand = np.zeros(n, dtype=bool)
    for k in maybe_duplicates:
        cand[starts[k]:starts[k] + counts[k]] = True
    rows = np.flatnonzero(cand & eligible)
    order = rows[np.lexsort((ts_us[rows], idx[rows], msg_no[rows]))]  # stable: first in message first
    same = ((msg_no[order][1:] == msg_no[order][:-1]) & (idx[order][1:] == idx[order][:-1])
            & (ts_us[order][1:] == ts_us[order][:-1]))
    if not same.any():
        return duplicate, conflicting, collision
    heads = np.concatenate(([True], ~same))
    head = order[np.flatnonzero(heads)][np.cumsum(heads) - 1]
    later = np.flatnonzero(~heads)
    rep, first = order[later], head[later]
    same_device = device_us[rep] == device_us[first]
    same_value = value[rep] == value[first]
    duplicate[rep[same_device & same_value]] = True
    conflicting[rep[same_device & ~same_value]] = True
    collision[rep[~same_device]] = True
    return duplicate, conflicting, collision
