"""A read-only snapshot of the registry, as columns indexed by dense ids.

The collector, the detectors and the alerts stage all work from one snapshot; ``store`` loads it
(``store.registry_records.load_snapshot``) and reloads it when the registry changes. Dense ids are the
database's integer keys (``sensors.id``, ``gateways.id``, ``zones.id``); arrays are sized
``max id + 1`` so an id indexes them directly; index 0 and unused ids are inactive padding.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, slots=True)
class RegionInfo:
    code: str  # GB/T 2260, e.g. "360102"
    name: str
    parent: str | None
    level: str  # province | city | county


@dataclasses.dataclass(frozen=True, slots=True)
class EnterpriseInfo:
    id: str
    name: str
    region: str  # region code
    industry: str  # domain.industries.Industry value
    risk_colour: str | None  # assessed (静态评估): red | orange | yellow | blue
    active: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayInfo:
    id: int  # dense id
    enterprise: str
    code: str
    expected_interval_s: float
    active: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ZoneInfo:
    id: int  # dense id
    enterprise: str
    code: str
    name: str
    adjacent: tuple[int, ...]  # dense ids of adjacent zones


@dataclasses.dataclass(frozen=True, slots=True)
class SensorTable:
    """Per-sensor columns, each of length ``size`` (max sensor id + 1).

    active:             bool     registered and active
    gateway:            int32    dense gateway id (0 where none)
    zone:               int32    dense zone id (0 where none)
    kind:               StringDType canonical kind id ("" for padding)
    location_class:     StringDType e.g. "T1" for coal methane, "" where none
    expected_interval_s: float64
    range_min, range_max: float64 measuring range (NaN where unknown)
    retention_s:        float64  raw-data retention of the sensor's industry
    equipment:          int32    dense id of the sensor's equipment group (0 where none); None: no groups
    """

    active: np.ndarray
    gateway: np.ndarray
    zone: np.ndarray
    kind: np.ndarray
    location_class: np.ndarray
    expected_interval_s: np.ndarray
    range_min: np.ndarray
    range_max: np.ndarray
    retention_s: np.ndarray
    equipment: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.active.shape[0])


@dataclasses.dataclass(frozen=True, slots=True)
class SensorInfo:
    """Descriptive fields of one sensor (for messages, API and alert rendering)."""

    id: int
    enterprise: str
    code: str
    gateway: int
    zone: int
    kind: str
    unit: str
    location: str
    location_class: str
    setpoints: dict  # overrides from the registry, validated to only tighten regulatory ones
    equipment: str = ""  # code of the piece of equipment it belongs to (registry ``equipment``), "" where none


@dataclasses.dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    version: int  # increases with every registry change
    regions: dict[str, RegionInfo]
    enterprises: dict[str, EnterpriseInfo]
    gateways: dict[int, GatewayInfo]
    zones: dict[int, ZoneInfo]
    sensors: dict[int, SensorInfo]
    table: SensorTable
    # (enterprise, gateway code) -> gateway id
    gateway_ids: dict[tuple[str, str], int]
    # enterprise -> {sensor code -> sensor id}
    sensor_ids: dict[str, dict[str, int]]
