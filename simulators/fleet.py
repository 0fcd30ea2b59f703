"""A fleet: enterprises with their sites, gateways and sensors, loaded from YAML and built into columns.

The fleet file (simulators/presets/*.yaml is an example)::

    name: my-fleet
    seed: 7
    gateway: {jitter_share: 0.05, duplicate_share: 0.001}   # GatewayBehaviour defaults
    regions: [{code: "360000", name: 江西省}, {code: "360300", name: 萍乡市}]
    enterprises:
      - id: CM-360302-01
        name: 安源某煤矿
        region: "360302"
        industry: coal_mine
        site: {template: coal_mine, faces: 2, headings: 1}   # template defaults to the industry
        gateway: {outages_per_day: 2}                        # overrides for this enterprise

:func:`from_config` validates the whole document (errors name the key) and returns a
:class:`Fleet`: sensors sorted by gateway with their model parameters as numpy columns, which is
what the gateway emitter steps over.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from domain.errors import FixConfiguration
from domain.industries import Industry
from domain.topics import is_valid_id, status_topic, up_topic
from simulators import signals as sg
from simulators.encoder import sensor_prefix
from simulators.sites import SITE_BUILDERS, GatewaySpec, SensorSpec, ZoneSpec, build_site


class FleetConfigError(FixConfiguration):
    """The fleet file is wrong; the message names the key."""


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayBehaviour:
    """How a fleet's gateways misbehave. Shares are probabilities per message (or per gateway)."""

    interval_scale: float = 1.0  # multiplies every sampling period of the gateway's sensors
    jitter_share: float = 0.05  # each scan period is interval · (1 ± U·jitter_share)
    clock_skew_s: tuple[float, float] = (-2.0, 2.0)  # fixed device-clock offset per gateway, uniform
    bad_clock_share: float = 0.0  # share of gateways whose clock is off by bad_clock_offset_s
    bad_clock_offset_s: float = 3600.0
    max_batch: int = 50  # readings per message at most
    duplicate_share: float = 0.0  # messages sent twice (same payload)
    malformed_share: float = 0.0  # messages spoiled (simulators.encoder.MALFORMED_KINDS)
    outages_per_day: float = 0.0  # link outages (unclean disconnect → Last Will 'offline')
    outage_s: tuple[float, float] = (30.0, 300.0)
    backlog_max_readings: int = 200_000  # store-and-forward buffer; oldest dropped beyond it (counted)
    backlog_batch: int = 200  # readings per catch-up message after an outage
    calibration_every_h: float = 0.0  # 标校 session per gas sensor (0 = never)
    calibration_s: float = 300.0

    @classmethod
    def from_config(cls, raw: dict[str, Any], base: GatewayBehaviour | None, where: str) -> GatewayBehaviour:
        base = base or cls()
        if not isinstance(raw, dict):
            raise FleetConfigError(f"{where}: must be a mapping")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = dataclasses.asdict(base)
        for key, val in raw.items():
            if key not in fields:
                raise FleetConfigError(f"{where}.{key}: unknown gateway setting; known: {', '.join(fields)}")
            try:
                if isinstance(values[key], tuple):
                    lo, hi = (float(x) for x in val)
                    if lo > hi:
                        raise ValueError("lower bound above upper bound")
                    val = (lo, hi)
                elif isinstance(values[key], int) and not isinstance(values[key], bool):
                    val = int(val)
                else:
                    val = float(val)
            except (TypeError, ValueError) as exc:
                raise FleetConfigError(f"{where}.{key}: {val!r} is not valid ({exc})") from None
            values[key] = val
        b = cls(**values)
        for name in ("jitter_share", "bad_clock_share", "duplicate_share", "malformed_share"):
            if not 0.0 <= getattr(b, name) <= 1.0:
                raise FleetConfigError(f"{where}.{name}: must be within 0..1")
        if b.interval_scale <= 0 or b.max_batch < 1 or b.backlog_batch < 1 or b.jitter_share >= 0.5:
            raise FleetConfigError(f"{where}: interval_scale > 0, max_batch ≥ 1, backlog_batch ≥ 1, jitter_share < 0.5 required")
        return b


