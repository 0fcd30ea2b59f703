"""``yujing keys create --scope province|city:CODE|county:CODE|enterprise:ID [--name NAME] [--admin]``.

Prints the new API key once; only its SHA-256 is stored. The lead registers it with the CLI:
``keys_app.command("create")(keys.create)``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Optional

import asyncpg
import typer

from api.keys import DEFAULT_BURST, DEFAULT_LIVE_SESSIONS, DEFAULT_RATE_PER_S, create_key
from api.scope import Scope, ScopeError


def create(
    scope: Annotated[str, typer.Option("--scope", help="province, city:CODE, county:CODE or enterprise:ID")],
    name: Annotated[Optional[str], typer.Option("--name", help="who or what uses the key")] = None,
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="default: YUJING_DATABASE_URL")] = None,
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
    if database_url is None:
        from yujing.settings import ConfigError, load_settings

        try:
            database_url = load_settings().database_url
        except ConfigError as exc:
            typer.echo(f"yujing: {exc}", err=True)
            raise typer.Exit(2) from None

    async def main() -> tuple[str, int]:
        try:
            conn = await asyncpg.connect(database_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            typer.echo(f"yujing: cannot connect to {database_url} ({exc})", err=True)
            raise typer.Exit(3) from None
        try:
            if parsed.kind == "enterprise":
                exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM enterprises WHERE id = $1)", parsed.id)
            elif parsed.id is not None:
                exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)", parsed.id)
            else:
                exists = True
            if not exists:
                typer.echo(f"yujing: --scope: {parsed} is not in the registry", err=True)
                raise typer.Exit(2)
            plain, key = await create_key(conn, parsed, name, rate_per_s=rate_per_s, burst=burst, admin=admin,
                                          live_sessions=live_sessions)
            return plain, key.id
        finally:
            await conn.close()

    plain, key_id = asyncio.run(main())
    typer.echo(f"key {key_id} ({parsed}) — shown once, store it now:", err=True)
    typer.echo(plain)
