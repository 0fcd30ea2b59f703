"""Registry import: one transaction, a report of what changed, defaults, clear errors."""

from __future__ import annotations

import pytest

from store.registry_records import import_registry, load_snapshot
from store.registry_file import RegistryFileError, parse_registry_file

MINIMAL = """
regions:     [{code: "360100", name: 南昌市}]
enterprises: [{id: E001, name: 某煤矿, region: "360100", industry: coal_mine}]
gateways:    [{id: G001, enterprise: E001}]
sensors:     [{id: CH4-0101, gateway: G001, kind: methane, unit: "%VOL", location: 采煤工作面}]
"""

FULL = """
regions:
  - {code: "360102", name: 东湖区}
enterprises:
  - id: E002
    name: 某化工厂
    region: "360102"
    industry: hazardous_chemicals
    risk_colour: orange
    risk_assessed_on: 2026-03-01
    contacts: [{role: safety_officer, name: 张工, phone: "13800000000"}]
zones:
  - {id: TF1, enterprise: E002, name: 罐区, kind: tank_farm, adjacent: [PU1]}
  - {id: PU1, enterprise: E002, name: 泵房}
gateways:
  - {id: G001, enterprise: E002, zone: TF1, expected_interval_s: 30}
sensors:
  - {id: T-01, gateway: G001, enterprise: E002, kind: temperature, location: 1号罐}
  - {id: T-02, gateway: G001, enterprise: E002, kind: temperature, zone: PU1, expected_interval_s: 5, range: [-20, 80]}
hazard_sources:
  - {id: HS01, enterprise: E002, name: 1号储罐区, level: 2, sensors: [T-01, T-02]}
"""


async def test_minimal_shape_imports_with_defaults(db):
    report = await import_registry(db, parse_registry_file(MINIMAL))
    assert report.changes["enterprises"].created == 1
    assert report.changes["sensors"].created == 1
    row = await db.fetchrow("SELECT * FROM sensors WHERE code = 'CH4-0101'")
    assert row["enterprise"] == "E001" and row["kind"] == "methane" and row["unit"] == "%VOL"
    assert row["expected_interval_s"] > 0 and row["range_max"] > row["range_min"]
    region = await db.fetchrow("SELECT parent, level FROM regions WHERE code = '360100'")
    assert (region["parent"], region["level"]) == ("360000", "city")


async def test_second_import_reports_nothing_changed_then_updates(db):
    await import_registry(db, parse_registry_file(MINIMAL))
    again = await import_registry(db, parse_registry_file(MINIMAL))
    assert not again.changed
    assert again.changes["sensors"].unchanged == 1
    changed = await import_registry(db, parse_registry_file(MINIMAL.replace("采煤工作面", "回风巷")))
    assert changed.changes["sensors"].updated == 1 and changed.version > again.version


async def test_full_file_with_zones_adjacency_and_hazard_sources(db):
    await import_registry(db, parse_registry_file(FULL))
    region = await db.fetchrow("SELECT parent, level FROM regions WHERE code = '360102'")
    assert (region["parent"], region["level"]) == ("360100", "county")
    sensors = {r["code"]: r for r in await db.fetch("SELECT s.*, z.code AS zone_code FROM sensors s JOIN zones z ON z.id = s.zone")}
    assert sensors["T-01"]["zone_code"] == "TF1"  # from its gateway
    assert sensors["T-02"]["zone_code"] == "PU1"
    assert (sensors["T-02"]["range_min"], sensors["T-02"]["range_max"]) == (-20, 80)
    assert await db.fetchval("SELECT count(*) FROM zone_adjacency") == 1
    assert await db.fetchval("SELECT count(*) FROM hazard_source_sensors") == 2
    snap = await load_snapshot(db, lambda industry: 120)
    zones = {z.code: z for z in snap.zones.values()}
    assert zones["TF1"].adjacent == (zones["PU1"].id,)
    sid = snap.sensor_ids["E002"]["T-02"]
    assert snap.table.active[sid] and snap.table.range_max[sid] == 80 and snap.table.retention_s[sid] == 120 * 86400


