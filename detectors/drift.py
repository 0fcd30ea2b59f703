"""Drift against peers: one sensor moving away from the sensors that measure the same thing.

Peers are the sensors of one *peer group*: same zone, same kind and same location class, for
kinds that enable the detector (by default temperature: the tank thermometers of one tank farm,
the room thermometers of one machine room, which all follow the same weather and the same day).
A group needs at least ``min_peers`` + 1 members, so the other members can outvote one drifting
sensor: with only two sensors nobody can tell which one drifted.

Each member keeps its own slow baseline b (an exponentially weighted mean of its own readings in
time, τ = ``tau`` seconds, 6 h by default; it starts at the first reading). What the sensor has
done lately is its change c = x − b. Members that see the same signal have the same change (their
baselines lag it alike, whatever their constant offsets), so for a statistical reading x of
member i the departure is

    e = (x − bᵢ) − median{ x_j − b_j : peers j }

taken over the peers' last statistical values as they stood when the batch began, when they are
recent (within the peer's no-data silence), and not drifting themselves; with fewer than
``min_peers`` such peers the reading is not judged (nothing is learnt). A drift of r per hour
gives e ≈ r t (1 − t / 2τ), whatever the weather does.

``drift`` raises when |e| ≥ max(k σ̂, ``min_dev``) after ``warmup`` judged readings, where σ̂ is
the robust scale of e (mean absolute value × √(π/2), learnt slowly from departures clipped at
2 σ̂ so a slow drift cannot drag it up; at least the resolution) and ``min_dev`` is 10 resolution units by default (1 ℃ for temperature); it holds
while |e| stays above half that threshold. While it is raised the sensor's baseline and scale
learn nothing, so a drift never becomes normal; it clears when the sensor comes back to its
peers. Its setpoint column is what the peers say the sensor should read (x − e). Cost: one
gather of the group row and a median over at most the group's size, per reading of a member.
"""

from __future__ import annotations

import numpy as np

from detectors import rules
from detectors.anomaly import MAD_TO_SIGMA
from detectors.findings import RAISE, Emitter
from detectors.ordering import NO_TS, Round
from detectors.state import ColumnDetector, Columns
from domain.severity import Severity


