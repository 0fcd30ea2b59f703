"""Signal models: what a healthy sensor reads at time t, vectorised over every sensor of a fleet.

A sensor's value is one additive model evaluated column-wise (struct of arrays, one row per
sensor)::

    clean(t) = base
             + diurnal_amp · cos(2π (h(t) − diurnal_peak_h) / 24)      ambient temperature, demand
             + shift_amp · cutting(t) ⊛ lags                          coal cutting shifts, ramped
             + cycle_amp · cycle(t)                                   defrost pulses, tank fill/draw
             + demand_amp · (d(t)^demand_exp − 1)                     gas demand and pressure drop
             + event_amp · Σ exp(−(t − t_e)/event_tau_s)              door openings (hash-timed)
    value(t) = clip(quantise(clean(t) + N(0, noise_std²), resolution), lo, hi)

h(t) is the local (UTC+8) hour of day. Every random element (door times, calibration sessions,
outages, transducer noise, scan jitter) comes from a counter-based hash of (key, counter) — the key
mixes the fleet seed, enterprise and sensor or gateway id — so every reading is a pure function of
the sensor and its time, and a replay gives the same bytes however it is paced. The stated statistics are the named constants below; the tests in
tests/simulators check them (spectral peak at the defrost period, cutting-shift mean uplift, noise
std, daily demand peaks, physical ranges).
"""

from __future__ import annotations

import dataclasses

import numpy as np

LOCAL_UTC_OFFSET_S = 8 * 3600  # 北京时间
DAY_S = 86_400.0


# ---- stated statistics -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class ShiftPattern:
    """三八制: three 8-hour shifts from 00:00 local; coal is cut in two, the third is 检修 (maintenance).

    Cutting does not start in one scan. When the shearer starts, the cut deepens and the broken
    coal piles onto the conveyor, so the emission (gas, dust, heat) builds up as a first-order lag
    of ``cut_tau_s``; when it stops, the fresh coal keeps desorbing and the emission dies away the
    same way. A sensor then sees that emission through its own lag (:data:`SHIFT_LAG_S`: the
    ventilated volume V/Q for gas, settling for dust, rock and air heat capacity for
    temperature). :meth:`response` is the two lags in series: an S-shaped rise that starts with
    zero slope.
    """

    shift_h: float = 8.0
    first_shift_start_h: float = 0.0
    cutting_shifts: tuple[int, ...] = (1, 2)  # 08-16 and 16-24 cut coal; 00-08 is maintenance
    cut_tau_s: float = 600.0  # the emission's build-up and die-away (shearer's first ~10 min of cut)

    def cutting(self, t_s: np.ndarray) -> np.ndarray:
        """float64[n]: 1.0 while a cutting shift is on (the schedule), else 0.0."""
        h = local_hour(t_s)
        shift = np.floor(((h - self.first_shift_start_h) % 24.0) / self.shift_h).astype(np.int64)
        return np.isin(shift, self.cutting_shifts).astype(np.float64)

    def response(self, t_s: np.ndarray, lag_s: np.ndarray) -> np.ndarray:
        """float64[n] in [0, 1]: what a sensor with its own lag ``lag_s`` (float64[n]) reads of the
        cutting schedule — the schedule 24 h earlier plus every on/off change since, each through
        the two lags in series (a fixed loop over the ≤ 3 boundaries a day, vectorised over t)."""
        t = np.asarray(t_s, dtype=np.float64)
        shift_s = self.shift_h * 3600.0
        offset_s = self.first_shift_start_h * 3600.0 - LOCAL_UTC_OFFSET_S
        last = np.floor((t - offset_s) / shift_s) * shift_s + offset_s  # start of the current shift
        out = self.cutting(t - DAY_S)
        n = int(np.ceil(DAY_S / shift_s))
        for j in range(n):
            b = last - j * shift_s
            change = self.cutting(b + 1.0) - self.cutting(b - 1.0)
            out = out + change * _two_lag_step(t - b, self.cut_tau_s, lag_s)
        return np.clip(out, 0.0, 1.0)


