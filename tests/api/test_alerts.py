"""Alerts through the API: list/filter, detail with audit trail, every operator action through
alerts.transitions, silences CRUD, the risk map — all scoped."""

from __future__ import annotations

import asyncpg
import pytest

from domain.severity import FindingEvent, Severity
from tests.api.conftest import auth
from tests.api.support import Alerts


@pytest.fixture
def alerts(server):
    return Alerts(server)


def alert_ids(client, key, **params) -> list[int]:
    r = client.get("/api/v1/alerts", params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()]


def test_list_filter_detail_and_scope(client, keys, seeded, alerts):
    a_sensor, b_sensor = seeded["sensors"]["EA1/CH4-0101"], seeded["sensors"]["EB1/CH4-0101"]
    alerts.raise_(a_sensor)
    alerts.raise_(b_sensor, Severity.ALARM, 1.6, 1.5)
    every = client.get("/api/v1/alerts", headers=auth(keys["province"])).json()
    assert {a["enterprise"] for a in every} == {"EA1", "EB1"}
    a_id = next(a["id"] for a in every if a["enterprise"] == "EA1")
    b_id = next(a["id"] for a in every if a["enterprise"] == "EB1")
    assert alert_ids(client, keys["county_a"]) == [a_id]
    assert alert_ids(client, keys["city_b"]) == [b_id]
    assert alert_ids(client, keys["province"], region="360102") == [a_id]
    assert alert_ids(client, keys["province"], grade="yellow") == [a_id]
    assert alert_ids(client, keys["province"], state="firing", enterprise="EB1") == [b_id]
    assert alert_ids(client, keys["province"], open="false") == []
    assert alert_ids(client, keys["province"], industry="cold_storage") == []
    assert client.get("/api/v1/alerts", params={"grade": "purple"}, headers=auth(keys["province"])).status_code == 422
    detail = client.get(f"/api/v1/alerts/{a_id}", headers=auth(keys["ent_a"])).json()
    assert detail["grade"] == "yellow" and detail["history"][0]["action"]
    assert client.get(f"/api/v1/alerts/{b_id}", headers=auth(keys["ent_a"])).status_code == 404


