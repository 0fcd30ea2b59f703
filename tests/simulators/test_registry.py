"""The jiangxi-demo preset and the registry file it writes."""

from __future__ import annotations

import pytest
import yaml

from domain.catalog import KINDS, check_overrides
from domain.industries import Industry
from domain.topics import is_valid_id
from simulators import FleetConfig, FleetConfigError, registry_document, write_registry

CITIES = {f"36{c:02d}00" for c in range(1, 12)}


def test_preset_spans_the_eleven_cities_and_every_industry(demo_fleet):
    doc = registry_document(demo_fleet)
    codes = {r["code"] for r in doc["regions"]}
    assert "360000" in codes and CITIES <= codes
    cities_used = {e["region"][:4] + "00" for e in doc["enterprises"]}
    assert cities_used == CITIES
    assert {e["industry"] for e in doc["enterprises"]} == {i.value for i in Industry}
    for r in doc["regions"]:
        if r["code"] not in CITIES and r["code"] != "360000":
            assert r["parent"] in CITIES and r["code"][:4] == r["parent"][:4]


def test_registry_is_consistent_with_catalog_and_itself(demo_fleet, tmp_path):
    path = tmp_path / "registry.yaml"
    write_registry(demo_fleet, path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    zones = {(z["enterprise"], z["id"]): z for z in doc["zones"]}
    gws = {(g["enterprise"], g["id"]) for g in doc["gateways"]}
    for z in doc["zones"]:
        for a in z["adjacent"]:
            assert z["id"] in zones[(z["enterprise"], a)]["adjacent"]  # symmetric
    seen = set()
    for s in doc["sensors"]:
        key = (s["enterprise"], s["id"])
        assert key not in seen and is_valid_id(s["id"])
        seen.add(key)
        assert (s["enterprise"], s["gateway"]) in gws and (s["enterprise"], s["zone"]) in zones
        assert s["unit"] == KINDS[s["kind"]].unit
        check_overrides(s["kind"], s.get("location_class", ""), s.get("setpoints"))
    kinds = {z["kind"] for z in doc["zones"]}
    assert {"working_face", "heading_face", "machine_room", "pipeline_station", "underground_space", "tank_farm"} <= kinds
    # compound rules: a heading with its local fan, a machine room with its exhaust fan
    by_zone = {}
    for s in doc["sensors"]:
        by_zone.setdefault((s["enterprise"], s["zone"]), set()).add(s["kind"])
    for (e, zid), z in zones.items():
        if z["kind"] == "heading_face":
            assert {"methane", "fan_state"} <= by_zone[(e, zid)]
        if z["kind"] == "machine_room":
            assert {"nh3", "exhaust_fan_state"} <= by_zone[(e, zid)]
        if z["kind"] == "pipeline_station" and len([a for a in z["adjacent"] if zones[(e, a)]["kind"] == "pipeline_station"]) == 0:
            pytest.fail(f"station {e}/{zid} has no adjacent station")


@pytest.mark.parametrize("doc, key", [
    ({"enterprises": []}, "enterprises"),
    ({"enterprises": [{"id": "E", "name": "n", "region": "360100"}]}, "enterprises[0].industry"),
    ({"enterprises": [{"id": "E", "name": "n", "region": "360100", "industry": "oil"}]}, "enterprises[0].industry"),
    ({"gateway": {"duplicate_share": 2}, "enterprises": [{"id": "E", "name": "n", "region": "1", "industry": "coal_mine"}]},
     "gateway.duplicate_share"),
    ({"enterprises": [{"id": "E", "name": "n", "region": "1", "industry": "coal_mine", "gateway": {"nope": 1}}]},
     "enterprises[0].gateway.nope"),
])
def test_fleet_errors_name_the_key(doc, key):
    with pytest.raises(FleetConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        FleetConfig.from_config(doc)


async def test_in_memory_snapshot_is_what_the_database_gives_after_import(demo_fleet, db, tmp_path):
    """bench/false_alarms.py replays offline with registry_snapshot(); it must agree with the
    snapshot the service loads after `yujing registry import` of the same fleet."""
    import numpy as np

    from simulators.registry import registry_snapshot
    from store.registry_records import import_registry, load_snapshot
    from store.registry_file import parse_registry_file

    path = tmp_path / "registry.yaml"
    write_registry(demo_fleet, path)
    await import_registry(db, parse_registry_file(path.read_text(encoding="utf-8")))
    want = await load_snapshot(db, lambda industry: 92)
    got = registry_snapshot(demo_fleet, retention_days=92)
    assert got.enterprises == want.enterprises and got.regions.keys() == want.regions.keys()
    # dense ids may differ: compare by codes
    gw = lambda s, i: (s.gateways[i].enterprise, s.gateways[i].code)  # noqa: E731
    zn = lambda s, i: (s.zones[i].enterprise, s.zones[i].code) if i else None  # noqa: E731
    assert {gw(got, i) for i in got.gateways} == {gw(want, i) for i in want.gateways}
    assert {(*zn(got, i), tuple(sorted(zn(got, a) for a in z.adjacent))) for i, z in got.zones.items()} == \
        {(*zn(want, i), tuple(sorted(zn(want, a) for a in z.adjacent))) for i, z in want.zones.items()}
    assert len(got.sensors) == len(want.sensors) == demo_fleet.n_sensors
    for e, codes in want.sensor_ids.items():
        for code, wi in codes.items():
            gi = got.sensor_ids[e][code]
            a, b = got.sensors[gi], want.sensors[wi]
            assert (a.kind, a.unit, a.location, a.location_class, a.setpoints) == \
                (b.kind, b.unit, b.location, b.location_class, b.setpoints), code
            assert gw(got, a.gateway) == gw(want, b.gateway) and zn(got, a.zone) == zn(want, b.zone), code
            for col in ("active", "kind", "location_class", "expected_interval_s", "range_min", "range_max", "retention_s"):
                x, y = getattr(got.table, col)[gi], getattr(want.table, col)[wi]
                assert x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y)), (code, col, x, y)