def _two_lag_step(dt_s: np.ndarray, tau1_s: float, tau2_s: np.ndarray) -> np.ndarray:
    """Step response of two first-order lags in series, 0 for dt ≤ 0:
    1 − (τ1 e^(−dt/τ1) − τ2 e^(−dt/τ2)) / (τ1 − τ2), and 1 − (1 + dt/τ) e^(−dt/τ) when τ1 = τ2."""
    dt = np.maximum(dt_s, 0.0)
    t1 = float(tau1_s)
    t2 = np.where(np.abs(np.asarray(tau2_s, dtype=np.float64) - t1) < 1e-6 * t1, t1 * (1 + 1e-6), tau2_s)
    t2 = np.maximum(t2, 1e-9)
    return 1.0 - (t1 * np.exp(-dt / t1) - t2 * np.exp(-dt / t2)) / (t1 - t2)


@dataclasses.dataclass(frozen=True, slots=True)
class DefrostCycle:
    """Electric/hot-gas defrost of a cold room's evaporators: every 6 h, 30 min heaters on."""

    period_s: float = 6 * 3600.0
    duration_s: float = 30 * 60.0
    rise_c: float = 9.0  # room temperature rise at the end of the defrost
    recover_tau_s: float = 12 * 60.0  # exponential pull-down after the heaters stop


@dataclasses.dataclass(frozen=True, slots=True)
class TankCycle:
    """Fill/draw of a storage tank: fill in ``fill_share`` of the period, draw for the rest."""

    period_s: float = 36 * 3600.0
    fill_share: float = 0.25
    low_pct: float = 25.0
    high_pct: float = 75.0


@dataclasses.dataclass(frozen=True, slots=True)
class DemandCurve:
    """Urban gas demand, normalised to a daily mean of 1: night base plus three cooking peaks."""

    base: float = 0.35
    peaks: tuple[tuple[float, float, float], ...] = (  # (local hour, amplitude, width h)
        (7.0, 0.9, 1.0),
        (11.5, 1.2, 1.0),
        (18.0, 1.5, 1.3),
    )

    def __call__(self, t_s: np.ndarray) -> np.ndarray:
        return self._raw(local_hour(t_s)) / self._mean

    def _raw(self, h: np.ndarray) -> np.ndarray:
        d = np.full(np.shape(h), self.base, dtype=np.float64)
        for centre, amp, width in self.peaks:
            dist = (h - centre + 12.0) % 24.0 - 12.0  # circular distance in hours
            d += amp * np.exp(-0.5 * (dist / width) ** 2)
        return d

    @property
    def _mean(self) -> float:
        return float(self._raw(np.arange(0.0, 24.0, 1.0 / 60.0)).mean())


@dataclasses.dataclass(frozen=True, slots=True)
class DoorOpenings:
    """Cold-room door openings during working hours: one per slot at a hashed offset."""

    per_hour: float = 2.0
    rise_c: float = 2.5
    tau_s: float = 5 * 60.0
    day_start_h: float = 7.0
    day_end_h: float = 20.0


# A sensor's own lag behind the coal face's emission (s): the face's air volume over its airflow
# for gases (a 200 m face at 1.5–2 m/s with its upper corner and return: minutes), settling and
# dilution for dust (about a minute), the rock and air heat capacity for temperature (tens of
# minutes). The 10–90 % rise of a reading after the shearer starts is then about 23 min for gas
# and dust, 50 min for temperature (tests/simulators/test_signals.py checks it).
SHIFT_LAG_S: dict[str, float] = {"methane": 180.0, "co": 180.0, "o2": 180.0, "dust": 60.0, "temperature": 1200.0}
SHIFT_LAG_DEFAULT_S = 180.0

SHIFTS = ShiftPattern()
DEFROST = DefrostCycle()
TANK = TankCycle()
DEMAND = DemandCurve()
DOORS = DoorOpenings()


@dataclasses.dataclass(frozen=True, slots=True)
class KindSignal:
    """How a real transducer of a kind reads: unit, noise, resolution, sampling period, range."""

    unit: str
    noise_std: float
    resolution: float
    period_s: float
    lo: float  # physical floor and ceiling of the transducer (values are clipped)
    hi: float
    switch: bool = False
    calibration_value: float | None = None  # 标校 gas applied during a calibration session


