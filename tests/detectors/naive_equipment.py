"""A slow per-reading reference for the equipment-group detector, on top of tests/detectors/naive.py.

Shares nothing with detectors/equipment.py: the statistical readings are the ones the naive
engine takes as such (its ``stat_t`` moves); after the batch each group is judged at each distinct
time one of its members read, in time order, on every member's latest value, in plain Python
(numpy only for the inverse of one small matrix).
"""

from __future__ import annotations

import math

import numpy as np

from tests.detectors.naive import CLEAR, NOTICE, RAISE, NaiveEngine


class NaiveEquipmentEngine(NaiveEngine):
    def __init__(self, config, kinds, classes, equipment: list[int], **kw) -> None:
        super().__init__(config, kinds, classes, **kw)
        self.ep = config.equipment
        by: dict[int, list[int]] = {}
        for i, e in enumerate(equipment, start=1):
            ref = self.sensors[i]
            if e > 0 and ref.stats and ref.p.equipment and "equipment" in config.enabled:
                by.setdefault(e, []).append(i)
        self.groups = [m for _, m in sorted(by.items()) if len(m) >= self.ep.min_channels]
        self.gstate = [self._fresh(len(m)) for m in self.groups]
        self.batch_stat: list[tuple[int, int, float]] = []

    @staticmethod
    def _fresh(w: int) -> dict:
        return {"mu": [0.0] * w, "cov": [[0.0] * w for _ in range(w)], "n": 0, "sm": [0.0] * w, "smv": [0.0] * w,
                "on": False, "named": 0, "expect": math.nan}

    def update(self, sensor, ts, value, quality) -> list[tuple]:
        self.batch_stat = []
        start = {i: (st.get("stat_t"), st.get("stat_x")) for i, st in ((i, r.st) for i, r in self.sensors.items())}
        out = super().update(sensor, ts, value, quality)
        for gi, members in enumerate(self.groups):
            mine = sorted((t, s, x) for (s, t, x) in self.batch_stat if s in members)
            latest = {s: start[s] for s in members}
            k = 0
            while k < len(mine):
                t = mine[k][0]
                while k < len(mine) and mine[k][0] == t:
                    latest[mine[k][1]] = (t, mine[k][2])
                    k += 1
                self.judge(gi, members, t, latest)
        return self.out

    def reading(self, s, t, x, q):
        before = self.sensors[s].st.get("stat_t")
        super().reading(s, t, x, q)
        if self.sensors[s].st.get("stat_t") != before:
            self.batch_stat.append((s, t, x))

    def judge(self, gi, members, t, latest):
        p, g = self.ep, self.gstate[gi]
        if any(latest[s][0] is None or t - latest[s][0] > self.peer_age_us for s in members):
            return
        w = len(members)
        v = [latest[s][1] for s in members]
        d = [v[i] - g["mu"][i] for i in range(w)]
        c = np.array(g["cov"], dtype=np.float64)
        for i, s in enumerate(members):
            res = self.sensors[s].res if self.sensors[s].res > 0 else 1e-9
            c[i, i] += res * res / 12.0
        P = np.linalg.inv(c).tolist()
        y = [sum(P[i][j] * d[j] for j in range(w)) for i in range(w)]
        pd = [P[i][i] for i in range(w)]
        z = [y[i] / math.sqrt(pd[i]) for i in range(w)]
        warm = g["n"] >= p.warmup
        white = p.beta / (2.0 - p.beta)
        scale = [math.sqrt(max(g["smv"][i], white)) for i in range(w)]
        inst = [abs(z[i]) / p.k for i in range(w)]
        first = [max(inst[i], abs(g["sm"][i]) / (p.k_smooth * scale[i])) for i in range(w)]
        top = first.index(max(first))
        wide = any(abs(y[i] - P[i][top] * (y[top] / pd[top])) / math.sqrt(pd[i]) >= p.spread_k
                   for i in range(w) if i != top)
        if not warm:
            sm = [0.0] * w
        elif wide:
            sm = list(g["sm"])
        else:
            sm = [(1.0 - p.beta) * g["sm"][i] + p.beta * z[i] for i in range(w)]
        q = [max(inst[i], abs(sm[i]) / (p.k_smooth * scale[i])) for i in range(w)]
        qmax = max(q)
        top = q.index(qmax)
        was = g["on"]
        now = warm and ((qmax >= 1.0 and not wide) or (was and qmax >= p.clear))
        g["sm"] = sm
        if not now and (not warm or wide or qmax < 1.0):
            a = p.alpha if warm else max(1.0 / (g["n"] + 1.0), p.alpha)
            zmax = max(abs(zi) for zi in z)
            weight = min(1.0, p.huber / max(zmax, 1e-12)) if warm and not wide else 1.0
            dw = [di * weight for di in d]
            g["mu"] = [g["mu"][i] + a * dw[i] for i in range(w)]
            g["cov"] = [[(1.0 - a) * (g["cov"][i][j] + a * dw[i] * dw[j]) for j in range(w)] for i in range(w)]
            if warm:
                g["smv"] = [g["smv"][i] + p.alpha * (min(sm[i] ** 2, (p.huber * scale[i]) ** 2) - g["smv"][i])
                            for i in range(w)]
            else:
                g["smv"] = [0.0] * w
            g["n"] += 1
        if now and not was:
            g["named"] = members[top]
            g["expect"] = v[top] - y[top] / pd[top]
            self.emit(g["named"], "equipment", RAISE, NOTICE, t)
        elif was and not now:
            self.emit(g["named"], "equipment", CLEAR, NOTICE, t)
        g["on"] = now
