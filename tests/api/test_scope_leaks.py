"""Scope leaks tried on purpose, for every route of the OpenAPI schema: with keys of scope A,
every route that takes an id answers 404 for scope B's ids (reads and writes alike, and B's data
is unchanged after), and every list and feed returns none of B's rows (all of B's names carry
the marker LEAKMARK, and B's enterprise id is EB1)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.api.conftest import auth
from tests.api.support import Alerts, ticket

pytestmark = pytest.mark.security

MARKERS = ("LEAKMARK", "EB1")
# A valid body for each write route that takes an id, so validation cannot answer before the scope check.
BODIES = {
    "/api/v1/regions/{item}": {"code": "360202", "name": "x"},
    "/api/v1/enterprises/{item}": {"id": "EB1", "name": "x", "region": "360202", "industry": "coal_mine"},
    "/api/v1/zones/{item}": {"id": "WF1", "enterprise": "EB1", "name": "x"},
    "/api/v1/gateways/{item}": {"id": "G1", "enterprise": "EB1"},
    "/api/v1/gateways/{item}/credentials": {"rotate": True},
    "/api/v1/sensors/{item}": {"id": "CH4-0101", "gateway": "G1", "enterprise": "EB1", "kind": "methane"},
    "/api/v1/hazard-sources/{item}": {"id": "HS1", "enterprise": "EB1", "name": "x", "level": 1},
    "/api/v1/silences/{silence_id}": {"reason": "x"},
}
ALERT_ACTION_BODY = {"text": "x", "reason": "x", "comment": "x"}
STREAMS = {"/api/v1/live/sse"}  # checked below as feeds
# the province's own: any other key is refused alike (403), whatever the id
PROVINCE_ONLY = {"/api/v1/webhook-hosts", "/api/v1/webhook-hosts/{host}"}


def other_scope_ids(seeded, b_alert: int, b_silence: int) -> dict[str, object]:
    return {
        "/api/v1/regions/{item}": "360202",
        "/api/v1/enterprises/{item}": "EB1",
        "/api/v1/zones/{item}": seeded["zones"]["EB1/WF1"],
        "/api/v1/gateways/{item}": seeded["gateways"]["EB1/G1"],
        "/api/v1/gateways/{item}/credentials": seeded["gateways"]["EB1/G1"],
        "/api/v1/sensors/{item}": seeded["sensors"]["EB1/CH4-0101"],
        "/api/v1/hazard-sources/{item}": seeded["hazard_sources"]["EB1/HS1"],
        "{sensor_id}": seeded["sensors"]["EB1/CH4-0101"],
        "{alert_id}": b_alert,
        "{silence_id}": b_silence,
    }


def test_every_route_hides_the_other_scope(server, client, keys, seeded):
    b_sensor = seeded["sensors"]["EB1/CH4-0101"]
    Alerts(server).raise_(b_sensor)
    [b_alert] = [a["id"] for a in client.get("/api/v1/alerts", headers=auth(keys["ent_b"])).json()]
    r = client.post("/api/v1/silences", headers=auth(keys["ent_b"]),
                    json={"matchers": {"enterprise": ["EB1"]}, "ends": "2099-01-01T00:00:00Z", "reason": "LEAKMARK"})
    b_silence = r.json()["id"]
    ids = other_scope_ids(seeded, b_alert, b_silence)
    schema = client.get("/api/openapi.json").json()
    tried = {"id": 0, "list": 0}
    for key_name in ("ent_a", "county_a", "city_a"):
        h = auth(keys[key_name])
        for path, methods in schema["paths"].items():
            if path in STREAMS:
                continue
            if path in PROVINCE_ONLY:
                for method in methods:
                    r = client.request(method.upper(), path.replace("{host}", "127.0.0.1"), headers=h)
                    assert r.status_code == 403, (key_name, method, path, r.status_code)
                continue
            params = re.findall(r"\{(\w+)\}", path)
            for method in methods:
                if params:
                    value = ids.get(path, ids.get("{" + params[0] + "}"))
                    assert value is not None, f"no other-scope id for {path}: add one to the test"
                    url = path.replace("{" + params[0] + "}", str(value))
                    body = BODIES.get(path, ALERT_ACTION_BODY if "/alerts/" in path else None)
                    if method in ("put", "post") and body is None:
                        raise AssertionError(f"no body for {method.upper()} {path}: add one to the test")
                    r = client.request(method.upper(), url, headers=h,
                                       json=body if method in ("put", "post") else None)
                    assert r.status_code == 404, (key_name, method, url, r.status_code, r.text)
                    assert not any(m in r.text for m in ("LEAKMARK",)), (method, url, r.text)
                    tried["id"] += 1
                elif method == "get":
                    r = client.get(path, headers=h)
                    assert r.status_code == 200, (path, r.text)
                    if path.startswith("/api/"):
                        assert not any(m in r.text for m in MARKERS), (key_name, path, r.text[:500])
                        tried["list"] += 1
    assert tried["id"] >= 3 * 25 and tried["list"] >= 3 * 8
    # nothing of B's changed
    p = auth(keys["province"])
    assert client.get("/api/v1/enterprises/EB1", headers=p).json()["name"] == "LEAKMARK乙煤矿"
    assert client.get(f"/api/v1/sensors/{b_sensor}", headers=p).json()["active"] is True
    assert client.get(f"/api/v1/alerts/{b_alert}", headers=p).json()["state"] == "firing"
    assert client.get(f"/api/v1/silences/{b_silence}", headers=p).json()["expired_by"] is None


def test_feeds_return_none_of_the_other_scope(server, keys, seeded):
    import numpy as np

    from domain.messages import ReadingBatch

    b = seeded["sensors"]["EB1/CH4-0101"]
    a = seeded["sensors"]["EA1/CH4-0101"]
    alerts = Alerts(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        params = {"ticket": ticket(server.url, keys["county_a"]), "sensor": [a, b], "enterprise": "EB1", "region": "360202"}
        with client.stream("GET", "/api/v1/live/sse", params=params) as r:
            lines = r.iter_lines()
            next(lines)
            assert json.loads(next(lines).removeprefix("data: "))["sensors"] == [a]
            alerts.raise_(b)
            server.call_soon(lambda: server.hub.publish(ReadingBatch.build(sensor=[b, b], ts_us=[1, 2],
                                                                            value=np.zeros(2))))
            alerts.raise_(a)  # the marker that ends the wait: A's own alert
            seen = []
            for line in lines:
                if line.startswith("data: "):
                    seen.append(line)
                    if '"EA1"' in line:
                        break
            assert not any(m in s for s in seen for m in MARKERS), seen


# Every write route's body, with an enterprise {E}, a county {R} and a city {C} of another scope
# (or that do not exist at all); {own_*} are ids of the key's own scope in the path.
FOREIGN = {"E": "EB1", "R": "360202", "C": "360200"}
ABSENT = {"E": "EZZ9", "R": "360299", "C": "360900"}
WRITE_BODIES = {
    ("post", "/api/v1/regions"): {"code": "{R}", "name": "x"},
    ("put", "/api/v1/regions/{item}"): {"code": "360102", "name": "东湖区", "parent": "{C}"},
    ("post", "/api/v1/enterprises"): {"id": "{E}", "name": "x", "region": "360102", "industry": "coal_mine"},
    ("put", "/api/v1/enterprises/{item}"): {"id": "EA1", "name": "甲煤矿", "region": "{R}", "industry": "coal_mine",
                                            "risk_colour": "yellow"},
    ("post", "/api/v1/zones"): {"id": "WF1", "enterprise": "{E}", "name": "x"},
    ("put", "/api/v1/zones/{item}"): {"id": "WF1", "enterprise": "{E}", "name": "x"},
    ("post", "/api/v1/gateways"): {"id": "G1", "enterprise": "{E}", "zone": "WF1"},
    ("put", "/api/v1/gateways/{item}"): {"id": "G1", "enterprise": "{E}"},
    ("post", "/api/v1/sensors"): {"id": "CH4-0101", "gateway": "G1", "enterprise": "{E}", "kind": "methane"},
    ("put", "/api/v1/sensors/{item}"): {"id": "CH4-0101", "gateway": "G1", "enterprise": "{E}", "kind": "methane"},
    ("post", "/api/v1/hazard-sources"): {"id": "HS1", "enterprise": "{E}", "name": "x", "level": 1,
                                         "sensors": ["CH4-0101"]},
    ("put", "/api/v1/hazard-sources/{item}"): {"id": "HS1", "enterprise": "{E}", "name": "x", "level": 1},
    ("post", "/api/v1/registry/import"): {"sensors": [{"id": "S9", "gateway": "G1", "enterprise": "{E}",
                                                        "kind": "co"}]},
    ("post", "/api/v1/silences"): {"matchers": {"enterprise": ["{E}"]}, "ends": "2099-01-01T00:00:00Z",
                                   "reason": "x"},
    ("put", "/api/v1/silences/{silence_id}"): {"matchers": {"enterprise": ["{E}"]}, "ends": "2099-01-01T00:00:00Z",
                                               "reason": "x"},
}
NO_IDS_IN_BODY = {"/api/v1/gateways/{item}/credentials", "/api/v1/live/ticket", "/api/v1/webhook-hosts/{host}"}


def _fill(value, ids: dict[str, str]):
    text = json.dumps(value, ensure_ascii=False)
    for k, v in ids.items():
        text = text.replace("{" + k + "}", v)
    return json.loads(text)


def test_foreign_ids_in_bodies_answer_as_absent_ids_do(server, client, keys, seeded):
    """Existence oracle: a write naming another scope's region or enterprise answers exactly as
    one naming ids that exist nowhere (same status, same text but for the id), never 409 or 422."""
    a_silence = client.post("/api/v1/silences", headers=auth(keys["ent_a"]), json={
        "matchers": {"enterprise": ["EA1"]}, "ends": "2099-01-01T00:00:00Z", "reason": "own"}).json()["id"]
    own = {"/api/v1/regions/{item}": "360102", "/api/v1/enterprises/{item}": "EA1",
           "/api/v1/zones/{item}": seeded["zones"]["EA1/WF1"], "/api/v1/gateways/{item}": seeded["gateways"]["EA1/G1"],
           "/api/v1/sensors/{item}": seeded["sensors"]["EA1/CH4-0101"],
           "/api/v1/hazard-sources/{item}": seeded["hazard_sources"]["EA2/HS1"], "{silence_id}": a_silence}
    schema = client.get("/api/openapi.json").json()
    before = client.get("/api/v1/gateways", params={"enterprise": "EB1"}, headers=auth(keys["province"])).json()
    tried = 0
    for key_name in ("ent_a", "county_a", "city_a"):
        h = auth(keys[key_name])
        for path, methods in schema["paths"].items():
            for method, op in methods.items():
                if method not in ("post", "put") or path in NO_IDS_IN_BODY or "/alerts/" in path:
                    continue
                assert (method, path) in WRITE_BODIES, f"no foreign-id body for {method.upper()} {path}: add one"
                params = re.findall(r"\{(\w+)\}", path)
                url = path
                for p in params:
                    url = url.replace("{" + p + "}", str(own.get(path, own.get("{" + p + "}"))))
                answers = []
                for ids in (FOREIGN, ABSENT):
                    r = client.request(method.upper(), url, headers=h, json=_fill(WRITE_BODIES[method, path], ids))
                    text = r.text
                    for k, v in ids.items():
                        text = text.replace(v, "{" + k + "}")
                    answers.append((r.status_code, text))
                assert answers[0] == answers[1], (key_name, method, url, answers)
                assert answers[0][0] in (403, 404, 422), (key_name, method, url, answers)
                if answers[0][0] == 422:  # only the body's own shape, never the registry's contents
                    assert "not registered" not in answers[0][1] and "already" not in answers[0][1], answers
                tried += 1
    assert tried >= 3 * len(WRITE_BODIES)
    after = client.get("/api/v1/gateways", params={"enterprise": "EB1"}, headers=auth(keys["province"])).json()
    assert after == before
