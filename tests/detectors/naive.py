"""A slow, obviously correct per-reading reference for the per-sensor detectors.

It shares no code with detectors/ beyond the configuration value classes and the catalog: every
rule is re-derived here, one reading at a time, in plain Python floats. Within a batch each
sensor's readings are taken by (ts, arrival); sensors are independent, so their interleaving does
not matter. Returns findings as tuples (subject, rule, event, severity, ts_us).
"""

from __future__ import annotations

import math
import statistics
import struct
from dataclasses import dataclass, field

from detectors.config import DRIFT_HUBER, DetectorConfig
from domain.catalog import KINDS, effective_setpoints
from domain.quality import VALUE_UNTRUSTED, Quality
from domain.severity import Severity

RAISE, UPDATE, CLEAR = 1, 2, 3
MEAN_ABS_TO_SD = 1.2533141373155001
NOTICE = int(Severity.NOTICE)


@dataclass
class SensorRef:
    kind: str
    hi: list  # [(raise, clear, severity)] ascending
    lo: list  # [(raise, clear, severity)] descending raise values
    p: object
    stats: bool
    rmin: float
    rmax: float
    res: float
    gas: bool
    rate_up: float
    rate_down: float
    st: dict = field(default_factory=dict)


def _ladder(points, side):
    rungs = [p for p in points if p.side == side]
    if side == "high":
        rungs.sort(key=lambda p: (p.value, int(p.severity)))
    else:
        rungs.sort(key=lambda p: (-p.value, int(p.severity)))
    out, top = [], 0
    for p in rungs:
        top = max(top, int(p.severity))
        out.append((p.value, p.clear, top))
    return out