@dataclasses.dataclass(frozen=True, slots=True)
class EnterpriseSpec:
    id: str
    name: str
    region: str
    industry: str
    template: str
    site_params: dict[str, Any]
    behaviour: GatewayBehaviour
    risk_colour: str | None = None
    contacts: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FleetConfig:
    name: str
    seed: int
    regions: tuple[dict, ...]
    enterprises: tuple[EnterpriseSpec, ...]
    description: str = ""

    @classmethod
    def from_config(cls, doc: Any, *, seed: int | None = None) -> FleetConfig:
        if not isinstance(doc, dict):
            raise FleetConfigError("fleet file: top level must be a mapping")
        name = str(doc.get("name", "fleet"))
        fleet_seed = int(doc.get("seed", 0) if seed is None else seed)
        base = GatewayBehaviour.from_config(doc.get("gateway", {}), None, "gateway")
        regions = doc.get("regions", [])
        if not isinstance(regions, list):
            raise FleetConfigError("regions: must be a list")
        for i, r in enumerate(regions):
            if not isinstance(r, dict) or not {"code", "name"} <= set(r):
                raise FleetConfigError(f"regions[{i}]: needs code and name")
        ents_raw = doc.get("enterprises")
        if not isinstance(ents_raw, list) or not ents_raw:
            raise FleetConfigError("enterprises: must be a non-empty list")
        ents = []
        seen: set[str] = set()
        industries = {i.value for i in Industry}
        for i, e in enumerate(ents_raw):
            where = f"enterprises[{i}]"
            if not isinstance(e, dict):
                raise FleetConfigError(f"{where}: must be a mapping")
            for key in ("id", "name", "region", "industry"):
                if key not in e:
                    raise FleetConfigError(f"{where}.{key}: missing")
            eid = str(e["id"])
            if not is_valid_id(eid) or eid in seen:
                raise FleetConfigError(f"{where}.id: {eid!r} is invalid or repeated")
            seen.add(eid)
            if e["industry"] not in industries:
                raise FleetConfigError(f"{where}.industry: {e['industry']!r} is not one of {sorted(industries)}")
            site = dict(e.get("site") or {})
            template = site.pop("template", e["industry"])
            if template not in SITE_BUILDERS:
                raise FleetConfigError(f"{where}.site.template: unknown {template!r}; known: {sorted(SITE_BUILDERS)}")
            behaviour = GatewayBehaviour.from_config(e.get("gateway", {}), base, f"{where}.gateway")
            ents.append(EnterpriseSpec(eid, str(e["name"]), str(e["region"]), e["industry"], template, site, behaviour,
                                       e.get("risk_colour"), tuple(e.get("contacts") or ())))
        return cls(name, fleet_seed, tuple(regions), tuple(ents), str(doc.get("description", "")))


def load_fleet_config(path: Path, *, seed: int | None = None) -> FleetConfig:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FleetConfigError(f"fleet file {path}: {exc}") from exc
    return FleetConfig.from_config(doc, seed=seed)


@dataclasses.dataclass(frozen=True, slots=True)
class Fleet:
    """Runtime fleet: specs for the registry and columns for the emitter.

    Sensors are sorted by gateway; gateway g owns sensors ``gw_start[g] : gw_start[g] + gw_count[g]``.

    sensor_gateway:  int32[n]    dense gateway index
    sensor_period_scans: int32[n] the sensor is read every k-th scan of its gateway
    sensor_phase:    int32[n]    which scan (mod k) reads it
    sensor_kind:     list[str]   canonical kind id
    signal:          SignalTable model columns
    calibration_value: float64[n] NaN where the kind is never calibrated with gas
    gw_interval_s:   float64[g]  scan period (already scaled by interval_scale)
    gw_enterprise:   int32[g]    index into ``enterprises``
    """

    config: FleetConfig
    enterprises: tuple[EnterpriseSpec, ...]
    zones: tuple[tuple[int, ZoneSpec], ...]  # (enterprise index, zone)
    gateways: tuple[tuple[int, GatewaySpec], ...]
    sensors: tuple[tuple[int, SensorSpec], ...]
    sensor_gateway: np.ndarray
    sensor_period_scans: np.ndarray
    sensor_phase: np.ndarray
    sensor_kind: list[str]
    sensor_prefix: np.ndarray  # object[n] of bytes: encoder.sensor_prefix of each sensor
    signal: sg.SignalTable
    calibration_value: np.ndarray
    gw_interval_s: np.ndarray
    gw_enterprise: np.ndarray
    gw_start: np.ndarray
    gw_count: np.ndarray
    gw_key: np.ndarray  # uint64[g] hash key of each gateway
    up_topics: list[str]
    status_topics: list[str]

    @property
    def n_sensors(self) -> int:
        return len(self.sensors)

    @property
    def n_gateways(self) -> int:
        return len(self.gateways)

    def offered_rate(self) -> float:
        """Mean readings per second the fleet sends (before duplicates and outages)."""
        per_sensor = 1.0 / (self.gw_interval_s[self.sensor_gateway] * self.sensor_period_scans)
        return float(per_sensor.sum())

    def sensor_index(self, enterprise: str, sensor_id: str) -> int:
        for i, (e, s) in enumerate(self.sensors):
            if s.id == sensor_id and self.enterprises[e].id == enterprise:
                return i
        raise KeyError((enterprise, sensor_id))

    def with_rate(self, readings_per_s: float) -> Fleet:
        """The same fleet with every scan period scaled so it offers ``readings_per_s``."""
        factor = self.offered_rate() / readings_per_s
        return dataclasses.replace(self, gw_interval_s=self.gw_interval_s * factor)


