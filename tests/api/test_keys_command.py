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
