"""Detector configuration: frozen value classes, defaults as named constants, ``from_config``.

Runtime code never sees raw YAML: :meth:`DetectorConfig.from_config` validates a mapping (as
loaded from the service's YAML) and names the offending key in its error.

```yaml
detectors:
  enabled: [limit, fault, over_range, rate, ttt, anomaly, stuck, drift, jump, nodata, compound, equipment]
  nodata: {factor: 3, min_silence_s: 30, gateway_factor: 3}
  defaults: {anomaly_threshold: 0.75}
  kinds:
    methane: {rate_up_per_min: 0.2, ttt_horizon_s: 900}
    pressure: {window: true}
    temperature@cold_room: {anomaly: false}      # KIND@LOCATION_CLASS: over the kind's parameters
  equipment: {k: 6, k_smooth: 6}                # equipment groups (detectors/equipment.py)
  compound:
    - name: methane_rising_fan_off
      severity: alarm
      when:
        - {kind: methane, condition: rising, scope: zone}
        - {kind: fan_state, condition: "off", scope: zone}
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from domain.errors import FixConfiguration
from domain.severity import Severity

# --- defaults -------------------------------------------------------------------------------
LADDER_ON_DELAY_S = 0.0  # regulatory alarm and power-cut act on the crossing reading
LADDER_OFF_DELAY_S = 0.0
RATE_FRACTION_PER_MIN = 0.2  # default rate limit: 20 % of the first high setpoint per minute
RATE_TAU_S = 60.0  # time constant of the smoothed rate
RATE_CLEAR_FRACTION = 0.5  # rate clears below half its limit
TREND_TAU_LEVEL_S = 120.0  # robust Holt level time constant
TREND_TAU_SLOPE_S = 600.0  # robust Holt slope time constant (slow: fast ramps re-anchor it)
TREND_HUBER_K = 1.5  # residual clip, in units of the robust residual scale
TREND_SCALE_TAU_S = 1200.0  # time constant of the residual scale
TREND_WARMUP = 30  # readings before the trend may predict (5 min at 10 s: a cold start predicted O2 crossings from noise)
TREND_CUSUM_KAPPA = 1.0  # CUSUM allowance on the standardised Holt residuals (σ)
TREND_CUSUM_H = 5.0  # CUSUM decision level (σ): a run of one-signed residuals this large re-anchors the trend
TREND_FIT_TOL = 16.0  # a run re-anchors only if its line leaves a residual variance ≤ this × σ² ...
TREND_SLOPE_Z = 4.0  # ... and its slope is this many standard errors from zero
TTT_HORIZON_S = 900.0  # warn when a setpoint is predicted within 15 min
TTT_CLEAR_FACTOR = 2.0  # clear when the prediction is beyond 2 × the horizon
ANOMALY_ALPHA = 0.02  # EWMA weight per reading (half-life ≈ 35 readings)
ANOMALY_THRESHOLD = 0.75  # score = 1 − exp(−z / ANOMALY_Z_REF); 0.75 ⇔ z ≈ 5.5
ANOMALY_CLEAR = 0.5  # ⇔ z ≈ 2.8
ANOMALY_Z_REF = 4.0
ANOMALY_HUBER = 3.0  # learning clips deviations at 3 scale units
ANOMALY_WARMUP = 30  # readings learnt unconditionally before scoring
ANOMALY_REFRACTORY_S = 600.0  # no new anomaly finding within 10 min of the last clear
STUCK_AFTER_S = 4 * 3600.0  # flat for 4 h: the floor for sensors with no learnt variability
STUCK_MIN_COUNT = 20
STUCK_TOLERANCE_SLACK = 1.0 + 1e-6  # a tolerance of one step must hold 20.7 − 20.6 = 0.1000000000000014
STUCK_PROBABILITY = 1e-9  # a run of unchanged readings this improbable for the sensor is stuck
STUCK_MEMORY = 1000  # readings over which a sensor's change frequency is learnt
DRIFT_TAU_S = 6 * 3600.0  # each member's own baseline follows its readings with this time constant
DRIFT_ALPHA = 0.001  # learning weight of the departure's scale per judged reading (≈ 8 h at 30 s)
DRIFT_HUBER = 2.0  # the scale learns departures clipped at 2 scale units, so a slow drift cannot drag it up
DRIFT_WARMUP = 20  # judged readings before the drift may raise
DRIFT_K = 5.0  # departure in units of its robust scale
DRIFT_MIN_RESOLUTIONS = 10.0  # ... and at least this many resolution units (1 ℃ for temperature)
DRIFT_MIN_PEERS = 2  # peers that must agree (a group has at least this many + 1 members)
JUMP_FRACTION = 0.5  # one step over half the measuring range is implausible
JUMP_HOLD_S = 300.0  # a jump that stays is accepted as a step after 5 min
WINDOW_SIZE = 64
WINDOW_THRESHOLD = 0.75  # same squash as the anomaly score
NODATA_FACTOR = 3.0  # stale after 3 expected intervals
NODATA_MIN_SILENCE_S = 30.0
GATEWAY_FACTOR = 3.0
EQUIPMENT_ALPHA = 0.005  # learning weight of an equipment group's mean and covariance per judged time
EQUIPMENT_WARMUP = 200  # judged times learnt before the group may raise
EQUIPMENT_K = 6.0  # one channel's standardised residual given the others
EQUIPMENT_BETA = 0.1  # smoothing of the residual (sustained small departures)
EQUIPMENT_K_SMOOTH = 6.0  # smoothed residual in units of its learnt scale
EQUIPMENT_CLEAR = 0.5  # holds while the score stays above this fraction of the raise level
EQUIPMENT_SPREAD_K = 4.0  # another channel departing too (after the top one is explained): the machine moved
EQUIPMENT_HUBER = 2.0  # learning clips departures at 2 residual units, so a slow fault cannot drag the model
EQUIPMENT_MIN_CHANNELS = 3  # with two channels nobody can tell which one departed

DEFAULT_ENABLED = frozenset(
    {"limit", "fault", "over_range", "rate", "ttt", "anomaly", "stuck", "drift", "jump", "nodata", "compound",
     "equipment"}
)
ALL_DETECTORS = DEFAULT_ENABLED | {"window"}
STATISTICAL = frozenset({"rate", "ttt", "anomaly", "stuck", "drift", "jump", "window", "equipment"})

CONDITIONS = ("rising", "falling", "on", "off", "limit", "stale", "anomaly")
SCOPES = ("zone", "adjacent")


class DetectorConfigError(FixConfiguration, ValueError):
    """A detector setting is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True, slots=True)
