"""Incident scenarios with ground truth, declared in YAML (simulators/scenarios/*.yaml).

A scenario file names an incident ``type`` (one of :data:`INCIDENT_TYPES`), where it happens
(``industry`` and a ``target`` zone kind or sensor role), parameter *ranges* and ``milestones``
(thresholds on the primary sensor with the grade a good system raises when they are crossed)::

    name: methane-fan-stop
    type: gas_accumulation
    industry: coal_mine
    target: {zone_kind: heading_face, kind: methane}
    params: {onset_s: [60, 300], equilibrium: [2.0, 3.5], tau_s: [300, 900], noise_std: [0.0, 0.02]}
    milestones: [{threshold: 1.0, grade: yellow}, {threshold: 1.5, grade: orange}]
    deadline_s: 60

:func:`bind` draws one incident of the family from the ranges by seed, picks the enterprise and
zone by the same seed, and computes its :class:`GroundTruth` from the noise-free curve: onset,
when each milestone is crossed (the first one is "dangerous"), the expected grade (the last
milestone's) and the deadline (last crossing + ``deadline_s``). Operators write their own drills by
copying a file and changing ranges, thresholds or target.
"""

from __future__ import annotations

import dataclasses
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from domain.errors import FixConfiguration
from simulators import signals as sg
from simulators.fleet import Fleet

GRADES = ("blue", "yellow", "orange", "red")
INCIDENT_TYPES = ("gas_accumulation", "pressure_decay", "level_rise", "drift", "stuck", "dead_gateway")
_HORIZON_S = 6 * 3600.0
_GRID_S = 1.0


class ScenarioError(FixConfiguration):
    """A scenario file is wrong or cannot be placed in the fleet; the message says which."""


@dataclasses.dataclass(frozen=True, slots=True)
class Milestone:
    threshold: float
    grade: str
    at_s: float  # epoch seconds when the noise-free primary curve crosses the threshold
    why: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class GroundTruth:
    """What a good system should see. Times are epoch seconds (UTC)."""

    scenario: str
    seed: int
    enterprise: str
    zone: str | None
    gateway: str | None
    sensors: tuple[str, ...]  # every sensor whose readings the incident changes
    primary: tuple[str, ...]  # the sensors the milestones are read on
    onset_s: float
    dangerous_s: float | None  # first milestone crossing; None for sensor/gateway faults
    expected_grade: str
    deadline_s: float
    milestones: tuple[Milestone, ...]
    params: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = [dataclasses.asdict(m) for m in self.milestones]
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    title: str
    type: str
    industry: str
    target: dict[str, Any]
    params: dict[str, tuple[float, float]]
    milestones: tuple[dict[str, Any], ...]
    switches: tuple[dict[str, Any], ...]
    expected_grade: str | None  # for faults with no milestone
    deadline_s: float

    @classmethod
    def from_config(cls, doc: Any, where: str) -> ScenarioSpec:
        if not isinstance(doc, dict):
            raise ScenarioError(f"{where}: must be a mapping")
        for key in ("name", "type", "industry"):
            if key not in doc:
                raise ScenarioError(f"{where}.{key}: missing")
        if doc["type"] not in INCIDENT_TYPES:
            raise ScenarioError(f"{where}.type: {doc['type']!r} is not one of {INCIDENT_TYPES}")
        params: dict[str, tuple[float, float]] = {}
        for k, v in (doc.get("params") or {}).items():
            try:
                lo, hi = (float(x) for x in (v if isinstance(v, list) else [v, v]))
            except (TypeError, ValueError):
                raise ScenarioError(f"{where}.params.{k}: must be a number or [low, high]") from None
            if lo > hi:
                raise ScenarioError(f"{where}.params.{k}: low {lo} above high {hi}")
            params[k] = (lo, hi)
        if "onset_s" not in params:
            raise ScenarioError(f"{where}.params.onset_s: missing (seconds after the scenario starts)")
        milestones = tuple(doc.get("milestones") or ())
        for i, m in enumerate(milestones):
            if not isinstance(m, dict) or "threshold" not in m or m.get("grade") not in GRADES:
                raise ScenarioError(f"{where}.milestones[{i}]: needs threshold and grade in {GRADES}")
        grade = doc.get("expected_grade")
        if not milestones and grade not in GRADES:
            raise ScenarioError(f"{where}.expected_grade: required (one of {GRADES}) when there are no milestones")
        return cls(str(doc["name"]), str(doc.get("title", doc["name"])), doc["type"], str(doc["industry"]),
                   dict(doc.get("target") or {}), params, milestones, tuple(doc.get("switches") or ()),
                   grade, float(doc.get("deadline_s", 120.0)))


