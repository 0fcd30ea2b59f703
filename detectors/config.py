"""Detector configuration: frozen value classes, defaults as named constants, ``from_config``.

Runtime code never sees raw YAML: :meth:`DetectorConfig.from_config` validates a mapping (as
loaded from the service's YAML) and names the offending key in its error.

```yaml
detectors:
  enabled: [limit, fault, over_range, rate, ttt, anomaly, stuck, jump, nodata, compound]
  nodata: {factor: 3, min_silence_s: 30, gateway_factor: 3}
  defaults: {anomaly_threshold: 0.75}
  kinds:
    methane: {rate_up_per_min: 0.2, ttt_horizon_s: 900}
    pressure: {window: true}
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
TREND_TAU_LEVEL_S = 60.0  # robust Holt level time constant
TREND_TAU_SLOPE_S = 120.0  # robust Holt slope time constant
TREND_HUBER_K = 1.5  # residual clip, in units of the robust residual scale
TREND_SCALE_TAU_S = 1200.0  # time constant of the residual scale
TREND_WARMUP = 12  # readings before the trend may predict
TTT_HORIZON_S = 900.0  # warn when a setpoint is predicted within 15 min
TTT_CLEAR_FACTOR = 2.0  # clear when the prediction is beyond 2 × the horizon
ANOMALY_ALPHA = 0.02  # EWMA weight per reading (half-life ≈ 35 readings)
ANOMALY_THRESHOLD = 0.75  # score = 1 − exp(−z / ANOMALY_Z_REF); 0.75 ⇔ z ≈ 5.5
ANOMALY_CLEAR = 0.5  # ⇔ z ≈ 2.8
ANOMALY_Z_REF = 4.0
ANOMALY_HUBER = 3.0  # learning clips deviations at 3 scale units
ANOMALY_WARMUP = 30  # readings learnt unconditionally before scoring
ANOMALY_REFRACTORY_S = 600.0  # no new anomaly finding within 10 min of the last clear
STUCK_AFTER_S = 4 * 3600.0  # flat for 4 h
STUCK_MIN_COUNT = 20
STUCK_TOLERANCE = 0.0  # exact repeat
JUMP_FRACTION = 0.5  # one step over half the measuring range is implausible
JUMP_HOLD_S = 300.0  # a jump that stays is accepted as a step after 5 min
WINDOW_SIZE = 64
WINDOW_THRESHOLD = 0.75  # same squash as the anomaly score
NODATA_FACTOR = 3.0  # stale after 3 expected intervals
NODATA_MIN_SILENCE_S = 30.0
GATEWAY_FACTOR = 3.0

DEFAULT_ENABLED = frozenset(
    {"limit", "fault", "over_range", "rate", "ttt", "anomaly", "stuck", "jump", "nodata", "compound"}
)
ALL_DETECTORS = DEFAULT_ENABLED | {"window"}
STATISTICAL = frozenset({"rate", "ttt", "anomaly", "stuck", "jump", "window"})

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
    stuck_tolerance: float = STUCK_TOLERANCE
    jump_fraction: float = JUMP_FRACTION
    jump_hold_s: float = JUMP_HOLD_S
    window: bool = False
    window_size: int = WINDOW_SIZE
    window_threshold: float = WINDOW_THRESHOLD
    statistics: bool = True  # False: only setpoint, quality and liveness rules (switches)

    def validate(self, where: str) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and (math.isnan(v) or v < 0):
                raise DetectorConfigError(f"{where}.{f.name} must be a non-negative number, got {v}")
        for name in ("anomaly_alpha", "anomaly_threshold", "anomaly_clear", "window_threshold"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise DetectorConfigError(f"{where}.{name} must lie in (0, 1), got {v}")
        if self.anomaly_clear > self.anomaly_threshold:
            raise DetectorConfigError(f"{where}.anomaly_clear must not exceed anomaly_threshold")
        if self.window_size < 8:
            raise DetectorConfigError(f"{where}.window_size must be at least 8")


SWITCH_PARAMS = KindParams(statistics=False)

DEFAULT_KIND_PARAMS: dict[str, dict] = {
    # Gas sensors in clean air repeat their floor for hours: stuck ignores the floor (see stuck.py).
    "o2": {"stuck_after_s": 12 * 3600.0},
    "methane": {"rate_up_per_min": 0.2},
    "pond_level": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "seepage_line": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "displacement": {"stuck_after_s": 24 * 3600.0, "ttt_horizon_s": 6 * 3600.0},
    "rainfall": {"stuck_after_s": 7 * 24 * 3600.0},
}


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
        "when": [{"kind": "pressure", "condition": "falling", "scope": "adjacent", "min_count": 2}],
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

    def params_for(self, kind: str, switch: bool = False) -> KindParams:
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
        extra = set(raw) - {"enabled", "defaults", "kinds", "nodata", "compound"}
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
        for kind, overrides in DEFAULT_KIND_PARAMS.items():
            base = SWITCH_PARAMS if KINDS[kind].switch else defaults
            kinds[kind] = _params_from(overrides, f"{where}.kinds.{kind}", base)
        for kind, overrides in kinds_raw.items():
            if kind not in KINDS:
                raise DetectorConfigError(f"{where}.kinds.{kind}: unknown sensor kind")
            base = kinds.get(kind, SWITCH_PARAMS if KINDS[kind].switch else defaults)
            kinds[kind] = _params_from(overrides or {}, f"{where}.kinds.{kind}", base)
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
        )
