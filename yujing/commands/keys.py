"""``yujing keys create | list | revoke``: the API keys, each scoped to the province, a city, a
county or an enterprise (``create --admin``: the province administrator).

``create`` prints the new key once; only its SHA-256 is stored. ``list`` shows each key's id,
name, scope, prefix, when it was created, last used and revoked — never a secret (the database
has none to show). ``revoke ID`` stops a key within the API's key cache period (10 s).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Optional, TypeVar

import asyncpg
import typer

from api.keys import CACHE_S, DEFAULT_BURST, DEFAULT_LIVE_SESSIONS, DEFAULT_RATE_PER_S, KeyInfo, create_key, list_keys, revoke_key
from api.scope import Scope, ScopeError
from store.registry_records.entities import ENTITY_TABLES, entry_exists

T = TypeVar("T")
DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="default: YUJING_DATABASE_URL")]


def _database_url(database_url: str | None) -> str:
    if database_url is not None:
        return database_url
    from yujing.settings import ConfigError, load_settings

    try:
        return load_settings().database_url
    except ConfigError as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(2) from None


def _with_connection(database_url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            conn = await asyncpg.connect(database_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            typer.echo(f"yujing: cannot connect to {database_url} ({exc})", err=True)
            raise typer.Exit(3) from None
        try:
            return await work(conn)
        except asyncpg.UndefinedColumnError as exc:
            typer.echo(f"yujing: the database schema is older than this yujing ({exc}); run `yujing migrate`", err=True)
            raise typer.Exit(2) from None
        finally:
            await conn.close()

    return asyncio.run(main())


def create(
    scope: Annotated[str, typer.Option("--scope", help="province, city:CODE, county:CODE or enterprise:ID")],
    name: Annotated[Optional[str], typer.Option("--name", help="who or what uses the key")] = None,
    database_url: DatabaseUrl = None,
    rate_per_s: Annotated[float, typer.Option("--rate", help="requests per second")] = DEFAULT_RATE_PER_S,
    burst: Annotated[int, typer.Option("--burst", help="requests allowed at once")] = DEFAULT_BURST,
    admin: Annotated[bool, typer.Option("--admin", help="province administrator: creates regions and "
                                        "enterprises, changes parents, approves webhook hosts")] = False,
    live_sessions: Annotated[int, typer.Option("--live-sessions", min=0, help="live feeds open at once")]
    = DEFAULT_LIVE_SESSIONS,
) -> None:
    """Create an API key with a scope and print it (once: it cannot be shown again)."""
    try:
        parsed = Scope.parse(scope)
    except ScopeError as exc:
        typer.echo(f"yujing: --scope: {exc}", err=True)
        raise typer.Exit(2) from None
    if admin and not parsed.province:
        typer.echo("yujing: --admin: only a province key can be an administrator", err=True)
        raise typer.Exit(2)

    async def work(conn: asyncpg.Connection) -> tuple[str, int]:
        if parsed.id is not None:
            section = "enterprises" if parsed.kind == "enterprise" else "regions"
            exists = await entry_exists(conn, ENTITY_TABLES[section], None, parsed.id)
        else:
            exists = True
        if not exists:
            typer.echo(f"yujing: --scope: {parsed} is not in the registry", err=True)
            raise typer.Exit(2)
        plain, key = await create_key(conn, parsed, name, rate_per_s=rate_per_s, burst=burst, admin=admin,
                                      live_sessions=live_sessions)
        return plain, key.id

    plain, key_id = _with_connection(_database_url(database_url), work)
    typer.echo(f"key {key_id} ({parsed}) — shown once, store it now:", err=True)
    typer.echo(plain)


def _when(t: datetime.datetime | None) -> str:
    return "—" if t is None else t.astimezone().isoformat(timespec="seconds")


def _as_json(k: KeyInfo) -> dict:
    return {"id": k.id, "name": k.name, "scope": str(k.scope), "prefix": k.prefix,
            "created_at": k.created_at.isoformat(),
            "last_used_at": None if k.last_used_at is None else k.last_used_at.isoformat(),
            "revoked_at": None if k.revoked_at is None else k.revoked_at.isoformat()}


def list_(
    database_url: DatabaseUrl = None,
    active: Annotated[bool, typer.Option("--active", help="only keys that are not revoked")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List the API keys: id, name, scope, prefix, created, last used, revoked (never a secret)."""
    keys = _with_connection(_database_url(database_url), lambda conn: list_keys(conn, include_revoked=not active))
    if as_json:
        for k in keys:
            typer.echo(json.dumps(_as_json(k), ensure_ascii=False))
        return
    if not keys:
        typer.echo("no API keys (create one: yujing keys create --scope province)", err=True)
        return
    rows = [("id", "name", "scope", "prefix", "created", "last used", "revoked")]
    rows += [(str(k.id), k.name, str(k.scope), k.prefix + "…", _when(k.created_at), _when(k.last_used_at),
              _when(k.revoked_at)) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id, as `yujing keys list` shows it")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key: the API refuses it within 10 s (its key cache)."""

    async def work(conn: asyncpg.Connection) -> tuple[bool, KeyInfo | None]:
        done = await revoke_key(conn, key_id)
        info = next((k for k in await list_keys(conn) if k.id == key_id), None)
        return done, info

    done, info = _with_connection(_database_url(database_url), work)
    if info is None:
        typer.echo(f"yujing: there is no API key {key_id} (see yujing keys list)", err=True)
        raise typer.Exit(2)
    if not done:
        typer.echo(f"key {key_id} ({info.scope}, {info.name}) was already revoked at {_when(info.revoked_at)}")
        return
    typer.echo(f"revoked key {key_id} ({info.scope}, {info.name}, {info.prefix}…); "
               f"the API refuses it within {CACHE_S:g} s")
