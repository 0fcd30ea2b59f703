"""yujing's PostgreSQL roles: the owner that migrates, the service that only reads and writes data.

``store/roles.sql`` creates them (a superuser runs it: deploy/setup/database.sh, the tests, or
``yujing migrate`` when it connects as a superuser). Migration 0065 grants ``yujing_service`` its
rights. :func:`service_role_problems` says what is wrong when the service connects with more.
"""

from __future__ import annotations

import importlib.resources

import asyncpg

OWNER_ROLE = "yujing_owner"
SERVICE_GROUP = "yujing_service"
SERVICE_ROLE = "yujing"


def roles_sql() -> str:
    return (importlib.resources.files("store") / "roles.sql").read_text(encoding="utf-8")


async def can_create_roles(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"))


async def ensure_roles(conn: asyncpg.Connection) -> None:
    """Create the roles if missing and reset their attributes (``conn``: a superuser's, not in a
    transaction: the script commits its own)."""
    await conn.execute(roles_sql())


async def service_role_problems(conn: asyncpg.Connection) -> list[str]:
    """Why the connected role is not a safe service role (empty when it is): a superuser, a role
    that owns (or can become the owner of) the audit journal, or one that may disable triggers."""
    row = await conn.fetchrow(
        """SELECT current_user AS who, r.rolsuper AS super, r.rolbypassrls AS bypass,
                  pg_has_role(current_user, c.relowner, 'USAGE') AS owner,
                  has_table_privilege(current_user, 'alert_journal', 'UPDATE, DELETE, TRUNCATE, TRIGGER') AS change
           FROM pg_roles r, pg_class c
           WHERE r.rolname = current_user AND c.oid = to_regclass('alert_journal')"""
    )
    if row is None:
        return []
    problems = []
    if row["super"]:
        problems.append(f"connected as {row['who']}, a superuser: it can disable the audit journal's triggers")
    elif row["owner"]:
        problems.append(f"connected as {row['who']}, which owns (or can act as the owner of) the audit journal")
    if row["change"] and not row["super"]:
        problems.append(f"{row['who']} may update, delete, truncate or add triggers to the audit journal")
    if row["bypass"] and not row["super"]:
        problems.append(f"{row['who']} bypasses row-level security")
    return problems


async def current_role(conn: asyncpg.Connection) -> tuple[str, bool]:
    """The connection's role name, and whether it is a superuser."""
    who, superuser = await conn.fetchrow("SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")
    return who, superuser
