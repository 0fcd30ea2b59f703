"""Site templates: the zones, gateways and sensors of one enterprise of each industry.

Each builder takes the enterprise's ``site:`` parameters from the fleet file and returns a
:class:`Site`. Values are physically plausible for the location (coal methane by 规程 location
class, tanks filling and drawing, cold rooms defrosting, gas demand following the day) and kept
well below the first setpoints, so a healthy fleet raises no alarms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from simulators import signals as sg
from simulators.signals import KIND_SIGNALS, SHIFT_LAG_DEFAULT_S, SHIFT_LAG_S, SignalParams


@dataclasses.dataclass(frozen=True, slots=True)
class ZoneSpec:
    id: str
    name: str
    kind: str  # working_face, return_roadway, intake_roadway, heading_face, tank_farm, process_unit,
    #            machine_room, cold_room, pipeline_station, underground_space, tailings_dam, stope
    adjacent: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class GatewaySpec:
    id: str
    name: str
    zone: str


@dataclasses.dataclass(frozen=True, slots=True)
class SensorSpec:
    id: str
    gateway: str
    zone: str
    kind: str
    location: str
    params: SignalParams
    period_s: float
    location_class: str | None = None
    role: str = ""
    setpoints: dict[str, float] | None = None  # registry overrides (h/hh on tank levels …)  # what a scenario selects on: "face", "return", "local_fan", "exhaust_fan", "leak_space" …


@dataclasses.dataclass(slots=True)
class Site:
    zones: list[ZoneSpec] = dataclasses.field(default_factory=list)
    gateways: list[GatewaySpec] = dataclasses.field(default_factory=list)
    sensors: list[SensorSpec] = dataclasses.field(default_factory=list)


def _p(kind: str, base: float, **kw) -> SignalParams:
    k = KIND_SIGNALS[kind]
    kw.setdefault("shift_lag_s", SHIFT_LAG_S.get(kind, SHIFT_LAG_DEFAULT_S))
    return SignalParams(base=base, noise_std=k.noise_std, resolution=k.resolution, lo=k.lo, hi=k.hi, **kw)


class _Builder:
    def __init__(self, rng: np.random.Generator) -> None:
        self.site = Site()
        self.rng = rng
        self._seq: dict[str, int] = {}

    def zone(self, id: str, name: str, kind: str, adjacent: tuple[str, ...] = ()) -> str:
        self.site.zones.append(ZoneSpec(id, name, kind, adjacent))
        return id

    def gateway(self, id: str, name: str, zone: str) -> str:
        self.site.gateways.append(GatewaySpec(id, name, zone))
        return id

    def sensor(self, code: str, gateway: str, zone: str, kind: str, location: str, params: SignalParams,
               location_class: str | None = None, role: str = "", period_s: float | None = None,
               setpoints: dict[str, float] | None = None) -> str:
        n = self._seq[gateway] = self._seq.get(gateway, 0) + 1
        gw_no = len(self.site.gateways)
        sid = f"{code}-{gw_no:02d}{n:02d}"
        period = KIND_SIGNALS[kind].period_s if period_s is None else period_s
        self.site.sensors.append(SensorSpec(sid, gateway, zone, kind, location, params, period, location_class, role, setpoints))
        return sid

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))


# Coal methane baselines by 规程 location class (%VOL, maintenance shift) and the cutting uplift.
COAL_METHANE_BASE = {"T0": 0.32, "T1": 0.22, "T2": 0.26, "T3": 0.04}
COAL_CUTTING_UPLIFT = 0.6  # methane emission while cutting: +60 % of the maintenance-shift level


def coal_mine(b: _Builder, faces: int = 1, headings: int = 1) -> Site:
    for i in range(1, faces + 1):
        wf, rw, iw = f"WF{i}", f"RW{i}", f"IW{i}"
        b.zone(wf, f"{i}号采煤工作面", "working_face", (rw, iw))
        b.zone(rw, f"{i}号工作面回风巷", "return_roadway", (wf,))
        b.zone(iw, f"{i}号工作面进风巷", "intake_roadway", (wf,))
        g = b.gateway(f"KJ-WF{i}", f"{i}号采煤工作面分站", wf)
        for lc, zone, loc in (("T0", wf, "采煤工作面上隅角"), ("T1", wf, "采煤工作面"),
                              ("T2", rw, "采煤工作面回风巷"), ("T3", iw, "采煤工作面进风巷")):
            base = COAL_METHANE_BASE[lc] * b.u(0.8, 1.2)
            b.sensor("CH4", g, zone, "methane", loc, _p("methane", base, shift_amp=base * COAL_CUTTING_UPLIFT),
                     location_class=lc, role={"T1": "face", "T2": "return", "T0": "corner", "T3": "intake"}[lc])
        b.sensor("CO", g, rw, "co", "采煤工作面回风巷", _p("co", b.u(2.0, 4.0), shift_amp=2.0), location_class="coal")
        b.sensor("O2", g, wf, "o2", "采煤工作面", _p("o2", 20.7, shift_amp=-0.1), location_class="coal")
        b.sensor("T", g, wf, "temperature", "采煤工作面", _p("temperature", b.u(20.0, 22.5), shift_amp=1.2, diurnal_amp=0.3), location_class="coal_face")
        b.sensor("FS", g, rw, "wind_speed", "采煤工作面回风巷", _p("wind_speed", b.u(1.8, 2.6)))
        b.sensor("DUST", g, wf, "dust", "采煤机司机处", _p("dust", 1.5, shift_amp=b.u(3.0, 6.0)))
        b.sensor("KD", g, wf, "feed_state", "工作面非本安电源馈电", _p("feed_state", 1.0), role="feed")
    for j in range(1, headings + 1):
        hf = f"HF{j}"
        b.zone(hf, f"{j}号掘进工作面", "heading_face", tuple(f"RW{i}" for i in range(1, min(faces, 1) + 1)))
        g = b.gateway(f"KJ-HF{j}", f"{j}号掘进工作面分站", hf)
        for lc, loc, role in (("T1", "掘进工作面", "face"), ("T2", "掘进工作面回风流", "return"), ("T3", "局部通风机前", "intake")):
            base = COAL_METHANE_BASE[lc] * b.u(0.8, 1.2)
            b.sensor("CH4", g, hf, "methane", loc, _p("methane", base, shift_amp=base * COAL_CUTTING_UPLIFT),
                     location_class=lc, role=role)
        b.sensor("FJ", g, hf, "fan_state", "局部通风机", _p("fan_state", 1.0), role="local_fan")
        b.sensor("KD", g, hf, "feed_state", "掘进巷道非本安电源馈电", _p("feed_state", 1.0), role="feed")
        b.sensor("CO", g, hf, "co", "掘进工作面回风流", _p("co", b.u(2.0, 4.0), shift_amp=1.5), location_class="coal")
        b.sensor("T", g, hf, "temperature", "掘进工作面", _p("temperature", b.u(20.0, 22.5), shift_amp=1.0), location_class="coal_face")
        b.sensor("FS", g, hf, "wind_speed", "掘进巷道", _p("wind_speed", b.u(0.6, 1.0)), role="airflow")
    return b.site


TANK_HEIGHT_M = (12.0, 18.0)


def hazardous_chemicals(b: _Builder, tanks: int = 4) -> Site:
    tf, pu = b.zone("TF1", "储罐区", "tank_farm", ("PU1",)), b.zone("PU1", "生产装置区", "process_unit", ("TF1",))
    g = b.gateway("GW-TF1", "储罐区数据采集网关", tf)
    for i in range(1, tanks + 1):
        height = b.u(*TANK_HEIGHT_M)
        lo = sg.TANK.low_pct / 100.0 * height * b.u(0.9, 1.1)
        hi = sg.TANK.high_pct / 100.0 * height * b.u(0.95, 1.05)
        period = sg.TANK.period_s * b.u(0.8, 1.25)
        b.sensor("LT", g, tf, "level", f"{i}#储罐液位", _p(
            "level", lo, cycle_kind=sg.CYCLE_TANK, cycle_amp=hi - lo, cycle_period_s=period,
            cycle_phase_s=b.u(0, period), cycle_on_share=sg.TANK.fill_share), role="tank_level",
            setpoints={"h": round(0.90 * height, 2), "hh": round(0.95 * height, 2)})
        b.sensor("TT", g, tf, "temperature", f"{i}#储罐温度", _p("temperature", b.u(22.0, 26.0), diurnal_amp=3.0))
        p0 = b.u(0.45, 0.65)
        b.sensor("PT", g, tf, "pressure", f"{i}#储罐压力", _p("pressure", p0, diurnal_amp=0.04))
        b.sensor("LEL", g, tf, "combustible_gas", f"{i}#储罐防火堤内", _p("combustible_gas", 0.3), role="tank_gas")  # GB/T 50493 25/50 %LEL
        if i % 2 == 1:
            b.sensor("H2S", g, tf, "h2s", f"{i}#储罐区", _p("h2s", 0.3))
    g2 = b.gateway("GW-PU1", "装置区数据采集网关", pu)
    for k in range(1, 3):
        b.sensor("LEL", g2, pu, "combustible_gas", f"装置区{k}号可燃气体探测器", _p("combustible_gas", 0.3))
    b.sensor("CO", g2, pu, "co", "装置区", _p("co", 1.0))
    b.sensor("TT", g2, pu, "temperature", "反应器出口", _p("temperature", b.u(80.0, 95.0)))
    b.sensor("PT", g2, pu, "pressure", "反应器", _p("pressure", b.u(1.2, 1.6)))
    b.sensor("FT", g2, pu, "flow", "进料流量", _p("flow", b.u(40.0, 60.0), diurnal_amp=2.0))
    return b.site


def cold_storage(b: _Builder, rooms: int = 3) -> Site:
    mr = b.zone("MR1", "氨制冷机房", "machine_room", tuple(f"CR{i}" for i in range(1, rooms + 1)))
    g = b.gateway("GW-MR1", "机房PLC网关", mr)
    b.sensor("NH3", g, mr, "nh3", "压缩机组上方", _p("nh3", b.u(2.0, 5.0)), role="leak", location_class="machine_room")
    b.sensor("NH3", g, mr, "nh3", "事故排风机吸入口", _p("nh3", b.u(1.5, 4.0)), role="leak", location_class="machine_room")
    b.sensor("PT", g, mr, "pressure", "排气压力(高压侧)", _p("pressure", b.u(1.05, 1.25), diurnal_amp=0.12))
    b.sensor("PT", g, mr, "pressure", "吸气压力(低压侧)", _p("pressure", b.u(0.03, 0.07)))
    b.sensor("TT", g, mr, "temperature", "机房", _p("temperature", b.u(24.0, 28.0), diurnal_amp=3.0))
    b.sensor("LT", g, mr, "level", "贮氨器液位", _p("level", b.u(0.6, 0.9)))
    b.sensor("PF", g, mr, "exhaust_fan_state", "事故排风机", _p("exhaust_fan_state", 0.0), role="exhaust_fan")
    g2 = b.gateway("GW-CR", "库房温度采集网关", f"CR1")
    for i in range(1, rooms + 1):
        b.zone(f"CR{i}", f"{i}号冷间", "cold_room", (mr,))
        b.sensor("TT", g2, f"CR{i}", "temperature", f"{i}号冷间", _p(
            "temperature", b.u(-19.5, -17.5),
            cycle_kind=sg.CYCLE_DEFROST, cycle_amp=sg.DEFROST.rise_c, cycle_period_s=sg.DEFROST.period_s,
            cycle_phase_s=b.u(0, sg.DEFROST.period_s), cycle_on_share=sg.DEFROST.duration_s / sg.DEFROST.period_s,
            event_amp=sg.DOORS.rise_c, event_per_hour=sg.DOORS.per_hour, event_tau_s=sg.DOORS.tau_s), role="room_temp",
            location_class="cold_room")
        b.sensor("NH3", g2, f"CR{i}", "nh3", f"{i}号冷间顶部", _p("nh3", b.u(0.5, 1.5)))
    return b.site


# Gas network: medium-pressure A (0.2–0.4 MPa); the pressure drop grows with the square of demand.
GAS_STATION_PRESSURE_MPA = 0.38
GAS_PRESSURE_STEP_MPA = 0.015  # per station further from the gate station
GAS_PRESSURE_DROP_MPA = 0.02  # extra drop at the evening peak per unit demand² above the mean


def gas_pipeline(b: _Builder, stations: int = 4, spaces_per_station: int = 1) -> Site:
    ids = [f"ST{i}" for i in range(1, stations + 1)]
    for i, st in enumerate(ids):
        adj = tuple(x for x in (ids[i - 1] if i > 0 else None, ids[i + 1] if i + 1 < stations else None) if x)
        spaces = tuple(f"US{i + 1}{m}" for m in range(1, spaces_per_station + 1))
        b.zone(st, f"{i + 1}号调压站", "pipeline_station", adj + spaces)
        g = b.gateway(f"RTU-{st}", f"{i + 1}号调压站RTU", st)
        p = GAS_STATION_PRESSURE_MPA - GAS_PRESSURE_STEP_MPA * i
        b.sensor("PT", g, st, "pressure", "出站压力", _p(
            "pressure", p, demand_amp=-GAS_PRESSURE_DROP_MPA * (1 + 0.3 * i), demand_exp=2.0), role="line_pressure", period_s=30.0)
        q = b.u(800.0, 2500.0)
        b.sensor("FT", g, st, "flow", "出站流量", _p("flow", q, demand_amp=q), role="line_flow", period_s=30.0)
        b.sensor("TT", g, st, "temperature", "站内", _p("temperature", b.u(16.0, 20.0), diurnal_amp=5.0), period_s=60.0)
        b.sensor("LEL", g, st, "combustible_gas", "调压箱内", _p("combustible_gas", 0.3), period_s=30.0,
                 location_class="gas_station")
        for m in range(1, spaces_per_station + 1):
            us = f"US{i + 1}{m}"
            b.zone(us, f"{i + 1}号站旁第{m}处相邻地下空间(窨井)", "underground_space", (st,))
            gu = b.gateway(f"NB-{us}", f"{us}窨井监测终端", us)
            b.sensor("LEL", gu, us, "combustible_gas", "窨井内", _p("combustible_gas", 0.4), role="space_gas", period_s=30.0,
                     location_class="underground_space")
    return b.site


def non_coal_mine(b: _Builder, dams: int = 1) -> Site:
    """A metal mine: its tailings dam (尾矿库) on-line monitoring and an underground stope."""
    for d in range(1, dams + 1):
        td = b.zone(f"TD{d}", f"{d}号尾矿库", "tailings_dam")
        g = b.gateway(f"GW-TD{d}", f"{d}号尾矿库在线监测站", td)
        crest = b.u(150.0, 260.0)  # dam crest elevation, m a.s.l.
        b.sensor("KSW", g, td, "pond_level", "库水位", _p("pond_level", crest - b.u(6.0, 9.0), diurnal_amp=0.02),
                 role="pond_level")
        for k in range(1, 4):
            b.sensor("JRX", g, td, "seepage_line", f"坝体{k}号浸润线", _p("seepage_line", b.u(8.0, 14.0)))
            b.sensor("WY", g, td, "displacement", f"坝体{k}号表面位移", _p("displacement", b.u(-3.0, 3.0)))
    st = b.zone("UG1", "井下采场", "stope")
    g = b.gateway("KJ-UG1", "井下监测分站", st)
    b.sensor("CO", g, st, "co", "采场回风", _p("co", b.u(2.0, 5.0), shift_amp=3.0))
    b.sensor("O2", g, st, "o2", "采场", _p("o2", 20.6))
    b.sensor("FS", g, st, "wind_speed", "采场回风", _p("wind_speed", b.u(0.8, 1.5)))
    b.sensor("FJ", g, st, "fan_state", "局部通风机", _p("fan_state", 1.0), role="local_fan")
    b.sensor("T", g, st, "temperature", "采场", _p("temperature", b.u(24.0, 27.0)))
    return b.site


_UNIFORM_KINDS = ("methane", "co", "o2", "temperature", "wind_speed", "pressure", "flow", "combustible_gas", "nh3", "level")
_UNIFORM_BASE = {"methane": 0.2, "co": 3.0, "o2": 20.7, "temperature": 22.0, "wind_speed": 2.0,
                 "pressure": 0.4, "flow": 1000.0, "combustible_gas": 0.3, "nh3": 2.0, "level": 5.0}


def uniform(b: _Builder, gateways: int = 100, sensors_per_gateway: int = 50, interval_s: float = 1.0) -> Site:
    """Load-test site: every gateway sends ``sensors_per_gateway`` readings every ``interval_s``."""
    z = b.zone("LOAD", "负载测试区", "load")
    for gi in range(1, gateways + 1):
        g = b.gateway(f"LG{gi:05d}", f"负载网关{gi}", z)
        for si in range(sensors_per_gateway):
            kind = _UNIFORM_KINDS[si % len(_UNIFORM_KINDS)]
            b.sensor(f"L{gi:05d}", g, z, kind, "负载测试", _p(kind, _UNIFORM_BASE[kind]), period_s=interval_s)
    return b.site


SITE_BUILDERS: dict[str, Callable[..., Site]] = {
    "coal_mine": coal_mine,
    "hazardous_chemicals": hazardous_chemicals,
    "cold_storage": cold_storage,
    "gas_pipeline": gas_pipeline,
    "non_coal_mine": non_coal_mine,
    "uniform": uniform,
}


def build_site(template: str, rng: np.random.Generator, params: dict) -> Site:
    """Build a site; raises TypeError on an unknown parameter (the fleet loader names the key)."""
    return SITE_BUILDERS[template](_Builder(rng), **params)