@pytest.mark.parametrize(
    "mutation, message",
    [
        (("kind: methane", "kind: metane"), "unknown sensor kind 'metane'; known kinds:"),
        (('unit: "%VOL"', 'unit: "ppm"'), "sensors[0] (CH4-0101): unit 'ppm' is not the unit of kind methane"),
        (("industry: coal_mine", "industry: bakery"), "enterprises[0] (E001).industry"),
        (("gateway: G001, kind", "gateway: G999, kind"), "sensors[0] (CH4-0101): gateway G999 is not registered"),
        (('region: "360100"', 'region: "369900"'), "enterprises[0] (E001): region 369900 is not registered"),
        (('{code: "360100", name: 南昌市}', '{code: "360100", name: 南昌市, parent: "360102"}'),
         "regions[0] (360100): parent 360102 is not registered"),
        (('{code: "360100", name: 南昌市}', '{code: "360100", name: 南昌市, parent: "360200"}'),
         "regions[0] (360100): parent 360200 is a city, not above a city"),
        (("location: 采煤工作面}", "location: 采煤工作面, equipment: 'P 101'}"), "sensors[0] (CH4-0101).equipment"),
    ],
)
async def test_invalid_file_changes_nothing_and_names_the_entry(db, mutation, message):
    before = await db.fetchval("SELECT count(*) FROM enterprises")
    with pytest.raises(RegistryFileError) as err:
        await import_registry(db, parse_registry_file(MINIMAL.replace(*mutation)))
    assert message in str(err.value)
    assert await db.fetchval("SELECT count(*) FROM enterprises") == before
    assert await db.fetchval("SELECT version FROM registry_version") == 1


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(RegistryFileError) as err:
        parse_registry_file(MINIMAL.replace("kind: methane", "kind: unobtainium"))
    assert "methane" in str(err.value) and "temperature" in str(err.value)


async def test_override_that_loosens_a_regulatory_setpoint_is_refused(db):
    loosen = MINIMAL.replace('location: 采煤工作面}', 'location: 采煤工作面, location_class: T1, setpoints: {alarm: 5.0}}')
    with pytest.raises(RegistryFileError) as err:
        await import_registry(db, parse_registry_file(loosen))
    assert "sensors[0] (CH4-0101)" in str(err.value)
    assert await db.fetchval("SELECT count(*) FROM sensors") == 0


PUMP = """
regions:     [{code: "360100", name: 南昌市}]
enterprises:
  - {id: E001, name: 某化工厂, region: "360100", industry: hazardous_chemicals}
  - {id: E002, name: 另一化工厂, region: "360100", industry: hazardous_chemicals}
gateways:    [{id: G001, enterprise: E001}, {id: G002, enterprise: E002}]
sensors:
  - {id: PT-1, gateway: G001, kind: pressure, equipment: P-101}
  - {id: FT-1, gateway: G001, kind: flow, equipment: P-101}
  - {id: TT-1, gateway: G001, kind: temperature, equipment: P-101}
  - {id: PT-2, gateway: G001, kind: pressure, equipment: P-102}
  - {id: TT-9, gateway: G001, kind: temperature}
  - {id: PT-1, gateway: G002, kind: pressure, equipment: P-101}
"""


async def test_equipment_groups_a_machines_sensors_within_its_enterprise(db):
    await import_registry(db, parse_registry_file(PUMP))
    snap = await load_snapshot(db, lambda industry: 120)
    ids = snap.sensor_ids
    group = {(e, c): int(snap.table.equipment[i]) for e, codes in ids.items() for c, i in codes.items()}
    p101 = group[("E001", "PT-1")]
    assert p101 > 0 and group[("E001", "FT-1")] == p101 and group[("E001", "TT-1")] == p101
    assert group[("E001", "PT-2")] not in (0, p101)
    assert group[("E001", "TT-9")] == 0
    assert group[("E002", "PT-1")] not in (0, p101)  # the same code in another enterprise is another machine
    assert snap.sensors[ids["E001"]["FT-1"]].equipment == "P-101"
    # a later import without the field takes the sensor out of its group
    again = await import_registry(db, parse_registry_file(PUMP.replace("kind: flow, equipment: P-101", "kind: flow")))
    assert again.changes["sensors"].updated == 1
    snap = await load_snapshot(db, lambda industry: 120)
    assert snap.table.equipment[snap.sensor_ids["E001"]["FT-1"]] == 0