class Drift(ColumnDetector):
    def __init__(self) -> None:
        self.cfg = Columns(
            {
                "enabled": (np.bool_, False, 1),  # kind enables it and the sensor is in a group
                "tau_s": (np.float64, 21600.0, 1),
                "alpha": (np.float64, 0.001, 1),
                "warmup": (np.int32, 20, 1),
                "k": (np.float64, 5.0, 1),
                "huber": (np.float64, 2.0, 1),
                "min_dev": (np.float64, 1.0, 1),
                "min_peers": (np.int32, 2, 1),
                "floor": (np.float64, 1e-9, 1),
                "age_us": (np.int64, 0, 1),  # a peer's value is recent within this
                "group": (np.int32, -1, 1),
                "slot": (np.int32, -1, 1),
            }
        )
        self.st = Columns(
            {
                "b": (np.float64, np.nan, 1),
                "d": (np.float64, 0.0, 1),
                "n": (np.int32, 0, 1),
                "on": (np.bool_, False, 1),
                "raised_at": (np.int64, NO_TS, 1),
                "expect": (np.float64, np.nan, 1),
            }
        )
        self.members = np.zeros((0, 1), dtype=np.int64)  # (groups, width) sensor ids, 0 = padding
        self._snap_c = np.zeros((0, 1))
        self._snap_t = np.zeros((0, 1), dtype=np.int64)
        self._snap_ok = np.zeros((0, 1), dtype=bool)

    def configure_groups(self, keys: np.ndarray, usable: np.ndarray) -> None:
        """Peer groups of the sensors where ``usable`` (kind enables drift, active, in a zone):
        ``keys`` (n,) strings; sensors sharing a key are one group when there are enough of them."""
        n = keys.shape[0]
        self.cfg.group[:n] = -1
        self.cfg.slot[:n] = -1
        ids = np.flatnonzero(usable)
        groups: list[np.ndarray] = []
        if ids.shape[0]:
            uniq, inv = np.unique(keys[ids], return_inverse=True)
            order = np.argsort(inv, kind="stable")
            bounds = np.flatnonzero(np.diff(inv[order])) + 1
            for members in np.split(ids[order], bounds):
                if members.shape[0] >= int(self.cfg.min_peers[members].min()) + 1:
                    groups.append(members)
        width = max([1, *(g.shape[0] for g in groups)])
        self.members = np.zeros((len(groups), width), dtype=np.int64)
        for gi, members in enumerate(groups):
            self.members[gi, : members.shape[0]] = members
            self.cfg.group[members] = gi
            self.cfg.slot[members] = np.arange(members.shape[0])
        self.cfg.enabled[:n] &= self.cfg.group[:n] >= 0

    def snapshot(self, stat_x: np.ndarray, stat_ts: np.ndarray) -> None:
        """The peers' changes as the batch begins (every reading of the batch is judged on them)."""
        if self.members.shape[0] == 0:
            return
        m = self.members
        self._snap_c = stat_x[m] - self.st.b[m]
        self._snap_t = stat_ts[m]
        self._snap_ok = (m > 0) & (stat_ts[m] != NO_TS) & np.isfinite(self._snap_c) & ~self.st.on[m]

    def step(self, rd: Round, em: Emitter, stat: np.ndarray) -> None:
        i, s = rd.select(stat, self.cfg.enabled)
        if s.shape[0] == 0:
            return
        cfg, st = self.cfg, self.st
        x, t = rd.x[i], rd.t[i]
        g = cfg.group[s]
        rows = np.arange(s.shape[0])
        peer = self.members[g]
        ok = self._snap_ok[g] & (np.abs(t[:, None] - self._snap_t[g]) <= cfg.age_us[peer])
        ok[rows, cfg.slot[s]] = False
        judged = ok.sum(axis=1) >= cfg.min_peers[s]
        b0 = st.b[s]
        dt = rd.dt_s[i]
        first = np.isnan(b0)
        # the baseline follows every statistical reading unless the sensor is drifting
        was = st.on[s]
        a = np.where(first | np.isnan(dt), 1.0, -np.expm1(-np.nan_to_num(dt) / cfg.tau_s[s]))
        if not judged.any():
            st.b[s] = np.where(was, b0, np.where(first, x, b0 + a * (x - b0)))
            return
        j = np.flatnonzero(judged)
        sj = s[j]
        c_peer = np.where(ok[j], self._snap_c[g[j]], np.nan)
        ref = np.nanmedian(c_peer, axis=1)
        bj = np.where(first[j], x[j], b0[j])
        e = (x[j] - bj) - ref
        n0 = st.n[sj]
        d0 = st.d[sj]
        warm = n0 >= cfg.warmup[sj]
        sd = np.maximum(d0 * MAD_TO_SIGMA, cfg.floor[sj])
        thr = np.maximum(cfg.k[sj] * sd, cfg.min_dev[sj])
        dev = np.abs(e)
        flagged = warm & (dev >= thr)
        wj = was[j]
        now = flagged | (wj & warm & (dev >= 0.5 * thr))
        learn = ~now
        lim = cfg.huber[sj] * sd
        ad = np.where(warm, np.minimum(dev, lim), dev)
        al = np.where(warm, cfg.alpha[sj], 1.0 / (n0 + 1.0))
        st.d[sj] = np.where(learn, d0 + al * (ad - d0), d0)
        st.n[sj] = n0 + learn
        hold = was.copy()
        hold[j] = now  # a judged reading that is (still) drifting leaves the baseline alone
        st.b[s] = np.where(hold, np.where(first, x, b0), np.where(first, x, b0 + a * (x - b0)))
        if not (now.any() or wj.any()):
            return
        st.on[sj] = now
        new = now & ~wj
        st.raised_at[sj[new]] = t[j][new]
        st.expect[sj[now]] = (x[j] - e)[now]
        em.transitions(rules.DRIFT, sj, wj, now, Severity.NOTICE, t[j], x[j], st.expect[sj])

    def active(self, em: Emitter) -> None:
        s = np.flatnonzero(self.st.on)
        em.emit(rules.DRIFT, s, RAISE, Severity.NOTICE, self.st.raised_at[s], setpoint=self.st.expect[s])