def scenario_dir() -> Path:
    return Path(str(resources.files("simulators") / "scenarios"))


def scenario_names() -> list[str]:
    return sorted(p.stem for p in scenario_dir().glob("*.yaml"))


def load_scenario(name_or_path: str | Path) -> ScenarioSpec:
    """A shipped scenario by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = scenario_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            raise ScenarioError(f"unknown scenario {name_or_path!r}; shipped: {', '.join(scenario_names())}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"scenario file {path}: {exc}") from exc
    return ScenarioSpec.from_config(doc, path.name)


# ---- incidents --------------------------------------------------------------------------------
class _Incident:
    """Base: changes nothing. Subclasses override the hooks the emitter calls."""

    def __init__(self) -> None:
        self.truth: GroundTruth | None = None

    def modify_clean(self, idx: np.ndarray, t_s: np.ndarray, clean: np.ndarray) -> None:
        pass

    def modify_final(self, idx: np.ndarray, t_s: np.ndarray, value: np.ndarray, quality: np.ndarray) -> None:
        pass

    def dead_gateways(self) -> dict[int, float]:
        return {}


class _CurveIncident(_Incident):
    """Adds ``weight[s] · shape(t − onset)`` to the clean value of each affected sensor s."""

    def __init__(self, fleet: Fleet, sensors: np.ndarray, weights: np.ndarray, onset_s: float,
                 shape, noise_std: float, seed: int) -> None:
        super().__init__()
        order = np.argsort(sensors)
        self.sensors = np.asarray(sensors, dtype=np.int64)[order]
        self.weights = np.asarray(weights, dtype=np.float64)[order]
        self.onset_s = onset_s
        self.shape = shape
        self.noise_std = noise_std
        self.fleet = fleet
        self.switches: list[tuple[np.ndarray, float, float]] = []  # (sensors, value, from time)

    def _hit(self, idx: np.ndarray, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self.sensors, idx).clip(max=self.sensors.shape[0] - 1)
        mask = (self.sensors[pos] == idx) & (t_s >= self.onset_s)
        return mask, pos

    def modify_clean(self, idx, t_s, clean):
        mask, pos = self._hit(idx, t_s)
        if mask.any():
            clean[mask] += self.weights[pos[mask]] * self.shape(t_s[mask] - self.onset_s)

    def modify_final(self, idx, t_s, value, quality):
        mask, pos = self._hit(idx, t_s)
        if mask.any() and self.noise_std > 0:
            sig = self.fleet.signal.cols
            i = idx[mask]
            t_ms = np.round(t_s[mask] * 1000.0).astype(np.int64)
            z = sg.hash_normal(self.fleet.signal.key[i] ^ np.uint64(0x1C1D), t_ms)
            v = value[mask] + self.noise_std * np.abs(self.weights[pos[mask]]) * z
            value[mask] = sg.quantise(v, sig["resolution"][i], sig["lo"][i], sig["hi"][i])
        for sensors, v, from_s in self.switches:
            m = np.isin(idx, sensors) & (t_s >= from_s)
            value[m] = v


class _FaultIncident(_Incident):
    def __init__(self, sensor: int, onset_s: float, mode: str, amount: float) -> None:
        super().__init__()
        self.sensor, self.onset_s, self.mode, self.amount = sensor, onset_s, mode, amount

    def modify_final(self, idx, t_s, value, quality):
        m = (idx == self.sensor) & (t_s >= self.onset_s)
        if not m.any():
            return
        if self.mode == "drift":
            value[m] = np.round(value[m] + self.amount * (t_s[m] - self.onset_s) / 3600.0, 6)
        else:  # stuck: the last good value, forever, without noise
            value[m] = self.amount


class _DeadGateway(_Incident):
    def __init__(self, gateway: int, onset_s: float) -> None:
        super().__init__()
        self._dead = {gateway: onset_s}

    def dead_gateways(self):
        return self._dead


# ---- binding a spec to a fleet ------------------------------------------------------------------
def bind(spec: ScenarioSpec, fleet: Fleet, start_s: float, seed: int) -> _Incident:
    """Draw one incident of the scenario's family and place it in the fleet; sets ``.truth``."""
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
    p = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in spec.params.items()}
    onset = start_s + p["onset_s"]
    ents = [i for i, e in enumerate(fleet.enterprises) if e.industry == spec.industry]
    if not ents:
        raise ScenarioError(f"scenario {spec.name}: the fleet has no {spec.industry} enterprise")
    zone_kind = spec.target.get("zone_kind")
    candidates = [(ei, z) for ei, z in fleet.zones if ei in ents and (zone_kind is None or z.kind == zone_kind)]
    if spec.target.get("enterprise"):
        candidates = [(ei, z) for ei, z in candidates if fleet.enterprises[ei].id == spec.target["enterprise"]]
    if not candidates:
        raise ScenarioError(f"scenario {spec.name}: no zone of kind {zone_kind!r} in a {spec.industry} enterprise")
    ei, zone = candidates[int(rng.integers(len(candidates)))]
    ent = fleet.enterprises[ei]
    in_zone = [i for i, (e, s) in enumerate(fleet.sensors) if e == ei and s.zone == zone.id]

    def of(role=None, kind=None, zones=(zone.id,)):
        return [i for i, (e, s) in enumerate(fleet.sensors)
                if e == ei and s.zone in zones and (role is None or s.role == role) and (kind is None or s.kind == kind)]

    sensor_ids = lambda ix: tuple(fleet.sensors[i][1].id for i in ix)  # noqa: E731
    t_kind = spec.target.get("kind")

    if spec.type == "dead_gateway":
        gws = sorted({int(fleet.sensor_gateway[i]) for i in in_zone}) or [
            g for g, (e, gs) in enumerate(fleet.gateways) if e == ei and gs.zone == zone.id]
        g = gws[int(rng.integers(len(gws)))]
        inc = _DeadGateway(g, onset)
        members = [i for i in range(fleet.n_sensors) if fleet.sensor_gateway[i] == g]
        inc.truth = _fault_truth(spec, seed, ent.id, zone.id, fleet.gateways[g][1].id, sensor_ids(members), (), onset, p)
        return inc

    if spec.type in ("drift", "stuck"):
        cands = of(kind=t_kind, role=spec.target.get("role"))
        if not cands:
            raise ScenarioError(f"scenario {spec.name}: no {t_kind} sensor in zone kind {zone_kind}")
        s = cands[int(rng.integers(len(cands)))]
        if spec.type == "drift":
            amount = p.get("rate_per_h", 0.1) * (1.0 if rng.random() < 0.5 or spec.target.get("upward") else -1.0)
            if spec.target.get("upward"):
                amount = abs(amount)
        else:
            clean = sg.clean_values(fleet.signal, np.array([s]), np.array([onset]))
            sig = fleet.signal.cols
            amount = float(sg.quantise(clean, sig["resolution"][[s]], sig["lo"][[s]], sig["hi"][[s]])[0])
        p["amount"] = amount
        inc = _FaultIncident(s, onset, spec.type, amount)
        inc.truth = _fault_truth(spec, seed, ent.id, zone.id, None, sensor_ids([s]), sensor_ids([s]), onset, p)
        return inc

    noise = p.get("noise_std", 0.0)
    if spec.type == "gas_accumulation":
        primary_role = spec.target.get("role", "face")
        prim = of(role=primary_role, kind=t_kind) or of(kind=t_kind)
        gas = of(kind=t_kind)
        if not prim:
            raise ScenarioError(f"scenario {spec.name}: no {t_kind} sensor in zone {zone.id}")
        weights_cfg = spec.target.get("weights", {})
        w = []
        for k, i in enumerate(gas):
            role = fleet.sensors[i][1].role
            w.append(1.0 if i == prim[0] else float(weights_cfg.get(role, p.get("spread", 0.7))))
        base0 = float(sg.clean_values(fleet.signal, np.array([prim[0]]), np.array([onset]))[0])
        ceq, tau = p["equilibrium"], p["tau_s"]
        shape = lambda dt, a=ceq - base0, tau=tau: a * (1.0 - np.exp(-dt / tau))  # noqa: E731
        inc = _CurveIncident(fleet, np.array(gas), np.array(w), onset, shape, noise, seed)
        primary = [prim[0]]
    elif spec.type == "pressure_decay":
        hops = _zone_hops(fleet, ei, zone.id, "pipeline_station")
        press, weights = [], []
        for zid, h in hops.items():
            for i in of(role="line_pressure", zones=(zid,)):
                press.append(i)
                weights.append(-p["pressure_drop_mpa"] * p.get("hop_decay", 0.5) ** h)
        flows = of(role="line_flow")
        fw = [float(fleet.signal.cols["base"][i]) * p.get("flow_rise_share", 0.3) for i in flows]
        spaces = [z.id for e, z in fleet.zones if e == ei and z.kind == "underground_space" and zone.id in z.adjacent]
        gas = of(role="space_gas", zones=tuple(spaces))
        if not gas:
            raise ScenarioError(f"scenario {spec.name}: station {zone.id} has no adjacent underground space with a gas sensor")
        tau, gtau, delay, ceq = p["tau_s"], p["gas_tau_s"], p.get("gas_delay_s", 0.0), p["gas_equilibrium"]

        sensors = np.array(press + flows + gas)
        kind_of = np.array([0] * len(press) + [0] * len(flows) + [1] * len(gas))
        wts = np.array(weights + fw + [1.0] * len(gas))
        order = np.argsort(sensors)
        kind_sorted = kind_of[order]

        class _Leak(_CurveIncident):
            def modify_clean(self, idx, t_s, clean):
                mask, pos = self._hit(idx, t_s)
                if mask.any():
                    dt = t_s[mask] - self.onset_s
                    k = kind_sorted[pos[mask]]
                    line = 1.0 - np.exp(-dt / tau)
                    space = np.where(dt > delay, ceq * (1.0 - np.exp(-np.maximum(dt - delay, 0.0) / gtau)), 0.0)
                    clean[mask] += self.weights[pos[mask]] * np.where(k == 1, space, line)

        inc = _Leak(fleet, sensors, wts, onset, None, noise, seed)
        primary = [gas[0]]
    elif spec.type == "level_rise":
        prim = of(role=spec.target.get("role", "tank_level"))
        if not prim:
            raise ScenarioError(f"scenario {spec.name}: no tank level in zone {zone.id}")
        prim = [prim[int(rng.integers(len(prim)))]]
        s = prim[0]
        sp = fleet.sensors[s][1].setpoints or {}
        height = float(sp.get("hh", 15.0)) / 0.95
        rate = p["rate_pct_per_min"] / 100.0 * height / 60.0  # m/s
        base_at_onset = float(sg.clean_values(fleet.signal, np.array([s]), np.array([onset]))[0])

        class _Overfill(_CurveIncident):
            def modify_clean(self, idx, t_s, clean):
                mask, _ = self._hit(idx, t_s)
                if mask.any():  # the fill valve stays open: level climbs from where it was
                    clean[mask] = np.maximum(clean[mask], base_at_onset + rate * (t_s[mask] - self.onset_s))

        inc = _Overfill(fleet, np.array(prim), np.array([1.0]), onset, None, noise, seed)
        primary = prim
        p["tank_height_m"] = height
    else:  # pragma: no cover - INCIDENT_TYPES is checked when loading
        raise ScenarioError(spec.type)

    # switch consequences: {role, value, at: onset} or {role, value, when_ge: X}
    thresholds = [_threshold(m["threshold"], fleet, primary[0], spec.name) for m in spec.milestones]
    milestones_t = _crossings(fleet, inc, primary[0], onset, thresholds
                              + [float(sw["when_ge"]) for sw in spec.switches if "when_ge" in sw],
                              falling=bool(spec.target.get("falling")))
    for sw in spec.switches:
        ix = of(role=sw["role"])
        if not ix:
            raise ScenarioError(f"scenario {spec.name}: no sensor with role {sw['role']!r} in zone {zone.id}")
        at = onset if "when_ge" not in sw else milestones_t[float(sw["when_ge"])]
        if at is None:
            raise ScenarioError(f"scenario {spec.name}: switch on {sw['role']} never triggers (when_ge {sw['when_ge']})")
        inc.switches.append((np.array(ix), float(sw["value"]), at))
    touched = sorted(set(inc.sensors.tolist()) | {i for ix, _, _ in inc.switches for i in ix.tolist()})
    ms = []
    for m, thr in zip(spec.milestones, thresholds, strict=True):
        at = milestones_t[thr]
        if at is None:
            raise ScenarioError(f"scenario {spec.name} (seed {seed}): milestone {m['threshold']} is never reached "
                                f"within {_HORIZON_S:.0f} s; widen the parameter ranges")
        ms.append(Milestone(thr, m["grade"], at, str(m.get("why", ""))))
    last = max(ms, key=lambda m: m.at_s)
    grade = max((m.grade for m in ms), key=GRADES.index)
    inc.truth = GroundTruth(spec.name, seed, ent.id, zone.id, None, sensor_ids(touched), sensor_ids(primary),
                            onset, min(m.at_s for m in ms), grade, last.at_s + spec.deadline_s, tuple(ms), p)
    return inc