class NaiveEngine:
    def __init__(self, config: DetectorConfig, kinds: list[str], classes: list[str],
                 zones: list[int] | None = None, interval_s: float = 10.0) -> None:
        self.cfg = config
        self.sensors: dict[int, SensorRef] = {}
        for i, (k, c) in enumerate(zip(kinds, classes, strict=True), start=1):
            kd = KINDS[k]
            p = config.params_for(k, kd.switch, c)
            pts = effective_setpoints(k, c, None)
            hi, lo = _ladder(pts, "high"), _ladder(pts, "low")
            up = p.rate_up_per_min / 60 if p.rate_up_per_min is not None else (
                p.rate_fraction_per_min * hi[0][0] / 60 if hi else math.nan)
            down = p.rate_down_per_min / 60 if p.rate_down_per_min is not None else math.nan
            self.sensors[i] = SensorRef(k, hi, lo, p, p.statistics, kd.range_min, kd.range_max, kd.resolution,
                                        kd.gas, up, down)
        self.out: list[tuple] = []
        # drift peer groups: (zone, kind, class) of sensors whose kind enables it, big enough
        zones = zones or [1] * len(kinds)
        silence_us = int(max(config.nodata_factor * interval_s, config.nodata_min_silence_s) * 1e6)
        by_key: dict[tuple, list[int]] = {}
        for i, ref in self.sensors.items():
            if ref.stats and ref.p.drift and "drift" in config.enabled and zones[i - 1] > 0:
                by_key.setdefault((zones[i - 1], ref.kind, classes[i - 1]), []).append(i)
        self.peers: dict[int, list[int]] = {}
        for members in by_key.values():
            if len(members) >= self.sensors[members[0]].p.drift_min_peers + 1:
                for i in members:
                    self.peers[i] = [j for j in members if j != i]
        self.peer_age_us = silence_us
        self.snap: dict[int, tuple] = {}

    def update(self, sensor, ts, value, quality) -> list[tuple]:
        self.out = []
        self.snap = {}  # each peer's change (x − b) and time as the batch begins, unless drifting
        for i in self.peers:
            st = self.sensors[i].st
            if "stat_t" in st and "dr.b" in st and not st.get("drift", False):
                self.snap[i] = (st["stat_x"] - st["dr.b"], st["stat_t"])
        order = sorted(range(len(sensor)), key=lambda j: (int(sensor[j]), int(ts[j]), j))
        for j in order:
            self.reading(int(sensor[j]), int(ts[j]), float(value[j]), int(quality[j]))
        return self.out

    def emit(self, s, rule, ev, sev, t):
        self.out.append((s, rule, ev, sev, t))

    def flag(self, s, rule, st, key, now, sev, t):
        was = st.get(key, False)
        if now != was:
            self.emit(s, rule, RAISE if now else CLEAR, sev, t)
        st[key] = now

    def reading(self, s, t, x, q):
        ref = self.sensors[s]
        st, p = ref.st, ref.p
        untrusted = bool(q & int(VALUE_UNTRUSTED))
        faulty = bool(q & int(Quality.FAULT | Quality.DISCONNECTED))
        no_range = bool(q & int(Quality.CALIBRATING | Quality.MAINTENANCE))
        over = bool(q & int(Quality.OVER_RANGE)) and not no_range
        under = bool(q & int(Quality.UNDER_RANGE)) and not no_range
        finite = math.isfinite(x)
        self.flag(s, "fault", st, "fault", faulty, NOTICE, t)
        if not no_range:
            self.flag(s, "over_range", st, "over", over, 3 if ref.hi else 1, t)
            self.flag(s, "under_range", st, "under", under, 3 if ref.lo else 1, t)
        if not untrusted and (finite or over or under):
            xl = x
            if not finite and over:
                xl = math.inf
            elif not finite and under:
                xl = -math.inf
            self.ladder(s, "limit", ref.hi, xl, t, +1)
            self.ladder(s, "limit_low", ref.lo, xl, t, -1)
        prev_t = st.get("stat_t")
        stat = finite and not untrusted and not (over or under) and (prev_t is None or t > prev_t)
        if stat and ref.stats:
            en = self.cfg.enabled
            if prev_t is not None:
                dt = (t - prev_t) * 1e-6
                px = st["stat_x"]
                if "rate" in en and not (math.isnan(ref.rate_up) and math.isnan(ref.rate_down)):
                    self.rate(s, ref, x, dt, px, t)
                if "jump" in en:
                    self.jump(s, ref, x, px, t)
            if "ttt" in en or "compound" in en:
                self.trend(s, ref, x, t, None if prev_t is None else (t - prev_t) * 1e-6)
            if "anomaly" in en and p.anomaly:
                self.anomaly(s, ref, x, t)
            if "stuck" in en:
                self.stuck(s, ref, x, t)
            if "window" in en and p.window:
                self.window(s, ref, x, t)
            if s in self.peers:
                self.drift(s, ref, x, t, None if prev_t is None else (t - prev_t) * 1e-6)
        if st.get("nodata"):
            st["nodata"] = False
            self.emit(s, "nodata", CLEAR, NOTICE, t)
        if stat:
            st["stat_t"], st["stat_x"] = t, x

    def ladder(self, s, rule, rungs, x, t, sign):
        st = self.sensors[s].st
        p = self.sensors[s].p
        raw0, lvl0, since = st.get(rule + ".raw", 0), st.get(rule + ".lvl", 0), st.get(rule + ".since")
        up = sum(1 for (r, _, _) in rungs if (x >= r if sign > 0 else x <= r))
        hold = 0
        for k, (_, c, _) in enumerate(rungs, start=1):
            if k <= raw0 and (x >= c if sign > 0 else x <= c):
                hold = k
        raw = max(up, hold)
        if raw != raw0:
            since = t
        on_d, off_d = int(p.ladder_on_delay_s * 1e6), int(p.ladder_off_delay_s * 1e6)
        lvl = lvl0
        if raw > lvl0 and (on_d <= 0 or t - since >= on_d):
            lvl = raw
        elif raw < lvl0 and (off_d <= 0 or t - since >= off_d):
            lvl = raw
        st[rule + ".raw"], st[rule + ".lvl"], st[rule + ".since"] = raw, lvl, since
        sev0 = rungs[lvl0 - 1][2] if lvl0 else 0
        sev1 = rungs[lvl - 1][2] if lvl else 0
        if sev0 != sev1:
            ev = RAISE if sev0 == 0 else CLEAR if sev1 == 0 else UPDATE
            self.emit(s, rule, ev, sev1 or sev0, t)

    def rate(self, s, ref, x, dt, px, t):
        st, p = ref.st, ref.p
        slope = (x - px) / dt
        a = -math.expm1(-dt / p.rate_tau_s)
        r0 = st.get("rate.r", 0.0)
        r = r0 + a * (slope - r0)
        st["rate.r"] = r
        up, down, cf = ref.rate_up, -ref.rate_down, p.rate_clear_fraction
        was = st.get("rate", False)
        now = r >= up or r <= down or (was and (r >= up * cf or r <= down * cf))
        self.flag(s, "rate", st, "rate", now, NOTICE, t)

    def trend(self, s, ref, x, t, dt):
        st, p = ref.st, ref.p
        n0 = st.get("tr.n", 0)
        floor = ref.res if ref.res > 0 else 1e-9
        warm = n0 + 1 >= p.trend_warmup
        if n0 == 0:
            lv, b, sc, z, se = x, 0.0, 0.0, 0.0, floor
        else:
            lv0, b0, sc0 = st["tr.lv"], st["tr.b"], st["tr.sc"]
            se = max(sc0, floor)
            lim = p.trend_huber_k * se
            pred = lv0 + b0 * dt
            r = x - pred
            psi = min(max(r, -lim), lim)
            a = -math.expm1(-dt / p.trend_tau_level_s)
            g = -math.expm1(-dt / p.trend_tau_slope_s)
            lam = max(-math.expm1(-dt / p.trend_scale_tau_s), 1.0 / (n0 + 1))
            lv = pred + a * psi
            b = b0 + g * (a * psi) / dt
            sc = sc0 + lam * (min(abs(r), 2.0 * lim) - sc0)
            z = r / (MEAN_ABS_TO_SD * se)
        lv, b = self.trend_run(st, p, t, x, z, warm, lv, b, se)
        st["tr.lv"], st["tr.b"], st["tr.sc"], st["tr.n"] = lv, b, sc, n0 + 1
        if "ttt" not in self.cfg.enabled:
            return
        hi_lvl, lo_lvl = st.get("limit.lvl", 0), st.get("limit_low.lvl", 0)
        hi = ref.hi[hi_lvl][0] if hi_lvl < len(ref.hi) else math.inf
        lo = ref.lo[lo_lvl][0] if lo_lvl < len(ref.lo) else -math.inf
        t_hi = (hi - lv) / b if (b > 0 and lv < hi) else math.inf
        t_lo = (lo - lv) / b if (b < 0 and lv > lo) else math.inf
        ttt = min(t_hi, t_lo)
        was = st.get("ttt", False)
        now = warm and (ttt <= p.ttt_horizon_s or (was and ttt <= p.ttt_horizon_s * p.ttt_clear_factor))
        self.flag(s, "ttt", st, "ttt", now, NOTICE, t)

    @staticmethod
    def trend_run(st, p, t, x, z, warm, lv, b, se):
        """CUSUM of the residuals; the run since it left zero re-anchors the trend to its line."""
        up = max(st.get("tr.up", 0.0) + z - p.trend_cusum_kappa, 0.0) if warm else 0.0
        dn = max(st.get("tr.dn", 0.0) - z - p.trend_cusum_kappa, 0.0) if warm else 0.0
        pts = st.setdefault("tr.run", [])  # (Δt s, Δx) of the run's readings; the anchor is (0, 0)
        t0, x0 = st.get("tr.t0", 0), st.get("tr.x0", 0.0)
        pts.append(((t - t0) * 1e-6, x - x0))
        if (up >= p.trend_cusum_h or dn >= p.trend_cusum_h) and len(pts) >= 2:
            m = len(pts) + 1
            tm = sum(u for u, _ in pts) / m
            xm = sum(v for _, v in pts) / m
            vtt = sum((u - tm) ** 2 for u, _ in pts) + tm * tm
            vtx = sum((u - tm) * (v - xm) for u, v in pts) + tm * xm
            vxx = sum((v - xm) ** 2 for _, v in pts) + xm * xm
            slope = vtx / vtt
            rss = max(vxx - slope * vtx, 0.0)
            sd = MEAN_ABS_TO_SD * se
            line = rss <= p.trend_fit_tol * sd * sd * (m - 2)
            if line and slope * slope * vtt >= p.trend_slope_z ** 2 * sd * sd:
                lv = x0 + xm + slope * (pts[-1][0] - tm)
                b = slope
                up = dn = 0.0
            elif not line:
                up = dn = 0.0
        if up <= 0.0 and dn <= 0.0:
            st["tr.t0"], st["tr.x0"], st["tr.run"] = t, lv, []
        st["tr.up"], st["tr.dn"] = up, dn
        return lv, b

    def anomaly(self, s, ref, x, t):
        st, p = ref.st, ref.p
        n0, mu, d = st.get("an.n", 0), st.get("an.mu", 0.0), st.get("an.d", 0.0)
        floor = ref.res if ref.res > 0 else 1e-9
        warm = n0 >= p.anomaly_warmup
        sd = max(d * 1.2533141373155001, floor)
        e = x - mu
        score = -math.expm1(-(abs(e) / sd) / p.anomaly_z_ref) if warm else 0.0
        flagged = warm and score >= p.anomaly_threshold
        if not flagged:
            if warm:
                lim = p.anomaly_huber * sd
                mu_new = mu + p.anomaly_alpha * min(max(e, -lim), lim)
                d = d + p.anomaly_alpha * (min(abs(e), lim) - d)
            else:
                a = 1.0 / (n0 + 1.0)
                mu_new = mu + a * e
                d = d + a * ((0.0 if n0 == 0 else abs(e)) - d)
            st["an.mu"], st["an.d"], st["an.n"] = mu_new, d, n0 + 1
        was = st.get("anomaly", False)
        lc = st.get("an.lc")
        can = lc is None or t - lc >= int(p.anomaly_refractory_s * 1e6)
        now = (flagged and (was or can)) or (was and warm and score >= p.anomaly_clear)
        if was and not now:
            st["an.lc"] = t
        self.flag(s, "anomaly", st, "anomaly", now, NOTICE, t)

    def stuck(self, s, ref, x, t):
        st, p = ref.st, ref.p
        since = st.get("stk.since")
        # a run: readings whose range stays within the tolerance (default: the kind's resolution)
        tol = (p.stuck_tolerance if p.stuck_tolerance is not None else ref.res) * (1.0 + 1e-6)
        if since is not None:
            lo, hi = min(st["stk.lo"], x), max(st["stk.hi"], x)
        moved = since is None or not hi - lo <= tol
        # the time floor counts exact repeats of the previous statistical reading
        if since is None or x != st["stat_x"]:
            st["stk.xsince"] = t
        was = st.get("stuck", False)
        if moved:
            if since is not None and not was:  # the run that ends is learnt: cnt unchanged, then a change
                lam = 1.0 - 1.0 / p.stuck_memory
                decay = lam ** (st["stk.cnt"] + 1)
                st["stk.n"] = decay * st.get("stk.n", 0.0) + (1.0 - decay) / (1.0 - lam)
                st["stk.m"] = decay * st.get("stk.m", 0.0) + 1.0
            st["stk.ref"], st["stk.since"], st["stk.cnt"] = x, t, 0
            st["stk.lo"] = st["stk.hi"] = x
        else:
            st["stk.cnt"] += 1
            st["stk.lo"], st["stk.hi"] = lo, hi
        floor = ref.rmin + ref.res if ref.gas else -math.inf
        k = st["stk.cnt"]
        by_time = t - st["stk.xsince"] >= int(p.stuck_after_s * 1e6) and x > floor
        improbable = False
        if not moved and k >= p.stuck_min_count and x > ref.rmin + ref.res:
            n, m = max(st.get("stk.n", 0.0), 1e-12), st.get("stk.m", 0.0)
            z = 1.6448536269514722  # Wilson lower bound (one-sided 95 %) on the change frequency
            c = min(max(m / n, 0.0), 1.0)
            lo = (c + z * z / (2 * n) - z * math.sqrt(c * (1 - c) / n + z * z / (4 * n * n))) / (1 + z * z / n)
            logp = k * math.log1p(-0.5 * max(lo, 0.0))
            improbable = logp <= math.log(p.stuck_probability)
        now = not moved and (was or (k >= p.stuck_min_count and (by_time or improbable)))
        self.flag(s, "stuck", st, "stuck", now, NOTICE, t)

    def window(self, s, ref, x, t):
        """Rolling median / MAD over the last W unflagged readings (stored as float32)."""
        st, p = ref.st, ref.p
        buf = st.setdefault("win.buf", [])
        W = p.window_size
        full = len(buf) >= W
        score = 0.0
        if full:
            med = statistics.median(buf)
            mad = statistics.median(abs(v - med) for v in buf)
            floor = ref.res if ref.res > 0 else 1e-9
            z = abs(x - med) / max(1.4826 * mad, floor)
            score = -math.expm1(-z / p.anomaly_z_ref)
        flagged = full and score >= p.window_threshold
        if not flagged:
            buf.append(float(struct.unpack("f", struct.pack("f", x))[0]))
            del buf[:-W]
        was = st.get("window", False)
        lc = st.get("win.lc")
        can = lc is None or t - lc >= int(p.anomaly_refractory_s * 1e6)
        now = (flagged and (was or can)) or (was and full and score >= p.anomaly_clear)
        if was and not now:
            st["win.lc"] = t
        self.flag(s, "window", st, "window", now, NOTICE, t)

    def drift(self, s, ref, x, t, dt):
        st, p = ref.st, ref.p
        changes = sorted(c for j in self.peers[s] if j in self.snap
                         for c, tj in [self.snap[j]] if abs(t - tj) <= self.peer_age_us)
        b0 = st.get("dr.b")
        was = st.get("drift", False)
        a = 1.0 if b0 is None or dt is None else -math.expm1(-dt / p.drift_tau_s)
        follow = x if b0 is None else b0 + a * (x - b0)
        if len(changes) < p.drift_min_peers:  # not judged: the baseline follows unless drifting
            st["dr.b"] = (x if b0 is None else b0) if was else follow
            return
        k = len(changes)
        med = changes[k // 2] if k % 2 else 0.5 * (changes[k // 2 - 1] + changes[k // 2])
        e = (x - (x if b0 is None else b0)) - med
        n0, d0 = st.get("dr.n", 0), st.get("dr.d", 0.0)
        warm = n0 >= p.drift_warmup
        sd = max(d0 * 1.2533141373155001, ref.res if ref.res > 0 else 1e-9)
        min_dev = p.drift_min_dev if p.drift_min_dev is not None else 10.0 * ref.res
        thr = max(p.drift_k * sd, min_dev)
        dev = abs(e)
        now = (warm and dev >= thr) or (was and warm and dev >= 0.5 * thr)
        if not now:
            if warm:
                d0 = d0 + p.drift_alpha * (min(dev, DRIFT_HUBER * sd) - d0)
            else:
                d0 = d0 + (dev - d0) / (n0 + 1.0)
            st["dr.d"], st["dr.n"] = d0, n0 + 1
        st["dr.b"] = (x if b0 is None else b0) if now else follow
        self.flag(s, "drift", st, "drift", now, NOTICE, t)

    def jump(self, s, ref, x, px, t):
        st, p = ref.st, ref.p
        lim = p.jump_fraction * (ref.rmax - ref.rmin)
        was = st.get("jump", False)
        if not was:
            if abs(x - px) > lim:
                st["jmp.ref"], st["jmp.since"] = px, t
                self.flag(s, "jump", st, "jump", True, NOTICE, t)
            return
        if abs(x - st["jmp.ref"]) <= lim or t - st["jmp.since"] >= int(p.jump_hold_s * 1e6):
            self.flag(s, "jump", st, "jump", False, NOTICE, t)