# Transducer noise (1 σ) as KJ-system and process transducers show it at rest (manufacturer sheets:
# methane ±0.01 %VOL, CO ±1 ppm, O2 ±0.1 %VOL class); unit, range, resolution and sampling
# period come from the catalog (domain/catalog.py), so the two cannot disagree.
NOISE_STD: dict[str, float] = {
    "methane": 0.01, "co": 0.5, "o2": 0.05, "co2": 0.01, "h2s": 0.15, "nh3": 0.8,
    "combustible_gas": 0.4, "temperature": 0.08, "pressure": 0.002, "level": 0.01, "flow": 5.0,
    "wind_speed": 0.05, "dust": 0.5, "pond_level": 0.01, "seepage_line": 0.01, "displacement": 0.3,
    "rainfall": 0.0,
}
# 标校 (calibration) gas applied during a calibration session, per gas kind.
CALIBRATION_GAS: dict[str, float] = {
    "methane": 2.0, "co": 100.0, "co2": 1.0, "h2s": 25.0, "nh3": 100.0, "combustible_gas": 50.0,
}


def _kind_signals() -> dict[str, KindSignal]:
    from domain.catalog import KINDS

    out = {}
    for k in KINDS.values():
        if not k.switch and k.id not in NOISE_STD:
            continue
        out[k.id] = KindSignal(
            unit=k.unit,
            noise_std=0.0 if k.switch else NOISE_STD[k.id],
            resolution=k.resolution or 0.01,
            period_s=k.expected_interval_s,
            lo=k.range_min,
            hi=k.range_max,
            switch=k.switch,
            calibration_value=CALIBRATION_GAS.get(k.id),
        )
    return out


KIND_SIGNALS: dict[str, KindSignal] = _kind_signals()


def local_hour(t_s: np.ndarray) -> np.ndarray:
    """float64[n] hour of day in 北京时间 for epoch seconds t_s."""
    return ((np.asarray(t_s, dtype=np.float64) + LOCAL_UTC_OFFSET_S) % DAY_S) / 3600.0


