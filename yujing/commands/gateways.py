"""``yujing gateways credentials|broker-files``: gateway MQTT logins for the broker's
authenticated listener.

``credentials ENTERPRISE GATEWAY [--rotate | --revoke]`` prints the username and a new password
once (only its hash is stored). ``broker-files`` writes the broker's password and ACL files from
the database and sends the broker SIGHUP. When the settings name the files
(``gateway_broker.password_file`` …), ``credentials`` writes them too, so the change is live at
once; a running service also rewrites them within ``gateway_broker.poll_s``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import asyncpg
import typer

from domain.errors import FixConfiguration
from ingest.broker_files import BrokerFiles
from store.gateway_credentials import issue_credentials, revoke_credentials

DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="default: YUJING_DATABASE_URL")]


def _settings():
    from yujing.settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(2) from None


async def _connect(database_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(database_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"yujing: cannot connect to {database_url} ({exc})", err=True)
        raise typer.Exit(3) from None


def _run(coro):
    try:
        return asyncio.run(coro)
    except FixConfiguration as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(2) from None


def _configured_files(settings) -> BrokerFiles | None:
    gb = settings.gateway_broker
    return BrokerFiles(gb.password_file, gb.acl_file, gb.pid_file) if gb.enabled else None


def credentials(
    enterprise: Annotated[str, typer.Argument(help="enterprise id")],
    gateway: Annotated[str, typer.Argument(help="gateway code within the enterprise")],
    rotate: Annotated[bool, typer.Option(
        "--rotate", help="replace the gateway's password (the old one stops working)")] = False,
    revoke: Annotated[bool, typer.Option(
        "--revoke", help="revoke the gateway's password; it can no longer connect")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue (or rotate, or revoke) a gateway's MQTT login and print the password once."""
    if rotate and revoke:
        typer.echo("yujing: --rotate and --revoke exclude each other", err=True)
        raise typer.Exit(2)
    settings = _settings()
    files = _configured_files(settings)

    async def main():
        conn = await _connect(database_url or settings.database_url)
        try:
            result = await (revoke_credentials(conn, enterprise, gateway) if revoke
                            else issue_credentials(conn, enterprise, gateway, rotate=rotate))
            # The change is committed: a broker that cannot be updated must not hide the password.
            try:
                synced = await files.sync(conn) if files is not None else None
            except FixConfiguration as exc:
                typer.echo(f"yujing: warning: {exc}; the broker files were not updated", err=True)
                synced = None
        finally:
            await conn.close()
        return result, synced

    result, synced = _run(main())
    if revoke:
        typer.echo(f"{enterprise}/{gateway}: " + ("revoked" if result else "had no live credentials"), err=True)
    else:
        typer.echo(f"{enterprise}/{gateway}: MQTT login {'rotated' if result.rotated else 'issued'}"
                   " — the password is shown once, store it now:", err=True)
        typer.echo(f"username: {result.username}")
        typer.echo(f"password: {result.password}")
        typer.echo(f"monitor username: {result.monitor_username}")  # read-only: alerts and errors
        typer.echo(f"monitor password: {result.monitor_password}")
    if synced is not None:
        typer.echo(f"broker files written ({synced[0]} gateway logins)"
                   + (", broker reloaded" if files.pid_file and synced[1] else ""), err=True)
    else:
        typer.echo("the running service updates the broker files within gateway_broker.poll_s; "
                   "without it, run `yujing gateways broker-files`", err=True)


def broker_files(
    password_file: Annotated[Optional[Path], typer.Option(
        "--password-file", help="default: gateway_broker.password_file")] = None,
    acl_file: Annotated[Optional[Path], typer.Option(
        "--acl-file", help="default: gateway_broker.acl_file")] = None,
    reload_pid_file: Annotated[Optional[Path], typer.Option(
        "--reload-pid-file",
        help="send SIGHUP to the broker whose pid is in this file (default: gateway_broker.pid_file)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the broker's gateway password file and ACL file from the database."""
    settings = _settings()
    gb = settings.gateway_broker
    password_file = password_file or gb.password_file
    acl_file = acl_file or gb.acl_file
    if password_file is None or acl_file is None:
        typer.echo("yujing: give --password-file and --acl-file (or set gateway_broker.password_file "
                   "and gateway_broker.acl_file)", err=True)
        raise typer.Exit(2)
    files = BrokerFiles(password_file, acl_file, reload_pid_file or gb.pid_file)

    async def main():
        conn = await _connect(database_url or settings.database_url)
        try:
            return await files.sync(conn, force_reload=True)
        finally:
            await conn.close()

    count, changed = _run(main())
    state = "written" if changed else "unchanged"
    reloaded = ", broker reloaded" if files.pid_file else ""
    typer.echo(f"{password_file}, {acl_file}: {state} ({count} gateway logins{reloaded})")
