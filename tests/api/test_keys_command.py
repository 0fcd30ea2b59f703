from __future__ import annotations

import asyncio

import asyncpg
import typer
from typer.testing import CliRunner

from api.keys import hash_key
from yujing.commands import keys

app = typer.Typer()
app.command("create")(keys.create)
app.command("noop")(lambda: None)


def test_create_prints_key_once_and_stores_only_its_hash(db_url, seeded):
    runner = CliRunner()
    result = runner.invoke(app, ["create", "--scope", "city:360100", "--name", "南昌市应急局", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    plain = result.stdout.strip().splitlines()[-1]
    assert plain.startswith("yj_")

    async def stored():
        conn = await asyncpg.connect(db_url)
        try:
            return await conn.fetchrow("SELECT * FROM api_keys WHERE name = '南昌市应急局'")
        finally:
            await conn.close()

    row = asyncio.run(stored())
    assert row["key_sha256"] == hash_key(plain) and plain not in str(dict(row))
    assert (row["scope_kind"], row["scope_id"]) == ("city", "360100")
    bad = runner.invoke(app, ["create", "--scope", "city:36010", "--database-url", db_url])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["create", "--scope", "enterprise:NOPE", "--database-url", db_url])
    assert missing.exit_code == 2 and "not in the registry" in missing.output


def _cli(*args: str):
    from yujing.cli import app as yujing_app

    return CliRunner().invoke(yujing_app, ["keys", *args])


def test_list_shows_scope_and_times_never_a_secret_and_revoke_stops_the_key(db_url, keys, client):
    import datetime
    import json
    import time

    from tests.api.conftest import auth

    assert client.get("/api/v1/riskmap", headers=auth(keys["city_a"])).status_code == 200
    listed = _cli("list", "--database-url", db_url)
    assert listed.exit_code == 0, listed.output
    for plain in keys.values():
        assert plain not in listed.output and plain[11:20] not in listed.output
    assert "360100" in listed.output and "last used" in listed.output
    rows = [json.loads(line) for line in _cli("list", "--json", "--database-url", db_url).stdout.splitlines()]
    city = next(r for r in rows if r["name"] == "city_a")
    assert city["scope"] == "city:360100" and city["revoked_at"] is None
    assert city["prefix"] == keys["city_a"][:11] and "key_sha256" not in city
    used = datetime.datetime.fromisoformat(city["last_used_at"])
    assert used.utcoffset() is not None and abs(used - datetime.datetime.now(datetime.UTC)).total_seconds() < 60
    assert next(r for r in rows if r["name"] == "city_b")["last_used_at"] is None  # never used

    revoked = _cli("revoke", str(city["id"]), "--database-url", db_url)
    assert revoked.exit_code == 0 and "revoked key" in revoked.output, revoked.output
    deadline = time.monotonic() + 15  # the API's key cache holds a key for 10 s
    while client.get("/api/v1/riskmap", headers=auth(keys["city_a"])).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works after 15 s"
        time.sleep(0.5)
    assert client.get("/api/v1/riskmap", headers=auth(keys["city_b"])).status_code == 200
    again = _cli("revoke", str(city["id"]), "--database-url", db_url)
    assert again.exit_code == 0 and "already revoked" in again.output
    active = [json.loads(line)["name"] for line in _cli("list", "--json", "--active", "--database-url", db_url).stdout.splitlines()]
    assert "city_a" not in active and "city_b" in active
    missing = _cli("revoke", "999999", "--database-url", db_url)
    assert missing.exit_code == 2 and "no API key 999999" in missing.output


def test_only_a_province_key_is_an_administrator(db_url, seeded):
    runner = CliRunner()
    bad = runner.invoke(app, ["create", "--scope", "city:360100", "--admin", "--database-url", db_url])
    assert bad.exit_code == 2 and "only a province key" in bad.output
    ok = runner.invoke(app, ["create", "--scope", "province", "--admin", "--name", "省厅管理员",
                             "--live-sessions", "5", "--database-url", db_url])
    assert ok.exit_code == 0, ok.output

    async def stored():
        conn = await asyncpg.connect(db_url)
        try:
            return await conn.fetchrow("SELECT admin, live_sessions FROM api_keys WHERE name = '省厅管理员'")
        finally:
            await conn.close()

    assert tuple(asyncio.run(stored())) == (True, 5)
