"""Sorting a batch into occurrence-rank rounds, and the per-round view the detectors read.

A recurrence (EWMA, hysteresis) over a sensor that appears several times in one batch must be
applied in time order. The batch is sorted by (sensor, ts, arrival) and each reading gets its
rank among its sensor's readings; round r holds every sensor's r-th reading, so within a round
every sensor appears once and state can be gathered and scattered with plain fancy indexing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from domain.quality import Quality, VALUE_UNTRUSTED

NO_TS = np.iinfo(np.int64).min
_BIG = np.finfo(np.float64).max  # a non-finite over/under-range value passes every real rung, never padding
_UNTRUSTED = np.int16(int(VALUE_UNTRUSTED))
_FAULTY = np.int16(int(Quality.FAULT | Quality.DISCONNECTED))
_OVER = np.int16(int(Quality.OVER_RANGE))
_UNDER = np.int16(int(Quality.UNDER_RANGE))
_NO_RANGE = np.int16(int(Quality.CALIBRATING | Quality.MAINTENANCE))


def rounds(sensor: np.ndarray, ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permutation of the batch into rounds, and the round boundaries.

    sensor: (n,) int; ts_us: (n,) int64. Returns ``perm`` (n,) int64 and ``bounds`` (R+1,) int64:
    ``perm[bounds[r]:bounds[r+1]]`` are the r-th readings (by ts, then arrival) of each sensor,
    in ascending sensor order. Cost: two stable sorts of n keys.
    """
    n = sensor.shape[0]
    t_min = int(ts_us.min())
    span = int(ts_us.max()) - t_min
    if span < (1 << 40) and int(sensor.max()) < (1 << 22) and int(sensor.min()) >= 0:
        # one stable sort of a packed key: sensor in the top bits, time offset (< 12 days) below
        key = (sensor.astype(np.int64) << 40) | (ts_us - t_min)
        order = np.argsort(key, kind="stable")
    else:
        o1 = np.argsort(ts_us, kind="stable")
        o2 = np.argsort(sensor[o1], kind="stable")
        order = o1[o2]
    ss = sensor[order]
    start = np.empty(n, dtype=bool)
    start[:1] = True
    np.not_equal(ss[1:], ss[:-1], out=start[1:])
    if start.all():
        return order, np.array([0, n], dtype=np.int64)
    pos = np.arange(n, dtype=np.int64)
    first = np.maximum.accumulate(np.where(start, pos, 0))
    rank = pos - first
    o3 = np.argsort(rank, kind="stable")
    counts = np.bincount(rank)
    bounds = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    return order[o3], bounds


@dataclasses.dataclass(slots=True)
class Round:
    """One round: each sensor at most once. All arrays have the round's length m.

    s: int64 sensor ids; t: int64 ts_us; x: float64 value; seen: int64 arrival time (received_us,
    else ts_us); q: int16 quality.
    untrusted: bool  calibrating, fault, disconnected or maintenance (never raises value findings)
    faulty:    bool  fault or disconnected
    over, under: bool range flags (ignored while calibrating or in maintenance)
    ladder:    bool  reading takes part in setpoint checks (every trusted reading, late or not)
    xl:        float64 value for setpoint checks (±float max for a non-finite over/under-range value)
    stat:      bool  reading updates statistical state: finite, trusted, in range, not late
    prev_x, prev_t: previous statistical reading of the sensor (prev_t == NO_TS if none)
    dt_s:      float64 seconds since prev_t where ``stat & has_prev``, else NaN
    """

    s: np.ndarray
    t: np.ndarray
    x: np.ndarray
    seen: np.ndarray
    q: np.ndarray
    untrusted: np.ndarray
    faulty: np.ndarray
    over: np.ndarray
    under: np.ndarray
    ladder: np.ndarray
    xl: np.ndarray
    stat: np.ndarray
    prev_x: np.ndarray
    prev_t: np.ndarray
    has_prev: np.ndarray
    dt_s: np.ndarray

    @classmethod
    def build(cls, s, t, x, seen, q, stat_ts: np.ndarray, stat_x: np.ndarray) -> Round:
        untrusted = (q & _UNTRUSTED) != 0
        faulty = (q & _FAULTY) != 0
        no_range = (q & _NO_RANGE) != 0
        over = ((q & _OVER) != 0) & ~no_range
        under = ((q & _UNDER) != 0) & ~no_range
        finite = np.isfinite(x)
        ranged = over | under
        ladder = ~untrusted & (finite | ranged)
        xl = x
        if ranged.any() and not finite.all():
            xl = np.where(~finite & over, _BIG, np.where(~finite & under, -_BIG, x))
        prev_t = stat_ts[s]
        stat = finite & ~untrusted & ~ranged & (t > prev_t)
        has_prev = stat & (prev_t != NO_TS)
        dt_s = np.where(has_prev, (t - np.where(has_prev, prev_t, t)) * 1e-6, np.nan)
        return cls(
            s=s, t=t, x=x, seen=seen, q=q, untrusted=untrusted, faulty=faulty, over=over, under=under,
            ladder=ladder, xl=xl, stat=stat, prev_x=stat_x[s], prev_t=prev_t, has_prev=has_prev, dt_s=dt_s,
        )

    def select(self, mask: np.ndarray, enabled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``mask`` whose sensor has ``enabled`` set: (row index, sensor id)."""
        i = np.flatnonzero(mask)
        s = self.s[i]
        en = enabled[s]
        if not en.all():
            i, s = i[en], s[en]
        return i, s
