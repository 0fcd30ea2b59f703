"""The detector engine: struct-of-arrays state per sensor, updated a whole batch at a time.

Order of work in :meth:`Engine.update`:
1. drop readings of unknown or inactive sensors (counted in ``dropped``);
2. sort into occurrence-rank rounds (:mod:`detectors.ordering`): within a round each sensor
   appears once, rounds run in time order, so recurrences see each sensor's readings in order;
3. per round: quality rules and setpoint ladders on every trusted reading (late or not), then
   the statistical detectors on readings that are finite, trusted, in range and newer than the
   sensor's last statistical reading (older ones are *late*: the reorder window is the batch),
   then liveness;
4. per batch: gateway liveness, compound rules.

Time is never read: ``tick(now_us)`` is called by the service's clock.
"""

from __future__ import annotations

import numpy as np

from detectors.anomaly import Anomaly
from detectors.compound import Compound
from detectors.config import DRIFT_HUBER, DRIFT_MIN_RESOLUTIONS, STUCK_TOLERANCE_SLACK, DetectorConfig, KindParams
from detectors.drift import Drift
from detectors.equipment import Equipment
from detectors.findings import Emitter
from detectors.jump import Jump
from detectors.ladder import D, Ladder
from detectors.liveness import Liveness
from detectors.ordering import NO_TS, Round, rounds
from detectors.rate import Rate
from detectors.faults import QualityRules
from detectors import rules
from detectors.state import Columns
from detectors.stuck import Stuck
from detectors.trend import Trend
from detectors.window import Window
from domain import setpoints as sp
from domain.catalog import KINDS
from domain.messages import RULE_DTYPE, FindingBatch, ReadingBatch
from domain.registry import RegistrySnapshot
from domain.severity import Severity


def ladder_rows(points: tuple[sp.Setpoint, ...], side: str, sign: float):
    """Ladder arrays of one side: thr (D,), clr (D,), sev (D+1,) — negated for the low side."""
    thr = np.full(D, np.inf)
    clr = np.full(D, np.inf)
    sev = np.zeros(D + 1, dtype=np.int8)
    rungs = sorted((p for p in points if p.side == side), key=lambda p: (sign * p.value, int(p.severity)))
    top = 0
    for k, p in enumerate(rungs[:D]):
        thr[k] = sign * p.value
        clr[k] = sign * p.clear
        top = max(top, int(p.severity))
        sev[k + 1] = top
    return thr, clr, sev


