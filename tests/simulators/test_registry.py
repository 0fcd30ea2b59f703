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
