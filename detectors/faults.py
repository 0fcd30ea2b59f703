"""Quality rules: sensor fault (FAULT/DISCONNECTED) and over/under range.

Every reading updates these, late or not: ``fault`` holds while readings carry FAULT or
DISCONNECTED; ``over_range``/``under_range`` hold while readings carry the flag, and a reading
taken while calibrating or in maintenance leaves them as they were. Over range raises at once
(an outburst can saturate a methane sensor). Cost: a few mask operations per reading.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.quality import Quality
from domain.severity import Severity

_NO_RANGE = np.int16(int(Quality.CALIBRATING | Quality.MAINTENANCE))


class QualityRules(ColumnDetector):
    def __init__(self, fault: bool = True, over_range: bool = True) -> None:
        self.fault_enabled = fault
        self.range_enabled = over_range
        self.cfg = Columns({"over_sev": (np.int8, Severity.NOTICE, 1), "under_sev": (np.int8, Severity.NOTICE, 1)})
        self.st = Columns(
            {
                "fault": (np.bool_, False, 1),
                "over": (np.bool_, False, 1),
                "under": (np.bool_, False, 1),
                "fault_at": (np.int64, NO_TS, 1),
                "over_at": (np.int64, NO_TS, 1),
                "under_at": (np.int64, NO_TS, 1),
            }
        )

    def step(self, rd: Round, em: Emitter) -> None:
        s, st = rd.s, self.st
        if self.fault_enabled:
            was = st.fault[s]
            if was.any() or rd.faulty.any():
                st.fault[s] = rd.faulty
                new = rd.faulty & ~was
                st.fault_at[s[new]] = rd.t[new]
                em.transitions(rules.FAULT, s, was, rd.faulty, Severity.NOTICE, rd.t, rd.x)
        if self.range_enabled:
            for flag, rule, sev_col, state, at in (
                (rd.over, rules.OVER_RANGE, self.cfg.over_sev, st.over, st.over_at),
                (rd.under, rules.UNDER_RANGE, self.cfg.under_sev, st.under, st.under_at),
            ):
                was = state[s]
                if not (was.any() or flag.any()):
                    continue
                keep = (rd.q & _NO_RANGE) != 0
                now = np.where(keep, was, flag)
                state[s] = now
                new = now & ~was
                at[s[new]] = rd.t[new]
                em.transitions(rule, s, was, now, sev_col[s], rd.t, rd.x)

    def active(self, em: Emitter) -> None:
        st = self.st
        for on, at, rule, sev in (
            (st.fault, st.fault_at, rules.FAULT, None),
            (st.over, st.over_at, rules.OVER_RANGE, self.cfg.over_sev),
            (st.under, st.under_at, rules.UNDER_RANGE, self.cfg.under_sev),
        ):
            s = np.flatnonzero(on)
            em.emit(rule, s, RAISE, Severity.NOTICE if sev is None else sev[s], at[s])