class Engine:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig.default()
        en = self.config.enabled
        self.enabled = en
        self.base = Columns(
            {
                "stat_ts": (np.int64, NO_TS, 1),
                "stat_x": (np.float64, np.nan, 1),
                "active": (np.bool_, False, 1),
                "stats": (np.bool_, False, 1),
            }
        )
        self.quality = QualityRules(fault="fault" in en, over_range="over_range" in en)
        self.high = Ladder(rules.LIMIT, +1.0)
        self.low = Ladder(rules.LIMIT_LOW, -1.0)
        self.rate = Rate()
        self.trend = Trend(self.high, self.low, ttt="ttt" in en)
        self.anomaly = Anomaly()
        self.stuck = Stuck()
        self.jump = Jump()
        self.window = Window()
        self.drift = Drift()
        self.equipment = Equipment(self.config.equipment)
        self.liveness = Liveness(enabled="nodata" in en)
        self.compound = Compound(self.config.compound if "compound" in en else ())
        self._kind = np.zeros(0, dtype=RULE_DTYPE)
        self.size = 0
        self.dropped = 0  # readings of unknown or inactive sensors
        self.config_errors: list[str] = []  # sensors whose setpoints fell back to the defaults
        self._sensor_parts = [self.quality, self.high, self.low, self.rate, self.trend, self.anomaly,
                              self.stuck, self.jump, self.window, self.drift, self.equipment]

    # --- registry -------------------------------------------------------------------------
    def set_registry(self, snapshot: RegistrySnapshot) -> None:
        """Size the state to the registry and (re)derive every per-sensor parameter. State of
        sensors whose kind changed is reset; all other state is kept."""
        table = snapshot.table
        n = table.size
        ng = max([0, *snapshot.gateways]) + 1
        old_n = self.size
        self.base.grow(n)
        for part in self._sensor_parts:
            part.grow(n)
        self.liveness.grow(n, ng)
        self.size = max(n, old_n)
        kind = np.asarray(table.kind, dtype=RULE_DTYPE)
        if old_n:
            w = min(old_n, n)
            changed = np.flatnonzero(self._kind[:w] != kind[:w])
            if changed.shape[0]:
                self.base.reset(changed)
                for part in self._sensor_parts:
                    part.st.reset(changed)
                self.liveness.st.reset(changed)
        self._kind = kind
        self.base.active[:n] = table.active
        self._configure(snapshot, kind)

    def _configure(self, snapshot: RegistrySnapshot, kind: np.ndarray) -> None:
        table, cfgd, en = snapshot.table, self.config, self.enabled
        n = table.size
        self.config_errors = []
        interval = np.asarray(table.expected_interval_s, dtype=np.float64)
        rmin = np.asarray(table.range_min, dtype=np.float64).copy()
        rmax = np.asarray(table.range_max, dtype=np.float64).copy()
        res = np.zeros(n)
        gas = np.zeros(n, dtype=bool)
        stats = np.zeros(n, dtype=bool)
        equipment = np.zeros(n, dtype=bool)
        q, hi, lo, ra, tr, an, stk, jp, win = (
            self.quality, self.high, self.low, self.rate, self.trend, self.anomaly, self.stuck, self.jump, self.window)
        loc = np.asarray(table.location_class, dtype=RULE_DTYPE)
        pair = np.strings.add(np.strings.add(kind, "\x1f"), loc)
        uniq, inv = np.unique(pair, return_inverse=True)
        for u, key in enumerate(uniq.tolist()):
            k, _, c = key.partition("\x1f")
            m = inv == u
            kd = KINDS.get(k)
            p: KindParams = cfgd.params_for(k, kd.switch if kd else False, c)
            if kd is not None:
                rmin[m & ~np.isfinite(rmin)] = kd.range_min
                rmax[m & ~np.isfinite(rmax)] = kd.range_max
                bad = m & ~(interval > 0)
                interval[bad] = kd.expected_interval_s
                res[m] = kd.resolution
                gas[m] = kd.gas
            stats[m] = p.statistics
            for ladder in (hi, lo):
                ladder.cfg.on_delay_us[:n][m] = int(p.ladder_on_delay_s * 1e6)
                ladder.cfg.off_delay_us[:n][m] = int(p.ladder_off_delay_s * 1e6)
            ra.cfg.tau_s[:n][m] = p.rate_tau_s
            ra.cfg.clear_frac[:n][m] = p.rate_clear_fraction
            ra.cfg.up[:n][m] = np.nan if p.rate_up_per_min is None else p.rate_up_per_min / 60.0
            ra.cfg.down[:n][m] = np.nan if p.rate_down_per_min is None else p.rate_down_per_min / 60.0
            ra.cfg.enabled[:n][m] = p.statistics and "rate" in en
            tr.cfg.tau_l[:n][m] = p.trend_tau_level_s
            tr.cfg.tau_b[:n][m] = p.trend_tau_slope_s
            tr.cfg.tau_sc[:n][m] = p.trend_scale_tau_s
            tr.cfg.k[:n][m] = p.trend_huber_k
            tr.cfg.warmup[:n][m] = p.trend_warmup
            tr.cfg.kappa[:n][m] = p.trend_cusum_kappa
            tr.cfg.h[:n][m] = p.trend_cusum_h
            tr.cfg.fit_tol[:n][m] = p.trend_fit_tol
            tr.cfg.slope_z[:n][m] = p.trend_slope_z
            tr.cfg.horizon_s[:n][m] = p.ttt_horizon_s
            tr.cfg.clear_factor[:n][m] = p.ttt_clear_factor
            tr.cfg.enabled[:n][m] = p.statistics and ("ttt" in en or "compound" in en)
            an.cfg.alpha[:n][m] = p.anomaly_alpha
            an.cfg.th[:n][m] = p.anomaly_threshold
            an.cfg.clr[:n][m] = p.anomaly_clear
            an.cfg.zref[:n][m] = p.anomaly_z_ref
            an.cfg.huber[:n][m] = p.anomaly_huber
            an.cfg.warmup[:n][m] = p.anomaly_warmup
            an.cfg.refr_us[:n][m] = int(p.anomaly_refractory_s * 1e6)
            an.cfg.enabled[:n][m] = p.statistics and p.anomaly and "anomaly" in en
            stk.cfg.after_us[:n][m] = int(p.stuck_after_s * 1e6)
            stk.cfg.min_count[:n][m] = p.stuck_min_count
            tol = p.stuck_tolerance if p.stuck_tolerance is not None else (kd.stuck_tolerance if kd is not None else 0.0)
            stk.cfg.tol[:n][m] = tol * STUCK_TOLERANCE_SLACK
            stk.cfg.lam[:n][m] = 1.0 - 1.0 / p.stuck_memory
            stk.cfg.logp[:n][m] = np.log(p.stuck_probability)
            stk.cfg.enabled[:n][m] = p.statistics and "stuck" in en
            dr = self.drift.cfg
            dr.enabled[:n][m] = p.statistics and p.drift and "drift" in en
            dr.tau_s[:n][m] = p.drift_tau_s
            dr.alpha[:n][m] = p.drift_alpha
            dr.warmup[:n][m] = p.drift_warmup
            dr.k[:n][m] = p.drift_k
            dr.huber[:n][m] = DRIFT_HUBER
            dr.min_peers[:n][m] = p.drift_min_peers
            dr.min_dev[:n][m] = (p.drift_min_dev if p.drift_min_dev is not None
                                 else DRIFT_MIN_RESOLUTIONS * (kd.resolution if kd is not None else 0.0))
            equipment[m] = p.statistics and p.equipment and "equipment" in en
            jp.cfg.hold_us[:n][m] = int(p.jump_hold_s * 1e6)
            jp.cfg.enabled[:n][m] = p.statistics and "jump" in en
            jp.cfg.limit[:n][m] = p.jump_fraction * (rmax[m] - rmin[m])
            win.configure_kind(m, p, enabled=p.statistics and p.window and "window" in en)
        self.base.stats[:n] = stats
        floor = np.where(res > 0, res, 1e-9)
        tr.cfg.floor[:n] = floor
        an.cfg.floor[:n] = floor
        win.cfg.floor[:n] = floor
        stk.cfg.floor[:n] = np.where(gas, rmin + res, -np.inf)
        stk.cfg.quiet[:n] = np.where(np.isfinite(rmin), rmin + res, -np.inf)
        jp.cfg.enabled[:n] &= np.isfinite(jp.cfg.limit[:n])
        # setpoints: one computation per (kind, location class); per sensor where overrides exist
        rows = {}
        for u, key in enumerate(uniq.tolist()):
            k, _, c = key.partition("\x1f")
            rows[u] = self._ladders(k, c, None, None)
        for ladder, side, sign in ((hi, sp.HIGH, 1.0), (lo, sp.LOW, -1.0)):
            j = 0 if side == sp.HIGH else 1
            ladder.cfg.thr[:n] = np.stack([rows[u][j][0] for u in range(len(uniq))])[inv]
            ladder.cfg.clr[:n] = np.stack([rows[u][j][1] for u in range(len(uniq))])[inv]
            ladder.cfg.sev[:n] = np.stack([rows[u][j][2] for u in range(len(uniq))])[inv]
        for sid, info in snapshot.sensors.items():
            if info.setpoints and 0 <= sid < n:
                (h, l) = self._ladders(str(kind[sid]), str(loc[sid]), info.setpoints, sid)
                hi.cfg.thr[sid], hi.cfg.clr[sid], hi.cfg.sev[sid] = h
                lo.cfg.thr[sid], lo.cfg.clr[sid], lo.cfg.sev[sid] = l
        if "limit" not in en:
            hi.cfg.thr[:n] = np.inf
            lo.cfg.thr[:n] = np.inf
        for ladder in (hi, lo):
            used = np.isfinite(ladder.cfg.thr).any(axis=0)
            ladder.depth = max(1, int(np.flatnonzero(used).max() + 1) if used.any() else 1)
        has_hi = np.isfinite(hi.cfg.thr[:n, 0])
        has_lo = np.isfinite(lo.cfg.thr[:n, 0])
        q.cfg.over_sev[:n] = np.where(has_hi, Severity.ALARM, Severity.NOTICE)
        q.cfg.under_sev[:n] = np.where(has_lo, Severity.ALARM, Severity.NOTICE)
        # default rate limit: a fraction of the first high setpoint per minute
        derive = np.isnan(ra.cfg.up[:n]) & has_hi & ra.cfg.enabled[:n]
        for u in np.unique(inv[derive]).tolist():
            k, _, c = uniq[u].partition("\x1f")
            m = derive & (inv == u)
            kd = KINDS.get(k)
            p = cfgd.params_for(k, kd.switch if kd else False, c)
            ra.cfg.up[:n][m] = p.rate_fraction_per_min * hi.cfg.thr[:n, 0][m] / 60.0
        ra.cfg.enabled[:n] &= np.isfinite(ra.cfg.up[:n]) | np.isfinite(ra.cfg.down[:n])
        # liveness
        lv = self.liveness
        silence_s = np.maximum(cfgd.nodata_factor * interval, cfgd.nodata_min_silence_s)
        # padding rows have an infinite interval: never stale (int64 max is ~292,000 years)
        lv.cfg.silence_us[:n] = np.minimum(silence_s * 1e6, float(np.iinfo(np.int64).max // 2)).astype(np.int64)
        lv.cfg.gateway[:n] = table.gateway
        lv.cfg.active[:n] = table.active
        lv.gcfg.registered[:] = False
        for gid, g in snapshot.gateways.items():
            if gid > 0:
                lv.gcfg.registered[gid] = g.active
                lv.gcfg.silence_us[gid] = int(cfgd.gateway_factor * g.expected_interval_s * 1e6)
        win.allocate(n)
        dr = self.drift.cfg
        dr.floor[:n] = floor
        dr.age_us[:n] = lv.cfg.silence_us[:n]
        zone = np.asarray(table.zone, dtype=np.int64)
        group_key = np.strings.add(np.strings.add(pair, "\x1f"), zone.astype(str).astype(RULE_DTYPE))
        self.drift.configure_groups(group_key, dr.enabled[:n] & np.asarray(table.active, dtype=bool) & (zone > 0))
        groups = np.zeros(n, dtype=np.int64) if table.equipment is None else np.asarray(table.equipment, np.int64)
        self.equipment.configure_groups(groups, equipment & np.asarray(table.active, dtype=bool), floor,
                                        lv.cfg.silence_us[:n])
        self.compound.configure(
            kind, np.asarray(table.zone, dtype=np.int32), np.asarray(table.active, dtype=bool),
            snapshot.zones, lambda k: KINDS[k].resolution if k in KINDS else 0.0,
        )

    def _ladders(self, kind: str, location_class: str, overrides, sid):
        if kind not in KINDS:
            points = ()
        else:
            try:
                points = sp.effective_setpoints(kind, location_class, overrides, deadband=KINDS[kind].deadband)
            except ValueError as exc:
                self.config_errors.append(f"sensor {sid if sid is not None else '*'}: {exc}")
                try:
                    points = sp.effective_setpoints(kind, location_class, None, deadband=KINDS[kind].deadband)
                except ValueError:
                    points = sp.effective_setpoints(kind, "", None, deadband=KINDS[kind].deadband)
        return ladder_rows(points, sp.HIGH, 1.0), ladder_rows(points, sp.LOW, -1.0)

    # --- streams --------------------------------------------------------------------------
    def update(self, batch: ReadingBatch, *, silent: bool = False) -> FindingBatch:
        """Run every enabled detector over a batch; returns the findings (state changes).

        ``silent`` replays the batch into state without emitting findings (rebuild)."""
        em = Emitter(silent=silent)
        n = len(batch)
        if n == 0:
            return em.batch()
        sensor = batch.sensor
        ok = (sensor > 0) & (sensor < self.size)
        ok[ok] = self.base.active[sensor[ok]]
        if not ok.all():
            self.dropped += int(n - ok.sum())
            batch = batch.take(ok)
            sensor = batch.sensor
            if len(batch) == 0:
                return em.batch()
        perm, bounds = rounds(sensor, batch.ts_us)
        S = sensor[perm].astype(np.int64)
        T = batch.ts_us[perm]
        X = batch.value[perm]
        Q = batch.quality[perm]
        R = batch.received_us[perm]
        seen = np.where(R > 0, R, T)
        base, en = self.base, self.enabled
        use_limit = "limit" in en
        use_window = self.window.rows > 0
        self.drift.snapshot(base.stat_x, base.stat_ts)
        self.equipment.begin(base.stat_x, base.stat_ts)
        for r in range(bounds.shape[0] - 1):
            a, b = int(bounds[r]), int(bounds[r + 1])
            rd = Round.build(S[a:b], T[a:b], X[a:b], seen[a:b], Q[a:b], base.stat_ts, base.stat_x)
            self.quality.step(rd, em)
            if use_limit:
                self.high.step(rd, em)
                self.low.step(rd, em)
            stat = rd.stat & base.stats[rd.s]
            self.rate.step(rd, em, stat)
            self.trend.step(rd, em, stat)
            self.anomaly.step(rd, em, stat)
            self.stuck.step(rd, em, stat)
            self.jump.step(rd, em, stat)
            if use_window:
                self.window.step(rd, em, stat)
            self.drift.step(rd, em, stat)
            self.equipment.collect(rd, stat)
            self.liveness.step(rd, em)
            ss = rd.s[rd.stat]
            base.stat_ts[ss] = rd.t[rd.stat]
            base.stat_x[ss] = rd.x[rd.stat]
        self.equipment.evaluate(em)
        self.liveness.batch_seen(S, seen, em)
        self.compound.evaluate(self, int(T.max()), em)
        return em.batch()

    def replay(self, batch: ReadingBatch) -> None:
        """Feed a batch into state without emitting findings (state rebuild after a restart)."""
        self.update(batch, silent=True)

    def gateway_status(self, gateway_ids: np.ndarray, online: np.ndarray, ts_us: np.ndarray) -> FindingBatch:
        """Apply gateway status messages (``online``/``offline``, the Last Will)."""
        em = Emitter()
        self.liveness.status(np.asarray(gateway_ids), np.asarray(online, dtype=bool), np.asarray(ts_us), em)
        return em.batch()

    def tick(self, now_us: int) -> FindingBatch:
        """No-data and gateway-silence checks at ``now_us`` (the caller's clock)."""
        em = Emitter()
        self.liveness.tick(int(now_us), em)
        self.compound.evaluate(self, int(now_us), em)
        return em.batch()

    def active(self) -> FindingBatch:
        """Every currently raised condition, as ``raise`` rows with the time each was raised."""
        em = Emitter()
        for part in (self.quality, self.high, self.low, self.rate, self.trend, self.anomaly, self.stuck,
                     self.jump, self.window, self.drift, self.equipment, self.liveness, self.compound):
            part.active(em)
        return em.batch()

    # --- introspection --------------------------------------------------------------------
    @property
    def scores(self) -> np.ndarray:
        """Latest anomaly score per sensor, float32 (size,)."""
        return self.anomaly.st.score

    def state_nbytes(self) -> int:
        """Bytes of per-sensor arrays (state and derived parameters), window buffers included."""
        total = self.base.nbytes + self.liveness.cfg.nbytes + self.liveness.st.nbytes
        for part in self._sensor_parts:
            total += part.cfg.nbytes + part.st.nbytes
        total += self.window.buffer_nbytes + self.equipment.group_nbytes
        return total
