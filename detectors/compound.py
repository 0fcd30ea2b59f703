"""Compound rules over the sensors of a zone and its adjacent zones, declared in configuration.

A rule holds in zone z when every clause holds: at least ``min_count`` sensors of the clause's
kind, in z (scope ``zone``) or in z and its adjacent zones (scope ``adjacent``), satisfy the
clause's condition, evaluated on the detector state after each batch:

- ``rising`` / ``falling``: the trend's slope beyond ±min_rate_per_min (after its warm-up) — the
  same trend as ``ttt`` (detectors/trend.py), re-anchored on a ramp, so a fast rise or drop counts
  from its second or third reading;
- ``on`` / ``off``: last value of a switch ≥ 0.5 / < 0.5;
- ``limit``: a high or low setpoint finding is active; ``stale``: no data; ``anomaly``: anomalous.

Findings are per zone (``compound.<name>``, subject kind zone) with the rule's severity. Cost per
evaluation: O(sensors of the clause kinds) plus a sparse adjacency product; it runs once per batch.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from detectors.config import CompoundRule
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS
from domain.severity import SubjectKind


class Compound:
    def __init__(self, rules: tuple[CompoundRule, ...]) -> None:
        self.rules = rules
        self.n_zones = 0
        self._cand: list[list[np.ndarray]] = []
        self._rate: list[list[float]] = []
        self._adj = None
        self.on = np.zeros((len(rules), 0), dtype=bool)
        self.raised_at = np.zeros((len(rules), 0), dtype=np.int64)

    def configure(self, kind: np.ndarray, zone: np.ndarray, active: np.ndarray, zones: dict, resolution) -> None:
        """kind: StringDType (n,); zone: int32 (n,); zones: id -> ZoneInfo; resolution: kind -> float."""
        nz = max([0, *zones]) + 1
        old_on, old_at = self.on, self.raised_at
        self.on = np.zeros((len(self.rules), nz), dtype=bool)
        self.raised_at = np.full((len(self.rules), nz), NO_TS, dtype=np.int64)
        w = min(nz, old_on.shape[1])
        self.on[:, :w] = old_on[:, :w]
        self.raised_at[:, :w] = old_at[:, :w]
        self.n_zones = nz
        self.zone = zone
        self.zone_ok = np.zeros(nz, dtype=bool)
        rows, cols = [], []
        for zid, info in zones.items():
            self.zone_ok[zid] = True
            rows.append(zid)
            cols.append(zid)
            for a in info.adjacent:
                if 0 < a < nz:
                    rows += [zid, a]
                    cols += [a, zid]
        m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nz, nz))
        m.data[:] = 1.0
        m.sum_duplicates()
        m.data[:] = 1.0
        self._adj = m
        self._cand = []
        self._rate = []
        for rule in self.rules:
            cands, rates = [], []
            for c in rule.clauses:
                cands.append(np.flatnonzero(active & (kind == c.kind) & (zone > 0)))
                res = resolution(c.kind)
                rates.append(c.min_rate_per_min if c.min_rate_per_min is not None else 2.0 * res)
            self._cand.append(cands)
            self._rate.append(rates)

    def evaluate(self, engine, now_us: int, em: Emitter) -> None:
        if not self.rules or self.n_zones == 0:
            return
        for r, rule in enumerate(self.rules):
            holds = self.zone_ok.copy()
            for c, clause in enumerate(rule.clauses):
                cand = self._cand[r][c]
                pred = self._predicate(engine, clause.condition, cand, self._rate[r][c])
                counts = np.bincount(self.zone[cand[pred]], minlength=self.n_zones).astype(np.float64)
                if clause.scope == "adjacent":
                    counts = self._adj @ counts
                holds &= counts >= clause.min_count
                if not holds.any():
                    break
            was = self.on[r]
            ch = holds != was
            if ch.any():
                z = np.flatnonzero(ch)
                new = holds[z]
                self.raised_at[r, z[new]] = now_us
                self.on[r] = holds
                em.emit(rule.rule, z, np.where(new, RAISE, np.int8(3)), int(rule.severity), now_us,
                        subject_kind=SubjectKind.ZONE)

    @staticmethod
    def _predicate(engine, cond: str, s: np.ndarray, rate_per_min: float) -> np.ndarray:
        if cond in ("rising", "falling"):
            tr = engine.trend
            warm = tr.st.n[s] >= tr.cfg.warmup[s]
            b = tr.st.b[s] * 60.0
            return warm & (b > rate_per_min if cond == "rising" else b < -rate_per_min)
        if cond in ("on", "off"):
            x = engine.base.stat_x[s]
            seen = engine.base.stat_ts[s] != NO_TS
            return seen & (x >= 0.5 if cond == "on" else x < 0.5)
        if cond == "limit":
            return (engine.high.st.lvl[s] > 0) | (engine.low.st.lvl[s] > 0)
        if cond == "stale":
            return engine.liveness.st.on[s]
        if cond == "anomaly":
            return engine.anomaly.st.on[s]
        raise AssertionError(cond)

    def active(self, em: Emitter) -> None:
        for r, rule in enumerate(self.rules):
            z = np.flatnonzero(self.on[r])
            em.emit(rule.rule, z, RAISE, int(rule.severity), self.raised_at[r, z], subject_kind=SubjectKind.ZONE)
