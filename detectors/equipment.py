"""Equipment groups: one channel of a machine departing from what its other channels predict.

An *equipment group* is the sensors of one piece of equipment (the registry's ``equipment``
field: a pump loop's pressure, flow, temperature, vibration and current), at least
``min_channels`` of kinds that take part (statistical kinds; ``equipment: false`` leaves a kind
out). A fault shows as a broken relation between channels while each stays inside its own range.

The group is judged at every distinct time at which one of its members has a statistical reading,
on the vector v of every member's latest statistical value at that time (a member whose latest
value is older than its no-data silence makes the group not judged: nothing is learnt). The model
is an exponentially weighted mean μ and covariance C of v (weight ``alpha`` per judged time, 1/(n+1)
during warm-up), ridged by each channel's rounding variance (resolution² / 12), P = C⁻¹. For a Gaussian vector the
standardised residual of channel j given all the others is

    z_j = (P (v − μ))_j / √P_jj          (x_j − E[x_j | others]) / sd[x_j | others]

so one matrix-vector product per group gives every channel's departure at once; the others'
prediction of channel j is x_j − (P (v − μ))_j / P_jj (the finding's setpoint column). A sustained
small departure is caught by the smoothed residual s_j ← (1 − β) s_j + β z_j, read against its
learnt scale (never below the white-noise value √(β / (2 − β))). Each channel's score is

    q_j = max(|z_j| / k, |s_j| / (k_smooth · scale(s_j)))

``equipment`` raises after ``warmup`` learnt times when max q ≥ 1 and holds while max q ≥ ``clear``;
while raised (and whenever max q ≥ 1) the model learns nothing, so a fault never becomes normal.

Identity: a group holds at most one condition. Its subject is the channel that departed most when
it was raised (the finding names it; value = its reading, setpoint = what the others predict), and
the clear goes to the same sensor, so a fault on one machine is one finding, and the alerts stage
folds it as a value finding of that sensor (``zone:{zone}:{kind}``).

Cost: groups are stacked into (groups, width, width) arrays (shorter groups padded with inert
channels); per batch one sort of the members' readings, a forward fill, and per rank of time within
a group one batched inverse and product over the groups judged at that rank.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.findings import CLEAR, RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Equipment(ColumnDetector):
    def __init__(self, params) -> None:
        self.p = params  # detectors.config.EquipmentParams
        self.cfg = Columns(
            {
                "group": (np.int32, -1, 1),
                "slot": (np.int32, -1, 1),
            }
        )
        self.st = Columns({})
        self.members = np.zeros((0, 1), dtype=np.int64)  # (groups, width) sensor ids, 0 = padding
        self._alloc(0, 1)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _alloc(self, g: int, w: int) -> None:
        self.mask = np.zeros((g, w), dtype=bool)
        self.ridge = np.ones((g, w))
        self.age_us = np.zeros(g, dtype=np.int64)
        self.mu = np.zeros((g, w))
        self.cov = np.zeros((g, w, w))
        self.n = np.zeros(g, dtype=np.int64)
        self.sm = np.zeros((g, w))
        self.smv = np.zeros((g, w))
        self.on = np.zeros(g, dtype=bool)
        self.named = np.zeros(g, dtype=np.int64)
        self.raised_at = np.full(g, NO_TS, dtype=np.int64)
        self.expect = np.full(g, np.nan)
        self._snap_x = np.zeros((g, w))
        self._snap_t = np.full((g, w), NO_TS, dtype=np.int64)

    @property
    def group_nbytes(self) -> int:
        arrays = (self.mask, self.ridge, self.age_us, self.mu, self.cov, self.n, self.sm, self.smv, self.on,
                  self.named, self.raised_at, self.expect, self.members)
        return sum(a.nbytes for a in arrays)

    def configure_groups(self, equipment: np.ndarray, usable: np.ndarray, floor: np.ndarray,
                         age_us: np.ndarray) -> None:
        """Groups of the sensors where ``usable``, by ``equipment`` (n,) dense id (0: none). State of
        a group whose members are unchanged is kept; every other group starts anew."""
        n = equipment.shape[0]
        self.cfg.group[:n] = -1
        self.cfg.slot[:n] = -1
        ids = np.flatnonzero(usable & (equipment > 0))
        groups: list[np.ndarray] = []
        if ids.shape[0]:
            order = np.argsort(equipment[ids], kind="stable")
            bounds = np.flatnonzero(np.diff(equipment[ids][order])) + 1
            groups = [m for m in np.split(ids[order], bounds) if m.shape[0] >= self.p.min_channels]
        old = {tuple(row[row > 0].tolist()): gi for gi, row in enumerate(self.members)}
        saved = (self.members, self.mu, self.cov, self.n, self.sm, self.smv, self.on, self.named, self.raised_at,
                 self.expect)
        width = max([1, *(m.shape[0] for m in groups)])
        self.members = np.zeros((len(groups), width), dtype=np.int64)
        self._alloc(len(groups), width)
        for gi, m in enumerate(groups):
            k = m.shape[0]
            self.members[gi, :k] = m
            self.mask[gi, :k] = True
            self.ridge[gi, :k] = floor[m] ** 2 / 12.0  # the variance of rounding to one resolution step
            self.age_us[gi] = int(age_us[m].max())
            self.cfg.group[m] = gi
            self.cfg.slot[m] = np.arange(k)
            was = old.get(tuple(m.tolist()))
            if was is not None:
                _, mu, cov, cnt, sm, smv, on, named, raised_at, expect = saved
                self.mu[gi, :k], self.cov[gi, :k, :k] = mu[was, :k], cov[was, :k, :k]
                self.sm[gi, :k], self.smv[gi, :k] = sm[was, :k], smv[was, :k]
                self.n[gi], self.on[gi], self.named[gi] = cnt[was], on[was], named[was]
                self.raised_at[gi], self.expect[gi] = raised_at[was], expect[was]

    # --- per batch ------------------------------------------------------------------------
    def begin(self, stat_x: np.ndarray, stat_ts: np.ndarray) -> None:
        """The members' latest statistical values and times as the batch begins."""
        self._parts = []
        if self.members.shape[0]:
            self._snap_x = np.where(self.mask, stat_x[self.members], 0.0)
            self._snap_t = np.where(self.mask, stat_ts[self.members], NO_TS)

    def collect(self, rd: Round, stat: np.ndarray) -> None:
        """Keep the statistical readings of group members (judged after the batch's rounds)."""
        if self.members.shape[0] == 0:
            return
        i = np.flatnonzero(stat & (self.cfg.group[rd.s] >= 0))
        if i.shape[0]:
            self._parts.append((rd.s[i], rd.t[i], rd.x[i]))

    def evaluate(self, em: Emitter) -> None:
        """Judge every group at each distinct time one of its members read, in time order."""
        if not self._parts:
            return
        s, t, x = (np.concatenate(c) for c in zip(*self._parts, strict=True))
        self._parts = []
        g = self.cfg.group[s].astype(np.int64)
        order = np.lexsort((t, g))
        s, t, x, g = s[order], t[order], x[order], g[order]
        new = np.ones(s.shape[0], dtype=bool)
        new[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
        e_id = np.cumsum(new) - 1
        eg, et = g[new], t[new]
        ne = eg.shape[0]
        first = np.ones(ne, dtype=bool)
        first[1:] = eg[1:] != eg[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(ne), 0))
        rank = np.arange(ne) - start
        w = self.members.shape[1]
        # each member's latest value at each judged time: forward fill within the group
        got = np.full((ne, w), -1, dtype=np.int64)
        got[e_id, self.cfg.slot[s]] = np.arange(s.shape[0])
        last = np.maximum.accumulate(got, axis=0)
        inside = last >= 0
        inside[inside] = e_id[last[inside]] >= start[np.nonzero(inside)[0]]
        pick = np.where(inside, last, 0)
        vals = np.where(inside, x[pick], self._snap_x[eg])
        times = np.where(inside, t[pick], self._snap_t[eg])
        for r in range(int(rank.max()) + 1):
            at = np.flatnonzero(rank == r)
            self._judge(eg[at], et[at], vals[at], times[at], em)

    def _judge(self, g, t, v, tv, em: Emitter) -> None:
        p = self.p
        mask = self.mask[g]
        recent = (tv != NO_TS) & (t[:, None] - tv <= self.age_us[g][:, None])
        judged = (recent | ~mask).all(axis=1)
        if not judged.all():
            g, t, v, mask = g[judged], t[judged], v[judged], mask[judged]
            if g.shape[0] == 0:
                return
        mu, cov, n = self.mu[g], self.cov[g], self.n[g]
        d = np.where(mask, v - mu, 0.0)
        c = cov.copy()
        diag = np.arange(c.shape[1])
        c[:, diag, diag] += self.ridge[g]
        prec = np.linalg.inv(c)
        y = np.einsum("gij,gj->gi", prec, d)
        pd = prec[:, diag, diag]
        z = np.where(mask, y / np.sqrt(pd), 0.0)
        warm = n >= p.warmup
        beta = p.beta
        white = beta / (2.0 - beta)
        scale = np.sqrt(np.maximum(self.smv[g], white))
        inst = np.where(mask, np.abs(z) / p.k, 0.0)
        top = np.argmax(np.maximum(inst, np.where(mask, np.abs(self.sm[g]) / (p.k_smooth * scale), 0.0)), axis=1)
        rows = np.arange(g.shape[0])
        # the others once the top channel is set to what they predict: still departing means the
        # whole machine moved (a change of operating state), which is learnt, not judged
        col = prec[rows, :, top]
        others = np.abs(y - col * (y[rows, top] / pd[rows, top])[:, None]) / np.sqrt(pd)
        others[rows, top] = 0.0
        wide = (np.where(mask, others, 0.0) >= p.spread_k).any(axis=1)
        sm = np.where(warm[:, None], np.where(wide[:, None], self.sm[g], (1.0 - beta) * self.sm[g] + beta * z), 0.0)
        q = np.where(mask, np.maximum(inst, np.abs(sm) / (p.k_smooth * scale)), 0.0)
        top = np.argmax(q, axis=1)
        qmax = q[rows, top]
        was = self.on[g]
        now = warm & (((qmax >= 1.0) & ~wide) | (was & (qmax >= p.clear)))
        self.sm[g] = sm
        learn = ~now & (~warm | wide | (qmax < 1.0))
        if learn.any():
            j = np.flatnonzero(learn)
            gj = g[j]
            a = np.where(warm[j], p.alpha, np.maximum(1.0 / (n[j] + 1.0), p.alpha))[:, None]
            # a departure within the model is learnt clipped at ``huber`` residual units
            zmax = np.max(np.abs(z[j]), axis=1)
            weight = np.where(warm[j] & ~wide[j], np.minimum(1.0, p.huber / np.maximum(zmax, 1e-12)), 1.0)
            dj = d[j] * weight[:, None]
            self.mu[gj] = mu[j] + a * dj
            self.cov[gj] = (1.0 - a[:, :, None]) * (cov[j] + a[:, :, None] * dj[:, :, None] * dj[:, None, :])
            sm2 = np.minimum(sm[j] ** 2, (p.huber * scale[j]) ** 2)
            self.smv[gj] = np.where(warm[j][:, None], self.smv[gj] + p.alpha * (sm2 - self.smv[gj]), 0.0)
            self.n[gj] = n[j] + 1
        if not (now.any() or was.any()):
            return
        self.on[g] = now
        raise_ = now & ~was
        if raise_.any():
            k = np.flatnonzero(raise_)
            tk = top[k]
            gk = g[k]
            self.named[gk] = self.members[gk, tk]
            self.raised_at[gk] = t[k]
            self.expect[gk] = v[k, tk] - y[k, tk] / pd[k, tk]
            em.emit(rules.EQUIPMENT, self.named[gk], RAISE, Severity.NOTICE, t[k], v[k, tk], self.expect[gk])
        cleared = np.flatnonzero(was & ~now)
        if cleared.shape[0]:
            gc = g[cleared]
            slot = self.cfg.slot[self.named[gc]]
            em.emit(rules.EQUIPMENT, self.named[gc], CLEAR, Severity.NOTICE, t[cleared], v[cleared, slot],
                    self.expect[gc])

    def active(self, em: Emitter) -> None:
        gi = np.flatnonzero(self.on)
        em.emit(rules.EQUIPMENT, self.named[gi], RAISE, Severity.NOTICE, self.raised_at[gi], setpoint=self.expect[gi])