async def test_every_action_goes_through_transitions_and_is_audited(client, keys, seeded, alerts, db_url):
    sid = seeded["sensors"]["EA1/CH4-0101"]
    alerts.raise_(sid)
    [alert_id] = alert_ids(client, keys["county_a"])
    h = auth(keys["county_a"])
    post = lambda action, body: client.post(f"/api/v1/alerts/{alert_id}/{action}", json=body, headers=h)
    r = post("acknowledge", {"comment": "收到，已通知井下"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged", r.text
    assert r.json()["acked_by"].startswith("api-key:") and r.json()["acked_by"].endswith(":county_a")
    version = r.json()["version"]
    assert post("comment", {"text": "通风科已到场", "expected_version": version}).status_code == 200
    assert post("comment", {"text": "stale", "expected_version": version}).status_code == 409
    assert post("assign", {"assignee": "张工"}).json()["assignee"] == "张工"
    assert post("shelve", {"reason": "标校", "duration_s": 600}).json()["shelved_until_us"] is not None
    assert post("unshelve", {}).json()["shelved_until_us"] is None
    assert post("reset-latch", {}).status_code in (200, 409)
    r = post("resolve", {"comment": "已处置", "force": True})
    assert r.status_code == 200 and r.json()["state"] == "resolved", r.text
    r = post("close", {"comment": "销号"})
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert post("shelve", {"reason": "x"}).status_code == 409  # not allowed on a closed alert
    history = client.get(f"/api/v1/alerts/{alert_id}", headers=h).json()["history"]
    actions = [e["action"] for e in history]
    for expected in ("acknowledge", "comment", "assign", "shelve", "unshelve", "resolve", "close"):
        assert any(expected in a for a in actions), (expected, actions)
    assert all(e["actor"].endswith(":county_a") for e in history[1:])
    conn = await asyncpg.connect(db_url)
    try:
        audited = [r["action"] for r in await conn.fetch(
            "SELECT action FROM api_write_audit WHERE target = $1 ORDER BY id", f"alert:{alert_id}")]
    finally:
        await conn.close()
    assert audited[:4] == ["alert.acknowledge", "alert.comment", "alert.assign", "alert.shelve"]
    for action in ("acknowledge", "comment", "assign", "shelve", "unshelve", "reset-latch", "resolve", "close"):
        body = {"text": "x", "reason": "x"} if action in ("comment", "shelve") else {}
        r = client.post(f"/api/v1/alerts/{alert_id}/{action}", json=body, headers=auth(keys["city_b"]))
        assert r.status_code == 404, (action, r.text)


def test_latched_alert_needs_a_reset(client, keys, seeded, alerts):
    sid = seeded["sensors"]["EA1/CH4-0101"]
    alerts.findings([(sid, "limit", FindingEvent.RAISE, Severity.CRITICAL, 3.0, 1.5)])
    alerts.findings([(sid, "limit", FindingEvent.CLEAR, Severity.CRITICAL, 0.3, 1.5)])
    [alert] = client.get("/api/v1/alerts", headers=auth(keys["ent_a"])).json()
    if alert["state"] != "latched":
        pytest.skip(f"the default policy does not latch this alert (state {alert['state']})")
    r = client.post(f"/api/v1/alerts/{alert['id']}/reset-latch", json={"comment": "复位"}, headers=auth(keys["ent_a"]))
    assert r.status_code == 200 and r.json()["state"] != "latched"


def test_silences_crud_scoped(client, keys):
    until = "2099-01-01T00:00:00Z"
    h = auth(keys["county_a"])
    r = client.post("/api/v1/silences", json={"matchers": {"enterprise": ["EA1"], "kind": "methane"},
                                               "ends": until, "reason": "标校"}, headers=h)
    assert r.status_code == 201, r.text
    own = r.json()["id"]
    assert r.json()["creator"].endswith(":county_a")
    for matchers in ({"enterprise": ["EB1"]}, {"kind": "methane"}, {"enterprise": ["EA1", "EB1"]},
                     {"enterprise": "E*"}):
        r = client.post("/api/v1/silences", json={"matchers": matchers, "ends": until, "reason": "x"}, headers=h)
        assert r.status_code == 403, (matchers, r.text)
    r = client.post("/api/v1/silences", json={"matchers": {"kind": "co"}, "ends": until, "reason": "全省"},
                    headers=auth(keys["province"]))
    province = r.json()["id"]
    assert [s["id"] for s in client.get("/api/v1/silences", headers=h).json()] == [own]
    assert {s["id"] for s in client.get("/api/v1/silences", headers=auth(keys["province"])).json()} == {own, province}
    assert client.get(f"/api/v1/silences/{province}", headers=h).status_code == 404
    assert client.put(f"/api/v1/silences/{province}", json={"reason": "y"}, headers=h).status_code == 404
    assert client.delete(f"/api/v1/silences/{province}", headers=h).status_code == 404
    r = client.put(f"/api/v1/silences/{own}", json={"reason": "标校延长", "ends": "2099-02-01T00:00:00Z"}, headers=h)
    assert r.status_code == 200 and r.json()["reason"] == "标校延长"
    r = client.put(f"/api/v1/silences/{own}", json={"matchers": {"enterprise": ["EB1"]}}, headers=h)
    assert r.status_code == 403
    assert client.delete(f"/api/v1/silences/{own}", headers=h).json()["expired_by"].endswith(":county_a")
    assert client.get("/api/v1/silences", params={"active": "true"}, headers=h).json() == []
    assert client.get(f"/api/v1/silences/{own}", headers=auth(keys["city_b"])).status_code == 404


def test_riskmap_colours_and_counts(client, keys, seeded, alerts):
    alerts.raise_(seeded["sensors"]["EA1/CH4-0101"], Severity.ALARM, 1.6, 1.5)
    m = client.get("/api/v1/riskmap", headers=auth(keys["province"])).json()
    regions = {r["id"]: r for r in m["regions"]}
    assert len([r for r in m["regions"] if r["level"] == "city"]) == 11
    nc = regions["360100"]
    assert nc["live"] == "orange" and nc["dynamic"] == "orange" and nc["open_alerts"] == 1
    assert nc["open_by_grade"]["orange"] == 1
    assert regions["360200"]["live"] is None and regions["360200"]["assessed"] == "blue"
    ents = {e["id"]: e for e in m["enterprises"]}
    assert ents["EA1"]["assessed"] == "yellow" and ents["EA1"]["live"] == "orange"
    county = client.get("/api/v1/riskmap", headers=auth(keys["county_a"])).json()
    assert [r["id"] for r in county["regions"]] == ["360102"] and [e["id"] for e in county["enterprises"]] == ["EA1"]
    other = client.get("/api/v1/riskmap", headers=auth(keys["city_b"])).json()
    assert {r["id"] for r in other["regions"]} == {"360200", "360202"}
    assert [e["id"] for e in other["enterprises"]] == ["EB1"] and "LEAKMARK" in other["enterprises"][0]["name"]
    assert [e["id"] for e in client.get("/api/v1/riskmap", headers=auth(keys["ent_a"])).json()["enterprises"]] == ["EA1"]
    assert client.get("/api/v1/riskmap", params={"level": "city"}, headers=auth(keys["province"])).status_code == 200