class KindParams:
    """Per-kind detector parameters; ``None`` rates are derived from the setpoints."""

    ladder_on_delay_s: float = LADDER_ON_DELAY_S
    ladder_off_delay_s: float = LADDER_OFF_DELAY_S
    rate_up_per_min: float | None = None
    rate_down_per_min: float | None = None  # positive: falling faster than this
    rate_fraction_per_min: float = RATE_FRACTION_PER_MIN
    rate_tau_s: float = RATE_TAU_S
    rate_clear_fraction: float = RATE_CLEAR_FRACTION
    trend_tau_level_s: float = TREND_TAU_LEVEL_S
    trend_tau_slope_s: float = TREND_TAU_SLOPE_S
    trend_huber_k: float = TREND_HUBER_K
    trend_scale_tau_s: float = TREND_SCALE_TAU_S
    trend_warmup: int = TREND_WARMUP
    trend_cusum_kappa: float = TREND_CUSUM_KAPPA
    trend_cusum_h: float = TREND_CUSUM_H
    trend_fit_tol: float = TREND_FIT_TOL
    trend_slope_z: float = TREND_SLOPE_Z
    ttt_horizon_s: float = TTT_HORIZON_S
    ttt_clear_factor: float = TTT_CLEAR_FACTOR
    anomaly_alpha: float = ANOMALY_ALPHA
    anomaly_threshold: float = ANOMALY_THRESHOLD
    anomaly_clear: float = ANOMALY_CLEAR
    anomaly_z_ref: float = ANOMALY_Z_REF
    anomaly_huber: float = ANOMALY_HUBER
    anomaly_warmup: int = ANOMALY_WARMUP
    anomaly_refractory_s: float = ANOMALY_REFRACTORY_S
    stuck_after_s: float = STUCK_AFTER_S
    stuck_min_count: int = STUCK_MIN_COUNT
    stuck_tolerance: float | None = None  # None: the kind's resolution (one step of flicker is a run)
    stuck_probability: float = STUCK_PROBABILITY
    stuck_memory: int = STUCK_MEMORY
    drift: bool = False  # compare with the peer group (same zone, kind and location class)
    drift_tau_s: float = DRIFT_TAU_S
    drift_alpha: float = DRIFT_ALPHA
    drift_warmup: int = DRIFT_WARMUP
    drift_k: float = DRIFT_K
    drift_min_dev: float | None = None  # None: DRIFT_MIN_RESOLUTIONS × the kind's resolution
    drift_min_peers: int = DRIFT_MIN_PEERS
    jump_fraction: float = JUMP_FRACTION
    jump_hold_s: float = JUMP_HOLD_S
    anomaly: bool = True  # False: no EWMA anomaly score for this kind (or kind@location class)
    window: bool = False
    window_size: int = WINDOW_SIZE
    window_threshold: float = WINDOW_THRESHOLD
    equipment: bool = True  # a channel of its equipment group (registry ``equipment``)
    statistics: bool = True  # False: only setpoint, quality and liveness rules (switches)

    def validate(self, where: str) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and (math.isnan(v) or v < 0):
                raise DetectorConfigError(f"{where}.{f.name} must be a non-negative number, got {v}")
        for name in ("anomaly_alpha", "anomaly_threshold", "anomaly_clear", "window_threshold", "stuck_probability",
                     "drift_alpha"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise DetectorConfigError(f"{where}.{name} must lie in (0, 1), got {v}")
        if self.anomaly_clear > self.anomaly_threshold:
            raise DetectorConfigError(f"{where}.anomaly_clear must not exceed anomaly_threshold")
        if self.stuck_memory < 2:
            raise DetectorConfigError(f"{where}.stuck_memory must be at least 2 readings")
        if self.drift_min_peers < 1:
            raise DetectorConfigError(f"{where}.drift_min_peers must be at least 1")
        if self.drift_tau_s <= 0:
            raise DetectorConfigError(f"{where}.drift_tau_s must be positive")
        if self.window_size < 8:
            raise DetectorConfigError(f"{where}.window_size must be at least 8")


SWITCH_PARAMS = KindParams(statistics=False)

CLASS_SEP = "@"  # ``kinds`` keys may name a location class: ``temperature@cold_room``

DEFAULT_KIND_PARAMS: dict[str, dict] = {
    # Gas sensors in clean air repeat their floor for hours: stuck ignores the floor (see stuck.py).
    "o2": {"stuck_after_s": 12 * 3600.0},
    "methane": {"rate_up_per_min": 0.2},
    # Thermometers of one zone follow the same weather and day: peers for the drift check.
    "temperature": {"drift": True},
    # Cold rooms (冷间) warm by design: a defrost every few hours (+5–10 ℃ for half an hour) and a
    # door opening several times an hour. Room temperature is product quality, not a work-safety
    # quantity (the ammonia detectors and the machine room's ladders do that job), so the EWMA
    # anomaly score, which reads every defrost and every door as an excursion, is off there; an
    # enterprise that wants a warning sets an `h` setpoint on the room (sensors.setpoints).
    "temperature@cold_room": {"anomaly": False},
    "pond_level": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "seepage_line": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "displacement": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "rainfall": {"stuck_after_s": 7 * 24 * 3600.0},
}


@dataclasses.dataclass(frozen=True, slots=True)
class EquipmentParams:
    """The equipment-group detector's parameters (one set for every group; detectors/equipment.py)."""

    alpha: float = EQUIPMENT_ALPHA
    warmup: int = EQUIPMENT_WARMUP
    k: float = EQUIPMENT_K
    beta: float = EQUIPMENT_BETA
    k_smooth: float = EQUIPMENT_K_SMOOTH
    clear: float = EQUIPMENT_CLEAR
    spread_k: float = EQUIPMENT_SPREAD_K
    huber: float = EQUIPMENT_HUBER
    min_channels: int = EQUIPMENT_MIN_CHANNELS

    @classmethod
    def from_config(cls, raw: object, where: str = "detectors.equipment") -> EquipmentParams:
        if not isinstance(raw, Mapping):
            raise DetectorConfigError(f"{where} must be a mapping")
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in raw.items():
            if key not in names:
                raise DetectorConfigError(f"{where}.{key} is not an equipment setting")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise DetectorConfigError(f"{where}.{key} must be a positive number, got {value!r}")
        out = cls(**{k: (int(v) if k in ("warmup", "min_channels") else float(v)) for k, v in raw.items()})
        for key in ("alpha", "beta", "clear"):
            if not getattr(out, key) < 1:
                raise DetectorConfigError(f"{where}.{key} must lie in (0, 1)")
        if out.min_channels < 3:
            raise DetectorConfigError(f"{where}.min_channels must be at least 3")
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Clause:
    kind: str
    condition: str  # one of CONDITIONS
    scope: str = "zone"  # "zone": the zone itself; "adjacent": the zone and its adjacent zones
    min_count: int = 1
    min_rate_per_min: float | None = None  # rising/falling; None: 2 × kind resolution per minute


@dataclasses.dataclass(frozen=True, slots=True)
class CompoundRule:
    name: str
    severity: Severity
    clauses: tuple[Clause, ...]

    @property
    def rule(self) -> str:
        return f"compound.{self.name}"


DEFAULT_COMPOUND: tuple[dict, ...] = (
    {
        "name": "methane_rising_fan_off",
        "severity": "alarm",
        "when": [
            {"kind": "methane", "condition": "rising", "scope": "zone"},
            {"kind": "fan_state", "condition": "off", "scope": "zone"},
        ],
    },
    {
        "name": "nh3_rising_exhaust_off",
        "severity": "alarm",
        "when": [
            {"kind": "nh3", "condition": "rising", "scope": "zone"},
            {"kind": "exhaust_fan_state", "condition": "off", "scope": "zone"},
        ],
    },
    {
        "name": "pressure_falling_adjacent_stations",
        "severity": "warning",
        # Demand ramps lower a medium-pressure network's pressure by up to ~0.002 MPa/min at every
        # station at once (morning and evening peaks); a leak drops the stations near it faster.
        # Twice the steepest demand ramp keeps the daily peaks from raising this warning.
        "when": [{"kind": "pressure", "condition": "falling", "scope": "adjacent", "min_count": 2,
                  "min_rate_per_min": 0.004}],
    },
)


def _params_from(raw: Mapping, where: str, base: KindParams) -> KindParams:
    if not isinstance(raw, Mapping):
        raise DetectorConfigError(f"{where} must be a mapping")
    names = {f.name: f for f in dataclasses.fields(KindParams)}
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise DetectorConfigError(f"{where}.{key} is not a detector parameter")
        default = getattr(base, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise DetectorConfigError(f"{where}.{key} must be true or false")
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DetectorConfigError(f"{where}.{key} must be a number, got {value!r}")
            value = int(value) if isinstance(default, int) else float(value)
        kwargs[key] = value
    out = dataclasses.replace(base, **kwargs)
    out.validate(where)
    return out


def _severity(raw: object, where: str) -> Severity:
    try:
        return Severity[str(raw).upper()]
    except KeyError:
        raise DetectorConfigError(f"{where} must be notice, warning, alarm or critical, got {raw!r}") from None


def parse_compound(raw: object, where: str = "detectors.compound") -> tuple[CompoundRule, ...]:
    if not isinstance(raw, list | tuple):
        raise DetectorConfigError(f"{where} must be a list of rules")
    rules = []
    seen = set()
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise DetectorConfigError(f"{w} must be a mapping")
        extra = set(item) - {"name", "severity", "when"}
        if extra:
            raise DetectorConfigError(f"{w}.{sorted(extra)[0]} is not a compound-rule key")
        name = item.get("name")
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise DetectorConfigError(f"{w}.name must be an identifier, got {name!r}")
        if name in seen:
            raise DetectorConfigError(f"{w}.name {name!r} is used twice")
        seen.add(name)
        clauses = []
        when = item.get("when")
        if not isinstance(when, list) or not when:
            raise DetectorConfigError(f"{w}.when must be a non-empty list of clauses")
        for j, c in enumerate(when):
            cw = f"{w}.when[{j}]"
            if not isinstance(c, Mapping):
                raise DetectorConfigError(f"{cw} must be a mapping")
            extra = set(c) - {f.name for f in dataclasses.fields(Clause)}
            if extra:
                raise DetectorConfigError(f"{cw}.{sorted(extra)[0]} is not a clause key")
            cond = str(c.get("condition", ""))
            if cond not in CONDITIONS:
                raise DetectorConfigError(f"{cw}.condition must be one of {', '.join(CONDITIONS)}, got {cond!r}")
            scope = str(c.get("scope", "zone"))
            if scope not in SCOPES:
                raise DetectorConfigError(f"{cw}.scope must be zone or adjacent, got {scope!r}")
            kind = c.get("kind")
            if not isinstance(kind, str) or not kind:
                raise DetectorConfigError(f"{cw}.kind must be a sensor kind id")
            min_count = c.get("min_count", 1)
            if not isinstance(min_count, int) or min_count < 1:
                raise DetectorConfigError(f"{cw}.min_count must be a positive integer")
            rate = c.get("min_rate_per_min")
            if rate is not None and (not isinstance(rate, int | float) or rate < 0):
                raise DetectorConfigError(f"{cw}.min_rate_per_min must be a non-negative number")
            clauses.append(Clause(kind, cond, scope, min_count, None if rate is None else float(rate)))
        rules.append(CompoundRule(name, _severity(item.get("severity", "warning"), f"{w}.severity"), tuple(clauses)))
    return tuple(rules)


@dataclasses.dataclass(frozen=True, slots=True)
class DetectorConfig:
    enabled: frozenset[str] = DEFAULT_ENABLED
    defaults: KindParams = KindParams()
    kinds: Mapping[str, KindParams] = dataclasses.field(default_factory=dict)
    nodata_factor: float = NODATA_FACTOR
    nodata_min_silence_s: float = NODATA_MIN_SILENCE_S
    gateway_factor: float = GATEWAY_FACTOR
    compound: tuple[CompoundRule, ...] = ()
    equipment: EquipmentParams = EquipmentParams()

    def params_for(self, kind: str, switch: bool = False, location_class: str = "") -> KindParams:
        """The parameters of ``kind@location_class`` if configured, else of ``kind``, else the defaults."""
        if location_class and (key := f"{kind}{CLASS_SEP}{location_class}") in self.kinds:
            return self.kinds[key]
        if kind in self.kinds:
            return self.kinds[kind]
        return SWITCH_PARAMS if switch else self.defaults

    @classmethod
    def default(cls) -> DetectorConfig:
        return cls.from_config({})

    @classmethod
    def from_config(cls, raw: Mapping | None) -> DetectorConfig:
        """Build from a mapping (the ``detectors`` section of the service YAML); missing keys take
        the defaults, including :data:`DEFAULT_KIND_PARAMS` and :data:`DEFAULT_COMPOUND`."""
        raw = dict(raw or {})
        where = "detectors"
        extra = set(raw) - {"enabled", "defaults", "kinds", "nodata", "compound", "equipment"}
        if extra:
            raise DetectorConfigError(f"{where}.{sorted(extra)[0]} is not a detector setting")
        enabled = raw.get("enabled", sorted(DEFAULT_ENABLED))
        if not isinstance(enabled, list | tuple | set | frozenset):
            raise DetectorConfigError(f"{where}.enabled must be a list")
        for name in enabled:
            if name not in ALL_DETECTORS:
                raise DetectorConfigError(
                    f"{where}.enabled: unknown detector {name!r}; known: {', '.join(sorted(ALL_DETECTORS))}"
                )
        defaults = _params_from(raw.get("defaults", {}), f"{where}.defaults", KindParams())
        kinds_raw = dict(raw.get("kinds", {}) or {})
        from domain.catalog import KINDS

        kinds = {}
        def base_of(key: str) -> KindParams:
            kind, _, cls = key.partition(CLASS_SEP)
            if kind not in KINDS or (CLASS_SEP in key and not cls):
                raise DetectorConfigError(f"{where}.kinds.{key}: unknown sensor kind (KIND or KIND{CLASS_SEP}LOCATION_CLASS)")
            if key in kinds:
                return kinds[key]
            return kinds.get(kind, SWITCH_PARAMS if KINDS[kind].switch else defaults)

        # plain kinds (shipped, then configured) first, so kind@class entries build on the kind's
        steps = [(k, v) for k, v in DEFAULT_KIND_PARAMS.items() if CLASS_SEP not in k]
        steps += [(k, v) for k, v in kinds_raw.items() if CLASS_SEP not in str(k)]
        steps += [(k, v) for k, v in DEFAULT_KIND_PARAMS.items() if CLASS_SEP in k]
        steps += [(k, v) for k, v in kinds_raw.items() if CLASS_SEP in str(k)]
        for key, overrides in steps:
            kinds[str(key)] = _params_from(overrides or {}, f"{where}.kinds.{key}", base_of(str(key)))
        nodata = dict(raw.get("nodata", {}) or {})
        extra = set(nodata) - {"factor", "min_silence_s", "gateway_factor"}
        if extra:
            raise DetectorConfigError(f"{where}.nodata.{sorted(extra)[0]} is not a no-data setting")
        for key, value in nodata.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise DetectorConfigError(f"{where}.nodata.{key} must be a positive number")
        compound = parse_compound(raw.get("compound", list(DEFAULT_COMPOUND)), f"{where}.compound")
        for rule in compound:
            for c in rule.clauses:
                if c.kind not in KINDS:
                    raise DetectorConfigError(f"{where}.compound {rule.name}: unknown sensor kind {c.kind!r}")
        return cls(
            enabled=frozenset(enabled),
            defaults=defaults,
            kinds=kinds,
            nodata_factor=float(nodata.get("factor", NODATA_FACTOR)),
            nodata_min_silence_s=float(nodata.get("min_silence_s", NODATA_MIN_SILENCE_S)),
            gateway_factor=float(nodata.get("gateway_factor", GATEWAY_FACTOR)),
            compound=compound,
            equipment=EquipmentParams.from_config(raw.get("equipment", {}) or {}),
        )
