"""Registry CRUD and bulk import through the API, scoped, audited."""

from __future__ import annotations

import asyncpg

from tests.api.conftest import auth


def test_key_needed_and_unknown_key_refused(client, keys):
    assert client.get("/api/v1/enterprises").status_code == 401
    assert client.get("/api/v1/enterprises", headers=auth("yj_nope")).status_code == 401
    r = client.get("/api/v1/enterprises", headers={"Authorization": f"Bearer {keys['province']}"})
    assert r.status_code == 200


def test_lists_are_scoped(client, keys):
    ids = lambda name: sorted(e["id"] for e in client.get("/api/v1/enterprises", headers=auth(keys[name])).json())
    assert ids("province") == ["EA1", "EA2", "EB1"]
    assert ids("city_a") == ["EA1", "EA2"]
    assert ids("county_a") == ["EA1"]
    assert ids("ent_a") == ["EA1"]
    assert ids("city_b") == ["EB1"]
    sensors = client.get("/api/v1/sensors", headers=auth(keys["ent_a"])).json()
    assert {s["enterprise"] for s in sensors} == {"EA1"} and len(sensors) == 2
    regions = [r["code"] for r in client.get("/api/v1/regions", headers=auth(keys["city_a"])).json()]
    assert regions == ["360100", "360102"]


def test_create_update_deactivate_sensor(client, keys, seeded, db_url):
    h = auth(keys["county_a"])
    body = {"id": "CH4-0102", "gateway": "G1", "enterprise": "EA1", "kind": "methane", "location_class": "T0",
            "location": "上隅角", "setpoints": {"alarm": 0.8}}
    r = client.post("/api/v1/sensors", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["code"] == "CH4-0102" and created["gateway"] == "G1" and created["unit"] == "%VOL"
    assert client.post("/api/v1/sensors", json=body, headers=h).status_code == 409
    # a setpoint may only tighten a regulatory one: the CLI's own validation answers 422
    loose = {**body, "setpoints": {"alarm": 5.0}}
    r = client.put(f"/api/v1/sensors/{created['id']}", json=loose, headers=h)
    assert r.status_code == 422 and "alarm" in r.text
    r = client.put(f"/api/v1/sensors/{created['id']}", json={**body, "location": "回风隅角"}, headers=h)
    assert r.status_code == 200 and r.json()["location"] == "回风隅角"
    r = client.delete(f"/api/v1/sensors/{created['id']}", headers=h)
    assert r.status_code == 200
    assert client.get(f"/api/v1/sensors/{created['id']}", headers=h).json()["active"] is False
    # another scope's key: as if the sensor did not exist
    hb = auth(keys["city_b"])
    assert client.get(f"/api/v1/sensors/{created['id']}", headers=hb).status_code == 404
    assert client.put(f"/api/v1/sensors/{created['id']}", json=body, headers=hb).status_code == 404
    assert client.delete(f"/api/v1/sensors/{created['id']}", headers=hb).status_code == 404
    # creating under another scope's enterprise: 404, nothing changed
    r = client.post("/api/v1/sensors", json={**body, "enterprise": "EB1", "id": "X-1"}, headers=h)
    assert r.status_code == 404


async def test_every_write_is_audited_with_its_key(client, keys, db_url):
    h = auth(keys["city_a"])
    body = {"id": "EA3", "name": "新企业", "region": "360102", "industry": "cold_storage"}
    assert client.post("/api/v1/enterprises", json=body, headers=auth(keys["province"])).status_code == 201
    assert client.put("/api/v1/enterprises/EA3", json={**body, "risk_colour": "red"}, headers=h).status_code == 200
    assert client.delete("/api/v1/enterprises/EA3", headers=h).status_code == 200
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT a.action, a.target, k.name FROM api_write_audit a JOIN api_keys k "
                                "ON k.id = a.key_id ORDER BY a.id")
        version = await conn.fetchval("SELECT version FROM registry_version")
    finally:
        await conn.close()
    assert [(r["action"], r["target"], r["name"]) for r in rows] == [
        ("enterprise.create", "enterprise:EA3", "province"),
        ("enterprise.update", "enterprise:EA3", "city_a"),
        ("enterprise.deactivate", "enterprise:EA3", "city_a"),
    ]
    assert version >= 4


def test_enterprise_key_cannot_move_its_enterprise(client, keys):
    h = auth(keys["ent_a"])
    body = {"id": "EA1", "name": "甲煤矿", "region": "360202", "industry": "coal_mine", "risk_colour": "yellow"}
    assert client.put("/api/v1/enterprises/EA1", json=body, headers=h).status_code in (403, 404)
    body["region"] = "360102"
    body["name"] = "甲煤矿（改名）"
    assert client.put("/api/v1/enterprises/EA1", json=body, headers=h).status_code == 200
    assert client.post("/api/v1/enterprises", json={**body, "id": "EA9"}, headers=h).status_code == 404


def test_bulk_import_yaml_and_json(client, keys):
    h = {**auth(keys["city_a"]), "Content-Type": "application/yaml"}
    text = """
zones:
  - {id: RW1, enterprise: EA1, name: 回风巷, adjacent: [WF1]}
gateways:
  - {id: G9, enterprise: EA1, zone: RW1}
sensors:
  - {id: T-1, gateway: G9, enterprise: EA1, kind: co}
"""
    r = client.post("/api/v1/registry/import", content=text.encode(), headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["changes"]["sensors"]["created"] == 1
    zones = client.get("/api/v1/zones", params={"enterprise": "EA1"}, headers=auth(keys["city_a"])).json()
    assert {z["code"]: z["adjacent"] for z in zones} == {"WF1": ["RW1"], "RW1": ["WF1"]}
    # an entry of another scope rolls the whole file back, answered as absent
    bad = {"gateways": [{"id": "G8", "enterprise": "EA1"}, {"id": "G8", "enterprise": "EB1"}]}
    r = client.post("/api/v1/registry/import", json=bad, headers=auth(keys["city_a"]))
    assert r.status_code == 404 and "EB1" in r.text
    assert not [g for g in client.get("/api/v1/gateways", headers=auth(keys["province"])).json() if g["code"] == "G8"]
    r = client.post("/api/v1/registry/import", json={"sensors": [{"id": "x"}]}, headers=auth(keys["province"]))
    assert r.status_code == 422


def test_regions_and_hazard_sources(client, keys, seeded):
    h = auth(keys["city_a"])
    admin = auth(keys["province"])
    r = client.post("/api/v1/regions", json={"code": "360103", "name": "西湖区"}, headers=admin)
    assert r.status_code == 201 and r.json()["parent"] == "360100"
    # only the province administrator creates and deletes regions
    assert client.post("/api/v1/regions", json={"code": "360104", "name": "青云谱区"}, headers=h).status_code == 404
    assert client.post("/api/v1/regions", json={"code": "360104", "name": "x"},
                       headers=auth(keys["province_user"])).status_code == 403
    assert client.delete("/api/v1/regions/360103", headers=h).status_code == 403
    assert client.delete("/api/v1/regions/360103", headers=admin).status_code == 200
    assert client.delete("/api/v1/regions/360102", headers=admin).status_code == 409  # has enterprises
    hs = seeded["hazard_sources"]["EA2/HS1"]
    got = client.get(f"/api/v1/hazard-sources/{hs}", headers=h).json()
    assert got["level"] == 2 and got["sensors"] == ["EX-0201"]
    assert client.get(f"/api/v1/hazard-sources/{seeded['hazard_sources']['EB1/HS1']}", headers=h).status_code == 404
