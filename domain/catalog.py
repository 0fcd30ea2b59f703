"""Sensor catalog: canonical sensor kinds with units, ranges, intervals and default setpoints.

Every setpoint cites its source (see shared/domain/SAFETY-STANDARDS.md and
:mod:`domain.setpoints`). A sensor's overrides in the registry may tighten a regulatory setpoint,
never loosen it: the registry importer calls :func:`check_overrides` and the detectors call
:func:`effective_setpoints`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from domain import setpoints as _sp
from domain.setpoints import LOCATION_CLASSES, Setpoint


@dataclasses.dataclass(frozen=True, slots=True)
class SensorKind:
    id: str  # canonical id, e.g. "methane"
    name_zh: str
    name_en: str
    unit: str  # canonical unit as gateways send it, e.g. "%VOL"
    range_min: float  # physical measuring range of a typical transducer
    range_max: float
    expected_interval_s: float  # default reporting interval
    switch: bool = False  # a two-state point (fan on/off, feed state): values 0/1
    resolution: float = 0.0  # smallest meaningful change (display resolution); 0 = unknown
    deadband: float = 0.0  # hysteresis under a high setpoint that has no regulatory clear value
    gas: bool = False  # a gas concentration: its quiet value is the bottom of the range
    industries: tuple[str, ...] = ()  # where it is used (domain.industries values); () = all

    @property
    def stuck_tolerance(self) -> float:
        """Default tolerance of the stuck rule: readings that stay within one resolution step of
        each other (a frozen transducer whose last digit flickers) form one flat run."""
        return self.resolution


_COAL = ("coal_mine",)
_CHEM = ("hazardous_chemicals",)
_GAS_INDUSTRIES = ("coal_mine", "non_coal_mine", "hazardous_chemicals", "cold_storage", "gas_pipeline")
_TAILINGS = ("non_coal_mine",)


def _gas(id_, zh, en, unit, hi, res, db, interval=10.0, industries=_GAS_INDUSTRIES):
    return SensorKind(id_, zh, en, unit, 0.0, hi, interval, resolution=res, deadband=db, gas=True,
                      industries=industries)


def _switch(id_, zh, en, interval=10.0, industries=()):
    return SensorKind(id_, zh, en, "state", 0.0, 1.0, interval, switch=True, resolution=1.0,
                      industries=industries)


KINDS: dict[str, SensorKind] = {
    k.id: k
    for k in (
        # --- gases ---
        _gas("methane", "甲烷", "methane", "%VOL", 40.0, 0.01, 0.0, industries=("coal_mine", "gas_pipeline")),
        _gas("co", "一氧化碳", "carbon monoxide", "ppm", 1000.0, 1.0, 1.0),
        SensorKind("o2", "氧气", "oxygen", "%VOL", 0.0, 25.0, 10.0, resolution=0.1, deadband=0.2),
        _gas("co2", "二氧化碳", "carbon dioxide", "%VOL", 5.0, 0.01, 0.02),
        _gas("h2s", "硫化氢", "hydrogen sulfide", "ppm", 100.0, 0.1, 0.5),
        _gas("nh3", "氨气", "ammonia", "ppm", 1000.0, 1.0, 2.0),
        _gas("cl2", "氯气", "chlorine", "ppm", 20.0, 0.01, 0.02, industries=_CHEM),
        _gas("so2", "二氧化硫", "sulfur dioxide", "ppm", 100.0, 0.1, 0.2),
        _gas("no2", "二氧化氮", "nitrogen dioxide", "ppm", 50.0, 0.1, 0.2),
        _gas("hcn", "氰化氢", "hydrogen cyanide", "ppm", 50.0, 0.1, 0.1, industries=_CHEM),
        _gas("hcl", "氯化氢", "hydrogen chloride", "ppm", 50.0, 0.1, 0.5, industries=_CHEM),
        _gas("hf", "氟化氢", "hydrogen fluoride", "ppm", 20.0, 0.1, 0.2, industries=_CHEM),
        _gas("phosgene", "光气", "phosgene", "ppm", 5.0, 0.01, 0.01, industries=_CHEM),
        _gas("benzene", "苯", "benzene", "ppm", 100.0, 0.1, 0.2, industries=_CHEM),
        _gas("methanol", "甲醇", "methanol", "ppm", 1000.0, 1.0, 1.0, industries=_CHEM),
        _gas("combustible_gas", "可燃气体", "combustible gas", "%LEL", 100.0, 1.0, 2.0),
        # --- process and environment ---
        SensorKind("temperature", "温度", "temperature", "℃", -40.0, 200.0, 30.0, resolution=0.1, deadband=0.5),
        SensorKind("pressure", "压力", "pressure", "MPa", 0.0, 10.0, 30.0, resolution=0.001, deadband=0.01),
        SensorKind("level", "液位", "level", "m", 0.0, 30.0, 30.0, resolution=0.01, deadband=0.05),
        SensorKind("flow", "流量", "flow", "m3/h", 0.0, 10000.0, 30.0, resolution=0.1, deadband=1.0),
        SensorKind("wind_speed", "风速", "wind speed", "m/s", 0.0, 15.0, 10.0, resolution=0.1, deadband=0.1,
                   industries=("coal_mine", "non_coal_mine")),
        SensorKind("dust", "粉尘", "dust", "mg/m3", 0.0, 1000.0, 30.0, resolution=0.1, deadband=1.0, gas=True),
        # --- switches (1 = on / running / open / energised) ---
        _switch("fan_state", "风机开停", "fan running", industries=("coal_mine", "non_coal_mine")),
        _switch("exhaust_fan_state", "事故排风机", "exhaust fan running",
                industries=("cold_storage", "hazardous_chemicals", "gas_pipeline")),
        _switch("feed_state", "馈电状态", "feed (power present)", industries=_COAL),
        _switch("power_state", "设备开停", "equipment powered"),
        _switch("door_state", "风门开关", "ventilation door open", industries=_COAL),
        _switch("valve_state", "紧急切断阀", "emergency shut-off valve open"),
        _switch("smoke", "烟雾", "smoke detected"),
        # --- tailings dams (尾矿库, non-coal mines) ---
        SensorKind("pond_level", "库水位", "tailings pond level", "m", 0.0, 2000.0, 600.0,
                   resolution=0.01, deadband=0.05, industries=_TAILINGS),
        SensorKind("seepage_line", "浸润线埋深", "seepage line depth", "m", 0.0, 100.0, 600.0,
                   resolution=0.01, deadband=0.05, industries=_TAILINGS),
        SensorKind("displacement", "表面位移", "displacement", "mm", -1000.0, 1000.0, 600.0,
                   resolution=0.1, deadband=0.5, industries=_TAILINGS),
        SensorKind("rainfall", "降雨量", "rainfall", "mm/h", 0.0, 200.0, 300.0, resolution=0.1,
                   deadband=0.5, industries=_TAILINGS),
    )
}


class UnknownKindError(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown sensor kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
        self.kind = kind


def get_kind(kind: str) -> SensorKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise UnknownKindError(kind) from None


def default_setpoints(kind: str, location_class: str = "") -> tuple[Setpoint, ...]:
    """Regulatory defaults for a kind at a location class (ValueError for an unknown class)."""
    get_kind(kind)
    return _sp.default_setpoints(kind, location_class)


def effective_setpoints(
    kind: str, location_class: str, overrides: Mapping[str, object] | None = None
) -> tuple[Setpoint, ...]:
    """Defaults merged with a sensor's overrides (which may only tighten them)."""
    k = get_kind(kind)
    return _sp.effective_setpoints(kind, location_class, overrides, deadband=k.deadband)


def check_overrides(kind: str, location_class: str, overrides: Mapping[str, object] | None) -> None:
    """Raise ValueError, with a sentence naming the setpoint, if ``overrides`` would loosen a
    regulatory setpoint (or name one the kind does not have). Called by the registry importer."""
    effective_setpoints(kind, location_class, overrides)


__all__ = [
    "KINDS",
    "LOCATION_CLASSES",
    "SensorKind",
    "Setpoint",
    "UnknownKindError",
    "check_overrides",
    "default_setpoints",
    "effective_setpoints",
    "get_kind",
]