# ---- counter-based hash: reproducible random times without per-reading state -----------------
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def hash_uniform(key: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """float64[n] in [0, 1): splitmix64 of (key, counter), both uint64/int64 arrays (broadcast)."""
    z = np.asarray(key, dtype=np.uint64) * _GOLDEN + np.asarray(counter).astype(np.uint64)
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def hash_normal(key: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """float64[n] standard normal from (key, counter) by Box–Muller over two hashed uniforms."""
    u1 = hash_uniform(key, counter)
    u2 = hash_uniform(np.asarray(key, dtype=np.uint64) ^ np.uint64(0x5EED), counter)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


# ---- the per-sensor model columns --------------------------------------------------------------
CYCLE_NONE, CYCLE_DEFROST, CYCLE_TANK = 0, 1, 2

_FLOAT_COLUMNS = (
    "base", "noise_std", "resolution", "lo", "hi",
    "diurnal_amp", "diurnal_peak_h", "shift_amp", "shift_lag_s",
    "cycle_amp", "cycle_period_s", "cycle_phase_s", "cycle_on_share",
    "demand_amp", "demand_exp",
    "event_amp", "event_per_hour", "event_tau_s",
)


@dataclasses.dataclass(slots=True)
class SignalParams:
    """Model parameters of one sensor (builder side; columns are made by :func:`stack`)."""

    base: float
    noise_std: float
    resolution: float
    lo: float
    hi: float
    diurnal_amp: float = 0.0
    diurnal_peak_h: float = 15.0
    shift_amp: float = 0.0
    shift_lag_s: float = SHIFT_LAG_DEFAULT_S
    cycle_kind: int = CYCLE_NONE
    cycle_amp: float = 0.0
    cycle_period_s: float = 1.0
    cycle_phase_s: float = 0.0
    cycle_on_share: float = 0.0
    demand_amp: float = 0.0
    demand_exp: float = 1.0
    event_amp: float = 0.0
    event_per_hour: float = 0.0
    event_tau_s: float = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class SignalTable:
    """Columns of :class:`SignalParams` for n sensors: float64[n] each, cycle_kind int8[n], key uint64[n]."""

    cols: dict[str, np.ndarray]
    cycle_kind: np.ndarray
    key: np.ndarray

    def __len__(self) -> int:
        return int(self.key.shape[0])


def stack(params: list[SignalParams], keys: np.ndarray) -> SignalTable:
    cols = {c: np.array([getattr(p, c) for p in params], dtype=np.float64) for c in _FLOAT_COLUMNS}
    cycle_kind = np.array([p.cycle_kind for p in params], dtype=np.int8)
    return SignalTable(cols, cycle_kind, np.asarray(keys, dtype=np.uint64))


def clean_values(table: SignalTable, idx: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """float64[n]: the noise-free value of sensors ``idx`` (int[n]) at epoch seconds ``t_s`` (float64[n])."""
    c = {k: v[idx] for k, v in table.cols.items()}
    t = np.asarray(t_s, dtype=np.float64)
    h = local_hour(t)
    v = c["base"].copy()
    v += c["diurnal_amp"] * np.cos(2.0 * np.pi * (h - c["diurnal_peak_h"]) / 24.0)
    has_shift = c["shift_amp"] != 0.0
    if has_shift.any():
        v += c["shift_amp"] * SHIFTS.response(t, c["shift_lag_s"])
    kind = table.cycle_kind[idx]
    if (kind != CYCLE_NONE).any():
        x = np.mod(t - c["cycle_phase_s"], c["cycle_period_s"])
        on = c["cycle_on_share"] * c["cycle_period_s"]
        # defrost: linear rise while heaters are on, then exponential pull-down
        rise = np.where(x < on, x / np.maximum(on, 1e-9), np.exp(-(x - on) / DEFROST.recover_tau_s))
        # tank: fill linearly to 1 in the on-share, then draw linearly back to 0
        tank = np.where(x < on, x / np.maximum(on, 1e-9), 1.0 - (x - on) / np.maximum(c["cycle_period_s"] - on, 1e-9))
        shape = np.where(kind == CYCLE_DEFROST, rise, np.where(kind == CYCLE_TANK, tank, 0.0))
        v += c["cycle_amp"] * shape
    if (c["demand_amp"] != 0.0).any():
        v += c["demand_amp"] * (DEMAND(t) ** c["demand_exp"] - 1.0)
    if (c["event_amp"] != 0.0).any():
        v += c["event_amp"] * _door_events(table.key[idx], t, c["event_per_hour"], c["event_tau_s"])
    return v


def _door_events(key: np.ndarray, t: np.ndarray, per_hour: np.ndarray, tau_s: np.ndarray) -> np.ndarray:
    """Σ exp(−(t−t_e)/τ) over the events of the current and previous slot (τ ≪ slot length)."""
    slot_s = 3600.0 / np.maximum(per_hour, 1e-9)
    k = np.floor(t / slot_s)
    out = np.zeros_like(t)
    for back in (0.0, 1.0):
        ks = k - back
        te = (ks + hash_uniform(key, ks.astype(np.int64))) * slot_s
        h = local_hour(te)
        open_ = (per_hour > 0) & (te <= t) & (h >= DOORS.day_start_h) & (h < DOORS.day_end_h)
        out += np.where(open_, np.exp(-np.maximum(t - te, 0.0) / np.maximum(tau_s, 1e-9)), 0.0)
    return out


def finish(table: SignalTable, idx: np.ndarray, clean: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Add transducer noise, quantise to the resolution and clip to the physical range.

    The noise is a hash of (sensor key, t in ms), so a reading's value depends on nothing but
    the sensor and its time (replays and differently paced runs give the same bytes).
    """
    noise_std = table.cols["noise_std"][idx]
    t_ms = np.round(np.asarray(t_s, dtype=np.float64) * 1000.0).astype(np.int64)
    v = clean + noise_std * hash_normal(table.key[idx], t_ms)
    return quantise(v, table.cols["resolution"][idx], table.cols["lo"][idx], table.cols["hi"][idx])


def quantise(v: np.ndarray, resolution: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round to the resolution (shortest decimal representation) and clip to [lo, hi]."""
    q = np.round(v / resolution) * resolution
    q = np.round(q, 6)  # 0.30000000000000004 → 0.3: what a transducer would print
    return np.clip(q, lo, hi)
