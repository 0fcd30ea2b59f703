"""Gateway MQTT logins through the API: scoped, audited without the password, shown once."""

from __future__ import annotations

import asyncpg

from store.gateway_credentials import verify_password
from tests.api.conftest import auth


async def test_issue_rotate_revoke_through_the_api(client, keys, seeded, db_url):
    g = seeded["gateways"]["EA1/G1"]
    h = auth(keys["ent_a"])
    r = client.post(f"/api/v1/gateways/{g}/credentials", json={}, headers=h)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["username"], first["client_id"], first["rotated"]) == ("EA1.G1", "EA1.G1", False)
    assert first["monitor_username"] == "EA1.G1.monitor" and first["monitor_password"] != first["password"]
    assert r.headers["cache-control"] == "no-store"
    again = client.post(f"/api/v1/gateways/{g}/credentials", json={}, headers=h)
    assert again.status_code == 409 and "rotate" in again.text
    r = client.post(f"/api/v1/gateways/{g}/credentials", json={"rotate": True}, headers=h)
    assert r.status_code == 201 and r.json()["rotated"] and r.json()["password"] != first["password"]
    second, second_monitor = r.json()["password"], r.json()["monitor_password"]
    assert second_monitor != first["monitor_password"]  # rotated together
    # another scope's key: as if the gateway did not exist, and nothing changes
    hb = auth(keys["city_b"])
    assert client.post(f"/api/v1/gateways/{g}/credentials", json={"rotate": True}, headers=hb).status_code == 404
    assert client.delete(f"/api/v1/gateways/{g}/credentials", headers=hb).status_code == 404
    conn = await asyncpg.connect(db_url)
    try:
        stored, monitor = await conn.fetchrow(
            "SELECT password_hash, monitor_password_hash FROM gateway_credentials WHERE username = 'EA1.G1'")
        assert verify_password(second, stored) and not verify_password(first["password"], stored)
        assert verify_password(second_monitor, monitor)
        r = client.delete(f"/api/v1/gateways/{g}/credentials", headers=h)
        assert r.status_code == 200 and r.json()["revoked"] is True
        assert client.delete(f"/api/v1/gateways/{g}/credentials", headers=h).json()["revoked"] is False
        assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM gateway_credentials WHERE gateway = $1", g)
        rows = await conn.fetch("SELECT a.action, a.target, a.detail::text AS detail, k.name FROM api_write_audit a "
                                "JOIN api_keys k ON k.id = a.key_id ORDER BY a.id")
    finally:
        await conn.close()
    assert [(r["action"], r["target"], r["name"]) for r in rows] == [
        ("gateway.credentials.issue", f"gateway:{g}", "ent_a"),
        ("gateway.credentials.rotate", f"gateway:{g}", "ent_a"),
        ("gateway.credentials.revoke", f"gateway:{g}", "ent_a"),
        ("gateway.credentials.revoke", f"gateway:{g}", "ent_a"),
    ]
    assert not any(p in r["detail"] for r in rows for p in (first["password"], second))
