"""Default setpoints per sensor kind and location class, each with its source.

A setpoint is one rung of a limit ladder: a value, a side (``high``: raise when the reading is
``>= value``; ``low``: raise when ``<= value``), a severity, and the value at which it clears
(``clear``; for the coal methane triple this is the 复电 restore value, elsewhere the value minus
the kind's deadband). Sources are the tags of shared/domain/SAFETY-STANDARDS.md:

- ``[read]`` the value was read in the cited copy of the standard;
- ``[inferred]`` derived (unit conversion, a limit used as an alarm, a recalled table row), and
  marked so it is verified against the official text before it is relied on;
- ``[resolved: Qn]`` an open question of that file, resolved conservatively (the value that
  alarms earlier or restores later).

Overrides from the registry (``sensors.setpoints``) may tighten, never loosen, a default:
:func:`check_overrides` says which key loosens, :func:`effective_setpoints` merges them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from domain.severity import Severity

HIGH = "high"
LOW = "low"

LADDER_DEPTH = 4
"""At most this many setpoints per side of one sensor (the detectors' ladder arrays)."""

# Setpoint names an override may add where the kind has no default of that name, with side and
# severity. Regulatory names (alarm, power_cut, level1 …) come only from the tables below.
EXTRA_SETPOINTS: dict[str, tuple[str, Severity]] = {
    "pre": (HIGH, Severity.NOTICE),  # enterprise pre-warning below the first regulatory setpoint
    "h": (HIGH, Severity.WARNING),
    "hh": (HIGH, Severity.ALARM),
    "pre_low": (LOW, Severity.NOTICE),
    "l": (LOW, Severity.WARNING),
    "ll": (LOW, Severity.ALARM),
}

CLEAR_SUFFIX = "_clear"
"""``{name}_clear`` overrides the clear (restore) value of setpoint ``name``."""
CLEAR_ALIASES = {"restore": "power_cut"}
"""``restore`` (复电) is the clear value of ``power_cut`` (断电)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Setpoint:
    name: str  # alarm | power_cut | level1 | level2 | h | hh | l | ll | pre | …
    value: float
    side: str  # HIGH or LOW
    severity: Severity
    clear: float  # high: active while value >= clear; low: while value <= clear
    source: str  # citation, with [read] / [inferred] / [resolved: Qn]
    regulatory: bool = True

    def tighter_or_equal(self, value: float) -> bool:
        return value <= self.value if self.side == HIGH else value >= self.value


# --- conversions ----------------------------------------------------------------------------

MOLAR_VOLUME_L = 24.45  # L/mol at 25 ℃, 101.325 kPa


def mg_m3_to_ppm(mg_m3: float, molar_mass: float) -> float:
    """ppm = mg/m³ × 24.45 / M, floored to 2 decimals (flooring tightens a ceiling)."""
    return math.floor(mg_m3 * MOLAR_VOLUME_L / molar_mass * 100 + 1e-9) / 100


# --- tables ---------------------------------------------------------------------------------

S_CMT = "煤矿安全规程 methane-sensor table (AQ 1029) [read] (S-CMT)"
S_CMT_RECALLED = "煤矿安全规程 methane table, row recalled, not read [inferred] (SAFETY-STANDARDS §1a)"
S_AIR = "煤矿安全规程 air-quality limit, used as the alarm setpoint [inferred] (S-AIR)"
S_50493 = "GB/T 50493-2019 §5.5.2 [read] (S-50493)"
S_50493_OEL = "GB/T 50493-2019 §5.5.2 L1 ≤100 % OEL, L2 ≤200 % OEL; OEL from S-OELTAB, ppm conversion [inferred]"
S_50072 = "GB 50072-2021 §7.4.1 (S-50072)"
S_28009 = "GB 28009-2011 design-safety chapter (S-28009)"
S_PIPEGAL = "GB 50838 综合管廊 gas compartment, exam-question copy [read] (S-PIPEGAL)"
S_TEMP = "煤矿安全规程 temperature limits (S-TEMP)"


METHANE_ALARM_DEADBAND = 0.05
"""%VOL. The 规程 sets when the alarm starts, not when it ends; it clears 0.05 below the alarm
value so a reading hovering at the setpoint does not chatter (the alarm stays on longer, which
is the conservative side). The power-cut clears at the regulatory 复电 value."""


def _triple(alarm: float, cut: float, restore: float, source: str) -> tuple[Setpoint, ...]:
    """The coal methane 报警 / 断电 / 复电 triple."""
    return (
        Setpoint("alarm", alarm, HIGH, Severity.WARNING, round(alarm - METHANE_ALARM_DEADBAND, 6), source),
        Setpoint("power_cut", cut, HIGH, Severity.ALARM, restore, source),
    )


def _alarm_only(alarm: float, source: str, deadband: float = 0.0) -> tuple[Setpoint, ...]:
    return (Setpoint("alarm", alarm, HIGH, Severity.WARNING, round(alarm - deadband, 6), source),)


def _levels(l1: float, l2: float, source: str, deadband: float) -> tuple[Setpoint, ...]:
    return (
        Setpoint("level1", l1, HIGH, Severity.WARNING, round(l1 - deadband, 6), source),
        Setpoint("level2", l2, HIGH, Severity.ALARM, round(l2 - deadband, 6), source),
    )


def _oel(mg1: float, mg2: float, molar_mass: float, deadband: float, basis: str) -> tuple[Setpoint, ...]:
    src = f"{S_50493_OEL}; {basis}"
    return _levels(mg_m3_to_ppm(mg1, molar_mass), mg_m3_to_ppm(mg2, molar_mass), src, deadband)


_METHANE_T1 = _triple(1.0, 1.5, 1.0, S_CMT)

METHANE_CLASSES: dict[str, tuple[str, tuple[Setpoint, ...]]] = {
    "T0": (
        "采煤工作面上隅角",
        _triple(1.0, 1.5, 1.0, f"{S_CMT}; 复电 <1.0 [resolved: Q1, S-CMT copy reads <1.5]"),
    ),
    "T1": ("采煤/掘进工作面 (突出矿井: 进、回风巷也断电)", _METHANE_T1),
    "T2": ("采煤工作面回风巷 / 掘进工作面回风流", _triple(1.0, 1.0, 1.0, S_CMT)),
    "T3": ("高瓦斯/突出矿井采煤工作面进风巷 / 被串掘进工作面局部通风机前", _triple(0.5, 0.5, 0.5, S_CMT)),
    "T4": ("串联通风被串采煤工作面进风巷", _triple(0.5, 0.5, 0.5, S_CMT)),
    "T5": ("有专用排瓦斯巷的采煤工作面 (legacy, deleted by AQ 1029-2019)", _triple(1.0, 1.5, 1.0, S_CMT)),
    "T6": ("有专用排瓦斯巷的采煤工作面 (legacy, deleted by AQ 1029-2019)", _triple(1.0, 1.0, 1.0, S_CMT)),
    "T7": ("专用排瓦斯巷 (legacy)", _triple(2.5, 2.5, 2.5, S_CMT)),
    "T8": ("专用排瓦斯巷混合回风流处 (legacy)", _triple(1.0, 1.0, 1.0, S_CMT)),
    "return_mid": (
        "高瓦斯/突出矿井采煤工作面回风巷中部",
        _triple(1.0, 1.0, 1.0, "AQ 1029-2019 §6.2.3 via bzko.com [read]"),
    ),
    "shearer": ("采煤机", _triple(1.0, 1.5, 1.0, "AQ 1029-2019 §6.2.4 [read]")),
    "heading_machine": ("掘进机/连续采煤机", _triple(1.0, 1.5, 1.0, S_CMT_RECALLED)),
    "district_return": ("采区回风巷", _triple(1.0, 1.0, 1.0, S_CMT_RECALLED)),
    "main_return": ("一翼回风巷及总回风巷", _alarm_only(0.75, S_CMT_RECALLED, METHANE_ALARM_DEADBAND)),
    "machine_room_intake": ("回风流中机电设备硐室进风侧", _triple(0.5, 0.5, 0.5, S_CMT_RECALLED)),
    "locomotive": ("装煤点 / 蓄电池、柴油机车、无轨胶轮车 (机载)", _triple(0.5, 0.5, 0.5, S_CMT_RECALLED)),
    "coal_bunker": ("井下煤仓 / 封闭带式输送机地面走廊", _triple(1.5, 1.5, 1.5, S_CMT_RECALLED)),
    "drainage_pump_downwind": ("井下临时抽采泵站下风侧栅栏外", _triple(1.0, 1.0, 1.0, S_CMT_RECALLED)),
    "surface_pump_room": ("地面抽采泵房内", _alarm_only(0.5, S_CMT_RECALLED, METHANE_ALARM_DEADBAND)),
}

# (kind, location_class) -> setpoints. "" is the kind's default class; the comment on each says
# which context it stands for.
DEFAULTS: dict[tuple[str, str], tuple[Setpoint, ...]] = {}

for _cls, (_desc, _sps) in METHANE_CLASSES.items():
    DEFAULTS[("methane", _cls)] = _sps
# No location class on a methane point: the working-face row, the commonest (the registry
# importer should require a class for coal methane points).
DEFAULTS[("methane", "")] = tuple(
    dataclasses.replace(s, source=f"{S_CMT}; T1 row, applied when no location class is set [inferred]")
    for s in _METHANE_T1
)

_TOXIC = {
    # kind: (mg1, mg2, molar mass, deadband ppm, OEL basis as read in S-OELTAB)
    "co": (20.0, 40.0, 28.01, 1.0, "CO TWA 20, STEL 30 mg/m3 → L1 20, L2 40"),
    "h2s": (10.0, 20.0, 34.08, 0.5, "H2S MAC 10 mg/m3"),
    "nh3": (20.0, 40.0, 17.03, 2.0, "NH3 TWA 20, STEL 30 mg/m3 → L1 20, L2 40"),
    "cl2": (1.0, 2.0, 70.90, 0.02, "Cl2 MAC 1 mg/m3"),
    "so2": (5.0, 10.0, 64.07, 0.2, "SO2 TWA 5, STEL 10 mg/m3"),
    "no2": (5.0, 10.0, 46.01, 0.2, "NO2 TWA 5, STEL 10 mg/m3"),
    "hcn": (1.0, 2.0, 27.03, 0.1, "HCN MAC 1 mg/m3"),
    "hcl": (7.5, 15.0, 36.46, 0.5, "HCl MAC 7.5 mg/m3"),
    "hf": (2.0, 4.0, 20.01, 0.2, "HF MAC 2 mg/m3"),
    "phosgene": (0.5, 1.0, 98.92, 0.01, "COCl2 MAC 0.5 mg/m3"),
    "benzene": (6.0, 12.0, 78.11, 0.2, "benzene TWA 6, STEL 10 mg/m3 → L1 6, L2 12"),
    "methanol": (25.0, 50.0, 32.04, 1.0, "methanol TWA 25, STEL 50 mg/m3"),
}
for _kind, (_m1, _m2, _mm, _db, _basis) in _TOXIC.items():
    DEFAULTS[(_kind, "")] = _oel(_m1, _m2, _mm, _db, _basis)  # plant (危化品) detector

# Coal-mine air limits (煤矿安全规程 表1), used as the alarm setpoint.
DEFAULTS[("co", "coal")] = (
    Setpoint("alarm", 24.0, HIGH, Severity.WARNING, 23.0,
             "煤矿安全规程 CO ≤0.0024 % = 24 ppm (S-AIR [read]); alarm ≥24 ppm also in public KJ code"),
)
DEFAULTS[("h2s", "coal")] = _alarm_only(6.6, f"{S_AIR}: H2S ≤0.00066 % = 6.6 ppm")
DEFAULTS[("nh3", "coal")] = _alarm_only(40.0, f"{S_AIR}: NH3 ≤0.004 % = 40 ppm")
DEFAULTS[("so2", "coal")] = _alarm_only(5.0, f"{S_AIR}: SO2 ≤0.0005 % = 5 ppm")
DEFAULTS[("no2", "coal")] = _alarm_only(2.5, f"{S_AIR}: NO2 ≤0.00025 % = 2.5 ppm")
DEFAULTS[("co2", "coal")] = _alarm_only(0.5, f"{S_AIR}: CO2 ≤0.5 % in 采掘工作面进风流")
DEFAULTS[("co2", "")] = _levels(
    0.5, 1.0, f"{S_50493_OEL}; CO2 TWA 9000, STEL 18000 mg/m3 ≈ 5000/10000 ppm", 0.02
)
DEFAULTS[("o2", "")] = (
    Setpoint("deficiency", 19.5, LOW, Severity.WARNING, 19.7, f"{S_50493}: 欠氧 19.5 %VOL"),
    Setpoint("excess", 23.5, HIGH, Severity.WARNING, 23.3, f"{S_50493}: 过氧 23.5 %VOL"),
)
DEFAULTS[("o2", "coal")] = (
    Setpoint("deficiency", 20.0, LOW, Severity.WARNING, 20.2,
             "煤矿安全规程: O2 ≥20 % in 采掘工作面进风流 (S-AIR [read]); used as the low alarm [inferred]"),
)

# Ammonia refrigeration (涉氨制冷).
_NH3_MACHINE_ROOM = (
    Setpoint("alarm", 100.0, HIGH, Severity.WARNING, 95.0,
             f"{S_28009} 100 or 150 ppm; {S_50072}-1 150 ppm [read] → 100 ppm [resolved: Q7]"),
    Setpoint("power_cut", 37500.0, HIGH, Severity.ALARM, 37500.0,
             f"{S_50072}-2 25 % LEL [read]; LEL taken as 15 %VOL (lowest quoted) → 37 500 ppm [inferred]"),
)
DEFAULTS[("nh3", "machine_room")] = _NH3_MACHINE_ROOM
DEFAULTS[("nh3", "equipment_room")] = (
    Setpoint("alarm", 100.0, HIGH, Severity.WARNING, 95.0,
             "GB 50072-2021 §7.4.3-1 150 ppm [read] → 100 ppm as in the machine room [resolved: Q7]"),
)

# Combustible gas (%LEL).
DEFAULTS[("combustible_gas", "")] = _levels(25.0, 50.0, f"{S_50493}: ≤25 % / ≤50 % LEL", 2.0)
DEFAULTS[("combustible_gas", "pipe_gallery")] = (
    Setpoint("alarm", 20.0, HIGH, Severity.WARNING, 18.0, f"{S_PIPEGAL}: alarm ≤20 % LEL"),
    Setpoint("shutoff", 25.0, HIGH, Severity.ALARM, 23.0,
             f"{S_PIPEGAL}: shut-off ≤35 % LEL as printed; 25 % [resolved: Q6]"),
)
for _cls in ("gas_station", "underground_space", "indoor"):
    DEFAULTS[("combustible_gas", _cls)] = _levels(
        25.0, 50.0, f"{S_50493} rule as placeholder: CJJ/T 146 and CJ 3057 values not retrieved [resolved: Q5]", 2.0
    )

# Coal-mine temperature.
DEFAULTS[("temperature", "coal_face")] = (
    Setpoint("h", 26.0, HIGH, Severity.WARNING, 25.5, f"{S_TEMP}: 采掘工作面 ≤26 ℃ [read]"),
    Setpoint("hh", 30.0, HIGH, Severity.ALARM, 29.5, f"{S_TEMP}: stop work at 30 ℃ [inferred: Q11]"),
)
DEFAULTS[("temperature", "coal_machine_room")] = (
    Setpoint("h", 30.0, HIGH, Severity.WARNING, 29.5, f"{S_TEMP}: 机电设备硐室 ≤30 ℃ [read]"),
    Setpoint("hh", 34.0, HIGH, Severity.ALARM, 33.5, f"{S_TEMP}: stop work at 34 ℃ [inferred: Q11]"),
)

# Cold rooms (冷间): no standard sets an alarm on the room temperature (product quality, not work
# safety: GB 50072 / GB 28009 set the ammonia detectors). The class exists so detectors can treat
# a room's defrost cycles and door openings as normal (detectors/config.py); an enterprise that
# wants a warning adds an `h` override on the sensor.
DEFAULTS[("temperature", "cold_room")] = ()

LOCATION_CLASSES: dict[str, str] = {
    **{c: d for c, (d, _) in METHANE_CLASSES.items()},
    "coal": "煤矿井下 air (煤矿安全规程 表1 limits)",
    "machine_room": "氨制冷机房",
    "equipment_room": "库内制冷设备间 / 阀门站",
    "cold_room": "冷库库房 (冷间): defrost cycles and door openings are its normal behaviour",
    "pipe_gallery": "综合管廊 天然气舱",
    "gas_station": "燃气场站",
    "underground_space": "燃气管线相邻地下空间",
    "indoor": "用气场所 (餐饮、工商户)",
    "coal_face": "采掘工作面",
    "coal_machine_room": "机电设备硐室",
}
"""Every location class a default is keyed by, with what it stands for."""


# --- merging overrides ----------------------------------------------------------------------


def default_setpoints(kind: str, location_class: str) -> tuple[Setpoint, ...]:
    """The regulatory defaults of (kind, location_class); ValueError for a class unknown to a
    kind that has classes. A kind with no table has no defaults, whatever its class."""
    key = (kind, location_class)
    if key in DEFAULTS:
        return DEFAULTS[key]
    classes = sorted(c for k, c in DEFAULTS if k == kind)
    if location_class and classes:
        raise ValueError(
            f"location class {location_class!r} has no setpoints for kind {kind!r}; "
            f"use one of: {', '.join(repr(c) for c in classes)}"
        )
    return DEFAULTS.get((kind, ""), ())


def _number(kind: str, key: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"setpoint {key!r} of kind {kind!r} must be a finite number, got {raw!r}")
    return float(raw)


def effective_setpoints(
    kind: str,
    location_class: str,
    overrides: Mapping[str, object] | None,
    *,
    deadband: float = 0.0,
) -> tuple[Setpoint, ...]:
    """The defaults of (kind, location_class) with the overrides merged, sorted by side then
    value; raises ValueError naming the setpoint when an override would loosen a default, is
    unknown, or leaves more than :data:`LADDER_DEPTH` setpoints on one side.

    ``deadband`` sets the clear value of setpoints an override adds (value ∓ deadband).
    """
    base = {s.name: s for s in default_setpoints(kind, location_class)}
    merged = dict(base)
    overrides = dict(overrides or {})
    clears: dict[str, float] = {}
    for key, raw in overrides.items():
        if not isinstance(key, str):
            raise ValueError(f"setpoint names must be strings, got {key!r}")
        name = key.strip().lower()
        target = CLEAR_ALIASES.get(name)
        if target is None and name.endswith(CLEAR_SUFFIX):
            target = name[: -len(CLEAR_SUFFIX)]
        if target is not None:
            clears[target] = _number(kind, key, raw)
            continue
        if raw is None:
            raise ValueError(f"setpoint {key!r} of kind {kind!r} cannot be removed by an override")
        value = _number(kind, key, raw)
        if name in base:
            sp = base[name]
            if not sp.tighter_or_equal(value):
                word = "raise" if sp.side == HIGH else "lower"
                raise ValueError(
                    f"override {key}={value:g} would loosen the {sp.side} setpoint {name!r} of kind "
                    f"{kind!r} (location class {location_class!r}), which is {sp.value:g} "
                    f"({sp.source}); an override may tighten it, not {word} it"
                )
            clear = min(sp.clear, value) if sp.side == HIGH else max(sp.clear, value)
            merged[name] = dataclasses.replace(sp, value=value, clear=clear, regulatory=sp.regulatory)
        elif name in EXTRA_SETPOINTS:
            side, sev = EXTRA_SETPOINTS[name]
            clear = round(value - deadband if side == HIGH else value + deadband, 9)
            merged[name] = Setpoint(name, value, side, sev, clear, "registry override", regulatory=False)
        else:
            known = sorted(set(base) | set(EXTRA_SETPOINTS))
            raise ValueError(
                f"unknown setpoint {key!r} for kind {kind!r}; known: {', '.join(known)} "
                f"(and {{name}}{CLEAR_SUFFIX}, restore)"
            )
    for name, clear in clears.items():
        if name not in merged:
            raise ValueError(f"clear value given for setpoint {name!r}, which kind {kind!r} does not have")
        sp = merged[name]
        default_clear = base[name].clear if name in base else sp.clear
        loosens = clear > default_clear if sp.side == HIGH else clear < default_clear
        if name in base and loosens:
            label = "restore" if name == "power_cut" else f"{name}{CLEAR_SUFFIX}"
            raise ValueError(
                f"override {label}={clear:g} would loosen the clear value of setpoint {name!r} of kind "
                f"{kind!r}, which is {default_clear:g} ({sp.source}); it may only clear later"
            )
        bad = clear > sp.value if sp.side == HIGH else clear < sp.value
        if bad:
            raise ValueError(
                f"clear value {clear:g} of setpoint {name!r} of kind {kind!r} is beyond the setpoint "
                f"{sp.value:g} itself"
            )
        merged[name] = dataclasses.replace(sp, clear=clear)
    out = tuple(sorted(merged.values(), key=lambda s: (s.side != HIGH, s.value if s.side == HIGH else -s.value)))
    for side in (HIGH, LOW):
        n = sum(1 for s in out if s.side == side)
        if n > LADDER_DEPTH:
            raise ValueError(
                f"kind {kind!r} would have {n} {side} setpoints; at most {LADDER_DEPTH} are supported"
            )
    return out


def check_overrides(kind: str, location_class: str, overrides: Mapping[str, object] | None) -> None:
    """Raise ValueError with a sentence naming the setpoint if ``overrides`` loosen a default."""
    effective_setpoints(kind, location_class, overrides)
