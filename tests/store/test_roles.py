"""The database roles: `yujing migrate` runs as the owner; the service's role owns nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg

from store.roles import ensure_roles
from tests.support import services
from yujing.settings import Settings


def test_migration_url_is_the_owner_unless_set():
    s = Settings(database_url="postgresql://yujing:secret@db.example:6432/yj")
    assert s.migration_url == "postgresql://yujing_owner@db.example:6432/yj"
    s = Settings(database_url="postgresql://yujing@h/yj", database_migration_url="postgresql://migrator:pw@h/yj")
    assert s.migration_url == "postgresql://migrator:pw@h/yj"


async def test_roles_are_idempotent_and_the_service_cannot_become_the_owner():
    admin = await services.admin_connect()
    try:
        await ensure_roles(admin)
        await admin.execute("ALTER ROLE yujing CREATEROLE")  # drifted: the next run puts it back
        await ensure_roles(admin)
        rows = {r["rolname"]: r for r in await admin.fetch(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles"
            " WHERE rolname IN ('yujing', 'yujing_owner', 'yujing_service')")}
        assert set(rows) == {"yujing", "yujing_owner", "yujing_service"}
        assert not any(r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] for r in rows.values())
        assert rows["yujing"]["rolcanlogin"] and not rows["yujing_service"]["rolcanlogin"]
        assert await admin.fetchval("SELECT pg_has_role('yujing', 'yujing_service', 'MEMBER')")
        assert not await admin.fetchval("SELECT pg_has_role('yujing', 'yujing_owner', 'MEMBER')")
    finally:
        await admin.close()


async def test_migrate_command_runs_as_the_owner(tmp_path):
    name = f"yj_test_{uuid.uuid4().hex[:12]}"
    admin = await services.admin_connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER yujing_owner')
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(services.database_url(name))
        await conn.execute("SET client_min_messages = warning; CREATE EXTENSION timescaledb")
        await conn.close()
        env = {**os.environ, "YUJING_DATABASE_URL": services.service_url(name), "PYTHONPATH": str(services.REPO)}
        env.pop("YUJING_DATABASE_MIGRATION_URL", None)
        run = subprocess.run([sys.executable, "-m", "yujing", "migrate"], env=env, capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "applied 0065_service_role" in run.stdout and "warning" not in run.stderr
        conn = await asyncpg.connect(services.database_url(name))
        try:
            owners = {r["relname"]: r["owner"] for r in await conn.fetch(
                "SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S', 'v')")}
            assert set(owners.values()) == {"yujing_owner"} and "alert_journal" in owners
            assert not await conn.fetchval("SELECT has_table_privilege('yujing', 'alert_journal', 'UPDATE')")
            assert await conn.fetchval("SELECT has_table_privilege('yujing', 'alert_journal', 'INSERT')")
            assert await conn.fetchval("SELECT has_table_privilege('yujing', 'readings', 'INSERT')")
        finally:
            await conn.close()
    finally:
        await services.drop_database(name)
