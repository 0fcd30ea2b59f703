"""The ``yujing`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Optional

import asyncpg
import typer

from domain.errors import FixConfiguration, RetryLater
from yujing.commands import gateways, keys
from yujing.commands.audit import head as audit_head
from yujing.commands.audit import verify as audit_verify
from yujing.commands.backtest import backtest
from yujing.commands.drill import drill
from yujing.commands.loadtest import loadtest
from yujing.commands.simulate import simulate
from yujing.logs import configure_logging
from yujing.settings import ConfigError, Settings, load_settings

app = typer.Typer(
    name="yujing",
    help="预警 yujing — telemetry ingestion and early warning for work-safety monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
registry_app = typer.Typer(help="The registry of regions, enterprises, zones, gateways, sensors, hazard sources.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
audit_app = typer.Typer(help="The alert audit journal.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
audit_app.command("verify")(audit_verify)
audit_app.command("head")(audit_head)
keys_app = typer.Typer(help="API keys, each scoped to the province, a city, a county or an enterprise.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
keys_app.command("create")(keys.create)
keys_app.command("list")(keys.list_)
keys_app.command("revoke")(keys.revoke)
gateways_app = typer.Typer(help="Gateways' MQTT logins on the broker's authenticated listener.", no_args_is_help=True)
app.add_typer(gateways_app, name="gateways")
gateways_app.command("credentials")(gateways.credentials)
gateways_app.command("broker-files")(gateways.broker_files)
app.command("backtest")(backtest)
app.command("simulate")(simulate)
app.command("loadtest")(loadtest)
app.command("drill")(drill)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (or YUJING_CONFIG).", show_default=False)
]


def _settings(config: Path | None) -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _run(coro) -> None:
    """Run a command's coroutine; errors the user can act on end in one clear line."""
    try:
        asyncio.run(coro)
    except FixConfiguration as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(2) from None
    except RetryLater as exc:
        typer.echo(f"yujing: {exc}", err=True)
        raise typer.Exit(3) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _connect(settings: Settings, migrate: bool = False) -> asyncpg.Connection:
    url, name = ((settings.migration_url, "YUJING_DATABASE_MIGRATION_URL") if migrate
                 else (settings.database_url, "YUJING_DATABASE_URL"))
    try:
        return await asyncpg.connect(url, timeout=settings.database_timeout_s)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RetryLater(f"{name}: cannot connect to {url} ({exc})") from exc


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply the database migrations as the schema's owner (YUJING_DATABASE_MIGRATION_URL)."""
    settings = _settings(config)

    async def main() -> None:
        from store.migrate import apply_migrations, chunk_interval_s, set_chunk_interval
        from store.roles import current_role

        conn = await _connect(settings, migrate=True)
        try:
            applied = await apply_migrations(conn)
            interval = chunk_interval_s(settings.ingest.expected_rate, settings.ingest.chunk_target_rows)
            await set_chunk_interval(conn, interval)
            who, superuser = await current_role(conn)
        finally:
            await conn.close()
        if superuser:
            typer.echo(f"yujing: warning: migrated as the superuser {who}, who now owns what was created; "
                       "migrate as yujing_owner (YUJING_DATABASE_MIGRATION_URL)", err=True)
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
        typer.echo(f"schema up to date; readings chunk interval {interval} s")

    _run(main())


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the service: MQTT ingest, detectors, alerts and the API."""
    settings = _settings(config)
    from yujing.service import Service, run_until_signalled

    _run(run_until_signalled(Service(settings)))


@app.command()
def demo(
    config: ConfigOption = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per second of the fleet.")] = 1.0,
    recur_s: Annotated[float, typer.Option(help="Start the next incident scenario every this many simulated seconds.")] = 900.0,
    seed: Annotated[int, typer.Option(help="Fleet and scenario seed (0: the preset's).")] = 0,
) -> None:
    """The service with the jiangxi-demo fleet feeding it and incidents recurring: what to see first."""
    settings = _settings(config)
    from yujing.demo import run_demo
    from yujing.service import Service, run_until_signalled

    service = Service(settings)
    _run(run_until_signalled(service, run_demo(service, speed, recur_s, seed)))


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(help="Registry YAML (see docs/registry.md).", exists=True, dir_okay=False)],
    config: ConfigOption = None,
) -> None:
    """Create or update registry entries from a YAML file, in one transaction."""
    settings = _settings(config)

    async def main() -> None:
        from store.registry_records import import_registry
        from store.registry_file import parse_registry_file

        registry = parse_registry_file(file.read_text(encoding="utf-8"))
        conn = await _connect(settings)
        try:
            report = await import_registry(conn, registry)
        finally:
            await conn.close()
        typer.echo(report.summary())
        typer.echo(f"registry version {report.version}")

    _run(main())


@registry_app.command("rotate-secrets")
def registry_rotate_secrets(config: ConfigOption = None) -> None:
    """Re-encrypt contacts' webhooks and secrets with the first key of YUJING_SECRET_KEYS."""
    settings = _settings(config)

    async def main() -> None:
        from store.secretbox import rotate_contacts

        conn = await _connect(settings)
        try:
            typer.echo(f"{await rotate_contacts(conn)} secrets re-encrypted with the first key")
        finally:
            await conn.close()

    _run(main())




def main() -> None:  # pragma: no cover
    sys.exit(app())