def _threshold(raw: Any, fleet: Fleet, s: int, name: str) -> float:
    """A number, or ``setpoint:NAME`` read from the primary sensor's registry setpoints."""
    if isinstance(raw, str) and raw.startswith("setpoint:"):
        sp = fleet.sensors[s][1].setpoints or {}
        key = raw.split(":", 1)[1]
        if key not in sp:
            raise ScenarioError(f"scenario {name}: sensor {fleet.sensors[s][1].id} has no setpoint {key!r}")
        return float(sp[key])
    return float(raw)


def _fault_truth(spec, seed, ent, zone, gateway, sensors, primary, onset, p) -> GroundTruth:
    return GroundTruth(spec.name, seed, ent, zone, gateway, sensors, primary, onset, None,
                       spec.expected_grade or "blue", onset + spec.deadline_s, (), p)


def _crossings(fleet: Fleet, inc: _Incident, s: int, onset: float, thresholds: list[float],
               falling: bool = False) -> dict[float, float | None]:
    """First time after onset the noise-free curve of sensor s (with the incident) crosses each threshold."""
    t = onset + np.arange(0.0, _HORIZON_S, _GRID_S)
    idx = np.full(t.shape[0], s, dtype=np.int64)
    clean = sg.clean_values(fleet.signal, idx, t)
    inc.modify_clean(idx, t, clean)
    clean = np.clip(clean, fleet.signal.cols["lo"][s], fleet.signal.cols["hi"][s])
    out: dict[float, float | None] = {}
    for thr in thresholds:
        hit = np.flatnonzero(clean <= thr if falling else clean >= thr)
        out[thr] = float(t[hit[0]]) if hit.size else None
    return out


def _zone_hops(fleet: Fleet, ei: int, start: str, kind: str) -> dict[str, int]:
    """Breadth-first hop count from ``start`` over adjacent zones of ``kind`` in one enterprise."""
    zones = {z.id: z for e, z in fleet.zones if e == ei and z.kind == kind}
    hops, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for zid in frontier:
            for a in zones[zid].adjacent:
                if a in zones and a not in hops:
                    hops[a] = hops[zid] + 1
                    nxt.append(a)
        frontier = nxt
    return hops