def build_fleet(config: FleetConfig) -> Fleet:
    """Build every site (seeded per enterprise, so adding one enterprise leaves the others alone)."""
    zones, gateways, sensors = [], [], []
    for ei, ent in enumerate(config.enterprises):
        rng = np.random.default_rng([config.seed, ei])
        try:
            site = build_site(ent.template, rng, ent.site_params)
        except TypeError as exc:
            raise FleetConfigError(f"enterprises[{ei}].site: {exc}") from None
        zones += [(ei, z) for z in site.zones]
        gw_index = {g.id: len(gateways) + k for k, g in enumerate(site.gateways)}
        gateways += [(ei, g) for g in site.gateways]
        sensors += [(ei, gw_index[s.gateway], s) for s in site.sensors]
    sensors.sort(key=lambda x: x[1])  # stable: keeps site order within a gateway
    n_g = len(gateways)
    sensor_gateway = np.array([g for _, g, _ in sensors], dtype=np.int32)
    period = np.array([s.period_s for _, _, s in sensors], dtype=np.float64)
    gw_interval = np.full(n_g, np.inf)
    np.minimum.at(gw_interval, sensor_gateway, period)
    gw_interval[~np.isfinite(gw_interval)] = 60.0
    scans = np.maximum(1, np.round(period / gw_interval[sensor_gateway])).astype(np.int32)
    keys = np.array([hash_key(config.seed, config.enterprises[e].id, s.id) for e, _, s in sensors], dtype=np.uint64)
    rng = np.random.default_rng([config.seed, 0xF1EE7])
    phase = (rng.integers(0, 1 << 30, len(sensors)) % scans).astype(np.int32)
    scale = np.array([config.enterprises[e].behaviour.interval_scale for e, _ in gateways])
    calib = np.array([np.nan if sg.KIND_SIGNALS[s.kind].calibration_value is None else sg.KIND_SIGNALS[s.kind].calibration_value
                      for _, _, s in sensors], dtype=np.float64)
    counts = np.bincount(sensor_gateway, minlength=n_g).astype(np.int64)
    return Fleet(
        config=config,
        enterprises=config.enterprises,
        zones=tuple(zones),
        gateways=tuple(gateways),
        sensors=tuple((e, s) for e, _, s in sensors),
        sensor_gateway=sensor_gateway,
        sensor_period_scans=scans,
        sensor_phase=phase,
        sensor_kind=[s.kind for _, _, s in sensors],
        sensor_prefix=_object_array([sensor_prefix(s.id) for _, _, s in sensors]),
        signal=sg.stack([s.params for _, _, s in sensors], keys),
        calibration_value=calib,
        gw_interval_s=gw_interval * scale,
        gw_enterprise=np.array([e for e, _ in gateways], dtype=np.int32),
        gw_start=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        gw_count=counts,
        gw_key=np.array([hash_key(config.seed, config.enterprises[e].id, "gw:" + g.id) for e, g in gateways], dtype=np.uint64),
        up_topics=[up_topic(config.enterprises[e].id, g.id) for e, g in gateways],
        status_topics=[status_topic(config.enterprises[e].id, g.id) for e, g in gateways],
    )


def hash_key(seed: int, enterprise: str, item: str) -> int:
    """A stable 63-bit key of (seed, enterprise, sensor or gateway id) for the counter-based hash (FNV-1a)."""
    h = 0xCBF29CE484222325
    for byte in f"{seed}/{enterprise}/{item}".encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h >> 1


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
